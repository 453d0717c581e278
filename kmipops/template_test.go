package kmipops

import (
	"sort"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Templates and Template-Attribute Names (KMIP 1.2 §2.2.6, §2.1.8;
// op_template.go).

func nameV(s string) *tree.Node {
	return tree.Struct(kmip14.TagName,
		tree.Text(kmip14.TagNameValue, s),
		tree.Enum(kmip14.TagNameType, uint32(kmip14.NameTypeUninterpretedTextString)))
}

func regTemplate(attrs ...*tree.Node) *tree.Node {
	return item(kmip14.OperationRegister,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeTemplate)),
		tree.Struct(kmip14.TagTemplateAttribute),
		tree.Struct(kmip14.TagTemplate, attrs...))
}

// createWith is a Create of a symmetric key whose Template-Attribute holds
// fields (Names and Attributes) as given.
func createWith(fields ...*tree.Node) *tree.Node {
	return item(kmip14.OperationCreate,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)),
		tree.Struct(kmip14.TagTemplateAttribute, fields...))
}

func algA(a kmip14.CryptographicAlgorithm) *tree.Node {
	return attrNode("Cryptographic Algorithm", tree.Enum(0, uint32(a)))
}
func lenA(n int32) *tree.Node { return attrNode("Cryptographic Length", tree.Int(0, n)) }
func maskA(m kmip14.CryptographicUsageMask) *tree.Node {
	return attrNode("Cryptographic Usage Mask", tree.Int(0, int32(m)))
}
func groupA(g string) *tree.Node { return attrNode("Object Group", tree.Text(0, g)) }

func (e *env) regTmpl(c Caller, attrs ...*tree.Node) string {
	e.t.Helper()
	return text(e.t, okPayload(e.t, e.do(c, regTemplate(attrs...)), 0), kmip14.TagUniqueIdentifier)
}

func texts(vs []*tree.Node) []string {
	var out []string
	for _, v := range vs {
		if s, ok := v.TextValue(); ok {
			out = append(out, s)
		} else {
			nv, _ := v.Child(kmip14.TagNameValue).TextValue()
			out = append(out, nv)
		}
	}
	sort.Strings(out)
	return out
}

func TestTemplateMergedUnderExplicit(t *testing.T) {
	for _, minor := range []int32{0, 2, 4} { // deprecated at 1.3, still served
		e := newEnv(t, Options{})
		e.v = version{1, minor}
		e.regTmpl(alice, nameAttr("T1"), algA(kmip14.CryptographicAlgorithmAES), lenA(128),
			groupA("G1"), attrNode("Contact Information", tree.Text(0, "template")),
			attrNode("x-Purpose", tree.Text(0, "demo")),
			attrNode("Application Specific Information", tree.Struct(0,
				tree.Text(kmip14.TagApplicationNamespace, "ssl"), tree.Text(kmip14.TagApplicationData, "www.example.com"))))
		key := text(t, okPayload(t, e.do(alice, createWith(nameV("T1"),
			lenA(256), maskA(kmip14.CryptographicUsageMaskEncrypt),
			attrNode("Contact Information", tree.Text(0, "explicit")),
			groupA("G2"), groupA("G1"), nameAttr("K1"))), 0), kmip14.TagUniqueIdentifier)
		a := e.getAttrs(alice, key)
		if l := a["Cryptographic Length"][0].Int; l != 256 {
			t.Errorf("1.%d: length %d, want the explicit 256", minor, l)
		}
		if alg := a["Cryptographic Algorithm"][0].Int; alg != int64(kmip14.CryptographicAlgorithmAES) {
			t.Errorf("1.%d: algorithm %d, want the template's AES", minor, alg)
		}
		if got := texts(a["Contact Information"]); len(got) != 1 || got[0] != "explicit" {
			t.Errorf("1.%d: Contact Information %v, want the explicit one only", minor, got)
		}
		if got := texts(a["Object Group"]); len(got) != 2 || got[0] != "G1" || got[1] != "G2" {
			t.Errorf("1.%d: Object Groups %v, want G1 (once) and G2", minor, got)
		}
		if got := texts(a["x-Purpose"]); len(got) != 1 || got[0] != "demo" {
			t.Errorf("1.%d: x-Purpose %v", minor, got)
		}
		if a["Application Specific Information"] == nil {
			t.Errorf("1.%d: Application Specific Information not inherited", minor)
		}
		if got := texts(a["Name"]); len(got) != 1 || got[0] != "K1" {
			t.Errorf("1.%d: key Names %v: the template's own Name must not pass on", minor, got)
		}
		if s := e.state(alice, key); s != kmip14.StatePreActive {
			t.Errorf("1.%d: key state %s", minor, s)
		}
	}
}

func TestTemplatesApplyInOrder(t *testing.T) {
	e := newEnv(t, Options{})
	e.regTmpl(alice, nameAttr("A128"), algA(kmip14.CryptographicAlgorithmAES), lenA(128), maskA(kmip14.CryptographicUsageMaskEncrypt))
	e.regTmpl(alice, nameAttr("L192"), lenA(192))
	for _, c := range []struct {
		names []string
		want  int64
	}{{[]string{"A128", "L192"}, 192}, {[]string{"L192", "A128"}, 128}} {
		var f []*tree.Node
		for _, n := range c.names {
			f = append(f, nameV(n))
		}
		key := text(t, okPayload(t, e.do(alice, createWith(f...)), 0), kmip14.TagUniqueIdentifier)
		if l := e.getAttrs(alice, key, "Cryptographic Length")["Cryptographic Length"][0].Int; l != c.want {
			t.Errorf("templates %v: length %d, want %d (the later one)", c.names, l, c.want)
		}
	}
}

func TestTemplateObject(t *testing.T) {
	e := newEnv(t, Options{})
	uid := text(t, okPayload(t, e.do(alice, item(kmip14.OperationRegister,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeTemplate)),
		tree.Struct(kmip14.TagTemplateAttribute, attrNode("x-ID", tree.Text(0, "own"))),
		tree.Struct(kmip14.TagTemplate, nameAttr("T1"), algA(kmip14.CryptographicAlgorithmAES), lenA(128),
			groupA("G"), attrNode("x-ID", tree.Text(0, "carried"))))), 0), kmip14.TagUniqueIdentifier)
	// Get serves what it carries, as registered; its Name is its own.
	g := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0)
	if ot, _ := g.Child(kmip14.TagObjectType).EnumValue(); ot != uint32(kmip14.ObjectTypeTemplate) {
		t.Fatalf("Get answers Object Type %d", ot)
	}
	var names []string
	for _, a := range g.Child(kmip14.TagTemplate).All(kmip14.TagAttribute) {
		n, _ := a.Child(kmip14.TagAttributeName).TextValue()
		names = append(names, n)
	}
	if want := []string{"Cryptographic Algorithm", "Cryptographic Length", "Object Group", "x-ID"}; !equalStrings(names, want) {
		t.Errorf("Get serves the Template with %v, want %v", names, want)
	}
	a := e.getAttrs(alice, uid)
	for _, n := range []string{"State", "Digest", "Lease Time", "Fresh", "Sensitive", "Cryptographic Length", "Object Group", "Operation Policy Name"} {
		if a[n] != nil {
			t.Errorf("the Template itself holds %s", n)
		}
	}
	for _, n := range []string{"Unique Identifier", "Object Type", "Initial Date", "Last Change Date", "Name"} {
		if a[n] == nil {
			t.Errorf("a Template lacks %s", n)
		}
	}
	if got := texts(a["x-ID"]); len(got) != 1 || got[0] != "own" {
		t.Errorf("the Template's own x-ID: %v", got)
	}
	// Get with a format or wrapping: a Template has no key.
	wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(uid), tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)))), 0, kmip14.ResultReasonInvalidField)
	// Locate by Name and Object Type finds it; by another type, or by
	// what it carries, not.
	loc := func(crit ...*tree.Node) []string {
		return respUIDs(t, okPayload(t, e.do(alice, item(kmip14.OperationLocate, crit...)), 0))
	}
	tmplType := attrNode("Object Type", tree.Enum(0, uint32(kmip14.ObjectTypeTemplate)))
	if got := loc(nameAttr("T1"), tmplType); len(got) != 1 || got[0] != uid {
		t.Errorf("Locate Template T1: %v", got)
	}
	if got := loc(nameAttr("T1"), attrNode("Object Type", tree.Enum(0, uint32(kmip14.ObjectTypeSymmetricKey)))); len(got) != 0 {
		t.Errorf("Locate Symmetric Key T1: %v", got)
	}
	if got := loc(groupA("G")); len(got) != 0 {
		t.Errorf("Locate by the Object Group the template carries: %v", got)
	}
	// Add, Modify and Delete Attribute change its own attributes; what it
	// carries, or what does not apply to a Template, is refused.
	okPayload(t, e.do(alice, item(kmip14.OperationModifyAttribute, uidF(uid), attrNode("x-ID", tree.Text(0, "own2")))), 0)
	okPayload(t, e.do(alice, item(kmip14.OperationAddAttribute, uidF(uid), nameAttr("T1b"))), 0)
	wantFail(t, e.do(alice, item(kmip14.OperationAddAttribute, uidF(uid), lenA(256))), 0, kmip14.ResultReasonInvalidField)
	wantFail(t, e.do(alice, item(kmip14.OperationAddAttribute, uidF(uid), groupA("G2"))), 0, kmip14.ResultReasonInvalidField)
	link := attrNode("Link", tree.Struct(0, tree.Enum(kmip14.TagLinkType, uint32(kmip14.LinkTypeParentLink)), tree.Text(kmip14.TagLinkedObjectIdentifier, uid)))
	wantFail(t, e.do(alice, item(kmip14.OperationAddAttribute, uidF(uid), link)), 0, kmip14.ResultReasonInvalidField)
	key := text(t, okPayload(t, e.do(alice, createWith(nameV("T1b"), maskA(kmip14.CryptographicUsageMaskEncrypt))), 0), kmip14.TagUniqueIdentifier)
	ka := e.getAttrs(alice, key)
	if got := texts(ka["x-ID"]); len(got) != 1 || got[0] != "carried" {
		t.Errorf("key's x-ID %v, want only the carried one", got)
	}
	if got := texts(ka["Name"]); len(got) != 0 {
		t.Errorf("key has the template's Names %v", got)
	}
	// No state machine.
	wantFail(t, e.do(alice, item(kmip14.OperationActivate, uidF(uid))), 0, kmip14.ResultReasonIllegalOperation)
	wantFail(t, e.do(alice, item(kmip14.OperationRevoke, uidF(uid), tree.Struct(kmip14.TagRevocationReason,
		tree.Enum(kmip14.TagRevocationReasonCode, uint32(kmip14.RevocationReasonCodeKeyCompromise))))), 0, kmip14.ResultReasonIllegalOperation)
}

// An Activation Date a template carries applies to the key: now makes it
// Active at once.
func TestTemplateCarriesDates(t *testing.T) {
	e := newEnv(t, Options{})
	e.regTmpl(alice, nameAttr("now"), attrNode("Activation Date", tree.Time(0, e.p.opts.Now())))
	key := text(t, okPayload(t, e.do(alice, createWith(nameV("now"), algA(kmip14.CryptographicAlgorithmAES), lenA(128),
		maskA(kmip14.CryptographicUsageMaskEncrypt))), 0), kmip14.TagUniqueIdentifier)
	if s := e.state(alice, key); s != kmip14.StateActive {
		t.Errorf("key with the template's Activation Date (now) is %s", s)
	}
}

func TestTemplateRefusals(t *testing.T) {
	e := newEnv(t, Options{})
	e.regTmpl(alice, nameAttr("T1"), lenA(128))
	for _, c := range []struct {
		what string
		attr *tree.Node
	}{
		{"State", attrNode("State", tree.Enum(0, uint32(kmip14.StateActive)))},
		{"Unique Identifier", attrNode("Unique Identifier", tree.Text(0, "x"))},
		{"Initial Date", attrNode("Initial Date", tree.Time(0, e.p.opts.Now()))},
		{"Digest", attrNode("Digest", tree.Struct(0, tree.Enum(kmip14.TagHashingAlgorithm, uint32(kmip14.HashingAlgorithmSHA_256))))},
		{"Link", attrNode("Link", tree.Struct(0, tree.Enum(kmip14.TagLinkType, uint32(kmip14.LinkTypeParentLink)), tree.Text(kmip14.TagLinkedObjectIdentifier, "x")))},
		{"Object Type of a key", attrNode("Object Type", tree.Enum(0, uint32(kmip14.ObjectTypeSymmetricKey)))},
		{"a single-instance attribute twice", lenA(256)},
		{"a name another template holds", nameAttr("T1")},
	} {
		if m := wantFail(t, e.do(alice, regTemplate(nameAttr("T2"), lenA(128), c.attr)), 0, kmip14.ResultReasonInvalidField); m == "" {
			t.Errorf("%s: no message", c.what)
		}
	}
	wantFail(t, e.do(alice, item(kmip14.OperationRegister, tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeTemplate)))), 0, kmip14.ResultReasonInvalidMessage)
	wantFail(t, e.do(alice, item(kmip14.OperationRegister,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeTemplate)),
		tree.Text(kmip14.TagTemplate, "T3"))), 0, kmip14.ResultReasonInvalidField)
	wantFail(t, e.do(alice, item(kmip14.OperationRegister,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeTemplate)),
		tree.Struct(kmip14.TagTemplateAttribute, nameV("none")),
		tree.Struct(kmip14.TagTemplate, nameAttr("T3")))), 0, kmip14.ResultReasonItemNotFound)
	// The Template-Attribute gives the Template's own attributes: what it
	// would carry belongs in the Template structure.
	wantFail(t, e.do(alice, item(kmip14.OperationRegister,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeTemplate)),
		tree.Struct(kmip14.TagTemplateAttribute, lenA(128)),
		tree.Struct(kmip14.TagTemplate, nameAttr("T3")))), 0, kmip14.ResultReasonInvalidField)
	// A Name no template holds; a malformed Name.
	wantFail(t, e.do(alice, createWith(nameV("nope"), algA(kmip14.CryptographicAlgorithmAES), lenA(128))), 0, kmip14.ResultReasonItemNotFound)
	wantFail(t, e.do(alice, createWith(tree.Struct(kmip14.TagName, tree.Text(kmip14.TagNameValue, "T1")), algA(kmip14.CryptographicAlgorithmAES))), 0, kmip14.ResultReasonInvalidField)
	wantFail(t, e.do(alice, createWith(tree.Text(kmip14.TagName, "T1"), algA(kmip14.CryptographicAlgorithmAES))), 0, kmip14.ResultReasonInvalidField)
	// A key's Name is not a template's.
	e.create(alice, nameAttr("just-a-key"))
	wantFail(t, e.do(alice, createWith(nameV("just-a-key"), algA(kmip14.CryptographicAlgorithmAES), lenA(128))), 0, kmip14.ResultReasonItemNotFound)
}

// Another owner's template is invisible: using it by name, getting,
// locating, changing or destroying it all answer as for no template.
func TestTemplateOwnership(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.regTmpl(alice, nameAttr("T1"), algA(kmip14.CryptographicAlgorithmAES), lenA(128))
	wantFail(t, e.do(bob, createWith(nameV("T1"), maskA(kmip14.CryptographicUsageMaskEncrypt))), 0, kmip14.ResultReasonItemNotFound)
	for _, it := range []*tree.Node{
		item(kmip14.OperationGet, uidF(uid)),
		item(kmip14.OperationGetAttributes, uidF(uid)),
		item(kmip14.OperationAddAttribute, uidF(uid), groupA("g")),
		item(kmip14.OperationDestroy, uidF(uid)),
	} {
		wantFail(t, e.do(bob, it), 0, kmip14.ResultReasonItemNotFound)
	}
	if got := respUIDs(t, okPayload(t, e.do(bob, item(kmip14.OperationLocate, nameAttr("T1"))), 0)); len(got) != 0 {
		t.Errorf("bob locates %v", got)
	}
	// bob may hold his own T1: names are per owner.
	e.regTmpl(bob, nameAttr("T1"), algA(kmip14.CryptographicAlgorithmAES), lenA(256))
	key := text(t, okPayload(t, e.do(bob, createWith(nameV("T1"), maskA(kmip14.CryptographicUsageMaskEncrypt))), 0), kmip14.TagUniqueIdentifier)
	if l := e.getAttrs(bob, key, "Cryptographic Length")["Cryptographic Length"][0].Int; l != 256 {
		t.Errorf("bob's key from his T1 has length %d", l)
	}
}

func TestTemplateDestroy(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.regTmpl(alice, nameAttr("T1"), algA(kmip14.CryptographicAlgorithmAES), lenA(128))
	okPayload(t, e.do(alice, item(kmip14.OperationDestroy, uidF(uid))), 0)
	wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0, kmip14.ResultReasonItemNotFound)
	wantFail(t, e.do(alice, item(kmip14.OperationDestroy, uidF(uid))), 0, kmip14.ResultReasonItemNotFound)
	wantFail(t, e.do(alice, createWith(nameV("T1"), maskA(kmip14.CryptographicUsageMaskEncrypt))), 0, kmip14.ResultReasonItemNotFound)
	if got := respUIDs(t, okPayload(t, e.do(alice, item(kmip14.OperationLocate, nameAttr("T1"))), 0)); len(got) != 0 {
		t.Errorf("Locate finds the destroyed template: %v", got)
	}
	e.regTmpl(alice, nameAttr("T1"), lenA(128)) // the name is free again
}

func TestTemplateArchived(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.regTmpl(alice, nameAttr("T1"), algA(kmip14.CryptographicAlgorithmAES), lenA(128))
	okPayload(t, e.do(alice, item(kmip14.OperationArchive, uidF(uid))), 0)
	wantFail(t, e.do(alice, createWith(nameV("T1"), maskA(kmip14.CryptographicUsageMaskEncrypt))), 0, kmip14.ResultReasonObjectArchived)
	okPayload(t, e.do(alice, item(kmip14.OperationRecover, uidF(uid))), 0)
	okPayload(t, e.do(alice, createWith(nameV("T1"), maskA(kmip14.CryptographicUsageMaskEncrypt))), 0)
}

// Batches: a template registered by an earlier item is usable by a later
// one, the ID Placeholder names it, and Undo takes it back.
func TestTemplateBatch(t *testing.T) {
	e := newEnv(t, Options{})
	resp := e.do(alice,
		regTemplate(nameAttr("T1"), algA(kmip14.CryptographicAlgorithmAES), lenA(128)),
		item(kmip14.OperationGetAttributes, tree.Text(kmip14.TagAttributeName, "Object Type")), // placeholder: the template
		createWith(nameV("T1"), maskA(kmip14.CryptographicUsageMaskEncrypt)))
	tmpl := text(t, okPayload(t, resp, 0), kmip14.TagUniqueIdentifier)
	ga := okPayload(t, resp, 1)
	if u := text(t, ga, kmip14.TagUniqueIdentifier); u != tmpl {
		t.Errorf("ID Placeholder after Register is %s, want the template %s", u, tmpl)
	}
	if ot := ga.Path(kmip14.TagAttribute, kmip14.TagAttributeValue).Int; ot != int64(kmip14.ObjectTypeTemplate) {
		t.Errorf("placeholder object's type %d", ot)
	}
	okPayload(t, resp, 2)

	before := countObjects(t, e, alice)
	resp = e.send(alice, undoMsg(e,
		regTemplate(nameAttr("T2"), lenA(128)),
		item(kmip14.OperationDestroy, uidF(tmpl)),
		item(kmip14.OperationGet, uidF("no-such-object"))))
	wantFail(t, resp, 2, kmip14.ResultReasonItemNotFound)
	if n := countObjects(t, e, alice); n != before {
		t.Fatalf("%d objects after undo, %d before", n, before)
	}
	wantFail(t, e.do(alice, createWith(nameV("T2"), algA(kmip14.CryptographicAlgorithmAES))), 0, kmip14.ResultReasonItemNotFound)
	okPayload(t, e.do(alice, createWith(nameV("T1"), maskA(kmip14.CryptographicUsageMaskEncrypt))), 0) // Destroy undone
}

// Register and Create Key Pair resolve Names too; a key pair's Private and
// Public structures apply over the Common one.
func TestTemplateRegisterAndKeyPair(t *testing.T) {
	e := newEnv(t, Options{})
	e.regTmpl(alice, nameAttr("grp"), groupA("G"), attrNode("x-a", tree.Text(0, "1")),
		attrNode("Usage Limits", tree.Struct(0, tree.Long(kmip14.TagUsageLimitsTotal, 10),
			tree.Enum(kmip14.TagUsageLimitsUnit, uint32(kmip14.UsageLimitsUnitObject)))))
	sd := text(t, okPayload(t, e.do(alice, item(kmip14.OperationRegister,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSecretData)),
		tree.Struct(kmip14.TagTemplateAttribute, nameV("grp"), attrNode("x-b", tree.Text(0, "2"))),
		tree.Struct(kmip14.TagSecretData,
			tree.Enum(kmip14.TagSecretDataType, uint32(kmip14.SecretDataTypePassword)),
			tree.Struct(kmip14.TagKeyBlock, tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeOpaque)),
				tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, []byte("pw"))))))), 0), kmip14.TagUniqueIdentifier)
	a := e.getAttrs(alice, sd)
	if texts(a["Object Group"])[0] != "G" || a["x-a"] == nil || a["x-b"] == nil {
		t.Errorf("registered secret's attributes: %v", a)
	}
	if ul := a["Usage Limits"]; ul == nil || ul[0].Child(kmip14.TagUsageLimitsCount) == nil {
		t.Errorf("Usage Limits from the template without a Count: %v", ul)
	}
	got := okPayload(t, e.do(alice, item(kmip14.OperationLocate, groupA("G"),
		attrNode("Object Type", tree.Enum(0, uint32(kmip14.ObjectTypeSecretData))))), 0)
	if u := respUIDs(t, got); len(u) != 1 || u[0] != sd {
		t.Errorf("Locate by the template's Object Group: %v", u)
	}

	e.regTmpl(alice, nameAttr("ec"), algA(kmip14.CryptographicAlgorithmECDSA), lenA(256),
		attrNode("Cryptographic Domain Parameters", tree.Struct(0, tree.Enum(kmip14.TagRecommendedCurve, uint32(kmip14.RecommendedCurveP_256)))),
		attrNode("Contact Information", tree.Text(0, "common")))
	e.regTmpl(alice, nameAttr("sign"), maskA(kmip14.CryptographicUsageMaskSign), attrNode("Contact Information", tree.Text(0, "private")))
	p := okPayload(t, e.do(alice, item(kmip14.OperationCreateKeyPair,
		tree.Struct(kmip14.TagCommonTemplateAttribute, nameV("ec")),
		tree.Struct(kmip14.TagPrivateKeyTemplateAttribute, nameV("sign")),
		tree.Struct(kmip14.TagPublicKeyTemplateAttribute, maskA(kmip14.CryptographicUsageMaskVerify)))), 0)
	priv, pub := text(t, p, kmip14.TagPrivateKeyUniqueIdentifier), text(t, p, kmip14.TagPublicKeyUniqueIdentifier)
	pa, pba := e.getAttrs(alice, priv), e.getAttrs(alice, pub)
	if c := texts(pa["Contact Information"]); len(c) != 1 || c[0] != "private" {
		t.Errorf("private key's contact %v, want the Private structure's template's", c)
	}
	if c := texts(pba["Contact Information"]); len(c) != 1 || c[0] != "common" {
		t.Errorf("public key's contact %v, want the Common structure's template's", c)
	}
	if m := pa["Cryptographic Usage Mask"][0].Int; m != int64(kmip14.CryptographicUsageMaskSign) {
		t.Errorf("private key's mask %d", m)
	}
}

// Without a blind index (a store with no Batcher), names resolve by scan.
func TestTemplateByScan(t *testing.T) {
	e := newEnv(t, Options{})
	e.p = NewProcessor(unbatchedStore{e.st}, e.kr, Options{}, nil)
	e.regTmpl(alice, nameAttr("T1"), algA(kmip14.CryptographicAlgorithmAES), lenA(192))
	wantFail(t, e.do(alice, regTemplate(nameAttr("T1"))), 0, kmip14.ResultReasonInvalidField)
	key := text(t, okPayload(t, e.do(alice, createWith(nameV("T1"), maskA(kmip14.CryptographicUsageMaskEncrypt))), 0), kmip14.TagUniqueIdentifier)
	if l := e.getAttrs(alice, key, "Cryptographic Length")["Cryptographic Length"][0].Int; l != 192 {
		t.Errorf("length %d", l)
	}
	wantFail(t, e.do(bob, createWith(nameV("T1"), maskA(kmip14.CryptographicUsageMaskEncrypt))), 0, kmip14.ResultReasonItemNotFound)
}

// Re-key takes Names in its Template-Attribute like Create: the named
// template's attributes apply to the replacement, over the old key's.
func TestTemplateReKey(t *testing.T) {
	e := newEnv(t, Options{})
	e.regTmpl(alice, nameAttr("ops"), attrNode("Contact Information", tree.Text(0, "ops team")), groupA("rotated"))
	old := e.create(alice, attrNode("Contact Information", tree.Text(0, "dev team")), groupA("original"))
	p := okPayload(t, e.do(alice, rekey(uidF(old), tree.Struct(kmip14.TagTemplateAttribute, nameV("ops")))), 0)
	a := e.getAttrs(alice, text(t, p, kmip14.TagUniqueIdentifier))
	if c := texts(a["Contact Information"]); len(c) != 1 || c[0] != "ops team" {
		t.Errorf("replacement's contact %v, want the template's", c)
	}
	if g := texts(a["Object Group"]); !equalStrings(g, []string{"original", "rotated"}) {
		t.Errorf("replacement's groups %v, want the old key's and the template's", g)
	}
	wantFail(t, e.do(alice, rekey(uidF(old), tree.Struct(kmip14.TagTemplateAttribute, nameV("none")))), 0, kmip14.ResultReasonItemNotFound)
}
