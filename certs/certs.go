// Package certs is the small PKI kmipd needs for mutual TLS: one CA, a server
// certificate and client certificates, in memory (for tests) or as PEM files in
// a directory (for `kmipd certs` and dev mode).
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Key algorithms accepted in Options.Algorithm.
const (
	ECDSAP256 = "ecdsa-p256"
	RSA2048   = "rsa-2048"
)

// Defaults for Options.
const (
	DefaultClientName   = "kmipd-client"
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultLeafValidity = 2 * 365 * 24 * time.Hour
)

// DefaultHosts are the server certificate's SANs when Options.Hosts is empty.
var DefaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// clockSkew backdates NotBefore so a freshly issued certificate is accepted by
// a peer whose clock runs slightly behind.
const clockSkew = 5 * time.Minute

// Options controls key algorithm, names and validity. The zero value means
// ECDSA P-256, DefaultHosts, DefaultClientName and the default validities.
type Options struct {
	Algorithm    string   // ECDSAP256 (default) or RSA2048
	Hosts        []string // server SANs (DNS names or IPs); "localhost" is always added
	ClientName   string   // CN of the first client made by Init
	CAValidity   time.Duration
	LeafValidity time.Duration
}

func (o Options) withDefaults() (Options, error) {
	switch o.Algorithm {
	case "":
		o.Algorithm = ECDSAP256
	case ECDSAP256, RSA2048:
	default:
		return o, fmt.Errorf("certs: unknown algorithm %q (want %q or %q)", o.Algorithm, ECDSAP256, RSA2048)
	}
	if len(o.Hosts) == 0 {
		o.Hosts = DefaultHosts
	}
	if o.ClientName == "" {
		o.ClientName = DefaultClientName
	}
	if o.CAValidity == 0 {
		o.CAValidity = DefaultCAValidity
	}
	if o.LeafValidity == 0 {
		o.LeafValidity = DefaultLeafValidity
	}
	if o.CAValidity < 0 || o.LeafValidity < 0 {
		return o, errors.New("certs: validity must be positive")
	}
	return o, nil
}

// LeafOption adjusts a leaf certificate before it is signed. The hostile ones
// (Expired, NotYetValid, ExtKeyUsage) exist so TLS tests can prove rejection.
type LeafOption func(*x509.Certificate)

// Expired makes the certificate's validity window lie entirely in the past.
func Expired() LeafOption {
	return func(c *x509.Certificate) {
		now := time.Now()
		c.NotBefore, c.NotAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	}
}

// NotYetValid makes the certificate's validity window lie entirely in the future.
func NotYetValid() LeafOption {
	return func(c *x509.Certificate) {
		now := time.Now()
		c.NotBefore, c.NotAfter = now.Add(24*time.Hour), now.Add(48*time.Hour)
	}
}

// ExtKeyUsage replaces the certificate's extended key usages, e.g. a client
// certificate carrying only ServerAuth.
func ExtKeyUsage(u ...x509.ExtKeyUsage) LeafOption {
	return func(c *x509.Certificate) { c.ExtKeyUsage = append([]x509.ExtKeyUsage(nil), u...) }
}

// Validity sets the leaf lifetime starting now (minus the clock-skew allowance).
func Validity(d time.Duration) LeafOption {
	return func(c *x509.Certificate) { c.NotAfter = c.NotBefore.Add(clockSkew + d) }
}

// CA is a certificate authority that can issue server and client certificates.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     crypto.Signer
	opts    Options
}

// Issued is a signed leaf certificate and its private key.
type Issued struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte // "CERTIFICATE"
	KeyPEM  []byte // PKCS#8 "PRIVATE KEY"
}

// TLS returns the certificate as a tls.Certificate with Leaf set.
func (i *Issued) TLS() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{i.Cert.Raw}, PrivateKey: i.Key, Leaf: i.Cert}
}

// NewCA creates a self-signed CA with a fresh key.
func NewCA(opts Options) (*CA, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return newCA(opts, pkix.Name{CommonName: "kmipd CA", Organization: []string{"kmipd"}})
}

func newCA(opts Options, subject pkix.Name) (*CA, error) {
	key, err := newKey(opts.Algorithm)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(opts.CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // leaves only: no intermediate can be minted from it
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("certs: creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: parsing CA certificate: %w", err)
	}
	return &CA{Cert: cert, CertPEM: certPEM(der), key: key, opts: opts}, nil
}

// ParseCA builds a CA from PEM certificate and PKCS#8/SEC1/PKCS#1 key bytes;
// opts supplies the algorithm and validity for the leaves it will issue.
func ParseCA(certPEMBytes, keyPEMBytes []byte, opts Options) (*CA, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	// tls.X509KeyPair checks that key and certificate belong together.
	pair, err := tls.X509KeyPair(certPEMBytes, keyPEMBytes)
	if err != nil {
		return nil, fmt.Errorf("certs: loading CA: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("certs: parsing CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("certs: CA certificate is not a CA")
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("certs: CA key cannot sign")
	}
	return &CA{Cert: cert, CertPEM: certPEM(cert.Raw), key: signer, opts: opts}, nil
}

// KeyPEM returns the CA's private key as PKCS#8 PEM.
func (ca *CA) KeyPEM() ([]byte, error) { return keyPEM(ca.key) }

// Pool returns a pool holding just this CA, for RootCAs / ClientCAs.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// IssueServer issues a ServerAuth certificate for hosts (DefaultHosts if
// empty); "localhost" is always included so local clients can connect.
func (ca *CA) IssueServer(hosts []string, opts ...LeafOption) (*Issued, error) {
	if len(hosts) == 0 {
		hosts = DefaultHosts
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kmipd", Organization: []string{"kmipd"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	seen := map[string]bool{}
	for _, h := range append([]string{"localhost"}, hosts...) {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.issue(tmpl, opts)
}

// IssueClient issues a ClientAuth certificate with the given common name.
func (ca *CA) IssueClient(cn string, opts ...LeafOption) (*Issued, error) {
	if cn == "" {
		return nil, errors.New("certs: empty client name")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: []string{"kmipd"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return ca.issue(tmpl, opts)
}

func (ca *CA) issue(tmpl *x509.Certificate, opts []LeafOption) (*Issued, error) {
	key, err := newKey(ca.opts.Algorithm)
	if err != nil {
		return nil, err
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl.NotBefore = now.Add(-clockSkew)
	tmpl.NotAfter = now.Add(ca.opts.LeafValidity)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if _, isRSA := key.(*rsa.PrivateKey); isRSA {
		// TLS 1.2 RSA key exchange encrypts to the certificate key.
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	for _, o := range opts {
		o(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("certs: signing certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: parsing certificate: %w", err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, err
	}
	return &Issued{Cert: cert, Key: key, CertPEM: certPEM(der), KeyPEM: kp}, nil
}

func newKey(alg string) (crypto.Signer, error) {
	var (
		k   crypto.Signer
		err error
	)
	switch alg {
	case ECDSAP256, "":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA2048:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return nil, fmt.Errorf("certs: unknown algorithm %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("certs: generating %s key: %w", alg, err)
	}
	return k, nil
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certs: serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil // never zero
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func keyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("certs: encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
