package testkit

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/conformance"
)

// caIssuer is what NewIdentity needs from the dev CA.
type caIssuer interface {
	IssueClient(cn string, opts ...certs.LeafOption) (*certs.Issued, error)
}

// PKI is the dev PKI folder (ca.crt, client.crt, client.key, …).
func (d *Dev) PKI() string { return filepath.Join(d.Dir, "pki") }

// CAFile is the CA certificate clients verify the server with.
func (d *Dev) CAFile() string { return filepath.Join(d.PKI(), certs.CACertFile) }

// Client returns a client with the dev client certificate: the identity
// `kmipd dev` prints for Barbican.
func (d *Dev) Client(t testing.TB) *Client {
	t.Helper()
	return d.clientFromFiles(t, "client",
		filepath.Join(d.PKI(), certs.ClientCertFile), filepath.Join(d.PKI(), certs.ClientKeyFile))
}

// NewIdentity returns a client with a fresh key and certificate from the dev
// CA: a new owner, who sees none of the other identities' objects. The files
// are written under Dir/ids so other processes (PyKMIP) can use them too.
func (d *Dev) NewIdentity(t testing.TB, name string) *Client {
	t.Helper()
	d.caOnce.Do(func() { d.ca, d.caErr = certs.LoadCA(d.PKI(), certs.Options{}) })
	if d.caErr != nil {
		t.Fatalf("testkit: loading the dev CA: %v", d.caErr)
	}
	iss, err := d.ca.IssueClient(name)
	if err != nil {
		t.Fatalf("testkit: issuing %q: %v", name, err)
	}
	dir := filepath.Join(d.Dir, "ids")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("testkit: %v", err)
	}
	// Names may repeat (each call is a new key); the sequence keeps files apart.
	stem := filepath.Join(dir, fmt.Sprintf("%s-%d", name, d.idSeq.Add(1)))
	certFile, keyFile := stem+".crt", stem+".key"
	if err := os.WriteFile(certFile, iss.CertPEM, 0o600); err != nil {
		t.Fatalf("testkit: %v", err)
	}
	if err := os.WriteFile(keyFile, iss.KeyPEM, 0o400); err != nil {
		t.Fatalf("testkit: %v", err)
	}
	return d.clientFromFiles(t, name, certFile, keyFile)
}

func (d *Dev) clientFromFiles(t testing.TB, name, certFile, keyFile string) *Client {
	t.Helper()
	cfg, err := conformance.TLSConfig(d.CAFile(), certFile, keyFile)
	if err != nil {
		t.Fatalf("testkit: client %q: %v", name, err)
	}
	leaf, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatalf("testkit: client %q: %v", name, err)
	}
	c := &Client{
		Name:     name,
		CertFile: certFile,
		KeyFile:  keyFile,
		CAFile:   d.CAFile(),
		Owner:    ownerID(leaf),
		Timeout:  DefaultTimeout,
		addr:     d.Addr,
		tls:      cfg,
	}
	t.Cleanup(c.Close)
	return c
}

// ownerID is kmipd's identity rule (server.Identity): the lowercase hex
// SHA-256 of the certificate's SubjectPublicKeyInfo. Duplicated rather than
// imported so the kit checks the server against the documented rule.
func ownerID(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}
