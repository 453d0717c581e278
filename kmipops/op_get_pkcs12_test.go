package kmipops

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// readPKCS12 has openssl, an independent reader, open a PKCS#12 file: the
// PEM key and certificates it finds.
func readPKCS12(t *testing.T, der []byte, password string) (keys, certs [][]byte) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed: the PKCS#12 answer is checked with it")
	}
	f := filepath.Join(t.TempDir(), "k.p12")
	if err := os.WriteFile(f, der, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "pkcs12", "-in", f, "-passin", "env:P12PASS", "-nodes")
	cmd.Env = append(os.Environ(), "P12PASS="+password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl pkcs12: %v\n%s", err, out)
	}
	for rest := out; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return keys, certs
		}
		switch b.Type {
		case "PRIVATE KEY":
			keys = append(keys, b.Bytes)
		case "CERTIFICATE":
			certs = append(certs, b.Bytes)
		}
	}
}

func p12Link(t kmip14.LinkType, uid string) *tree.Node {
	return attrNode("Link", linkValue(t, uid))
}

func regCert(t *testing.T, e *env, der []byte, attrs ...*tree.Node) string {
	t.Helper()
	body := tree.Struct(kmip14.TagCertificate, tree.Enum(kmip14.TagCertificateType, uint32(kmip14.CertificateTypeX_509)),
		tree.Bytes(kmip14.TagCertificateValue, der))
	return text(t, okPayload(t, e.do(alice, register(kmip14.ObjectTypeCertificate, body, attrs...)), 0), kmip14.TagUniqueIdentifier)
}

// TestGetPKCS12 follows TC-PKCS12-1-14's shape: a password, a private key
// linked to it and to its certificate, the certificate linked to its
// issuer's.
func TestGetPKCS12(t *testing.T) {
	e := newEnv(t, Options{})
	rk, ek := crKeys(t)
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caT, caT, &ek.PublicKey, ek)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafT := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "EE"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafT, ca, &rk.PublicKey, ek)
	if err != nil {
		t.Fatal(err)
	}

	const password = "password"
	pw := e.regSecret(alice, kmip14.SecretDataTypePassword, []byte(password))
	caUID := regCert(t, e, caDER)
	leafUID := regCert(t, e, leafDER, p12Link(kmip14.LinkTypePKCS_12CertificateLink, caUID))
	priv := e.crAsym(alice, kmip14.ObjectTypePrivateKey, kmip14.KeyFormatTypePKCS_1, kmip14.CryptographicAlgorithmRSA, 2048,
		x509.MarshalPKCS1PrivateKey(rk), p12Link(kmip14.LinkTypePKCS_12PasswordLink, pw),
		p12Link(kmip14.LinkTypePKCS_12CertificateLink, leafUID), attrNode("PKCS#12 Friendly Name", tree.Text(0, "tc key")))

	get := func(uid string, extra ...*tree.Node) *tree.Node {
		f := append([]*tree.Node{uidF(uid), tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypePKCS_12))}, extra...)
		return e.do(alice, item(kmip14.OperationGet, f...))
	}
	kb := okPayload(t, get(priv), 0).Path(kmip14.TagPrivateKey, kmip14.TagKeyBlock)
	if kb == nil || kmip14.KeyFormatType(kb.Child(kmip14.TagKeyFormatType).Int) != kmip14.KeyFormatTypePKCS_12 {
		t.Fatalf("Get PKCS#12: %v", kb)
	}
	der, ok := kb.Child(kmip14.TagKeyValue).BytesValue()
	if !ok {
		t.Fatal("PKCS#12 Key Value is not a byte string")
	}
	keys, certs := readPKCS12(t, der, password)
	want8, _ := x509.MarshalPKCS8PrivateKey(rk)
	if len(keys) != 1 || !bytes.Equal(keys[0], want8) {
		t.Fatal("the PKCS#12 file does not hold the key")
	}
	if len(certs) != 2 || !bytes.Equal(certs[0], leafDER) || !bytes.Equal(certs[1], caDER) {
		t.Fatalf("the PKCS#12 file holds %d certificates, not the linked chain", len(certs))
	}

	// Refusals.
	bare := e.crAsym(alice, kmip14.ObjectTypePrivateKey, kmip14.KeyFormatTypePKCS_1, kmip14.CryptographicAlgorithmRSA, 2048, x509.MarshalPKCS1PrivateKey(rk))
	wrongLink := e.crAsym(alice, kmip14.ObjectTypePrivateKey, kmip14.KeyFormatTypePKCS_1, kmip14.CryptographicAlgorithmRSA, 2048,
		x509.MarshalPKCS1PrivateKey(rk), p12Link(kmip14.LinkTypePKCS_12PasswordLink, leafUID))
	wrapKey := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16), crMask(kmip14.CryptographicUsageMaskWrapKey))
	for name, c := range map[string]struct {
		resp   *tree.Node
		reason kmip14.ResultReason
	}{
		"no password link":     {get(bare), kmip14.ResultReasonMissingData},
		"link to a non-secret": {get(wrongLink), kmip14.ResultReasonInvalidField},
		"certificate":          {get(leafUID), kmip14.ResultReasonKeyFormatTypeNotSupported},
		"wrapped as well":      {get(priv, wrapSpecNode(wrapKey)), kmip14.ResultReasonFeatureNotSupported},
		"KMIP 1.3":             {e.send(alice, reqMsg(version{1, 3}, item(kmip14.OperationGet, uidF(priv), tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypePKCS_12))))), kmip14.ResultReasonKeyFormatTypeNotSupported},
		"another owner":        {e.do(bob, item(kmip14.OperationGet, uidF(priv), tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypePKCS_12)))), kmip14.ResultReasonItemNotFound},
	} {
		t.Run(name, func(t *testing.T) { wantFail(t, c.resp, 0, c.reason) })
	}
	// A password another owner holds is not found through a link either.
	bobPW := e.regSecret(bob, kmip14.SecretDataTypePassword, []byte("bob's"))
	theirs := e.crAsym(alice, kmip14.ObjectTypePrivateKey, kmip14.KeyFormatTypePKCS_1, kmip14.CryptographicAlgorithmRSA, 2048,
		x509.MarshalPKCS1PrivateKey(rk), p12Link(kmip14.LinkTypePKCS_12PasswordLink, bobPW))
	wantFail(t, get(theirs), 0, kmip14.ResultReasonItemNotFound)
}
