package ovhclient

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"
)

// checkRegister: what the client registers comes back from Get unchanged:
// secret data, a symmetric key, a certificate, RSA and EC keys in the
// client's default formats (PKCS#1, SEC1/X.509) and in PKCS#8/Transparent.
func checkRegister(t *testing.T, c *kmipclient.Client) {
	secret := []byte("correct horse battery staple")
	r, err := c.Register().Secret(kmip.SecretDataTypePassword, secret).Exec()
	if err != nil {
		t.Fatalf("Register Secret Data: %v", err)
	}
	g, err := c.Get(r.UniqueIdentifier).Exec()
	if err != nil {
		t.Fatalf("Get Secret Data: %v", err)
	}
	sd, ok := g.Object.(*kmip.SecretData)
	if !ok {
		t.Fatalf("Get Secret Data returned %T", g.Object)
	}
	if got, err := sd.Data(); err != nil || !bytes.Equal(got, secret) || sd.SecretDataType != kmip.SecretDataTypePassword {
		t.Errorf("Secret Data round trip: %v, %v (type %v)", err, bytes.Equal(got, secret), sd.SecretDataType)
	}

	key := randBytes(t, 32)
	r, err = c.Register().SymmetricKey(kmip.CryptographicAlgorithmAES, kmip.CryptographicUsageEncrypt, key).Exec()
	if err != nil {
		t.Fatalf("Register Symmetric Key: %v", err)
	}
	if got := getSymmetric(t, c, r.UniqueIdentifier, 0); !bytes.Equal(got, key) {
		t.Errorf("registered AES key comes back different")
	}
	if got := attrs(t, c, r.UniqueIdentifier, kmip.AttributeNameCryptographicLength)[kmip.AttributeNameCryptographicLength]; len(got) != 1 || got[0] != int32(256) {
		t.Errorf("registered AES-256 Cryptographic Length %v", got)
	}

	der := selfSigned(t)
	r, err = c.Register().Certificate(kmip.CertificateTypeX_509, der).Exec()
	if err != nil {
		t.Fatalf("Register Certificate: %v", err)
	}
	g, err = c.Get(r.UniqueIdentifier).Exec()
	if err != nil {
		t.Fatalf("Get Certificate: %v", err)
	}
	checkAllAttrs(t, c, r.UniqueIdentifier, kmip.AttributeNameCertificateType, kmip.AttributeNameCertificateIdentifier,
		kmip.AttributeNameCertificateSubject, kmip.AttributeNameCertificateIssuer, kmip.AttributeNameX509CertificateSubject,
		kmip.AttributeNameX509CertificateIssuer, kmip.AttributeNameX509CertificateIdentifier, kmip.AttributeNameDigitalSignatureAlgorithm,
		kmip.AttributeNameCertificateLength)
	cert, ok := g.Object.(*kmip.Certificate)
	if !ok || !bytes.Equal(cert.CertificateValue, der) || cert.CertificateType != kmip.CertificateTypeX_509 {
		t.Errorf("Certificate round trip: %T equal=%v", g.Object, ok && bytes.Equal(cert.CertificateValue, der))
	}

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []kmipclient.KeyFormat{0, kmipclient.PKCS8, kmipclient.X509, kmipclient.Transparent} {
		reg := c.Register().WithKeyFormat(f)
		priv, err := reg.PrivateKey(rsaKey, kmip.CryptographicUsageSign).Exec()
		if err != nil {
			t.Fatalf("Register RSA private key (format %v): %v", f, err)
		}
		checkAllAttrs(t, c, priv.UniqueIdentifier, kmip.AttributeNameCryptographicAlgorithm, kmip.AttributeNameCryptographicLength,
			kmip.AttributeNameCryptographicUsageMask, kmip.AttributeNameState, kmip.AttributeNameDigest)
		if got := getPrivate(t, c, priv.UniqueIdentifier); !rsaKey.Equal(got) {
			t.Errorf("RSA private key (format %v) comes back different", f)
		}
		pub, err := reg.PublicKey(&rsaKey.PublicKey, kmip.CryptographicUsageVerify).Exec()
		if err != nil {
			t.Fatalf("Register RSA public key (format %v): %v", f, err)
		}
		if got := getPublic(t, c, pub.UniqueIdentifier); !rsaKey.PublicKey.Equal(got) {
			t.Errorf("RSA public key (format %v) comes back different", f)
		}
		epriv, err := reg.PrivateKey(ecKey, kmip.CryptographicUsageSign).Exec()
		if err != nil {
			t.Fatalf("Register EC private key (format %v): %v", f, err)
		}
		if got := getPrivate(t, c, epriv.UniqueIdentifier); !ecKey.Equal(got) {
			t.Errorf("EC private key (format %v) comes back different", f)
		}
		epub, err := reg.PublicKey(&ecKey.PublicKey, kmip.CryptographicUsageVerify).Exec()
		if err != nil {
			t.Fatalf("Register EC public key (format %v): %v", f, err)
		}
		if got := getPublic(t, c, epub.UniqueIdentifier); !ecKey.PublicKey.Equal(got) {
			t.Errorf("EC public key (format %v) comes back different", f)
		}
	}
}

// pubKey and privKey are what crypto's key types share.
type pubKey interface{ Equal(crypto.PublicKey) bool }

type privKey interface {
	Public() crypto.PublicKey
	Equal(crypto.PrivateKey) bool
}

func getPrivate(t *testing.T, c *kmipclient.Client, id string, f ...kmip.KeyFormatType) any {
	t.Helper()
	return getKey(t, c, id, "private", f, func(o kmip.Object) (any, kmip.KeyFormatType, bool, error) {
		pk, ok := o.(*kmip.PrivateKey)
		if !ok {
			return nil, 0, false, nil
		}
		k, err := pk.CryptoPrivateKey()
		return k, pk.KeyBlock.KeyFormatType, true, err
	})
}

func getPublic(t *testing.T, c *kmipclient.Client, id string, f ...kmip.KeyFormatType) any {
	t.Helper()
	return getKey(t, c, id, "public", f, func(o kmip.Object) (any, kmip.KeyFormatType, bool, error) {
		pk, ok := o.(*kmip.PublicKey)
		if !ok {
			return nil, 0, false, nil
		}
		k, err := pk.CryptoPublicKey()
		return k, pk.KeyBlock.KeyFormatType, true, err
	})
}

// getKey Gets id (in format f[0], if given) and reads the answer as Go's
// key with read, which says whether the object was of its type.
func getKey(t *testing.T, c *kmipclient.Client, id, which string, f []kmip.KeyFormatType,
	read func(kmip.Object) (key any, format kmip.KeyFormatType, isType bool, err error)) any {
	t.Helper()
	ex := c.Get(id)
	if len(f) > 0 {
		ex = ex.WithKeyFormat(f[0])
	}
	g, err := ex.Exec()
	if err != nil {
		t.Fatalf("Get %s key %s at %v: %v", which, id, c.Version(), err)
	}
	k, format, isType, err := read(g.Object)
	if !isType {
		t.Fatalf("Get %s key: %T", which, g.Object)
	}
	if err != nil {
		t.Fatalf("Get %s key %s (%v): client cannot read it: %v", which, id, format, err)
	}
	return k
}

func selfSigned(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "ovh interop"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// checkKeyPairs: Create Key Pair (RSA 2048, EC P-256 and P-384) links the
// halves both ways, and the public key Get serves matches the private one.
func checkKeyPairs(t *testing.T, c *kmipclient.Client) {
	type pair struct {
		name string
		ex   kmipclient.ExecCreateKeyPairAttr
	}
	pairs := []pair{
		{"RSA-2048", c.CreateKeyPair().RSA(2048, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify)},
		{"EC-P256", c.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_256, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify)},
		{"EC-P384", c.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_384, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify)},
	}
	for _, p := range pairs {
		r, err := p.ex.Exec()
		if err != nil {
			t.Errorf("Create Key Pair %s: %v", p.name, err)
			continue
		}
		priv, pub := r.PrivateKeyUniqueIdentifier, r.PublicKeyUniqueIdentifier
		for _, id := range []string{priv, pub} {
			checkAllAttrs(t, c, id, kmip.AttributeNameCryptographicAlgorithm, kmip.AttributeNameCryptographicLength,
				kmip.AttributeNameState, kmip.AttributeNameLink, kmip.AttributeNameFresh, kmip.AttributeNameOriginalCreationDate)
		}
		checkLink(t, c, priv, kmip.LinkTypePublicKeyLink, pub)
		checkLink(t, c, pub, kmip.LinkTypePrivateKeyLink, priv)
		sk := getPrivate(t, c, priv)
		pk := getPublic(t, c, pub)
		if !pk.(pubKey).Equal(sk.(privKey).Public()) {
			t.Errorf("%s: the public key does not match the private key", p.name)
		}
		if _, ok := pk.(*rsa.PublicKey); ok {
			// Every RSA format the client reads (§2.1.7 Key Format Types).
			for _, f := range []kmip.KeyFormatType{kmip.KeyFormatTypePKCS_1, kmip.KeyFormatTypeX_509, kmip.KeyFormatTypeTransparentRSAPublicKey} {
				if got := getPublic(t, c, pub, f); !pk.(pubKey).Equal(got) {
					t.Errorf("%s public key in %v differs", p.name, f)
				}
			}
			for _, f := range []kmip.KeyFormatType{kmip.KeyFormatTypePKCS_1, kmip.KeyFormatTypePKCS_8, kmip.KeyFormatTypeTransparentRSAPrivateKey} {
				if got := getPrivate(t, c, priv, f); !sk.(privKey).Equal(got) {
					t.Errorf("%s private key in %v differs", p.name, f)
				}
			}
		} else {
			for _, f := range []kmip.KeyFormatType{kmip.KeyFormatTypeX_509} {
				if got := getPublic(t, c, pub, f); !pk.(pubKey).Equal(got) {
					t.Errorf("%s public key in %v differs", p.name, f)
				}
			}
			for _, f := range []kmip.KeyFormatType{kmip.KeyFormatTypeECPrivateKey, kmip.KeyFormatTypePKCS_8} {
				if got := getPrivate(t, c, priv, f); !sk.(privKey).Equal(got) {
					t.Errorf("%s private key in %v differs", p.name, f)
				}
			}
		}
	}
}

func checkLink(t *testing.T, c *kmipclient.Client, id string, lt kmip.LinkType, want string) {
	t.Helper()
	for _, l := range attrs(t, c, id, kmip.AttributeNameLink)[kmip.AttributeNameLink] {
		if l := l.(kmip.Link); l.LinkType == lt && l.LinkedObjectIdentifier == want {
			return
		}
	}
	t.Errorf("%s has no %v to %s", id, lt, want)
}

// checkArchiveRecover: an archived object is refused by Get (Object
// Archived, KMIP 1.0 §4.19) and served again after Recover.
func checkArchiveRecover(t *testing.T, c *kmipclient.Client) {
	cr, err := c.Create().AES(256, kmip.CryptographicUsageEncrypt).Exec()
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	id := cr.UniqueIdentifier
	key := getSymmetric(t, c, id, 0)
	if _, err := c.Archive(id).Exec(); err != nil {
		t.Fatalf("Archive: %v", err)
	}
	if r := reasonOf(t, c, &payloads.GetRequestPayload{UniqueIdentifier: id}); r != kmip.ResultReasonObjectArchived {
		t.Errorf("Get of an archived object: reason %v, want Object Archived", r)
	}
	if _, err := c.Recover(id).Exec(); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if got := getSymmetric(t, c, id, 0); !bytes.Equal(got, key) {
		t.Errorf("the recovered key differs")
	}
}

// checkUsageAndLease: Get Usage Allocation takes from the Usage Limits a
// client gave (KMIP 1.0 §4.17, §3.21); Obtain Lease is granted on an Active
// object and refused on a Pre-Active one (§4.16).
func checkUsageAndLease(t *testing.T, c *kmipclient.Client) {
	cr, err := c.Create().AES(256, kmip.CryptographicUsageEncrypt).
		WithUsageLimit(10, kmip.UsageLimitsUnitObject).Exec()
	if err != nil {
		t.Fatalf("Create with Usage Limits: %v", err)
	}
	id := cr.UniqueIdentifier
	if r := reasonOf(t, c, &payloads.ObtainLeaseRequestPayload{UniqueIdentifier: id}); r == 0 {
		t.Errorf("Obtain Lease on a Pre-Active key succeeded")
	}
	if _, err := c.Activate(id).Exec(); err != nil {
		t.Fatalf("Activate: %v", err)
	}
	if _, err := c.GetUsageAllocation(id, 4).Exec(); err != nil {
		t.Fatalf("Get Usage Allocation 4 of 10: %v", err)
	}
	ul := attrs(t, c, id, kmip.AttributeNameUsageLimits)[kmip.AttributeNameUsageLimits]
	if len(ul) != 1 || ul[0].(kmip.UsageLimits).UsageLimitsCount == nil || *ul[0].(kmip.UsageLimits).UsageLimitsCount != 6 {
		t.Errorf("Usage Limits after allocating 4 of 10: %+v", ul)
	}
	if r := reasonOf(t, c, &payloads.GetUsageAllocationRequestPayload{UniqueIdentifier: id, UsageLimitsCount: 7}); r != kmip.ResultReasonPermissionDenied {
		t.Errorf("allocating 7 of the 6 left: reason %v, want Permission Denied", r)
	}
	l, err := c.ObtainLease(id).Exec()
	if err != nil {
		t.Fatalf("Obtain Lease: %v", err)
	}
	if l.LeaseTime <= 0 || l.UniqueIdentifier != id || l.LastChangeDate.IsZero() {
		t.Errorf("Obtain Lease: %+v", l)
	}
}

// attrSince is the KMIP 1.x minor version that defined each attribute newer
// than 1.0 (1.1 §3.34–3.39, 1.2 §3.40–3.43, 1.3 §3.44, 1.4 §3.45–3.51).
var attrSince = map[kmip.AttributeName]int32{
	kmip.AttributeNameCertificateLength: 1, kmip.AttributeNameFresh: 1, kmip.AttributeNameX509CertificateIdentifier: 1,
	kmip.AttributeNameX509CertificateSubject: 1, kmip.AttributeNameX509CertificateIssuer: 1, kmip.AttributeNameDigitalSignatureAlgorithm: 1,
	kmip.AttributeNameAlternativeName: 2, kmip.AttributeNameKeyValuePresent: 2, kmip.AttributeNameKeyValueLocation: 2,
	kmip.AttributeNameOriginalCreationDate: 2, kmip.AttributeNameRandomNumberGenerator: 3,
	kmip.AttributeNamePKCS_12FriendlyName: 4, kmip.AttributeNameDescription: 4, kmip.AttributeNameComment: 4,
	kmip.AttributeNameSensitive: 4, kmip.AttributeNameAlwaysSensitive: 4, kmip.AttributeNameExtractable: 4,
	kmip.AttributeNameNeverExtractable: 4,
}

// checkAllAttrs: Get Attributes naming none answers the object's attributes
// that the request's version defines (KMIP 1.x §4.11), every one of which the
// client decodes; Get Attribute List names the same ones.
func checkAllAttrs(t *testing.T, c *kmipclient.Client, id string, want ...kmip.AttributeName) {
	t.Helper()
	a := attrs(t, c, id)
	for n := range a {
		if v, ok := attrSince[n]; ok && v > minor(c) {
			t.Errorf("Get Attributes at %v answered %q, defined from 1.%d", c.Version(), n, v)
		}
	}
	for _, n := range append(want, kmip.AttributeNameUniqueIdentifier, kmip.AttributeNameObjectType, kmip.AttributeNameInitialDate) {
		if v, ok := attrSince[n]; (!ok || v <= minor(c)) && len(a[n]) == 0 {
			t.Errorf("Get Attributes at %v lacks %q", c.Version(), n)
		}
	}
	list, err := c.GetAttributeList(id).Exec()
	if err != nil {
		t.Fatalf("Get Attribute List: %v", err)
	}
	for _, n := range list.AttributeName {
		if v, ok := attrSince[n]; ok && v > minor(c) {
			t.Errorf("Get Attribute List at %v names %q, defined from 1.%d", c.Version(), n, v)
		}
		if len(a[n]) == 0 {
			t.Errorf("Get Attribute List names %q, which Get Attributes did not answer", n)
		}
	}
}
