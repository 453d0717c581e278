package daemon_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/hsm/hsmtest"
	"github.com/kmipd/kmipd/kmipops"
	"github.com/kmipd/kmipd/server"
	"github.com/kmipd/kmipd/tests/hostile"
)

// testConfig is the dev configuration in a temporary folder on a fresh
// SoftHSM token, with the dev PKI written by certs.Init.
func testConfig(t *testing.T) (*daemon.Config, hsm.Config) {
	t.Helper()
	hc := hsmtest.SoftHSM(t)
	dir := t.TempDir()
	if err := certs.Init(filepath.Join(dir, daemon.DevPKIDir), certs.Options{}); err != nil {
		t.Fatal(err)
	}
	c := daemon.DevConfig(dir, "127.0.0.1:0", hc.ModulePath, 0)
	c.HSM.TokenLabel, c.HSM.PIN = hc.TokenLabel, daemon.Secret(hc.PIN)
	return c, hc
}

// TestBuildServes builds from a file using the deprecated object-cache key,
// serves on 127.0.0.1:0 and completes a mutual-TLS handshake. Every part logs
// under the name its package documents, and the deprecation warning comes
// out of Build through the config logger.
func TestBuildServes(t *testing.T) {
	c, _ := testConfig(t)
	var hcl bytes.Buffer
	if err := c.WriteHCL(&hcl); err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(hcl.String(), "cache_size = 10000\n}", "cache_size = 10000\n  object_cache_bytes = \"1MiB\"\n}", 1)
	src = src[:strings.Index(src, "objects {")] + src[strings.Index(src, "kmip {"):]
	c, err := daemon.ParseConfig([]byte(src), filepath.Join(filepath.Dir(c.Storage.Path), daemon.DevConfigFile))
	if err != nil || c.Objects.CacheBytes != 1<<20 || len(c.Warnings) != 1 {
		t.Fatalf("%v %+v\n%s", err, c, src)
	}
	logs := &hostile.LogBuffer{}
	c.Log.Level = "debug"
	d, err := daemon.Build(t.Context(), c, daemon.NewLogger(c.Log, logs))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx, l) }()

	pki := filepath.Dir(c.Listener.CertFile)
	ca, err := certs.LoadCA(pki, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ca.IssueClient("build-test")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost",
		Certificates: []tls.Certificate{cli.TLS()}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("mutual TLS handshake: %v", err)
	}
	conn.Close()
	if a := d.Addr(); a == nil || a.String() != l.Addr().String() {
		t.Errorf("Addr %v, want %v", a, l.Addr())
	}

	// A Create makes the owner's pKEK (kek logs it); a Get of nothing is
	// refused (kmipops logs it at debug).
	caller := kmipops.Caller{Identity: "build-test-owner", CommonName: "build-test"}
	if r := hostile.Results(d.Processor().Process(ctx, caller, hostile.Request(hostile.CreateAES(128)))); len(r) != 1 || !r[0].OK() {
		t.Errorf("Create: %v", r)
	}
	r := hostile.Results(d.Processor().Process(ctx, caller, hostile.Request(hostile.Item(kmip14.OperationGet, hostile.UID("absent")))))
	if len(r) != 1 || r[0].Reason != kmip14.ResultReasonItemNotFound {
		t.Errorf("Get of nothing: %v", r)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{
		"[WARN]  kmipd.config: " + c.Warnings[0].Subject.String() + ": kek.object_cache_bytes is deprecated; use objects.cache_bytes",
		"kmipd.hsm: HSM opened", "kmipd.storage: badger store open", "kmipd.kek: created pKEK",
		"kmipd.kmipops: operation refused", "kmipd.server: listening", "kmipd.hsm: HSM closed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestBuildHooks: a supplied HSM is used and left open by Close; the server
// and processor adjustments are applied; an HSM Build opened is closed.
func TestBuildHooks(t *testing.T) {
	c, hc := testConfig(t)
	h, err := hsm.Open(t.Context(), hc, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var sawServer, sawProcessor bool
	d, err := daemon.BuildWith(t.Context(), c, nil, daemon.Hooks{
		HSM: h,
		Server: func(sc *server.Config) {
			sawServer = sc.Address == "127.0.0.1:0" && sc.Metrics != nil && sc.TLS != nil
		},
		Processor: func(o *kmipops.Options) { sawProcessor = o.Observer != nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.HSM() != h || !sawServer || !sawProcessor {
		t.Errorf("hooks: same HSM %v, server %v, processor %v", d.HSM() == h, sawServer, sawProcessor)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Random(t.Context(), 16); err != nil {
		t.Fatalf("the caller's HSM was closed: %v", err)
	}

	// Without the hook Build opens the HSM itself, and Close closes it.
	c.Storage.Path = t.TempDir()
	h.Close() // a PKCS#11 login is per process: one HSM on the token at a time
	d, err = daemon.Build(t.Context(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	own := d.HSM()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := own.Random(t.Context(), 16); err == nil {
		t.Fatal("Close left the HSM Build opened in use")
	}
}

// TestBuildCertify: the dev configuration's issuing CA (certs.Init writes it)
// is loaded and offered to the processor; a certify block whose files are
// missing stops Build with a message naming the block.
func TestBuildCertify(t *testing.T) {
	c, _ := testConfig(t)
	var issuer kmipops.Issuer
	d, err := daemon.BuildWith(t.Context(), c, nil, daemon.Hooks{Processor: func(o *kmipops.Options) { issuer = o.Issuer }})
	if err != nil {
		t.Fatal(err)
	}
	if issuer == nil {
		t.Error("the dev configuration offers no Certify")
	}
	if err := d.ReloadTLS(); err != nil {
		t.Errorf("reload: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	c.Certify.CAKey = filepath.Join(t.TempDir(), "absent.key")
	c.Storage.Path = t.TempDir()
	if _, err := daemon.Build(t.Context(), c, nil); err == nil || !strings.Contains(err.Error(), "certify:") {
		t.Errorf("missing issuing CA key: %v", err)
	}
}

// kmip { asynchronous = false } reaches kmipops as no asynchronous
// operations at all (nil there would mean the default ones).
func TestBuildAsynchronousOff(t *testing.T) {
	for _, on := range []bool{true, false} {
		c, _ := testConfig(t)
		c.KMIP.Asynchronous = on
		var got []kmip14.Operation
		d, err := daemon.BuildWith(t.Context(), c, nil, daemon.Hooks{
			Processor: func(o *kmipops.Options) { got = o.AsyncOperations },
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if (got == nil) != on || len(got) != 0 {
			t.Errorf("asynchronous = %v: AsyncOperations %v", on, got)
		}
	}
}

// The kmip block's credential and group keys reach kmipops.
func TestBuildCredentialAndGroupOptions(t *testing.T) {
	c, _ := testConfig(t)
	c.KMIP.Credentials, c.KMIP.CredentialHashIterations = "ignore", 4000
	c.KMIP.DefaultObjectGroup, c.KMIP.AssignDefaultGroup = "pool", true
	var got kmipops.Options
	d, err := daemon.BuildWith(t.Context(), c, nil, daemon.Hooks{Processor: func(o *kmipops.Options) { got = *o }})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if !got.IgnoreCredentials || got.CredentialIterations != 4000 || got.DefaultObjectGroup != "pool" || !got.AssignDefaultGroup {
		t.Errorf("options: ignore %v, iterations %d, group %q, assign %v", got.IgnoreCredentials, got.CredentialIterations, got.DefaultObjectGroup, got.AssignDefaultGroup)
	}
}
