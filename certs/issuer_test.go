package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func issuerIn(t *testing.T, p Policy) (*Issuer, string) {
	t.Helper()
	dir := t.TempDir()
	if err := InitIssuer(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	i, err := LoadIssuer(filepath.Join(dir, IssuerCertFile), filepath.Join(dir, IssuerKeyFile), p)
	if err != nil {
		t.Fatal(err)
	}
	return i, dir
}

func TestIssuerIssues(t *testing.T) {
	i, _ := issuerIn(t, Policy{Validity: 48 * time.Hour, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	raw, err := asn1Marshal((pkix.Name{CommonName: "device-7", Organization: []string{"ACME"}}).ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Truncate(time.Second)
	// The template asks for more than the issuer gives: a CA, its own
	// serial and validity, extensions. Only subject, names and key usage count.
	tmpl := &x509.Certificate{RawSubject: raw, DNSNames: []string{"device-7.example"}, KeyUsage: x509.KeyUsageDigitalSignature,
		NotBefore: start, NotAfter: start.Add(100 * 365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		SerialNumber: bigOne(), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := i.Issue(context.Background(), tmpl, &k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(i.Certificate())
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("issued certificate does not verify: %v", err)
	}
	if c.IsCA || !c.BasicConstraintsValid || c.SerialNumber.Cmp(bigOne()) == 0 || c.SerialNumber.BitLen() < 64 {
		t.Errorf("CA %v, serial %v", c.IsCA, c.SerialNumber)
	}
	if c.Subject.CommonName != "device-7" || len(c.DNSNames) != 1 || c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("subject %v, names %v, key usage %v", c.Subject, c.DNSNames, c.KeyUsage)
	}
	if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("extended key usage %v, want the policy's", c.ExtKeyUsage)
	}
	if !c.NotAfter.Equal(start.Add(48*time.Hour)) || !c.NotBefore.Equal(start.Add(-clockSkew)) {
		t.Errorf("validity %s to %s, want %s to %s", c.NotBefore, c.NotAfter, start.Add(-clockSkew), start.Add(48*time.Hour))
	}
	if !k.PublicKey.Equal(c.PublicKey) {
		t.Error("certificate is for another key")
	}
	// Never beyond the CA's own validity.
	long, _ := issuerIn(t, Policy{Validity: 100 * 365 * 24 * time.Hour})
	der, err = long.Issue(context.Background(), &x509.Certificate{RawSubject: raw}, &k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := x509.ParseCertificate(der); !c.NotAfter.Equal(long.Certificate().NotAfter) {
		t.Errorf("NotAfter %s beyond the CA's %s", c.NotAfter, long.Certificate().NotAfter)
	}
}

func TestIssuerRefusals(t *testing.T) {
	dir := t.TempDir()
	ca, _ := NewCA(Options{})
	caKey, _ := ca.KeyPEM()
	leaf, _ := ca.IssueClient("not-a-ca")
	other, _ := NewCA(Options{})
	otherKey, _ := other.KeyPEM()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for name, c := range map[string][2]string{
		"not a CA":       {write("leaf.crt", leaf.CertPEM), write("leaf.key", leaf.KeyPEM)},
		"key mismatch":   {write("ca.crt", ca.CertPEM), write("other.key", otherKey)},
		"missing key":    {write("ca2.crt", ca.CertPEM), filepath.Join(dir, "absent.key")},
		"not PEM":        {write("junk.crt", []byte("junk")), write("ca.key", caKey)},
		"negative valid": {write("ca3.crt", ca.CertPEM), write("ca3.key", caKey)},
	} {
		p := Policy{}
		if name == "negative valid" {
			p.Validity = -time.Hour
		}
		if _, err := LoadIssuer(c[0], c[1], p); err == nil {
			t.Errorf("%s: loaded", name)
		} else if strings.Contains(err.Error(), "PRIVATE KEY-----") {
			t.Errorf("%s: error quotes the key: %v", name, err)
		}
	}
	// One file of the pair without the other is not overwritten.
	half := t.TempDir()
	write2 := filepath.Join(half, IssuerKeyFile)
	if err := os.WriteFile(write2, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := InitIssuer(half, Options{}); err == nil {
		t.Error("InitIssuer overwrote half a pair")
	}
}

// An issuing CA out of its validity issues nothing; Reload brings in a new
// one, and a bad file leaves the old one in use.
func TestIssuerValidityAndReload(t *testing.T) {
	i, dir := issuerIn(t, Policy{})
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	raw, _ := asn1Marshal((pkix.Name{CommonName: "x"}).ToRDNSequence())
	i.now = func() time.Time { return i.Certificate().NotAfter.Add(time.Second) }
	if _, err := i.Issue(context.Background(), &x509.Certificate{RawSubject: raw}, &k.PublicKey); err == nil {
		t.Error("an expired issuing CA issued a certificate")
	}
	i.now = time.Now
	before := i.Certificate().SerialNumber
	if err := os.Remove(filepath.Join(dir, IssuerKeyFile)); err != nil {
		t.Fatal(err)
	}
	if err := i.Reload(); err == nil || i.Certificate().SerialNumber.Cmp(before) != 0 {
		t.Fatalf("reload with a missing key: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, IssuerCertFile)); err != nil {
		t.Fatal(err)
	}
	if err := InitIssuer(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := i.Reload(); err != nil || i.Certificate().SerialNumber.Cmp(before) == 0 {
		t.Fatalf("reload did not take the new CA: %v", err)
	}
}

func asn1Marshal(v any) ([]byte, error) { return asn1.Marshal(v) }

func bigOne() *big.Int { return big.NewInt(1) }
