package certs

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"time"
)

// The issuing CA behind KMIP Certify and ReCertify. KMIP leaves the
// certification authority to the server; kmipd signs with a CA certificate
// and key the operator gives it as PEM files (kmipd.hcl's certify block),
// under a policy of its own: the client chooses the subject, subject
// alternative names and key usage, the issuer everything else. Its
// certificates are never CAs.
//
// It is a CA of its own, not the one kmipd trusts for client TLS: a key a
// client has certified does not become a kmipd client unless the operator
// trusts the issuing CA in listener.client_ca_file.

// Files InitIssuer writes beside Init's.
const (
	IssuerCertFile = "issuer.crt"
	IssuerKeyFile  = "issuer.key"
)

// DefaultIssueValidity is how long an issued certificate is valid when the
// policy does not say: a year.
const DefaultIssueValidity = 365 * 24 * time.Hour

// Policy is what an Issuer puts in every certificate.
type Policy struct {
	// Validity is NotAfter − NotBefore (before the clock-skew allowance),
	// never beyond the issuing CA's own NotAfter. Zero: DefaultIssueValidity.
	Validity time.Duration
	// ExtKeyUsage is every certificate's extended key usage; empty: none.
	ExtKeyUsage []x509.ExtKeyUsage
}

// extKeyUsages names the extended key usages a policy may give.
var extKeyUsages = map[string]x509.ExtKeyUsage{
	"any": x509.ExtKeyUsageAny, "server_auth": x509.ExtKeyUsageServerAuth, "client_auth": x509.ExtKeyUsageClientAuth,
	"code_signing": x509.ExtKeyUsageCodeSigning, "email_protection": x509.ExtKeyUsageEmailProtection,
	"time_stamping": x509.ExtKeyUsageTimeStamping, "ocsp_signing": x509.ExtKeyUsageOCSPSigning,
}

// ParseExtKeyUsage maps a configuration name ("client_auth", ...) to its
// extended key usage.
func ParseExtKeyUsage(name string) (x509.ExtKeyUsage, bool) {
	u, ok := extKeyUsages[name]
	return u, ok
}

// ExtKeyUsageNames lists the names ParseExtKeyUsage knows.
func ExtKeyUsageNames() []string {
	out := make([]string, 0, len(extKeyUsages))
	for n := range extKeyUsages {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Issuer signs certificates with an issuing CA. It is safe for concurrent
// use; Reload swaps the CA for new certificates.
type Issuer struct {
	certFile, keyFile string
	policy            Policy
	ca                atomic.Pointer[issuingCA]
	now               func() time.Time
}

type issuingCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// LoadIssuer reads the issuing CA from certFile (PEM; its first certificate
// is the CA's, any others its chain) and keyFile (PEM PKCS#8, SEC 1 or
// PKCS#1, unencrypted), and checks that they belong together and that the
// certificate is a CA allowed to sign certificates.
func LoadIssuer(certFile, keyFile string, p Policy) (*Issuer, error) {
	if p.Validity < 0 {
		return nil, errors.New("certs: issuer validity must be positive")
	}
	if p.Validity == 0 {
		p.Validity = DefaultIssueValidity
	}
	i := &Issuer{certFile: certFile, keyFile: keyFile, policy: p, now: time.Now}
	if err := i.Reload(); err != nil {
		return nil, err
	}
	return i, nil
}

// Reload reads the files again; on error the CA in use stays.
func (i *Issuer) Reload() error {
	c, err := os.ReadFile(i.certFile)
	if err != nil {
		return fmt.Errorf("certs: issuing CA: %w", err)
	}
	k, err := os.ReadFile(i.keyFile)
	if err != nil {
		return fmt.Errorf("certs: issuing CA: %w", err)
	}
	ca, err := parseIssuingCA(c, k)
	if err != nil {
		return err
	}
	i.ca.Store(ca)
	return nil
}

func parseIssuingCA(certPEMBytes, keyPEMBytes []byte) (*issuingCA, error) {
	// tls.X509KeyPair checks that the key is the certificate's. Its error
	// names no key bytes.
	pair, err := tls.X509KeyPair(certPEMBytes, keyPEMBytes)
	if err != nil {
		return nil, fmt.Errorf("certs: issuing CA: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("certs: issuing CA certificate: %w", err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, errors.New("certs: the issuing CA certificate is not a CA (basic constraints)")
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("certs: the issuing CA certificate may not sign certificates (key usage)")
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("certs: the issuing CA key cannot sign")
	}
	return &issuingCA{cert: cert, key: key}, nil
}

// Certificate is the issuing CA's certificate.
func (i *Issuer) Certificate() *x509.Certificate { return i.ca.Load().cert }

// Issue signs a certificate for pub with tmpl's subject (RawSubject, or
// Subject), subject alternative names and key usage, valid from
// tmpl.NotBefore (now if zero) less the clock-skew allowance, for the
// policy's validity but never beyond the CA's; serial number, extended key
// usage and basic constraints (not a CA) are the issuer's.
func (i *Issuer) Issue(ctx context.Context, tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ca := i.ca.Load()
	now := i.now()
	if now.Before(ca.cert.NotBefore) || !now.Before(ca.cert.NotAfter) {
		return nil, fmt.Errorf("certs: the issuing CA certificate is not valid now (%s to %s)", ca.cert.NotBefore, ca.cert.NotAfter)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	start := tmpl.NotBefore
	if start.IsZero() {
		start = now
	}
	leaf := &x509.Certificate{
		SerialNumber:          serial,
		RawSubject:            tmpl.RawSubject,
		Subject:               tmpl.Subject,
		DNSNames:              tmpl.DNSNames,
		EmailAddresses:        tmpl.EmailAddresses,
		IPAddresses:           tmpl.IPAddresses,
		URIs:                  tmpl.URIs,
		KeyUsage:              tmpl.KeyUsage,
		ExtKeyUsage:           i.policy.ExtKeyUsage,
		NotBefore:             start.Add(-clockSkew),
		NotAfter:              start.Add(i.policy.Validity),
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
	if leaf.NotAfter.After(ca.cert.NotAfter) {
		leaf.NotAfter = ca.cert.NotAfter
	}
	if leaf.NotBefore.Before(ca.cert.NotBefore) {
		leaf.NotBefore = ca.cert.NotBefore
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("certs: signing certificate: %w", err)
	}
	return der, nil
}

// InitIssuer creates a self-signed issuing CA in dir (IssuerCertFile,
// IssuerKeyFile) unless both files exist; one without the other is an
// error. Init calls it, so a dev folder made before it existed gains one.
func InitIssuer(dir string, opts Options) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	var present []string
	for _, f := range []string{IssuerCertFile, IssuerKeyFile} {
		switch _, err := os.Lstat(filepath.Join(dir, f)); {
		case err == nil:
			present = append(present, f)
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("certs: %w", err)
		}
	}
	switch len(present) {
	case 2:
		return nil
	case 1:
		return fmt.Errorf("certs: %s has %s without its pair; refusing to overwrite", dir, present[0])
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	ca, err := newCA(opts, pkix.Name{CommonName: "kmipd issuing CA", Organization: []string{"kmipd"}})
	if err != nil {
		return err
	}
	key, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	if err := writeNew(filepath.Join(dir, IssuerKeyFile), key, ownerKeyMode); err != nil {
		return err
	}
	return writeNew(filepath.Join(dir, IssuerCertFile), ca.CertPEM, certMode)
}
