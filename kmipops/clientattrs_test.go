package kmipops

import (
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// clientRNG is a generator a client describes for material it made itself.
func clientRNG() *tree.Node {
	return attrNode("Random Number Generator", tree.Struct(0,
		tree.Enum(kmip14.TagRNGAlgorithm, uint32(kmip14.RNGAlgorithmDRBG)),
		tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmHMAC_SHA1)),
		tree.Enum(kmip14.TagDRBGAlgorithm, uint32(kmip14.DRBGAlgorithmHMAC)),
		tree.Bool(kmip14.TagPredictionResistance, true)))
}

// TestMaterialOrigin: Random Number Generator (§3.44) and Original Creation
// Date (§3.43) describe the making of the material: a client that
// registers material it made may give them; for material the server
// generates they are the server's, and a client's claim is refused.
func TestMaterialOrigin(t *testing.T) {
	e := newEnv(t, Options{})
	made := time.Date(1970, 1, 1, 10, 42, 0, 0, time.UTC)
	aes := keyBody(kmip14.TagSymmetricKey, kmip14.KeyFormatTypeRaw, kmip14.CryptographicAlgorithmAES, 128, make([]byte, 16))
	uid := text(t, okPayload(t, e.do(alice, register(kmip14.ObjectTypeSymmetricKey, aes, clientRNG(),
		attrNode("Original Creation Date", tree.Time(0, made)),
		crMask(kmip14.CryptographicUsageMaskEncrypt))), 0), kmip14.TagUniqueIdentifier)
	a := e.getAttrs(alice, uid, "Random Number Generator", "Original Creation Date")
	if v := a["Random Number Generator"]; len(v) != 1 || !v[0].View().Equal(clientRNG().Child(kmip14.TagAttributeValue).View()) {
		t.Fatalf("Random Number Generator %v", v)
	}
	if v := a["Original Creation Date"]; len(v) != 1 || !v[0].Time.Equal(made) {
		t.Fatalf("Original Creation Date %v", v)
	}

	// Registered without them: the server does not know them.
	plain := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16))
	if a := e.getAttrs(alice, plain, "Random Number Generator", "Original Creation Date"); len(a) != 0 {
		t.Fatalf("registered key got %v", a)
	}

	// Generated: the server's own, never the client's.
	for _, extra := range []*tree.Node{clientRNG(), attrNode("Original Creation Date", tree.Time(0, made))} {
		wantFail(t, e.do(alice, createAES(128, extra)), 0, kmip14.ResultReasonInvalidField)
	}
	created := e.create(alice)
	a = e.getAttrs(alice, created, "Random Number Generator", "Original Creation Date")
	if len(a["Random Number Generator"]) != 1 || len(a["Original Creation Date"]) != 1 {
		t.Fatalf("created key: %v", a)
	}

	// Re-key's replacement is generated: the registered key's origin does
	// not pass to it.
	okPayload(t, e.do(alice, item(kmip14.OperationActivate, uidF(uid))), 0)
	nu := text(t, okPayload(t, e.do(alice, rekey(uidF(uid))), 0), kmip14.TagUniqueIdentifier)
	a = e.getAttrs(alice, nu, "Random Number Generator", "Original Creation Date")
	if v := a["Random Number Generator"]; len(v) != 1 || v[0].View().Equal(clientRNG().Child(kmip14.TagAttributeValue).View()) {
		t.Fatalf("replacement's Random Number Generator %v", v)
	}
	if v := a["Original Creation Date"]; len(v) != 1 || v[0].Time.Equal(made) {
		t.Fatalf("replacement's Original Creation Date %v", v)
	}
}

// TestCertificateTypeInTemplate: Certificate Type (§3.8) is the server's,
// taken from the Certificate structure; a template that repeats it is
// accepted, one that contradicts it is not.
func TestCertificateTypeInTemplate(t *testing.T) {
	e := newEnv(t, Options{})
	cert := tree.Struct(kmip14.TagCertificate,
		tree.Enum(kmip14.TagCertificateType, uint32(kmip14.CertificateTypeX_509)),
		tree.Bytes(kmip14.TagCertificateValue, selfSigned(t)))
	ct := func(v kmip14.CertificateType) *tree.Node {
		return attrNode("Certificate Type", tree.Enum(0, uint32(v)))
	}
	uid := text(t, okPayload(t, e.do(alice, register(kmip14.ObjectTypeCertificate, cert.Clone(), ct(kmip14.CertificateTypeX_509))), 0), kmip14.TagUniqueIdentifier)
	if v := e.getAttrs(alice, uid, "Certificate Type")["Certificate Type"]; len(v) != 1 || kmip14.CertificateType(v[0].Int) != kmip14.CertificateTypeX_509 {
		t.Fatalf("Certificate Type %v", v)
	}
	wantFail(t, e.do(alice, register(kmip14.ObjectTypeCertificate, cert.Clone(), ct(kmip14.CertificateTypePGP))), 0, kmip14.ResultReasonInvalidField)
	// Only a certificate has one.
	aes := keyBody(kmip14.TagSymmetricKey, kmip14.KeyFormatTypeRaw, kmip14.CryptographicAlgorithmAES, 128, make([]byte, 16))
	wantFail(t, e.do(alice, register(kmip14.ObjectTypeSymmetricKey, aes, ct(kmip14.CertificateTypeX_509))), 0, kmip14.ResultReasonInvalidField)
}
