package pkcs12

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// openssl reads what Encode writes: the MAC (and so the PKCS#12 key
// derivation), the PBES2 shrouding and the bags are checked by an
// independent implementation, never by this package.
func openssl(t *testing.T, der []byte, password string, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed: the PKCS#12 output is checked with it")
	}
	f := filepath.Join(t.TempDir(), "k.p12")
	if err := os.WriteFile(f, der, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"pkcs12", "-in", f, "-passin", "env:P12PASS"}, args...)...)
	cmd.Env = append(os.Environ(), "P12PASS="+password)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func certFor(t *testing.T, name string, pub, signer any, parent *x509.Certificate) (*x509.Certificate, []byte) {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: parent == nil, BasicConstraintsValid: true}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, der
}

func TestEncodeReadByOpenSSL(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca, caDER := certFor(t, "test CA", &caKey.PublicKey, caKey, nil)
	_, leafDER := certFor(t, "test leaf", &key.PublicKey, caKey, ca)
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	const password = "pässwörd €" // not ASCII: the MAC takes it as a BMPString, PBES2 as UTF-8
	der, err := Encode(rand.Reader, Bundle{PrivateKey: p8, Certificates: [][]byte{leafDER, caDER}, FriendlyName: "my key"}, password)
	if err != nil {
		t.Fatal(err)
	}
	out, err := openssl(t, der, password, "-nodes")
	if err != nil {
		t.Fatalf("openssl pkcs12: %v\n%s", err, out)
	}
	var keys, certs [][]byte
	rest := []byte(out)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "PRIVATE KEY":
			keys = append(keys, b.Bytes)
		case "CERTIFICATE":
			certs = append(certs, b.Bytes)
		}
	}
	if len(keys) != 1 || !bytes.Equal(keys[0], p8) {
		t.Fatalf("openssl read %d keys, not the one encoded", len(keys))
	}
	if len(certs) != 2 || !bytes.Equal(certs[0], leafDER) || !bytes.Equal(certs[1], caDER) {
		t.Fatalf("openssl read %d certificates, not the chain encoded", len(certs))
	}
	if strings.Count(out, "friendlyName: my key") != 2 || strings.Count(out, "localKeyID:") != 2 {
		t.Fatalf("bag attributes not as encoded:\n%s", out)
	}
	// The MAC is checked: a wrong password is refused.
	if out, err := openssl(t, der, "wrong", "-nodes"); err == nil {
		t.Fatalf("openssl accepted a wrong password:\n%s", out)
	}
	// Each salt and IV is fresh.
	again, err := Encode(rand.Reader, Bundle{PrivateKey: p8}, password)
	if err != nil || bytes.Equal(again, der) {
		t.Fatalf("second encoding: %v", err)
	}
}

func TestEncodeRefusals(t *testing.T) {
	if _, err := Encode(rand.Reader, Bundle{}, "x"); err == nil {
		t.Fatal("no key accepted")
	}
	if _, err := Encode(rand.Reader, Bundle{PrivateKey: []byte{0x30, 0}}, "a\x00b"); err == nil {
		t.Fatal("password with NUL accepted")
	}
}
