package kmipops

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// indexed gives the Attribute structure a an Attribute Index.
func indexed(a *tree.Node, i int32) *tree.Node {
	a.Children = append(a.Children[:1], append([]*tree.Node{tree.Int(kmip14.TagAttributeIndex, i)}, a.Children[1:]...)...)
	return a
}

// TestImportKeepsAttributes imports an object whose attributes are all
// given, server-managed ones included, and reads them back unchanged.
func TestImportKeepsAttributes(t *testing.T) {
	e := newEnv(t, Options{})
	body := registrable(t)[kmip14.ObjectTypeSymmetricKey]
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	digest := tree.Struct(0, tree.Enum(kmip14.TagHashingAlgorithm, uint32(kmip14.HashingAlgorithmSHA_256)),
		tree.Bytes(kmip14.TagDigestValue, bytes.Repeat([]byte{9}, 32)), tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)))
	supplied := []*tree.Node{
		attrNode("Cryptographic Algorithm", tree.Enum(0, uint32(kmip14.CryptographicAlgorithmAES))),
		attrNode("Cryptographic Length", tree.Int(0, 256)),
		attrNode("Cryptographic Usage Mask", tree.Int(0, int32(kmip14.CryptographicUsageMaskEncrypt))),
		attrNode("State", tree.Enum(0, uint32(kmip14.StateActive))),
		attrNode("Initial Date", tree.Time(0, old)),
		attrNode("Activation Date", tree.Time(0, old.Add(time.Hour))),
		attrNode("Last Change Date", tree.Time(0, old.Add(2*time.Hour))),
		attrNode("Original Creation Date", tree.Time(0, old.Add(-time.Hour))),
		attrNode("Digest", digest),
		attrNode("Fresh", tree.Bool(0, true)),
		attrNode("Always Sensitive", tree.Bool(0, false)),
		attrNode("Never Extractable", tree.Bool(0, true)),
		nameAttr("imported-key"),
		attrNode("x-origin", tree.Text(0, "elsewhere")),
	}
	// A named index is kept.
	supplied = append(supplied, indexed(nameAttr("imported-key-2"), 5))
	uid := text(t, okPayload(t, e.do(alice, importItem("my-key-1", kmip14.ObjectTypeSymmetricKey, body, nil, supplied...)), 0), kmip14.TagUniqueIdentifier)
	if uid != "my-key-1" {
		t.Fatalf("Import answered uid %q", uid)
	}
	got := map[string]*tree.Node{}
	for _, a := range okPayload(t, e.do(alice, item(kmip14.OperationGetAttributes, uidF(uid))), 0).All(kmip14.TagAttribute) {
		n, _ := a.Child(kmip14.TagAttributeName).TextValue()
		i, _ := a.Child(kmip14.TagAttributeIndex).IntValue()
		if i != 0 {
			n += "#5"
		}
		got[n] = a.Child(kmip14.TagAttributeValue)
	}
	for _, a := range supplied {
		n, _ := a.Child(kmip14.TagAttributeName).TextValue()
		if a.Child(kmip14.TagAttributeIndex) != nil {
			n += "#5"
		}
		if g := got[n]; g == nil || !g.View().Equal(a.Child(kmip14.TagAttributeValue).View()) {
			t.Errorf("%s: supplied %s, stored %s", n, a.Child(kmip14.TagAttributeValue), g)
		}
	}
	if got["Unique Identifier"].Text != uid || kmip14.ObjectType(got["Object Type"].Int) != kmip14.ObjectTypeSymmetricKey {
		t.Fatalf("identity attributes: %v", got)
	}
	// Usable as its State says, and found by its Name: the index was written.
	okPayload(t, e.do(alice, item(kmip14.OperationEncrypt, uidF(uid),
		tree.Struct(kmip14.TagCryptographicParameters, tree.Enum(kmip14.TagBlockCipherMode, uint32(kmip14.BlockCipherModeGCM))),
		tree.Bytes(kmip14.TagData, []byte("x")))), 0)
	loc := okPayload(t, e.do(alice, item(kmip14.OperationLocate, nameAttr("imported-key"))), 0).All(kmip14.TagUniqueIdentifier)
	if len(loc) != 1 || loc[0].Text != uid {
		t.Fatalf("Locate by Name found %v", loc)
	}
}

func TestImportExisting(t *testing.T) {
	e := newEnv(t, Options{})
	bodies := registrable(t)
	yes, no := true, false
	first := importItem("k", kmip14.ObjectTypeSymmetricKey, bodies[kmip14.ObjectTypeSymmetricKey], nil, nameAttr("first"))
	okPayload(t, e.do(alice, first), 0)
	wantFail(t, e.do(alice, first), 0, kmip14.ResultReasonObjectAlreadyExists)
	wantFail(t, e.do(alice, importItem("k", kmip14.ObjectTypeSecretData, bodies[kmip14.ObjectTypeSecretData], &no)), 0, kmip14.ResultReasonObjectAlreadyExists)
	// A created object's uid counts as existing too.
	made := e.create(alice)
	wantFail(t, e.do(alice, importItem(made, kmip14.ObjectTypeSecretData, bodies[kmip14.ObjectTypeSecretData], nil)), 0, kmip14.ResultReasonObjectAlreadyExists)

	// Replace Existing: the new object, of another type even, takes the
	// uid whole; the old name is gone from the index.
	okPayload(t, e.do(alice, importItem("k", kmip14.ObjectTypeSecretData, bodies[kmip14.ObjectTypeSecretData], &yes, nameAttr("second"))), 0)
	g := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF("k"))), 0)
	if !g.Child(kmip14.TagSecretData).View().Equal(bodies[kmip14.ObjectTypeSecretData].View()) {
		t.Fatalf("replaced object: %s", g)
	}
	for name, want := range map[string]int{"first": 0, "second": 1} {
		if n := len(okPayload(t, e.do(alice, item(kmip14.OperationLocate, nameAttr(name))), 0).All(kmip14.TagUniqueIdentifier)); n != want {
			t.Errorf("Locate %q found %d objects, want %d", name, n, want)
		}
	}
	// Replace Existing of a uid nobody has simply imports.
	okPayload(t, e.do(alice, importItem("fresh-uid", kmip14.ObjectTypeSecretData, bodies[kmip14.ObjectTypeSecretData], &yes)), 0)

	// An archived object is replaced like any other.
	okPayload(t, e.do(alice, item(kmip14.OperationArchive, uidF("k"))), 0)
	wantFail(t, e.do(alice, importItem("k", kmip14.ObjectTypeSecretData, bodies[kmip14.ObjectTypeSecretData], nil)), 0, kmip14.ResultReasonObjectAlreadyExists)
	okPayload(t, e.do(alice, importItem("k", kmip14.ObjectTypeSecretData, bodies[kmip14.ObjectTypeSecretData], &yes)), 0)
	okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF("k"))), 0)

	// An object imported Destroyed is kept as Destroy leaves one: its
	// attributes without its material.
	okPayload(t, e.do(alice, importItem("dead", kmip14.ObjectTypeSymmetricKey, bodies[kmip14.ObjectTypeSymmetricKey], nil,
		attrNode("State", tree.Enum(0, uint32(kmip14.StateDestroyed))))), 0)
	wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF("dead"))), 0, kmip14.ResultReasonItemNotFound)
	if x := parseExport(t, okPayload(t, e.do(alice, exportItem("dead")), 0)); x.body != nil {
		t.Fatalf("destroyed import exports %s", x.body)
	}
}

// TestImportOwners: uids are per owner. Bob's object under a uid is
// neither seen, replaced nor collided with by alice's Import of that uid.
func TestImportOwners(t *testing.T) {
	e := newEnv(t, Options{})
	bodies := registrable(t)
	yes := true
	okPayload(t, e.do(bob, importItem("shared", kmip14.ObjectTypeSymmetricKey, bodies[kmip14.ObjectTypeSymmetricKey], nil, nameAttr("bob's"))), 0)
	bobs := okPayload(t, e.do(bob, item(kmip14.OperationGet, uidF("shared"))), 0)
	// Without and with Replace Existing: alice's answer is that of a uid
	// nobody uses.
	okPayload(t, e.do(alice, importItem("shared", kmip14.ObjectTypeSecretData, bodies[kmip14.ObjectTypeSecretData], nil)), 0)
	okPayload(t, e.do(alice, importItem("shared", kmip14.ObjectTypeOpaqueObject, bodies[kmip14.ObjectTypeOpaqueObject], &yes)), 0)
	if g := okPayload(t, e.do(bob, item(kmip14.OperationGet, uidF("shared"))), 0); !g.View().Equal(bobs.View()) {
		t.Fatalf("bob's object changed: %s", g)
	}
	if g := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF("shared"))), 0); g.Child(kmip14.TagOpaqueObject) == nil {
		t.Fatalf("alice's object: %s", g)
	}
	if n := len(okPayload(t, e.do(alice, item(kmip14.OperationLocate, nameAttr("bob's"))), 0).All(kmip14.TagUniqueIdentifier)); n != 0 {
		t.Fatal("alice locates bob's object")
	}
}

func TestImportRefusals(t *testing.T) {
	e := newEnv(t, Options{})
	aes := registrable(t)[kmip14.ObjectTypeSymmetricKey]
	sk := uint32(kmip14.ObjectTypeSymmetricKey)
	otA := attrNode("Object Type", tree.Enum(0, sk))
	imp := func(f ...*tree.Node) *tree.Node { return item(kmip14.OperationImport, f...) }
	for name, c := range map[string]struct {
		req    *tree.Node
		reason kmip14.ResultReason
	}{
		"no uid":               {imp(otA, aes), kmip14.ResultReasonInvalidMessage},
		"uid not text":         {imp(tree.Int(kmip14.TagUniqueIdentifier, 1), otA, aes), kmip14.ResultReasonInvalidField},
		"uid with slash":       {importItem("a/b", kmip14.ObjectTypeSymmetricKey, aes, nil), kmip14.ResultReasonInvalidField},
		"empty uid":            {importItem("", kmip14.ObjectTypeSymmetricKey, aes, nil), kmip14.ResultReasonInvalidField},
		"no attributes":        {imp(uidF("u"), aes), kmip14.ResultReasonInvalidMessage},
		"attribute not struct": {imp(uidF("u"), tree.Text(kmip14.TagAttribute, "Object Type"), aes), kmip14.ResultReasonInvalidField},
		// KMIP 1.4 Table 253 has neither: the object's tag says its type,
		// and the attributes are bare Attribute structures.
		"object type field":  {imp(uidF("u"), tree.Enum(kmip14.TagObjectType, sk), otA, aes), kmip14.ResultReasonInvalidField},
		"template-attribute": {imp(uidF("u"), template(kmip14.TagTemplateAttribute, otA), aes), kmip14.ResultReasonInvalidField},
		"both shapes":        {imp(uidF("u"), otA, template(kmip14.TagTemplateAttribute, nameAttr("lost")), aes), kmip14.ResultReasonInvalidField},
		"template object":    {importItem("u", kmip14.ObjectTypeTemplate, tree.Struct(kmip14.TagTemplate), nil), kmip14.ResultReasonInvalidField},
		"no object":          {imp(uidF("u"), otA), kmip14.ResultReasonInvalidMessage},
		"two objects":        {imp(uidF("u"), otA, aes, registrable(t)[kmip14.ObjectTypeSecretData]), kmip14.ResultReasonInvalidMessage},
		"body mismatch":      {importItem("u", kmip14.ObjectTypePrivateKey, aes, nil), kmip14.ResultReasonInvalidField},
		"replace not bool":   {imp(uidF("u"), tree.Int(kmip14.TagReplaceExisting, 1), otA, aes), kmip14.ResultReasonInvalidField},
		"wrap type unknown":  {imp(uidF("u"), tree.Enum(kmip14.TagKeyWrapType, 3), otA, aes), kmip14.ResultReasonInvalidField},
		"other object type":  {importItem("u", kmip14.ObjectTypeSymmetricKey, aes, nil, attrNode("Object Type", tree.Enum(0, uint32(kmip14.ObjectTypeSecretData)))), kmip14.ResultReasonInvalidField},
		"other uid attr":     {importItem("u", kmip14.ObjectTypeSymmetricKey, aes, nil, attrNode("Unique Identifier", tree.Text(0, "v"))), kmip14.ResultReasonInvalidField},
		"no such state":      {importItem("u", kmip14.ObjectTypeSymmetricKey, aes, nil, attrNode("State", tree.Enum(0, 99))), kmip14.ResultReasonInvalidField},
		"state as int":       {importItem("u", kmip14.ObjectTypeSymmetricKey, aes, nil, attrNode("State", tree.Int(0, 2))), kmip14.ResultReasonInvalidField},
		"date as text":       {importItem("u", kmip14.ObjectTypeSymmetricKey, aes, nil, attrNode("Initial Date", tree.Text(0, "yesterday"))), kmip14.ResultReasonInvalidField},
		"state index 1": {importItem("u", kmip14.ObjectTypeSymmetricKey, aes, nil, tree.Struct(kmip14.TagAttribute,
			tree.Text(kmip14.TagAttributeName, "State"), tree.Int(kmip14.TagAttributeIndex, 1), tree.Enum(kmip14.TagAttributeValue, 1))), kmip14.ResultReasonInvalidField},
		"name index twice":   {importItem("u", kmip14.ObjectTypeSymmetricKey, aes, nil, indexed(nameAttr("a"), 2), indexed(nameAttr("b"), 2)), kmip14.ResultReasonInvalidField},
		"state twice":        {importItem("u", kmip14.ObjectTypeSymmetricKey, aes, nil, attrNode("State", tree.Enum(0, 1)), attrNode("State", tree.Enum(0, 2))), kmip14.ResultReasonInvalidField},
		"length vs material": {importItem("u", kmip14.ObjectTypeSymmetricKey, aes, nil, attrNode("Cryptographic Length", tree.Int(0, 128))), kmip14.ResultReasonInvalidField},
		"alg vs key block":   {importItem("u", kmip14.ObjectTypeSymmetricKey, aes, nil, attrNode("Cryptographic Algorithm", tree.Enum(0, uint32(kmip14.CryptographicAlgorithmDES3)))), kmip14.ResultReasonInvalidField},
		"not a certificate": {importItem("u", kmip14.ObjectTypeCertificate, tree.Struct(kmip14.TagCertificate,
			tree.Enum(kmip14.TagCertificateType, uint32(kmip14.CertificateTypeX_509)), tree.Bytes(kmip14.TagCertificateValue, []byte("nope"))), nil), kmip14.ResultReasonInvalidField},
	} {
		t.Run(name, func(t *testing.T) { wantFail(t, e.do(alice, c.req), 0, c.reason) })
	}
	// Nothing was stored by any of them.
	wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF("u"))), 0, kmip14.ResultReasonItemNotFound)
}

// TestImportExportVersions: both are KMIP 1.4 operations, offered and
// performed at 1.4 only.
func TestImportExportVersions(t *testing.T) {
	e := newEnv(t, Options{})
	key := e.create(alice)
	aes := registrable(t)[kmip14.ObjectTypeSymmetricKey]
	for minor := int32(0); minor <= 4; minor++ {
		e.v = version{1, minor}
		offered := map[kmip14.Operation]bool{}
		for _, n := range okPayload(t, e.do(alice, item(kmip14.OperationQuery, tree.Enum(kmip14.TagQueryFunction, uint32(kmip14.QueryFunctionQueryOperations)))), 0).All(kmip14.TagOperation) {
			offered[kmip14.Operation(n.Int)] = true
		}
		if offered[kmip14.OperationImport] != (minor == 4) || offered[kmip14.OperationExport] != (minor == 4) {
			t.Errorf("KMIP 1.%d Query offers Import %v, Export %v", minor, offered[kmip14.OperationImport], offered[kmip14.OperationExport])
		}
		if minor < 4 {
			wantFail(t, e.do(alice, exportItem(key)), 0, kmip14.ResultReasonOperationNotSupported)
			wantFail(t, e.do(alice, importItem("v", kmip14.ObjectTypeSymmetricKey, aes, nil)), 0, kmip14.ResultReasonOperationNotSupported)
		}
	}
}

// TestExportImportRoundTrip: what Export answers, imported under a new
// uid, is the same object: body and every attribute but the uid.
func TestExportImportRoundTrip(t *testing.T) {
	e := newEnv(t, Options{})
	key := e.create(alice, nameAttr("round"), attrNode("x-tag", tree.Text(0, "a")), attrNode("x-tag", tree.Text(0, "b")))
	okPayload(t, e.do(alice, item(kmip14.OperationActivate, uidF(key))), 0)
	x := parseExport(t, okPayload(t, e.do(alice, exportItem(key)), 0))
	var attrs []*tree.Node
	for _, a := range x.attrs {
		if n, _ := a.Child(kmip14.TagAttributeName).TextValue(); n != "Unique Identifier" {
			attrs = append(attrs, a)
		}
	}
	okPayload(t, e.do(alice, importItem("copy", x.ot, x.body, nil, attrs...)), 0)
	y := parseExport(t, okPayload(t, e.do(alice, exportItem("copy")), 0))
	if !y.body.View().Equal(x.body.View()) || y.ot != x.ot {
		t.Fatalf("round trip changed the object: %s vs %s", y.body, x.body)
	}
	if len(y.attrs) != len(x.attrs) {
		t.Fatalf("%d attributes after the round trip, %d before", len(y.attrs), len(x.attrs))
	}
	for i := range x.attrs {
		if n, _ := x.attrs[i].Child(kmip14.TagAttributeName).TextValue(); n == "Unique Identifier" {
			continue
		}
		if !y.attrs[i].View().Equal(x.attrs[i].View()) {
			t.Errorf("attribute %d: %s after, %s before", i, y.attrs[i], x.attrs[i])
		}
	}
	// The same through Replace Existing onto the original uid.
	yes := true
	okPayload(t, e.do(alice, importItem(key, x.ot, x.body, &yes, attrs...)), 0)
	z := parseExport(t, okPayload(t, e.do(alice, exportItem(key)), 0))
	for i := range x.attrs {
		if !z.attrs[i].View().Equal(x.attrs[i].View()) {
			t.Errorf("after replace, attribute %d: %s, before %s", i, z.attrs[i], x.attrs[i])
		}
	}
}

// TestImportUndo: under the Undo batch option, a new import is taken back
// and a replaced object restored, with their index entries.
func TestImportUndo(t *testing.T) {
	e := newEnv(t, Options{})
	bodies := registrable(t)
	yes := true
	okPayload(t, e.do(alice, importItem("kept", kmip14.ObjectTypeSecretData, bodies[kmip14.ObjectTypeSecretData], nil, nameAttr("old"))), 0)
	resp := e.send(alice, undoMsg(e,
		importItem("new", kmip14.ObjectTypeSymmetricKey, bodies[kmip14.ObjectTypeSymmetricKey], nil, nameAttr("new")),
		importItem("kept", kmip14.ObjectTypeOpaqueObject, bodies[kmip14.ObjectTypeOpaqueObject], &yes, nameAttr("replacement")),
		item(kmip14.OperationGet, uidF("no-such-object"))))
	wantFail(t, resp, 2, kmip14.ResultReasonItemNotFound)
	wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF("new"))), 0, kmip14.ResultReasonItemNotFound)
	if g := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF("kept"))), 0); g.Child(kmip14.TagSecretData) == nil {
		t.Fatalf("replaced object not restored: %s", g)
	}
	for name, want := range map[string]int{"old": 1, "new": 0, "replacement": 0} {
		if n := len(okPayload(t, e.do(alice, item(kmip14.OperationLocate, nameAttr(name))), 0).All(kmip14.TagUniqueIdentifier)); n != want {
			t.Errorf("Locate %q found %d, want %d", name, n, want)
		}
	}
}

// TestImportExportAudit: the audit lines name the operation and the uid,
// never the material or an attribute value.
func TestImportExportAudit(t *testing.T) {
	e, s, path := auditEnv(t)
	mat := make([]byte, 32)
	rand.Read(mat)
	okPayload(t, e.do(alice, importItem("audited-import", kmip14.ObjectTypeSymmetricKey, symKeyBody(mat), nil, nameAttr("audit-secret-name"))), 0)
	if x := parseExport(t, okPayload(t, e.do(alice, exportItem("audited-import")), 0)); !bytes.Equal(
		x.body.Path(kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial).Bytes, mat) {
		t.Fatal("Export returned other bytes than imported")
	}
	raw, lines := closeAudit(t, s, path)
	if len(lines) != 2 || lines[0].Op != "Import" || lines[1].Op != "Export" {
		t.Fatalf("audit lines: %s", raw)
	}
	for _, l := range lines {
		if len(l.RequestUIDs) != 1 || l.RequestUIDs[0] != "audited-import" || len(l.ResponseUIDs) != 1 || l.ResponseUIDs[0] != "audited-import" {
			t.Fatalf("%s line uids %v / %v", l.Op, l.RequestUIDs, l.ResponseUIDs)
		}
	}
	for _, f := range [][]byte{mat, []byte(hex.EncodeToString(mat[:8])), []byte(base64.StdEncoding.EncodeToString(mat)), []byte("audit-secret-name")} {
		if bytes.Contains(raw, f) {
			t.Fatalf("the audit log holds %q", f)
		}
	}
}
