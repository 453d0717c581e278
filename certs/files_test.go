package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("%s: no CERTIFICATE block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestInitFiles(t *testing.T) {
	// A restrictive umask must not change the modes Init promises.
	old := syscall.Umask(0o077)
	t.Cleanup(func() { syscall.Umask(old) })

	dir := filepath.Join(t.TempDir(), "pki")
	if err := Init(dir, Options{Hosts: []string{"kms.internal", "192.0.2.7"}, ClientName: "barbican"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]fs.FileMode{
		CACertFile: 0o644, CAKeyFile: 0o600,
		ServerCertFile: 0o644, ServerKeyFile: 0o600,
		ClientCertFile: 0o644, ClientKeyFile: 0o400,
	}
	for name, mode := range want {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
		if strings.HasSuffix(name, ".key") {
			b, _ := os.ReadFile(filepath.Join(dir, name))
			if blk, _ := pem.Decode(b); blk == nil || blk.Type != "PRIVATE KEY" {
				t.Errorf("%s is not a PKCS#8 PEM key", name)
			}
		}
	}
	ca := readCert(t, filepath.Join(dir, CACertFile))
	srv := readCert(t, filepath.Join(dir, ServerCertFile))
	cli := readCert(t, filepath.Join(dir, ClientCertFile))
	for _, h := range []string{"localhost", "kms.internal", "192.0.2.7"} {
		if err := verify(t, ca, srv, x509.ExtKeyUsageServerAuth, h); err != nil {
			t.Errorf("server for %s: %v", h, err)
		}
	}
	if verify(t, ca, srv, x509.ExtKeyUsageServerAuth, "127.0.0.1") == nil {
		t.Error("explicit Hosts should replace the default IPs")
	}
	if err := verify(t, ca, cli, x509.ExtKeyUsageClientAuth, ""); err != nil {
		t.Errorf("client: %v", err)
	}
	if cli.Subject.CommonName != "barbican" {
		t.Errorf("client CN %q", cli.Subject.CommonName)
	}
	if got := ca.NotAfter.Sub(ca.NotBefore); got < DefaultCAValidity {
		t.Errorf("CA validity %v", got)
	}
	if got := cli.NotAfter.Sub(cli.NotBefore); got < DefaultLeafValidity || got > DefaultLeafValidity+clockSkew {
		t.Errorf("leaf validity %v", got)
	}

	// Idempotent: a second Init leaves every file as it was.
	before, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err := Init(dir, Options{}); err != nil {
		t.Fatalf("second Init: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if !bytes.Equal(before, after) {
		t.Error("second Init rewrote ca.key")
	}

	// Partial: an error naming the survivors, nothing written.
	for _, f := range []string{ClientCertFile, ClientKeyFile, CACertFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	err := Init(dir, Options{})
	if err == nil {
		t.Fatal("Init over a partial set succeeded")
	}
	for _, f := range []string{CAKeyFile, ServerCertFile, ServerKeyFile} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not name %s", err, f)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, CACertFile)); err == nil {
		t.Error("partial Init wrote ca.crt")
	}
}

func TestInitDefaultHosts(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, Options{Algorithm: RSA2048}); err != nil {
		t.Fatal(err)
	}
	ca := readCert(t, filepath.Join(dir, CACertFile))
	srv := readCert(t, filepath.Join(dir, ServerCertFile))
	for _, h := range DefaultHosts {
		if err := verify(t, ca, srv, x509.ExtKeyUsageServerAuth, h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	if srv.PublicKeyAlgorithm != x509.RSA || ca.PublicKeyAlgorithm != x509.RSA {
		t.Errorf("algorithms %v / %v", srv.PublicKeyAlgorithm, ca.PublicKeyAlgorithm)
	}
	if srv.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		t.Error("RSA server cert lacks KeyEncipherment")
	}
}

func TestIssue(t *testing.T) {
	dir := t.TempDir()
	if err := Issue(dir, "pykmip", Options{}); err == nil {
		t.Fatal("Issue without a CA succeeded")
	}
	if err := Init(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := Issue(dir, "array-01.rack_2", Options{}); err != nil {
		t.Fatal(err)
	}
	ca := readCert(t, filepath.Join(dir, CACertFile))
	c := readCert(t, filepath.Join(dir, "array-01.rack_2.crt"))
	if err := verify(t, ca, c, x509.ExtKeyUsageClientAuth, ""); err != nil {
		t.Fatal(err)
	}
	if c.Subject.CommonName != "array-01.rack_2" {
		t.Errorf("CN %q", c.Subject.CommonName)
	}
	if fi, err := os.Stat(filepath.Join(dir, "array-01.rack_2.key")); err != nil || fi.Mode().Perm() != 0o400 {
		t.Errorf("key mode: %v %v", fi.Mode(), err)
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "array-01.rack_2.crt"), filepath.Join(dir, "array-01.rack_2.key")); err != nil {
		t.Error(err)
	}
	if err := Issue(dir, "array-01.rack_2", Options{}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("reissue over existing files: %v", err)
	}
	for _, bad := range []string{"", ".", "..", "a/b", "../x", `a\b`, "a b", "ca", "server", "é"} {
		if err := Issue(dir, bad, Options{}); err == nil {
			t.Errorf("Issue accepted name %q", bad)
		}
	}
	// A CA whose key does not match its certificate is refused.
	other := t.TempDir()
	if err := Init(other, Options{}); err != nil {
		t.Fatal(err)
	}
	k, _ := os.ReadFile(filepath.Join(other, CAKeyFile))
	c2, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	if _, err := ParseCA(c2, k, Options{}); err == nil {
		t.Error("mismatched CA key accepted")
	}
}
