// Command kmipd is a KMIP server that keeps an HSM behind one bounded pool of
// PKCS#11 sessions. main only orchestrates: parse flags, load the
// configuration, build (package daemon), serve, reload on SIGHUP, stop.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/kmipd/kmipd/bench"
	"github.com/kmipd/kmipd/conformance"
	"github.com/kmipd/kmipd/daemon"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `kmipd — a KMIP server over one bounded pool of HSM sessions

Usage:
  kmipd serve -config FILE
  kmipd dev [-dir DIR] [-addr HOST:PORT] [-hsm-module PATH] [-max-sessions N] [-cluster N]
  kmipd certs init -dir DIR
  kmipd certs issue -dir DIR -name NAME
  kmipd hsm init -config FILE
  kmipd hsm check -config FILE
  kmipd storage migrate -config FILE
  kmipd audit verify FILE...
  kmipd admin status -config FILE [-json]
  kmipd admin backup -config FILE -out FILE
  kmipd admin rotate-pkek -config FILE (-owner ID | -all) [-json]
  kmipd admin reindex -config FILE (-owner ID | -all) [-json]
  kmipd restore -config FILE -in FILE
  kmipd conformance -addr HOST:PORT -ca CA -cert CERT -key KEY [-json] PATH...
  kmipd bench -addr HOST:PORT -ca CA -cert CERT -key KEY -mode persistent|reconnect
              -workers N -duration D -mix get|create|create-get-destroy|register-get|encrypt
              [-owners K -pki DIR] [-json]
  kmipd bench scale -dir DIR -n N [-workers W] [-duration D] [-json FILE]
  kmipd client SUBCOMMAND [-dir DIR | -addr HOST:PORT -ca CA -cert CERT -key KEY] [-json] ...
  kmipd version

Every command answers -h.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	daemon.Version = version
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(ctx, args[1:], stderr)
	case "dev":
		err = cmdDev(ctx, args[1:], stdout, stderr)
	case "certs":
		err = cmdCerts(args[1:], stdout, stderr)
	case "hsm":
		err = cmdHSM(ctx, args[1:], stdout, stderr)
	case "audit":
		err = cmdAudit(args[1:], stdout, stderr)
	case "admin":
		err = cmdAdmin(ctx, args[1:], stdout, stderr)
	case "restore":
		err = cmdRestore(ctx, args[1:], stdout, stderr)
	case "storage":
		err = cmdStorage(ctx, args[1:], stdout, stderr)
	case "conformance":
		return conformance.Main(args[1:], stdout, stderr)
	case "bench":
		if len(args) > 1 && args[1] == "scale" {
			err = cmdBenchScale(ctx, args[2:], stdout, stderr)
			break
		}
		return bench.Main(ctx, args[1:], stdout, stderr)
	case "client":
		return cmdClient(ctx, args[1:], os.Stdin, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "kmipd %s\n", version)
		return 0
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "kmipd: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "kmipd: %v\n", err)
		return 1
	}
}

// errUsage marks an error already explained by the flag set's usage text.
var errUsage = errors.New("usage")

// newFlagSet returns a flag set that reports errors instead of exiting, so
// commands stay testable.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kmipd %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags wraps fs.Parse so a bad flag becomes errUsage and -h becomes flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %v\n", fs.Args())
		fs.Usage()
		return errUsage
	}
	return nil
}

// loadConfigFlag serves the subcommands whose one flag is -config FILE
// (required): it parses args and loads that configuration.
func loadConfigFlag(name, synopsis string, args []string, stderr io.Writer) (*daemon.Config, error) {
	fs := newFlagSet(name, synopsis, stderr)
	path := fs.String("config", "", "path to the kmipd HCL configuration (required)")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if *path == "" {
		fs.Usage()
		return nil, errUsage
	}
	return daemon.LoadConfig(*path)
}
