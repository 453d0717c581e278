package kmipops

import (
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

func revoke(uid string, code kmip14.RevocationReasonCode) *tree.Node {
	return item(kmip14.OperationRevoke, uidF(uid),
		tree.Struct(kmip14.TagRevocationReason, tree.Enum(kmip14.TagRevocationReasonCode, uint32(code)),
			tree.Text(kmip14.TagRevocationMessage, "rotated")))
}

func TestRevokeStates(t *testing.T) {
	e := newEnv(t, Options{})
	// Active --Superseded--> Deactivated, then Destroy is allowed.
	uid := e.create(alice)
	okPayload(t, e.do(alice, item(kmip14.OperationActivate, uidF(uid))), 0)
	okPayload(t, e.do(alice, revoke(uid, kmip14.RevocationReasonCodeSuperseded)), 0)
	a := e.getAttrs(alice, uid, "State", "Deactivation Date", "Revocation Reason")
	if kmip14.State(a["State"][0].Int) != kmip14.StateDeactivated || a["Deactivation Date"] == nil ||
		a["Revocation Reason"][0].Child(kmip14.TagRevocationMessage).Text != "rotated" {
		t.Fatalf("after Revoke: %v", a)
	}
	wantFail(t, e.do(alice, revoke(uid, kmip14.RevocationReasonCodeSuperseded)), 0, kmip14.ResultReasonPermissionDenied)
	okPayload(t, e.do(alice, revoke(uid, kmip14.RevocationReasonCodeKeyCompromise)), 0)
	a = e.getAttrs(alice, uid, "State", "Compromise Date", "Compromise Occurrence Date")
	if kmip14.State(a["State"][0].Int) != kmip14.StateCompromised || a["Compromise Date"] == nil || a["Compromise Occurrence Date"] == nil {
		t.Fatalf("after compromise: %v", a)
	}
	wantFail(t, e.do(alice, revoke(uid, kmip14.RevocationReasonCodeKeyCompromise)), 0, kmip14.ResultReasonPermissionDenied)
	// Destroyed --compromise--> Destroyed Compromised.
	uid = e.create(alice)
	okPayload(t, e.do(alice, item(kmip14.OperationDestroy, uidF(uid))), 0)
	okPayload(t, e.do(alice, revoke(uid, kmip14.RevocationReasonCodeKeyCompromise)), 0)
	if s := e.state(alice, uid); s != kmip14.StateDestroyedCompromised {
		t.Fatalf("state %s", s)
	}
}

// TestDateDrivenStates: Activation and Deactivation Dates move the state
// when they are reached, without any operation.
func TestDateDrivenStates(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1700000000, 0).UTC()}
	e := newEnv(t, Options{Now: clock.Now})
	uid := e.create(alice,
		attrNode("Activation Date", tree.Time(0, clock.Now().Add(time.Hour))),
		attrNode("Deactivation Date", tree.Time(0, clock.Now().Add(2*time.Hour))))
	if s := e.state(alice, uid); s != kmip14.StatePreActive {
		t.Fatalf("state %s", s)
	}
	clock.Add(time.Hour)
	if s := e.state(alice, uid); s != kmip14.StateActive {
		t.Fatalf("at Activation Date: %s", s)
	}
	wantFail(t, e.do(alice, item(kmip14.OperationDestroy, uidF(uid))), 0, kmip14.ResultReasonPermissionDenied)
	clock.Add(time.Hour)
	if s := e.state(alice, uid); s != kmip14.StateDeactivated {
		t.Fatalf("at Deactivation Date: %s", s)
	}
	okPayload(t, e.do(alice, item(kmip14.OperationDestroy, uidF(uid))), 0)
}

func TestAttributeOperations(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1700000000, 0).UTC()}
	e := newEnv(t, Options{Now: clock.Now})
	uid := e.create(alice, nameAttr("first"))
	clock.Add(time.Minute)
	// Add: multi-instance Name gets index 1; custom attributes of any type.
	p := okPayload(t, e.do(alice, item(kmip14.OperationAddAttribute, uidF(uid), nameAttr("second"))), 0)
	if idx := p.Path(kmip14.TagAttribute, kmip14.TagAttributeIndex); idx == nil || idx.Int != 1 {
		t.Fatalf("Add response %s", p)
	}
	okPayload(t, e.do(alice, item(kmip14.OperationAddAttribute, uidF(uid), attrNode("x-Barcode", tree.Text(0, "XXA012A1")))), 0)
	okPayload(t, e.do(alice, item(kmip14.OperationAddAttribute, uidF(uid), attrNode("x-Count", tree.Int(0, 0)))), 0)
	okPayload(t, e.do(alice, item(kmip14.OperationAddAttribute, uidF(uid), attrNode("Contact Information", tree.Text(0, "Joe")))), 0)
	wantFail(t, e.do(alice, item(kmip14.OperationAddAttribute, uidF(uid), attrNode("Contact Information", tree.Text(0, "Ann")))), 0, kmip14.ResultReasonIllegalOperation)
	wantFail(t, e.do(alice, item(kmip14.OperationAddAttribute, uidF(uid), attrNode("State", tree.Enum(0, 2)))), 0, kmip14.ResultReasonPermissionDenied)
	wantFail(t, e.do(alice, item(kmip14.OperationAddAttribute, uidF(uid), attrNode("Contact Information", tree.Int(0, 1)))), 0, kmip14.ResultReasonInvalidField)
	if lc := e.getAttrs(alice, uid, "Last Change Date")["Last Change Date"][0].Time; !lc.Equal(clock.Now()) {
		t.Fatalf("Last Change Date %v", lc)
	}
	// Modify.
	p = okPayload(t, e.do(alice, item(kmip14.OperationModifyAttribute, uidF(uid), attrNode("x-Count", tree.Int(0, 1)))), 0)
	if p.Path(kmip14.TagAttribute, kmip14.TagAttributeValue).Int != 1 {
		t.Fatalf("Modify response %s", p)
	}
	idx := tree.Struct(kmip14.TagAttribute, tree.Text(kmip14.TagAttributeName, "Name"), tree.Int(kmip14.TagAttributeIndex, 1),
		tree.Struct(kmip14.TagAttributeValue, tree.Text(kmip14.TagNameValue, "renamed"), tree.Enum(kmip14.TagNameType, 1)))
	okPayload(t, e.do(alice, item(kmip14.OperationModifyAttribute, uidF(uid), idx)), 0)
	names := e.getAttrs(alice, uid, "Name")["Name"]
	if len(names) != 2 || names[0].Child(kmip14.TagNameValue).Text != "first" || names[1].Child(kmip14.TagNameValue).Text != "renamed" {
		t.Fatalf("names %v", names)
	}
	wantFail(t, e.do(alice, item(kmip14.OperationModifyAttribute, uidF(uid), attrNode("x-missing", tree.Int(0, 1)))), 0, kmip14.ResultReasonItemNotFound)
	wantFail(t, e.do(alice, item(kmip14.OperationModifyAttribute, uidF(uid), attrNode("Cryptographic Length", tree.Int(0, 128)))), 0, kmip14.ResultReasonPermissionDenied)
	okPayload(t, e.do(alice, item(kmip14.OperationAddAttribute, uidF(uid), attrNode("Activation Date", tree.Time(0, clock.Now().Add(time.Hour))))), 0)
	okPayload(t, e.do(alice, item(kmip14.OperationModifyAttribute, uidF(uid), attrNode("Activation Date", tree.Time(0, clock.Now())))), 0)
	if s := e.state(alice, uid); s != kmip14.StateActive {
		t.Fatalf("Activation Date moved to now: %s", s)
	}
	// Sensitive may only be switched on, Extractable only off.
	okPayload(t, e.do(alice, item(kmip14.OperationModifyAttribute, uidF(uid), attrNode("Extractable", tree.Bool(0, false)))), 0)
	wantFail(t, e.do(alice, item(kmip14.OperationModifyAttribute, uidF(uid), attrNode("Extractable", tree.Bool(0, true)))), 0, kmip14.ResultReasonPermissionDenied)
	// Delete.
	p = okPayload(t, e.do(alice, item(kmip14.OperationDeleteAttribute, uidF(uid), tree.Text(kmip14.TagAttributeName, "x-Barcode"))), 0)
	if p.Path(kmip14.TagAttribute, kmip14.TagAttributeValue).Text != "XXA012A1" {
		t.Fatalf("Delete response %s", p)
	}
	okPayload(t, e.do(alice, item(kmip14.OperationDeleteAttribute, uidF(uid), tree.Text(kmip14.TagAttributeName, "Name"), tree.Int(kmip14.TagAttributeIndex, 1))), 0)
	wantFail(t, e.do(alice, item(kmip14.OperationDeleteAttribute, uidF(uid), tree.Text(kmip14.TagAttributeName, "Name"), tree.Int(kmip14.TagAttributeIndex, 1))), 0, kmip14.ResultReasonItemNotFound)
	wantFail(t, e.do(alice, item(kmip14.OperationDeleteAttribute, uidF(uid), tree.Text(kmip14.TagAttributeName, "Digest"))), 0, kmip14.ResultReasonPermissionDenied)

	// GetAttributeList: custom first, then UID, Object Type, algorithm, length.
	p = okPayload(t, e.do(alice, item(kmip14.OperationGetAttributeList, uidF(uid))), 0)
	var list []string
	for _, n := range p.All(kmip14.TagAttributeName) {
		list = append(list, n.Text)
	}
	if len(list) < 6 || list[0] != "x-Count" || list[1] != "Unique Identifier" || list[2] != "Object Type" {
		t.Fatalf("attribute list %v", list)
	}
	for _, n := range list {
		if n == "x-Barcode" {
			t.Fatal("deleted attribute listed")
		}
	}
	// A 1.2 client's unnamed GetAttributes lists the 1.2 additions too
	// (§4.11: all attributes), and a 1.1 client's does not.
	e.v = version{1, 2}
	if !listsAttr(okPayload(t, e.do(alice, item(kmip14.OperationGetAttributes, uidF(uid))), 0), "Original Creation Date") {
		t.Error("1.2 client misses Original Creation Date in the unnamed listing")
	}
	e.v = version{1, 1}
	if listsAttr(okPayload(t, e.do(alice, item(kmip14.OperationGetAttributes, uidF(uid))), 0), "Original Creation Date") {
		t.Error("1.1 client sees Original Creation Date in the unnamed listing")
	}
	// A 1.0 client does not see attributes introduced later.
	e.v = version{1, 0}
	for _, a := range okPayload(t, e.do(alice, item(kmip14.OperationGetAttributes, uidF(uid))), 0).All(kmip14.TagAttribute) {
		switch a.Child(kmip14.TagAttributeName).Text {
		case "Fresh", "Sensitive", "Original Creation Date", "Random Number Generator":
			t.Errorf("1.0 client sees %s", a.Child(kmip14.TagAttributeName).Text)
		}
	}
}

func TestLocate(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1700000000, 0).UTC()}
	e := newEnv(t, Options{Now: clock.Now})
	app := func(data string) *tree.Node {
		return attrNode("Application Specific Information", tree.Struct(0,
			tree.Text(kmip14.TagApplicationNamespace, "LIBRARY-LTO"), tree.Text(kmip14.TagApplicationData, data)))
	}
	k1 := e.create(alice, nameAttr("Symmetric Key"), app("A"))
	clock.Add(time.Second)
	k2 := e.create(alice, nameAttr("Symmetric Key"), app("B"))
	clock.Add(time.Second)
	op := text(t, okPayload(t, e.do(alice, register(kmip14.ObjectTypeOpaqueObject, tree.Struct(kmip14.TagOpaqueObject,
		tree.Enum(kmip14.TagOpaqueDataType, 0x80000001), tree.Bytes(kmip14.TagOpaqueDataValue, []byte("x"))), nameAttr("Symmetric Key"))), 0), kmip14.TagUniqueIdentifier)
	e.create(bob, nameAttr("Symmetric Key"))

	locate := func(fields ...*tree.Node) []string {
		t.Helper()
		p := okPayload(t, e.do(alice, item(kmip14.OperationLocate, fields...)), 0)
		var out []string
		for _, n := range p.All(kmip14.TagUniqueIdentifier) {
			out = append(out, n.Text)
		}
		return out
	}
	eq := func(got []string, want ...string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("located %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("located %v, want %v", got, want)
			}
		}
	}
	// Names are not unique: all three match, newest first.
	eq(locate(nameAttr("Symmetric Key")), op, k2, k1)
	eq(locate(nameAttr("Symmetric Key"), attrNode("Object Type", tree.Enum(0, uint32(kmip14.ObjectTypeSymmetricKey)))), k2, k1)
	eq(locate(attrNode("Object Type", tree.Enum(0, uint32(kmip14.ObjectTypeSymmetricKey))), app("A")), k1)
	eq(locate(tree.Int(kmip14.TagMaximumItems, 1), nameAttr("Symmetric Key")), op)
	eq(locate(tree.Int(kmip14.TagOffsetItems, 1), tree.Int(kmip14.TagMaximumItems, 1), nameAttr("Symmetric Key")), k2)
	eq(locate(attrNode("Cryptographic Usage Mask", tree.Int(0, int32(kmip14.CryptographicUsageMaskEncrypt)))), k2, k1)
	eq(locate(attrNode("Cryptographic Usage Mask", tree.Int(0, int32(kmip14.CryptographicUsageMaskSign)))))
	eq(locate(nameAttr("nothing")))
	// Two dates of one attribute give a range.
	start := time.Unix(1700000000, 0).UTC()
	eq(locate(attrNode("Initial Date", tree.Time(0, start)), attrNode("Initial Date", tree.Time(0, start.Add(time.Second)))), k2, k1)
	// State is the current one.
	okPayload(t, e.do(alice, item(kmip14.OperationActivate, uidF(k1))), 0)
	eq(locate(attrNode("State", tree.Enum(0, uint32(kmip14.StateActive)))), k1)
	// Located Items (1.3+) counts all matches when the search went through
	// them all; the placeholder is the first.
	resp := e.do(alice, item(kmip14.OperationLocate, tree.Int(kmip14.TagMaximumItems, 5), nameAttr("Symmetric Key")),
		item(kmip14.OperationGetAttributes, tree.Text(kmip14.TagAttributeName, "Object Type")))
	if n := okPayload(t, resp, 0).Child(kmip14.TagLocatedItems); n == nil || n.Int != 3 {
		t.Fatalf("Located Items %v", n)
	}
	if text(t, okPayload(t, resp, 1), kmip14.TagUniqueIdentifier) != op {
		t.Fatal("placeholder after Locate")
	}
	// A search that stopped at Maximum Items does not know the count and
	// leaves it out (§4.9: the server MAY omit it).
	resp = e.do(alice, item(kmip14.OperationLocate, tree.Int(kmip14.TagMaximumItems, 1), nameAttr("Symmetric Key")),
		item(kmip14.OperationGetAttributes, tree.Text(kmip14.TagAttributeName, "Object Type")))
	if n := okPayload(t, resp, 0).Child(kmip14.TagLocatedItems); n != nil {
		t.Fatalf("Located Items %v after a search that stopped early", n)
	}
	if text(t, okPayload(t, resp, 1), kmip14.TagUniqueIdentifier) != op {
		t.Fatal("placeholder after a Locate that stopped early")
	}
	// Destroyed objects are left out unless the search names a State.
	okPayload(t, e.do(alice, item(kmip14.OperationDestroy, uidF(k2))), 0)
	eq(locate(nameAttr("Symmetric Key")), op, k1)
	eq(locate(nameAttr("Symmetric Key"), attrNode("State", tree.Enum(0, uint32(kmip14.StateDestroyed)))), k2)
	e.v = version{1, 4}
	if okPayload(t, e.do(alice, item(kmip14.OperationLocate)), 0).Child(kmip14.TagLocatedItems) != nil {
		t.Fatal("Located Items sent without paging")
	}
	e.v = version{1, 2}
	if okPayload(t, e.do(alice, item(kmip14.OperationLocate, tree.Int(kmip14.TagMaximumItems, 1))), 0).Child(kmip14.TagLocatedItems) != nil {
		t.Fatal("Located Items sent to a 1.2 client")
	}
}

// listsAttr reports whether a GetAttributes payload lists the attribute name.
func listsAttr(p *tree.Node, name string) bool {
	for _, a := range p.All(kmip14.TagAttribute) {
		if a.Child(kmip14.TagAttributeName).Text == name {
			return true
		}
	}
	return false
}
