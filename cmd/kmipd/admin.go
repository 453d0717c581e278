package main

import (
	"context"
	"fmt"
	"io"

	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/hsm"
)

func cmdCerts(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, "Usage:\n  kmipd certs init -dir DIR\n  kmipd certs issue -dir DIR -name NAME\n")
		return errUsage
	}
	switch args[0] {
	case "init":
		fs := newFlagSet("certs init", "certs init -dir DIR [-algorithm ecdsa-p256|rsa-2048]", stderr)
		dir := fs.String("dir", "", "folder for ca.crt/key, server.crt/key, client.crt/key and issuer.crt/key, the issuing CA of KMIP Certify (required)")
		alg := fs.String("algorithm", "", "key algorithm (default ECDSA P-256)")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *dir == "" {
			fs.Usage()
			return errUsage
		}
		if err := certs.Init(*dir, certs.Options{Algorithm: *alg}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "PKI ready in %s\n", *dir)
		return nil
	case "issue":
		fs := newFlagSet("certs issue", "certs issue -dir DIR -name NAME", stderr)
		dir := fs.String("dir", "", "folder holding ca.crt and ca.key (required)")
		name := fs.String("name", "", "client name: writes NAME.crt and NAME.key (required)")
		alg := fs.String("algorithm", "", "key algorithm (default ECDSA P-256)")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *dir == "" || *name == "" {
			fs.Usage()
			return errUsage
		}
		if err := certs.Issue(*dir, *name, certs.Options{Algorithm: *alg}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "issued %s/%s.crt and %s.key\n", *dir, *name, *name)
		return nil
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, "Usage:\n  kmipd certs init -dir DIR\n  kmipd certs issue -dir DIR -name NAME\n")
		return nil
	}
	fmt.Fprintf(stderr, "kmipd certs: unknown command %q\n", args[0])
	return errUsage
}

func cmdHSM(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "init" && args[0] != "check") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Fprint(stdout, "Usage:\n  kmipd hsm init -config FILE\n  kmipd hsm check -config FILE\n")
			return nil
		}
		fmt.Fprint(stderr, "Usage:\n  kmipd hsm init -config FILE\n  kmipd hsm check -config FILE\n")
		return errUsage
	}
	sub := args[0]
	c, err := loadConfigFlag("hsm "+sub, "hsm "+sub+" -config FILE", args[1:], stderr)
	if err != nil {
		return err
	}
	hc, err := c.HSMOptions()
	if err != nil {
		return err
	}
	log := daemon.NewLogger(c.Log, stderr)
	c.LogWarnings(log)
	if sub == "init" {
		created, err := hsm.InitMasterKeys(ctx, hc, log.Named("hsm"))
		if err != nil {
			return err
		}
		if len(created) == 0 {
			fmt.Fprintln(stdout, "master keys already present")
		}
		for _, label := range created {
			fmt.Fprintf(stdout, "created %s\n", label)
		}
		return nil
	}
	return hsmCheck(ctx, hc, log, stdout)
}

func hsmCheck(ctx context.Context, hc hsm.Config, log hclog.Logger, stdout io.Writer) error {
	h, err := hsm.Open(ctx, hc, log.Named("hsm"))
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.Check(ctx); err != nil {
		return fmt.Errorf("HSM check failed: %w", err)
	}
	fmt.Fprintf(stdout, "HSM ok: MKEK %q and HMAC key %q found; wrap/unwrap and HMAC verified\n", hc.MKEKLabel, hc.HMACLabel)
	return nil
}
