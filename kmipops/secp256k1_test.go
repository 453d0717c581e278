package kmipops

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/internal/secp256k1"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// secp256k1 keys through KMIP: the OASIS TC-ECDSA-SIGN-1-14 key pair and
// known signatures (k1Private, k1Public: keyformat_stored_test.go), server
// generation, format conversion and re-keying.

const (
	oasisK1Data = "01020304050607080910111213141516"
	oasisK1Sig  = "30440220078ac91570286b4b35f2bf1da113c6e25e8c45dfc7a7dc7db07f7ff34ffc08d702200135d58e21d091e60b81a0e63db3d914af9fe56de9b3cf747cd8ecc74a75ee71"
)

func ecdsaSHA256() *tree.Node {
	return crParams(crHash(kmip14.HashingAlgorithmSHA_256), crAlg(kmip14.CryptographicAlgorithmECDSA))
}

func (e *env) registerK1Pair(c Caller) (priv, pub string) {
	e.t.Helper()
	priv = e.crAsym(c, kmip14.ObjectTypePrivateKey, kmip14.KeyFormatTypeECPrivateKey, kmip14.CryptographicAlgorithmEC, 256,
		mustHex(e.t, k1Private), crMask(kmip14.CryptographicUsageMaskSign))
	pub = e.crAsym(c, kmip14.ObjectTypePublicKey, kmip14.KeyFormatTypeX_509, kmip14.CryptographicAlgorithmEC, 256,
		mustHex(e.t, k1Public), crMask(kmip14.CryptographicUsageMaskVerify))
	return priv, pub
}

func TestSecp256k1OASISSignVerify(t *testing.T) {
	e := newEnv(t, Options{})
	priv, pub := e.registerK1Pair(alice)
	data := mustHex(t, oasisK1Data)
	verify := func(sig []byte) kmip14.ValidityIndicator {
		t.Helper()
		return crValidity(t, okPayload(t, e.crOne(alice, kmip14.OperationSignatureVerify, uidF(pub), ecdsaSHA256(),
			crData(data), tree.Bytes(kmip14.TagSignatureData, sig)), 0))
	}
	// The case's known good and known bad signatures.
	good := mustHex(t, oasisK1Sig)
	if v := verify(good); v != kmip14.ValidityIndicatorValid {
		t.Fatalf("known good signature: %v", v)
	}
	bad := bytes.Clone(good)
	bad[len(bad)-1] = 0xff
	if v := verify(bad); v != kmip14.ValidityIndicatorInvalid {
		t.Fatalf("known bad signature: %v", v)
	}
	// kmipd's signature verifies, through KMIP and outside it, and is
	// deterministic (RFC 6979): the same key and data sign alike.
	sign := func() []byte {
		return crBytes(t, okPayload(t, e.crOne(alice, kmip14.OperationSign, uidF(priv), ecdsaSHA256(), crData(data)), 0),
			kmip14.TagSignatureData)
	}
	sig := sign()
	if v := verify(sig); v != kmip14.ValidityIndicatorValid {
		t.Fatalf("kmipd's signature: %v", v)
	}
	k, err := secp256k1.ParsePKIXPublicKey(mustHex(t, k1Public))
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(data)
	if !secp256k1.VerifyASN1(k, digest[:], sig) {
		t.Fatal("kmipd's signature does not verify outside kmipd")
	}
	if !bytes.Equal(sig, sign()) {
		t.Fatal("two signatures of the same data differ: the nonce is not RFC 6979's")
	}
	// Digested Data with another hash, and the Digital Signature Algorithm form.
	d512 := sha512.Sum512(data)
	sig512 := crBytes(t, okPayload(t, e.crOne(alice, kmip14.OperationSign, uidF(priv),
		crParams(tree.Enum(kmip14.TagDigitalSignatureAlgorithm, uint32(kmip14.DigitalSignatureAlgorithmECDSAWithSHA512))),
		tree.Bytes(kmip14.TagDigestedData, d512[:])), 0), kmip14.TagSignatureData)
	if !secp256k1.VerifyASN1(k, d512[:], sig512) {
		t.Fatal("ECDSA with SHA-512 over Digested Data does not verify")
	}
	// Another owner cannot use the key.
	wantFail(t, e.crOne(bob, kmip14.OperationSign, uidF(priv), ecdsaSHA256(), crData(data)), 0, kmip14.ResultReasonItemNotFound)
	// An RSA padding does not apply.
	wantFail(t, e.crOne(alice, kmip14.OperationSign, uidF(priv),
		crParams(crHash(kmip14.HashingAlgorithmSHA_256), crPad(kmip14.PaddingMethodPSS)), crData(data)), 0, kmip14.ResultReasonInvalidField)
}

func TestSecp256k1GetFormats(t *testing.T) {
	e := newEnv(t, Options{})
	priv, pub := e.registerK1Pair(alice)
	material := func(uid string, f kmip14.KeyFormatType) []byte {
		t.Helper()
		p := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid), tree.Enum(kmip14.TagKeyFormatType, uint32(f)))), 0)
		for _, ch := range p.Children {
			if kb := ch.Child(kmip14.TagKeyBlock); kb != nil {
				if got, _ := kb.Child(kmip14.TagKeyFormatType).EnumValue(); kmip14.KeyFormatType(got) != f {
					t.Fatalf("served %v, asked %v", kmip14.KeyFormatType(got), f)
				}
				return crBytes(t, kb.Child(kmip14.TagKeyValue), kmip14.TagKeyMaterial)
			}
		}
		t.Fatalf("no key block in %s", p)
		return nil
	}
	p8 := material(priv, kmip14.KeyFormatTypePKCS_8)
	want, _ := secp256k1.ParseECPrivateKey(mustHex(t, k1Private))
	if k, err := secp256k1.ParsePKCS8PrivateKey(p8); err != nil || !k.Equal(want) {
		t.Fatalf("PKCS#8 form: %v", err)
	}
	// PKCS#8 names the curve in its algorithm identifier (RFC 5915 §3).
	var info struct {
		Version    int
		Algorithm  struct{ Algorithm, Curve asn1.ObjectIdentifier }
		PrivateKey []byte
	}
	if _, err := asn1.Unmarshal(p8, &info); err != nil || !info.Algorithm.Curve.Equal(secp256k1.OID) {
		t.Fatalf("PKCS#8 curve: %v %v", info.Algorithm.Curve, err)
	}
	if got := material(priv, kmip14.KeyFormatTypeECPrivateKey); !bytes.Equal(got, mustHex(t, k1Private)) {
		t.Fatalf("EC Private Key form changed: %x", got)
	}
	if got := material(pub, kmip14.KeyFormatTypeX_509); !bytes.Equal(got, mustHex(t, k1Public)) {
		t.Fatalf("X.509 form changed: %x", got)
	}
	wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(pub), tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypePKCS_1)))), 0,
		kmip14.ResultReasonKeyFormatTypeNotSupported)
}

func createK1Pair(e *env, c Caller, extra ...*tree.Node) *tree.Node {
	attrs := append([]*tree.Node{
		attrNode("Cryptographic Algorithm", tree.Enum(0, uint32(kmip14.CryptographicAlgorithmEC))),
		attrNode("Cryptographic Domain Parameters", tree.Struct(0, tree.Enum(kmip14.TagRecommendedCurve, uint32(kmip14.RecommendedCurveSECP256K1)))),
	}, extra...)
	return e.do(c, item(kmip14.OperationCreateKeyPair,
		template(kmip14.TagCommonTemplateAttribute, attrs...),
		template(kmip14.TagPrivateKeyTemplateAttribute, crActive()),
		template(kmip14.TagPublicKeyTemplateAttribute, crActive())))
}

func TestSecp256k1CreateKeyPair(t *testing.T) {
	e := newEnv(t, Options{})
	p := okPayload(t, createK1Pair(e, alice), 0)
	priv, pub := text(t, p, kmip14.TagPrivateKeyUniqueIdentifier), text(t, p, kmip14.TagPublicKeyUniqueIdentifier)
	checkK1Pair(t, e, priv, pub)
	if got := e.getAttrs(alice, priv, "Cryptographic Length")["Cryptographic Length"]; len(got) != 1 || got[0].Int != 256 {
		t.Errorf("Cryptographic Length: %v", got)
	}
	// A length that contradicts the curve is refused.
	wantFail(t, createK1Pair(e, alice, attrNode("Cryptographic Length", tree.Int(0, 384))), 0, kmip14.ResultReasonInvalidField)
}

// checkK1Pair reads a pair back in its stored formats, checks that it is a
// secp256k1 pair, and signs and verifies with it through KMIP.
func checkK1Pair(t *testing.T, e *env, priv, pub string) *secp256k1.PrivateKey {
	t.Helper()
	get := func(uid string) []byte {
		p := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0)
		for _, ch := range p.Children {
			if kb := ch.Child(kmip14.TagKeyBlock); kb != nil {
				return crBytes(t, kb.Child(kmip14.TagKeyValue), kmip14.TagKeyMaterial)
			}
		}
		t.Fatalf("no key block in %s", p)
		return nil
	}
	k, err := secp256k1.ParsePKCS8PrivateKey(get(priv))
	if err != nil {
		t.Fatalf("private key is not a secp256k1 PKCS#8 key: %v", err)
	}
	pk, err := secp256k1.ParsePKIXPublicKey(get(pub))
	if err != nil || !pk.Equal(k.Public()) {
		t.Fatalf("public key is not the private key's: %v", err)
	}
	data := []byte("kmipd secp256k1")
	sig := crBytes(t, okPayload(t, e.crOne(alice, kmip14.OperationSign, uidF(priv), ecdsaSHA256(), crData(data)), 0), kmip14.TagSignatureData)
	digest := sha256.Sum256(data)
	if !secp256k1.VerifyASN1(pk, digest[:], sig) {
		t.Fatal("the server's signature does not verify")
	}
	own, _ := secp256k1.SignASN1(k, crypto.SHA256, digest[:])
	if v := crValidity(t, okPayload(t, e.crOne(alice, kmip14.OperationSignatureVerify, uidF(pub), ecdsaSHA256(), crData(data),
		tree.Bytes(kmip14.TagSignatureData, own)), 0)); v != kmip14.ValidityIndicatorValid {
		t.Fatalf("a client's signature: %v", v)
	}
	return k
}

// A registered secp256k1 pair names only its length (256): Re-key Key Pair
// replaces it on its own curve, not on P-256.
func TestSecp256k1ReKeyKeyPair(t *testing.T) {
	e := newEnv(t, Options{})
	priv, pub := e.registerK1Pair(alice)
	okPayload(t, e.do(alice, item(kmip14.OperationAddAttribute, uidF(priv), tree.Struct(kmip14.TagAttribute,
		tree.Text(kmip14.TagAttributeName, "Link"), linkValue(kmip14.LinkTypePublicKeyLink, pub)))), 0)
	okPayload(t, e.do(alice, item(kmip14.OperationAddAttribute, uidF(pub), tree.Struct(kmip14.TagAttribute,
		tree.Text(kmip14.TagAttributeName, "Link"), linkValue(kmip14.LinkTypePrivateKeyLink, priv)))), 0)
	p := okPayload(t, e.do(alice, rekeyPair(privF(priv))), 0)
	np, nq := text(t, p, kmip14.TagPrivateKeyUniqueIdentifier), text(t, p, kmip14.TagPublicKeyUniqueIdentifier)
	k := checkK1Pair(t, e, np, nq)
	if old, _ := secp256k1.ParseECPrivateKey(mustHex(t, k1Private)); k.Equal(old) {
		t.Fatal("the replacement is the old key")
	}
}

// A secp256k1 private key whose embedded public key is another key's is
// stored as registered, and refused where it would be used.
func TestSecp256k1MismatchedPairRefused(t *testing.T) {
	e := newEnv(t, Options{})
	other, _ := secp256k1.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{9}, 32)))
	k, _ := secp256k1.ParseECPrivateKey(mustHex(t, k1Private))
	der, err := asn1.Marshal(struct {
		Version    int
		PrivateKey []byte
		Curve      asn1.ObjectIdentifier `asn1:"explicit,tag:0"`
		PublicKey  asn1.BitString        `asn1:"explicit,tag:1"`
	}{1, k.Bytes(), secp256k1.OID, asn1.BitString{Bytes: other.PublicKey().Bytes(), BitLength: 520}})
	if err != nil {
		t.Fatal(err)
	}
	uid := e.crAsym(alice, kmip14.ObjectTypePrivateKey, kmip14.KeyFormatTypeECPrivateKey, kmip14.CryptographicAlgorithmEC, 256,
		der, crMask(kmip14.CryptographicUsageMaskSign))
	wantFail(t, e.crOne(alice, kmip14.OperationSign, uidF(uid), ecdsaSHA256(), crData([]byte("m"))), 0,
		kmip14.ResultReasonCryptographicFailure)
	wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(uid), tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypePKCS_8)))), 0,
		kmip14.ResultReasonCryptographicFailure)
}

// crypto/x509 cannot write a certificate for a secp256k1 key, so Certify
// refuses it as an unsupported feature rather than failing inside the CA.
func TestSecp256k1CertifyRefused(t *testing.T) {
	e, _ := certifyEnv(t)
	_, pub := e.registerK1Pair(alice)
	dn, _ := asn1.Marshal(pkix.Name{CommonName: "k1"}.ToRDNSequence())
	subject := attrNode("X.509 Certificate Subject", tree.Struct(0, tree.Bytes(kmip14.TagSubjectDistinguishedName, dn)))
	x509Type := attrNode("Certificate Type", tree.Enum(0, uint32(kmip14.CertificateTypeX_509)))
	wantFail(t, e.do(alice, certifyItem(pub, nil, x509Type, subject)), 0, kmip14.ResultReasonFeatureNotSupported)
}
