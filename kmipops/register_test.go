package kmipops

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

func keyBody(tag ttlv.Tag, f kmip14.KeyFormatType, alg kmip14.CryptographicAlgorithm, length int32, mat []byte) *tree.Node {
	return tree.Struct(tag, keyBlock(alg, length, f, mat))
}

func register(ot kmip14.ObjectType, body *tree.Node, attrs ...*tree.Node) *tree.Node {
	return item(kmip14.OperationRegister,
		tree.Enum(kmip14.TagObjectType, uint32(ot)),
		template(kmip14.TagTemplateAttribute, attrs...),
		body)
}

func selfSigned(t *testing.T) []byte {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "kmipd test"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestRegisterEveryType(t *testing.T) {
	e := newEnv(t, Options{})
	rk, _ := rsa.GenerateKey(rand.Reader, 1024)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(rk)
	spki, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	aes := bytes.Repeat([]byte{0x2a}, 32)
	cert := selfSigned(t)
	cases := []struct {
		ot   kmip14.ObjectType
		body *tree.Node
	}{
		{kmip14.ObjectTypeSymmetricKey, keyBody(kmip14.TagSymmetricKey, kmip14.KeyFormatTypeRaw, kmip14.CryptographicAlgorithmAES, 256, aes)},
		{kmip14.ObjectTypePrivateKey, keyBody(kmip14.TagPrivateKey, kmip14.KeyFormatTypePKCS_8, kmip14.CryptographicAlgorithmRSA, 1024, pkcs8)},
		{kmip14.ObjectTypePublicKey, keyBody(kmip14.TagPublicKey, kmip14.KeyFormatTypeX_509, kmip14.CryptographicAlgorithmRSA, 1024, spki)},
		{kmip14.ObjectTypeCertificate, tree.Struct(kmip14.TagCertificate,
			tree.Enum(kmip14.TagCertificateType, uint32(kmip14.CertificateTypeX_509)), tree.Bytes(kmip14.TagCertificateValue, cert))},
		{kmip14.ObjectTypeSecretData, tree.Struct(kmip14.TagSecretData,
			tree.Enum(kmip14.TagSecretDataType, uint32(kmip14.SecretDataTypePassword)),
			tree.Struct(kmip14.TagKeyBlock, tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeOpaque)),
				tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, []byte("hunter2")))))},
		{kmip14.ObjectTypeOpaqueObject, tree.Struct(kmip14.TagOpaqueObject,
			tree.Enum(kmip14.TagOpaqueDataType, 0x80000001), tree.Bytes(kmip14.TagOpaqueDataValue, []byte("SecretPassword")))},
		{kmip14.ObjectTypeSplitKey, tree.Struct(kmip14.TagSplitKey,
			tree.Int(kmip14.TagSplitKeyParts, 3), tree.Int(kmip14.TagKeyPartIdentifier, 1), tree.Int(kmip14.TagSplitKeyThreshold, 2),
			tree.Enum(kmip14.TagSplitKeyMethod, 1),
			keyBlock(kmip14.CryptographicAlgorithmAES, 128, kmip14.KeyFormatTypeRaw, aes[:16]))},
	}
	for _, c := range cases {
		t.Run(c.ot.String(), func(t *testing.T) {
			when := time.Unix(1600000000, 0).UTC()
			uid := text(t, okPayload(t, e.do(alice, register(c.ot, c.body,
				nameAttr("Private Key"), nameAttr("Private Key"),
				attrNode("x-when", tree.Time(0, when)),
				attrNode("x-blob", tree.Bytes(0, []byte{1, 2})),
				attrNode("y-struct", tree.Struct(0, tree.Int(kmip14.TagOffset, 5))),
				attrNode("Contact Information", tree.Text(0, "ops")),
			)), 0), kmip14.TagUniqueIdentifier)
			g := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0)
			if ot, _ := g.Child(kmip14.TagObjectType).EnumValue(); kmip14.ObjectType(ot) != c.ot {
				t.Fatalf("object type %d", ot)
			}
			if !g.Child(c.body.Tag).View().Equal(c.body.View()) {
				t.Fatalf("Get returned %s, registered %s", g.Child(c.body.Tag), c.body)
			}
			a := e.getAttrs(alice, uid)
			if len(a["Name"]) != 2 || a["Contact Information"][0].Text != "ops" || !a["x-when"][0].Time.Equal(when) ||
				!bytes.Equal(a["x-blob"][0].Bytes, []byte{1, 2}) || a["y-struct"][0].Child(kmip14.TagOffset).Int != 5 {
				t.Fatalf("attributes not kept: %v", a)
			}
			if fr, _ := a["Fresh"][0].BoolValue(); fr {
				t.Fatal("registered object is Fresh")
			}
			if c.ot == kmip14.ObjectTypeCertificate && (a["Certificate Length"][0].Int != int64(len(cert)) || a["Certificate Type"] == nil) {
				t.Fatalf("certificate attributes %v", a)
			}
			if c.ot == kmip14.ObjectTypeSymmetricKey && (a["Cryptographic Algorithm"] == nil || a["Cryptographic Length"][0].Int != 256) {
				t.Fatalf("algorithm/length not taken from the key block: %v", a)
			}
			if a["Digest"] == nil {
				t.Fatal("no Digest")
			}
		})
	}
	// Multi-instance custom attributes keep their indices.
	uid := text(t, okPayload(t, e.do(alice, register(cases[0].ot, cases[0].body,
		attrNode("x-tag", tree.Text(0, "a")), attrNode("x-tag", tree.Text(0, "b")))), 0), kmip14.TagUniqueIdentifier)
	p := okPayload(t, e.do(alice, item(kmip14.OperationGetAttributes, uidF(uid), tree.Text(kmip14.TagAttributeName, "x-tag"))), 0)
	at := p.All(kmip14.TagAttribute)
	if len(at) != 2 || at[1].Child(kmip14.TagAttributeIndex).Int != 1 || at[1].Child(kmip14.TagAttributeValue).Text != "b" {
		t.Fatalf("x-tag instances %s", p)
	}
}

func TestRegisterRefusals(t *testing.T) {
	e := newEnv(t, Options{})
	aes := keyBody(kmip14.TagSymmetricKey, kmip14.KeyFormatTypeRaw, kmip14.CryptographicAlgorithmAES, 256, make([]byte, 32))
	for name, c := range map[string]struct {
		req    *tree.Node
		reason kmip14.ResultReason
	}{
		"no body":               {item(kmip14.OperationRegister, tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey))), kmip14.ResultReasonInvalidMessage},
		"body mismatch":         {register(kmip14.ObjectTypePrivateKey, aes), kmip14.ResultReasonInvalidMessage},
		"nameless template":     {register(kmip14.ObjectTypeTemplate, tree.Struct(kmip14.TagTemplate)), kmip14.ResultReasonInvalidField},
		"length vs key":         {register(kmip14.ObjectTypeSymmetricKey, keyBody(kmip14.TagSymmetricKey, kmip14.KeyFormatTypeRaw, kmip14.CryptographicAlgorithmAES, 256, make([]byte, 16))), kmip14.ResultReasonInvalidField},
		"template len":          {register(kmip14.ObjectTypeSymmetricKey, tree.Struct(kmip14.TagSymmetricKey, tree.Struct(kmip14.TagKeyBlock, tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)), tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, make([]byte, 16))))), attrNode("Cryptographic Length", tree.Int(0, 192))), kmip14.ResultReasonInvalidField},
		"PKCS8 as int":          {register(kmip14.ObjectTypePrivateKey, tree.Struct(kmip14.TagPrivateKey, tree.Struct(kmip14.TagKeyBlock, tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypePKCS_8)), tree.Struct(kmip14.TagKeyValue, tree.Int(kmip14.TagKeyMaterial, 1))))), kmip14.ResultReasonInvalidField},
		"no key value":          {register(kmip14.ObjectTypePGPKey, tree.Struct(kmip14.TagPGPKey, tree.Int(kmip14.TagPGPKeyVersion, 4), tree.Struct(kmip14.TagKeyBlock, tree.Enum(kmip14.TagKeyFormatType, 1)))), kmip14.ResultReasonInvalidMessage},
		"format as int":         {register(kmip14.ObjectTypeSymmetricKey, tree.Struct(kmip14.TagSymmetricKey, tree.Struct(kmip14.TagKeyBlock, tree.Int(kmip14.TagKeyFormatType, 1)))), kmip14.ResultReasonInvalidField},
		"alg conflict":          {register(kmip14.ObjectTypeSymmetricKey, aes, attrNode("Cryptographic Algorithm", tree.Enum(0, uint32(kmip14.CryptographicAlgorithmDES3)))), kmip14.ResultReasonInvalidField},
		"server attr":           {register(kmip14.ObjectTypeSymmetricKey, aes, attrNode("Digest", tree.Struct(0))), kmip14.ResultReasonInvalidField},
		"opaque no data":        {register(kmip14.ObjectTypeOpaqueObject, tree.Struct(kmip14.TagOpaqueObject, tree.Enum(kmip14.TagOpaqueDataType, 1))), kmip14.ResultReasonInvalidMessage},
		"empty template name":   {item(kmip14.OperationRegister, tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)), template(kmip14.TagTemplateAttribute, tree.Struct(kmip14.TagName)), aes), kmip14.ResultReasonInvalidField},
		"unknown template name": {item(kmip14.OperationRegister, tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)), template(kmip14.TagTemplateAttribute, nameV("none")), aes), kmip14.ResultReasonItemNotFound},
	} {
		t.Run(name, func(t *testing.T) { wantFail(t, e.do(alice, c.req), 0, c.reason) })
	}
}

// TestRegisterStoresWhatUseRefuses: Register keeps key material as the
// client gives it (KMIP 1.4 §4.3), the way PyKMIP registers a 512-bit key
// labelled AES as a DeriveKey base and an RSA key in PKCS#1 bytes labelled
// PKCS#8. The operations that would use such a key refuse it instead.
func TestRegisterStoresWhatUseRefuses(t *testing.T) {
	e := newEnv(t, Options{})
	for _, n := range []int{7, 64} {
		body := keyBody(kmip14.TagSymmetricKey, kmip14.KeyFormatTypeRaw, kmip14.CryptographicAlgorithmAES, int32(n*8), bytes.Repeat([]byte{9}, n))
		uid := e.crSym(alice, kmip14.CryptographicAlgorithmAES, bytes.Repeat([]byte{9}, n))
		g := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0)
		if !g.Child(kmip14.TagSymmetricKey).View().Equal(body.View()) {
			t.Fatalf("%d-byte AES key: Get returned %s", n, g.Child(kmip14.TagSymmetricKey))
		}
		if l := e.getAttrs(alice, uid, "Cryptographic Length")["Cryptographic Length"]; len(l) != 1 || l[0].Int != int64(n*8) {
			t.Fatalf("%d-byte AES key: Cryptographic Length %v", n, l)
		}
		wantFail(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(uid), crParams(crMode(kmip14.BlockCipherModeECB)), crData(make([]byte, 16))), 0, kmip14.ResultReasonCryptographicFailure)
	}

	rk, _ := crKeys(t)
	pkcs1 := x509.MarshalPKCS1PrivateKey(rk)
	uid := e.crAsym(alice, kmip14.ObjectTypePrivateKey, kmip14.KeyFormatTypePKCS_8, kmip14.CryptographicAlgorithmRSA, int32(rk.N.BitLen()), pkcs1,
		crMask(kmip14.CryptographicUsageMaskSign))
	g := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0)
	if m := g.Path(kmip14.TagPrivateKey, kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial); !bytes.Equal(m.Bytes, pkcs1) {
		t.Fatal("Get did not return the registered bytes")
	}
	wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(uid), tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypePKCS_1)))), 0, kmip14.ResultReasonCryptographicFailure)
	wantFail(t, e.crOne(alice, kmip14.OperationSign, uidF(uid), crParams(crPad(kmip14.PaddingMethodPKCS1V1_5), crHash(kmip14.HashingAlgorithmSHA_256)), crData([]byte("x"))), 0, kmip14.ResultReasonCryptographicFailure)
}

func TestGetFormats(t *testing.T) {
	e := newEnv(t, Options{})
	mat := bytes.Repeat([]byte{7}, 16)
	uid := text(t, okPayload(t, e.do(alice, register(kmip14.ObjectTypeSymmetricKey,
		keyBody(kmip14.TagSymmetricKey, kmip14.KeyFormatTypeRaw, kmip14.CryptographicAlgorithmAES, 128, mat))), 0), kmip14.TagUniqueIdentifier)
	get := func(fields ...*tree.Node) *tree.Node {
		return e.do(alice, item(kmip14.OperationGet, append([]*tree.Node{uidF(uid)}, fields...)...))
	}
	g := okPayload(t, get(tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeTransparentSymmetricKey))), 0)
	kb := g.Path(kmip14.TagSymmetricKey, kmip14.TagKeyBlock)
	if kmip14.KeyFormatType(kb.Child(kmip14.TagKeyFormatType).Int) != kmip14.KeyFormatTypeTransparentSymmetricKey ||
		!bytes.Equal(kb.Path(kmip14.TagKeyValue, kmip14.TagKeyMaterial, kmip14.TagKey).Bytes, mat) {
		t.Fatalf("transparent: %s", kb)
	}
	g = okPayload(t, get(tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw))), 0)
	if !bytes.Equal(g.Path(kmip14.TagSymmetricKey, kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial).Bytes, mat) {
		t.Fatal("raw")
	}
	wantFail(t, get(tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypePKCS_8))), 0, kmip14.ResultReasonKeyFormatTypeNotSupported)
	wantFail(t, get(tree.Int(kmip14.TagKeyFormatType, 1)), 0, kmip14.ResultReasonInvalidField)
	wantFail(t, get(tree.Struct(kmip14.TagKeyWrappingSpecification)), 0, kmip14.ResultReasonInvalidMessage)
	wantFail(t, get(tree.Enum(kmip14.TagKeyCompressionType, 1)), 0, kmip14.ResultReasonKeyCompressionTypeNotSupported)
	// Opaque objects have no key format.
	op := text(t, okPayload(t, e.do(alice, register(kmip14.ObjectTypeOpaqueObject, tree.Struct(kmip14.TagOpaqueObject,
		tree.Enum(kmip14.TagOpaqueDataType, 0x80000001), tree.Bytes(kmip14.TagOpaqueDataValue, []byte("x"))))), 0), kmip14.TagUniqueIdentifier)
	wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(op), tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)))), 0, kmip14.ResultReasonKeyFormatTypeNotSupported)
	// Sensitive / non-extractable objects are not served in the clear
	// (TestGetWrapped serves a Sensitive key wrapped).
	s := e.create(alice, attrNode("Sensitive", tree.Bool(0, true)))
	wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(s))), 0, kmip14.ResultReasonSensitive)
	x := e.create(alice, attrNode("Extractable", tree.Bool(0, false)))
	wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(x))), 0, kmip14.ResultReasonNotExtractable)
	a := e.getAttrs(alice, x, "Never Extractable", "Always Sensitive")
	if a["Never Extractable"][0].Int != 1 || a["Always Sensitive"][0].Int != 0 {
		t.Fatalf("derived attributes %v", a)
	}
}
