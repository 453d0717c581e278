package kmipops

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// exportItem asks for uid's Export ("" leaves it to the ID Placeholder).
func exportItem(uid string, fields ...*tree.Node) *tree.Node {
	if uid != "" {
		fields = append([]*tree.Node{uidF(uid)}, fields...)
	}
	return item(kmip14.OperationExport, fields...)
}

// importItem imports body as uid with the attribute nodes attrs, in KMIP
// 1.4's shape (Table 253: Unique Identifier, Replace Existing, bare
// Attributes, the object). An Object Type attribute of ot leads the
// Attributes unless attrs has one, as an Export's Attributes always do.
func importItem(uid string, ot kmip14.ObjectType, body *tree.Node, replace *bool, attrs ...*tree.Node) *tree.Node {
	f := []*tree.Node{uidF(uid)}
	if replace != nil {
		f = append(f, tree.Bool(kmip14.TagReplaceExisting, *replace))
	}
	hasType := false
	for _, a := range attrs {
		if n, _ := a.Child(kmip14.TagAttributeName).TextValue(); n == "Object Type" {
			hasType = true
		}
	}
	if !hasType {
		f = append(f, attrNode("Object Type", tree.Enum(0, uint32(ot))))
	}
	return item(kmip14.OperationImport, append(append(f, attrs...), body)...)
}

// exported is an Export answer taken apart.
type exported struct {
	ot    kmip14.ObjectType
	uid   string
	attrs []*tree.Node // the Attribute structures, in order
	body  *tree.Node   // nil when none was returned
}

func (x exported) values(name string) []*tree.Node {
	var out []*tree.Node
	for _, a := range x.attrs {
		if n, _ := a.Child(kmip14.TagAttributeName).TextValue(); n == name {
			out = append(out, a.Child(kmip14.TagAttributeValue))
		}
	}
	return out
}

// parseExport takes apart an Export answer, checking its KMIP 1.4 shape
// (Table 252): Object Type, Unique Identifier, bare Attributes, then the
// object unless it is destroyed.
func parseExport(t *testing.T, p *tree.Node) exported {
	t.Helper()
	if len(p.Children) < 3 || p.Children[0].Tag != kmip14.TagObjectType || p.Children[1].Tag != kmip14.TagUniqueIdentifier {
		t.Fatalf("Export payload is not Object Type, Unique Identifier, Attributes, object: %s", p)
	}
	x := exported{ot: kmip14.ObjectType(p.Children[0].Int), uid: p.Children[1].Text}
	rest := p.Children[2:]
	for len(rest) > 0 && rest[0].Tag == kmip14.TagAttribute {
		x.attrs, rest = append(x.attrs, rest[0]), rest[1:]
	}
	if len(x.attrs) == 0 {
		t.Fatalf("Export payload has no Attribute after the Unique Identifier: %s", p)
	}
	switch len(rest) {
	case 0:
	case 1:
		x.body = rest[0]
	default:
		t.Fatalf("Export payload has %d fields after its Attributes: %s", len(rest), p)
	}
	return x
}

// registrable is one object of each type Import and Export take.
func registrable(t *testing.T) map[kmip14.ObjectType]*tree.Node {
	rk, _ := rsa.GenerateKey(rand.Reader, 1024)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(rk)
	spki, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	aes := bytes.Repeat([]byte{0x2a}, 32)
	return map[kmip14.ObjectType]*tree.Node{
		kmip14.ObjectTypeSymmetricKey: keyBody(kmip14.TagSymmetricKey, kmip14.KeyFormatTypeRaw, kmip14.CryptographicAlgorithmAES, 256, aes),
		kmip14.ObjectTypePrivateKey:   keyBody(kmip14.TagPrivateKey, kmip14.KeyFormatTypePKCS_8, kmip14.CryptographicAlgorithmRSA, 1024, pkcs8),
		kmip14.ObjectTypePublicKey:    keyBody(kmip14.TagPublicKey, kmip14.KeyFormatTypeX_509, kmip14.CryptographicAlgorithmRSA, 1024, spki),
		kmip14.ObjectTypeCertificate: tree.Struct(kmip14.TagCertificate,
			tree.Enum(kmip14.TagCertificateType, uint32(kmip14.CertificateTypeX_509)), tree.Bytes(kmip14.TagCertificateValue, selfSigned(t))),
		kmip14.ObjectTypeSecretData: tree.Struct(kmip14.TagSecretData,
			tree.Enum(kmip14.TagSecretDataType, uint32(kmip14.SecretDataTypePassword)),
			tree.Struct(kmip14.TagKeyBlock, tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeOpaque)),
				tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, []byte("hunter2"))))),
		kmip14.ObjectTypeOpaqueObject: tree.Struct(kmip14.TagOpaqueObject,
			tree.Enum(kmip14.TagOpaqueDataType, 0x80000001), tree.Bytes(kmip14.TagOpaqueDataValue, []byte("SecretPassword"))),
		kmip14.ObjectTypeSplitKey: tree.Struct(kmip14.TagSplitKey,
			tree.Int(kmip14.TagSplitKeyParts, 3), tree.Int(kmip14.TagKeyPartIdentifier, 1), tree.Int(kmip14.TagSplitKeyThreshold, 2),
			tree.Enum(kmip14.TagSplitKeyMethod, 1),
			keyBlock(kmip14.CryptographicAlgorithmAES, 128, kmip14.KeyFormatTypeRaw, aes[:16])),
		kmip14.ObjectTypePGPKey: tree.Struct(kmip14.TagPGPKey, tree.Int(kmip14.TagPGPKeyVersion, 4),
			tree.Struct(kmip14.TagKeyBlock, tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeOpaque)),
				tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, []byte("pgp key bytes"))))),
	}
}

// TestExportEveryType exports one object of each type: the object as
// registered and every attribute Get Attributes lists, in that order.
func TestExportEveryType(t *testing.T) {
	e := newEnv(t, Options{})
	for ot, body := range registrable(t) {
		t.Run(ot.String(), func(t *testing.T) {
			uid := text(t, okPayload(t, e.do(alice, register(ot, body, nameAttr("exp-"+ot.String()),
				attrNode("x-note", tree.Text(0, "n")))), 0), kmip14.TagUniqueIdentifier)
			ga := okPayload(t, e.do(alice, item(kmip14.OperationGetAttributes, uidF(uid))), 0).All(kmip14.TagAttribute)
			x := parseExport(t, okPayload(t, e.do(alice, exportItem(uid)), 0))
			if x.ot != ot || x.uid != uid {
				t.Fatalf("Export answered %s %s", x.ot, x.uid)
			}
			if x.body == nil || !x.body.View().Equal(body.View()) {
				t.Fatalf("exported object %s, registered %s", x.body, body)
			}
			if len(x.attrs) != len(ga) {
				t.Fatalf("%d attributes exported, Get Attributes lists %d", len(x.attrs), len(ga))
			}
			for i := range ga {
				if !x.attrs[i].View().Equal(ga[i].View()) {
					t.Fatalf("attribute %d: exported %s, listed %s", i, x.attrs[i], ga[i])
				}
			}
			if len(x.values("Unique Identifier")) != 1 || len(x.values("State")) != 1 || len(x.values("x-note")) != 1 {
				t.Fatalf("attributes missing from the export: %v", x.attrs)
			}
		})
	}
}

func TestExportRules(t *testing.T) {
	e := newEnv(t, Options{})
	// The ID Placeholder: Create then Export without a uid; Export sets it
	// for the next item too.
	resp := e.do(alice, createAES(128), exportItem(""), item(kmip14.OperationGetAttributes))
	created := text(t, okPayload(t, resp, 0), kmip14.TagUniqueIdentifier)
	if x := parseExport(t, okPayload(t, resp, 1)); x.uid != created || x.body == nil {
		t.Fatalf("placeholder Export: %s", okPayload(t, resp, 1))
	}
	if text(t, okPayload(t, resp, 2), kmip14.TagUniqueIdentifier) != created {
		t.Fatal("Export did not leave its uid in the ID Placeholder")
	}
	wantFail(t, e.do(alice, exportItem("")), 0, kmip14.ResultReasonMissingData)

	// Fresh turns false, as for Get.
	if f, _ := e.getAttrs(alice, created, "Fresh")["Fresh"][0].BoolValue(); f {
		t.Fatal("an exported key is still Fresh")
	}

	// A destroyed object: its attributes, no object.
	gone := e.create(alice)
	okPayload(t, e.do(alice, item(kmip14.OperationDestroy, uidF(gone))), 0)
	x := parseExport(t, okPayload(t, e.do(alice, exportItem(gone)), 0))
	if x.body != nil {
		t.Fatalf("a destroyed object's export carries %s", x.body)
	}
	if st := x.values("State"); len(st) != 1 || kmip14.State(st[0].Int) != kmip14.StateDestroyed || x.values("Destroy Date") == nil {
		t.Fatalf("destroyed object's attributes: %v", x.attrs)
	}

	// Get's refusals.
	sens := e.create(alice, attrNode("Sensitive", tree.Bool(0, true)))
	wantFail(t, e.do(alice, exportItem(sens)), 0, kmip14.ResultReasonSensitive)
	noex := e.create(alice, attrNode("Extractable", tree.Bool(0, false)))
	wantFail(t, e.do(alice, exportItem(noex)), 0, kmip14.ResultReasonNotExtractable)
	wantFail(t, e.do(alice, exportItem(created, tree.Enum(kmip14.TagKeyCompressionType, 1))), 0, kmip14.ResultReasonKeyCompressionTypeNotSupported)
	wantFail(t, e.do(alice, exportItem(created, tree.Int(kmip14.TagKeyFormatType, 1))), 0, kmip14.ResultReasonInvalidField)
	wantFail(t, e.do(alice, exportItem(created, tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypePKCS_1)))), 0, kmip14.ResultReasonKeyFormatTypeNotSupported)
	// Another owner's object is not found; so is nothing.
	wantFail(t, e.do(bob, exportItem(created)), 0, kmip14.ResultReasonItemNotFound)
	wantFail(t, e.do(alice, exportItem("no-such-object")), 0, kmip14.ResultReasonItemNotFound)

	// A Key Format Type is served as Get serves it.
	tsk := okPayload(t, e.do(alice, exportItem(created, tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeTransparentSymmetricKey)))), 0)
	if f := parseExport(t, tsk).body.Path(kmip14.TagKeyBlock, kmip14.TagKeyFormatType); f == nil || kmip14.KeyFormatType(f.Int) != kmip14.KeyFormatTypeTransparentSymmetricKey {
		t.Fatalf("Key Format Type not honoured: %s", tsk)
	}
}

// wrappingKey makes an Active AES key of alice's that may wrap and unwrap.
func wrappingKey(t *testing.T, e *env) string {
	k := text(t, okPayload(t, e.do(alice, createWith(algA(kmip14.CryptographicAlgorithmAES), lenA(256),
		maskA(kmip14.CryptographicUsageMaskWrapKey|kmip14.CryptographicUsageMaskUnwrapKey))), 0), kmip14.TagUniqueIdentifier)
	okPayload(t, e.do(alice, item(kmip14.OperationActivate, uidF(k))), 0)
	return k
}

// TestExportWrappedImportUnwrapped exports a key wrapped under one of
// alice's keys, and imports it back with Key Wrap Type Not Wrapped (the
// server unwraps it) and without (stored as provided).
func TestExportWrappedImportUnwrapped(t *testing.T) {
	e := newEnv(t, Options{})
	kek := wrappingKey(t, e)
	key := e.create(alice)
	plain := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(key))), 0).Child(kmip14.TagSymmetricKey)
	x := parseExport(t, okPayload(t, e.do(alice, exportItem(key, wrapSpecNode(kek))), 0))
	kb := x.body.Child(kmip14.TagKeyBlock)
	if kb.Child(kmip14.TagKeyWrappingData) == nil || kb.Child(kmip14.TagKeyValue).Type != ttlv.TypeByteString {
		t.Fatalf("Key Wrapping Specification not honoured: %s", x.body)
	}
	if bytes.Contains(kb.Child(kmip14.TagKeyValue).Bytes, plain.Path(kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial).Bytes) {
		t.Fatal("the wrapped key value holds the key in the clear")
	}
	notWrapped := tree.Enum(kmip14.TagKeyWrapType, uint32(kmip14.KeyWrapTypeNotWrapped))
	imp := func(uid string, extra ...*tree.Node) *tree.Node {
		f := append([]*tree.Node{uidF(uid)}, extra...)
		for _, a := range x.attrs {
			if n, _ := a.Child(kmip14.TagAttributeName).TextValue(); n != "Unique Identifier" {
				f = append(f, a)
			}
		}
		return item(kmip14.OperationImport, append(f, x.body)...)
	}
	okPayload(t, e.do(alice, imp("unwrapped-copy", notWrapped)), 0)
	got := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF("unwrapped-copy"))), 0).Child(kmip14.TagSymmetricKey)
	if !got.View().Equal(plain.View()) {
		t.Fatalf("unwrapped import holds %s, the key was %s", got, plain)
	}
	okPayload(t, e.do(alice, imp("wrapped-copy")), 0)
	got = okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF("wrapped-copy"))), 0).Child(kmip14.TagSymmetricKey)
	if !got.View().Equal(x.body.View()) {
		t.Fatalf("import without Key Wrap Type changed the object: %s", got)
	}
	// The wrapping key must be available: bob has no such key.
	wantFail(t, e.do(bob, imp("unwrapped-copy", notWrapped)), 0, kmip14.ResultReasonItemNotFound)
	// A tampered wrapping does not unwrap.
	bad := x.body.Clone()
	bad.Path(kmip14.TagKeyBlock, kmip14.TagKeyValue).Bytes[3] ^= 1
	f := []*tree.Node{uidF("tampered"), notWrapped, attrNode("Object Type", tree.Enum(0, uint32(x.ot))), bad}
	wantFail(t, e.do(alice, item(kmip14.OperationImport, f...)), 0, kmip14.ResultReasonCryptographicFailure)
}
