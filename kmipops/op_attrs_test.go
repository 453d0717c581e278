package kmipops

import (
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// TestGetAttributesNameTwice: from KMIP 1.1 on, an Attribute Name may be
// named once per GetAttributes (§4.11; OASIS TC-171-11/12: Invalid
// Message); a 1.0 request's repeat counts once.
func TestGetAttributesNameTwice(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.create(alice)
	twice := item(kmip14.OperationGetAttributes, uidF(uid),
		tree.Text(kmip14.TagAttributeName, "Object Type"), tree.Text(kmip14.TagAttributeName, "Object Type"))
	for _, v := range []version{{1, 1}, {1, 2}, {1, 4}} {
		e.v = v
		wantFail(t, e.do(alice, twice), 0, kmip14.ResultReasonInvalidMessage)
	}
	e.v = version{1, 0}
	if got := okPayload(t, e.do(alice, twice), 0).All(kmip14.TagAttribute); len(got) != 1 {
		t.Fatalf("1.0: %d attributes, want the one named", len(got))
	}
}

// TestResponsesNameAttributeIndex: the Attribute structures of GetAttributes
// and Add/Modify/Delete Attribute responses name their index, 0 included
// (PyKMIP 0.10's suite reads it; KMIP 1.1+ §2.1.1 makes both forms mean the
// same instance).
func TestResponsesNameAttributeIndex(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.create(alice, nameAttr("first"))
	index := func(p *tree.Node) int64 {
		t.Helper()
		n := p.Path(kmip14.TagAttribute, kmip14.TagAttributeIndex)
		if n == nil {
			t.Fatalf("no Attribute Index in %s", p)
		}
		return n.Int
	}
	for _, v := range []version{{1, 0}, {1, 2}, {1, 4}} {
		e.v = v
		p := okPayload(t, e.do(alice, item(kmip14.OperationGetAttributes, uidF(uid), tree.Text(kmip14.TagAttributeName, "Name"))), 0)
		if index(p) != 0 {
			t.Fatalf("%v GetAttributes %s", v, p)
		}
	}
	name := func(s string, idx ...int32) *tree.Node {
		a := tree.Struct(kmip14.TagAttribute, tree.Text(kmip14.TagAttributeName, "Name"))
		for _, i := range idx {
			a.Add(tree.Int(kmip14.TagAttributeIndex, i))
		}
		return a.Add(tree.Struct(kmip14.TagAttributeValue, tree.Text(kmip14.TagNameValue, s), tree.Enum(kmip14.TagNameType, 1)))
	}
	if i := index(okPayload(t, e.do(alice, item(kmip14.OperationModifyAttribute, uidF(uid), name("renamed", 0))), 0)); i != 0 {
		t.Fatalf("Modify index %d", i)
	}
	if i := index(okPayload(t, e.do(alice, item(kmip14.OperationAddAttribute, uidF(uid), name("second"))), 0)); i != 1 {
		t.Fatalf("Add index %d", i)
	}
	if i := index(okPayload(t, e.do(alice, item(kmip14.OperationModifyAttribute, uidF(uid), name("other"))), 0)); i != 0 {
		t.Fatalf("Modify without index: index %d", i)
	}
	p := okPayload(t, e.do(alice, item(kmip14.OperationDeleteAttribute, uidF(uid), tree.Text(kmip14.TagAttributeName, "Name"), tree.Int(kmip14.TagAttributeIndex, 0))), 0)
	if index(p) != 0 || p.Path(kmip14.TagAttribute, kmip14.TagAttributeValue, kmip14.TagNameValue).Text != "other" {
		t.Fatalf("Delete response %s", p)
	}
	p = okPayload(t, e.do(alice, item(kmip14.OperationDeleteAttribute, uidF(uid), tree.Text(kmip14.TagAttributeName, "Name"), tree.Int(kmip14.TagAttributeIndex, 1))), 0)
	if index(p) != 1 {
		t.Fatalf("Delete response %s", p)
	}
}

// TestDefaultOperationPolicyName: objects made by a KMIP 1.0–1.2 request get
// the default Operation Policy Name unless the client named one (§3.18
// "SHOULD be set"), so a 1.x client's Locate by policy finds them, as
// PyKMIP's suite does; 1.3 deprecated the attribute, so 1.3+ requests get
// none.
func TestDefaultOperationPolicyName(t *testing.T) {
	e := newEnv(t, Options{})
	policy := func(uid string) []*tree.Node {
		return e.getAttrs(alice, uid, "Operation Policy Name")["Operation Policy Name"]
	}
	e.v = version{1, 2}
	made := e.create(alice)
	pair := okPayload(t, e.do(alice, item(kmip14.OperationCreateKeyPair, template(kmip14.TagCommonTemplateAttribute,
		attrNode("Cryptographic Algorithm", tree.Enum(0, uint32(kmip14.CryptographicAlgorithmEC))),
		attrNode("Cryptographic Length", tree.Int(0, 256))))), 0)
	registered := text(t, okPayload(t, e.do(alice, register(kmip14.ObjectTypeOpaqueObject, tree.Struct(kmip14.TagOpaqueObject,
		tree.Enum(kmip14.TagOpaqueDataType, 0x80000001), tree.Bytes(kmip14.TagOpaqueDataValue, []byte("x"))))), 0), kmip14.TagUniqueIdentifier)
	for _, uid := range []string{made, registered, text(t, pair, kmip14.TagPrivateKeyUniqueIdentifier), text(t, pair, kmip14.TagPublicKeyUniqueIdentifier)} {
		if p := policy(uid); len(p) != 1 || p[0].Text != "default" {
			t.Fatalf("1.2 object %s: Operation Policy Name %v", uid, p)
		}
	}
	own := e.create(alice, attrNode("Operation Policy Name", tree.Text(0, "mine")))
	if p := policy(own); len(p) != 1 || p[0].Text != "mine" {
		t.Fatalf("client's policy name: %v", p)
	}
	loc := okPayload(t, e.do(alice, item(kmip14.OperationLocate, attrNode("Operation Policy Name", tree.Text(0, "default")))), 0)
	if n := len(loc.All(kmip14.TagUniqueIdentifier)); n != 4 {
		t.Fatalf("Locate by the default policy found %d objects, want 4", n)
	}
	e.v = version{1, 3}
	if p := policy(e.create(alice)); p != nil {
		t.Fatalf("1.3 object has Operation Policy Name %v", p)
	}
}
