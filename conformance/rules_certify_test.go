package conformance

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"
	"time"
)

// certBy returns a DER certificate for pub with subject cn, signed by a fresh
// CA named ca.
func certBy(t *testing.T, ca, cn string, pub crypto.PublicKey) string {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	issuer := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: ca}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: testNow, NotAfter: testNow.Add(time.Hour)}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn}, NotBefore: testNow, NotAfter: testNow.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, leaf, issuer, pub, k)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(der)
}

func getCert(uid, der string) string {
	return opResponse("Get", `<ObjectType type="Enumeration" value="Certificate"/>`+uid+`<Certificate>
  <CertificateType type="Enumeration" value="X_509"/><CertificateValue type="ByteString" value="`+der+`"/></Certificate>`)
}

func certIdentifier(issuer, serial string) string {
	return `<Attribute><AttributeName type="TextString" value="Certificate Identifier"/><AttributeValue>
  <Issuer type="TextString" value="` + issuer + `"/><SerialNumber type="TextString" value="` + serial + `"/></AttributeValue></Attribute>`
}

func certSubject(dn string) string {
	return `<Attribute><AttributeName type="TextString" value="Certificate Subject"/><AttributeValue>
  <CertificateSubjectDistinguishedName type="TextString" value="` + dn + `"/></AttributeValue></Attribute>`
}

// A certificate the server issued is its CA's: any certificate for the
// recorded subject and key will do, and the issuer's attributes need only
// their recorded shape. What the client chose is still exact, and a
// registered certificate is compared byte for byte.
func TestIssuedCertificates(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	recorded := certBy(t, "KMIP", "Client", &k.PublicKey)
	exp := getCert(uid0, recorded)
	certified := opResponse("Certify", uid0)
	registered := opResponse("Register", uid0)
	for _, c := range []struct {
		name, first, der string
		ok               bool
	}{
		{"issued by another CA", certified, certBy(t, "kmipd issuing CA", "Client", &k.PublicKey), true},
		{"for another subject", certified, certBy(t, "kmipd issuing CA", "Server", &k.PublicKey), false},
		{"for another key", certified, certBy(t, "kmipd issuing CA", "Client", &other.PublicKey), false},
		{"not a certificate", certified, "0102", false},
		{"registered, other bytes", registered, certBy(t, "kmipd issuing CA", "Client", &k.PublicKey), false},
		{"registered, same bytes", registered, recorded, true},
	} {
		b := NewBindings()
		if m := compare(t, c.first, strings.Replace(c.first, "$UNIQUE_IDENTIFIER_0", "c1", 1), b); m != nil {
			t.Fatal(m)
		}
		if m := compare(t, exp, getCert(uidLit("c1"), c.der), b); (m == nil) != c.ok {
			t.Errorf("%s: mismatch %v", c.name, m)
		}
	}

	exp = getAttrs("$UNIQUE_IDENTIFIER_0", certIdentifier("CN=KMIP,OU=OASIS,O=TEST,C=US", "9BBA23D1B6A48F97"),
		certSubject("CN=Client,OU=KMIP,O=ACME,C=US"), attr("Digital Signature Algorithm", "Enumeration", "SHA_256WithRSAEncryption"))
	for _, c := range []struct {
		name, first string
		attrs       []string
		ok          bool
	}{
		{"issuer's values", certified, []string{certIdentifier("CN=kmipd issuing CA,O=kmipd", "01"), certSubject("CN=Client,OU=KMIP,O=ACME,C=US"),
			attr("Digital Signature Algorithm", "Enumeration", "ECDSAWithSHA256")}, true},
		{"subject differs", certified, []string{certIdentifier("CN=kmipd issuing CA,O=kmipd", "01"), certSubject("CN=Server"),
			attr("Digital Signature Algorithm", "Enumeration", "ECDSAWithSHA256")}, false},
		{"identifier lacks a field", certified, []string{`<Attribute><AttributeName type="TextString" value="Certificate Identifier"/><AttributeValue>
  <Issuer type="TextString" value="CN=x"/></AttributeValue></Attribute>`, certSubject("CN=Client,OU=KMIP,O=ACME,C=US"),
			attr("Digital Signature Algorithm", "Enumeration", "ECDSAWithSHA256")}, false},
		{"algorithm of another type", certified, []string{certIdentifier("CN=x", "01"), certSubject("CN=Client,OU=KMIP,O=ACME,C=US"),
			attr("Digital Signature Algorithm", "Integer", "14")}, false},
		{"registered", registered, []string{certIdentifier("CN=kmipd issuing CA,O=kmipd", "01"), certSubject("CN=Client,OU=KMIP,O=ACME,C=US"),
			attr("Digital Signature Algorithm", "Enumeration", "ECDSAWithSHA256")}, false},
	} {
		b := NewBindings()
		if m := compare(t, c.first, strings.Replace(c.first, "$UNIQUE_IDENTIFIER_0", "c1", 1), b); m != nil {
			t.Fatal(m)
		}
		if m := compare(t, exp, getAttrs("c1", c.attrs...), b); (m == nil) != c.ok {
			t.Errorf("%s: mismatch %v", c.name, m)
		}
	}
}
