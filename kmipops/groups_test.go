package kmipops

import (
	"bytes"
	"context"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/kmipops/tree"
)

func groupAttr(g string) *tree.Node { return attrNode("Object Group", tree.Text(0, g)) }

func memberF(m kmip14.ObjectGroupMember) *tree.Node {
	return tree.Enum(kmip14.TagObjectGroupMember, uint32(m))
}

// locateGet is OASIS TC-152/153's batch: Locate one member of group, then
// Get it through the ID Placeholder. It returns the uid served ("" when
// the Locate found none, whose Get must then be Item Not Found).
func locateGet(t *testing.T, e *env, c Caller, m kmip14.ObjectGroupMember, group string) string {
	t.Helper()
	resp := e.do(c, item(kmip14.OperationLocate, tree.Int(kmip14.TagMaximumItems, 1), memberF(m), groupAttr(group)),
		item(kmip14.OperationGet))
	uids := okPayload(t, resp, 0).All(kmip14.TagUniqueIdentifier)
	if len(uids) == 0 {
		wantFail(t, resp, 1, kmip14.ResultReasonItemNotFound)
		return ""
	}
	if got := text(t, okPayload(t, resp, 1), kmip14.TagUniqueIdentifier); got != uids[0].Text {
		t.Fatalf("Get served %s, Locate found %s", got, uids[0].Text)
	}
	return uids[0].Text
}

func fresh(t *testing.T, e *env, c Caller, uid string) bool {
	t.Helper()
	v := e.getAttrs(c, uid, "Fresh")["Fresh"]
	if len(v) != 1 {
		t.Fatalf("%s has %d Fresh attributes", uid, len(v))
	}
	f, _ := v[0].BoolValue()
	return f
}

func TestFreshSetByClient(t *testing.T) {
	e := newEnv(t, Options{})
	aes := keyBody(kmip14.TagSymmetricKey, kmip14.KeyFormatTypeRaw, kmip14.CryptographicAlgorithmAES, 128, bytes.Repeat([]byte{7}, 16))
	set := text(t, okPayload(t, e.do(alice, register(kmip14.ObjectTypeSymmetricKey, aes, attrNode("Fresh", tree.Bool(0, true)))), 0), kmip14.TagUniqueIdentifier)
	plain := text(t, okPayload(t, e.do(alice, register(kmip14.ObjectTypeSymmetricKey, aes.Clone())), 0), kmip14.TagUniqueIdentifier)
	made := e.create(alice, attrNode("Fresh", tree.Bool(0, false)))
	if !fresh(t, e, alice, set) || fresh(t, e, alice, plain) || fresh(t, e, alice, made) {
		t.Fatal("Fresh does not follow the client's template (registered: true, none, created: false)")
	}
	// §3.34: not modifiable or deletable by a client, only once given.
	wantFail(t, e.do(alice, item(kmip14.OperationModifyAttribute, uidF(set), attrNode("Fresh", tree.Bool(0, false)))), 0, kmip14.ResultReasonPermissionDenied)
	wantFail(t, e.do(alice, item(kmip14.OperationDeleteAttribute, uidF(set), tree.Text(kmip14.TagAttributeName, "Fresh"))), 0, kmip14.ResultReasonPermissionDenied)
	wantFail(t, e.do(alice, item(kmip14.OperationAddAttribute, uidF(set), attrNode("Fresh", tree.Bool(0, true)))), 0, kmip14.ResultReasonPermissionDenied)
	okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(set))), 0)
	// Served: no longer Fresh, and that is stored, not only cached.
	e2 := &env{t: t, st: e.st, kr: e.kr, v: e.v, p: NewProcessor(e.st, e.kr, Options{ObjectCacheBytes: -1}, hclog.NewNullLogger())}
	if fresh(t, e2, alice, set) {
		t.Fatal("Fresh still true after a Get")
	}
}

func TestLocateFreshMembersOldestFirst(t *testing.T) {
	e := newEnv(t, Options{})
	g := groupAttr("pool")
	resp := e.do(alice, createAES(256, g), createAES(256, g.Clone()), createAES(256, g.Clone()))
	var want []string
	for i := range 3 {
		want = append(want, text(t, okPayload(t, resp, i), kmip14.TagUniqueIdentifier))
	}
	e.create(alice, groupAttr("other"))
	for i, w := range want {
		if got := locateGet(t, e, alice, kmip14.ObjectGroupMemberGroupMemberFresh, "pool"); got != w {
			t.Fatalf("fresh member %d: got %s, want %s (made %v)", i, got, w, want)
		}
	}
	if got := locateGet(t, e, alice, kmip14.ObjectGroupMemberGroupMemberFresh, "pool"); got != "" {
		t.Fatalf("a served member is still Fresh: %s", got)
	}
	// No default group configured: nothing is made on the fly.
	if got := locateGet(t, e, alice, kmip14.ObjectGroupMemberGroupMemberFresh, DefaultObjectGroup); got != "" {
		t.Fatalf("a default-group member was made without a default group: %s", got)
	}
}

func TestDefaultGroupMadeOnDemand(t *testing.T) {
	e := newEnv(t, Options{DefaultObjectGroup: "kmip-default"})
	find := func(c Caller, extra ...*tree.Node) []*tree.Node {
		f := append([]*tree.Node{memberF(kmip14.ObjectGroupMemberGroupMemberFresh), groupAttr("kmip-default")}, extra...)
		return okPayload(t, e.do(c, item(kmip14.OperationLocate, f...)), 0).All(kmip14.TagUniqueIdentifier)
	}
	// Criteria the server's key would not meet: nothing is made.
	if got := find(alice, attrNode("Cryptographic Length", tree.Int(0, 128))); len(got) != 0 {
		t.Fatalf("made a member that does not match the Locate: %v", got)
	}
	got := find(alice)
	if len(got) != 1 {
		t.Fatalf("Locate of a fresh default member found %d", len(got))
	}
	uid := got[0].Text
	a := e.getAttrs(alice, uid, "Cryptographic Algorithm", "Cryptographic Length", "Object Group", "State", "Fresh")
	if kmip14.CryptographicAlgorithm(a["Cryptographic Algorithm"][0].Int) != kmip14.CryptographicAlgorithmAES ||
		a["Cryptographic Length"][0].Int != 256 || a["Object Group"][0].Text != "kmip-default" ||
		kmip14.State(a["State"][0].Int) != kmip14.StatePreActive || a["Fresh"][0].Int != 1 {
		t.Fatalf("made member: %v", a)
	}
	// Still fresh: found again, nothing new made; bob has his own.
	if again := find(alice); len(again) != 1 || again[0].Text != uid {
		t.Fatalf("second Locate: %v, want %s", again, uid)
	}
	if b := find(bob); len(b) != 1 || b[0].Text == uid {
		t.Fatalf("bob's default member: %v", b)
	}
	okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0)
	if next := find(alice); len(next) != 1 || next[0].Text == uid {
		t.Fatalf("after the Get, Locate returned %v (the served key is not Fresh)", next)
	}
	// A Locate that fails later in an Undo batch takes its key back.
	before := len(okPayload(t, e.do(alice, item(kmip14.OperationLocate, groupAttr("kmip-default"))), 0).All(kmip14.TagUniqueIdentifier))
	okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(find(alice)[0].Text))), 0)
	req := reqMsg(e.v, item(kmip14.OperationLocate, memberF(kmip14.ObjectGroupMemberGroupMemberFresh), groupAttr("kmip-default")),
		item(kmip14.OperationDestroy, uidF("no-such-object")))
	req.Child(kmip14.TagRequestHeader).Add(tree.Enum(kmip14.TagBatchErrorContinuationOption, uint32(kmip14.BatchErrorContinuationOptionUndo)))
	e.p.Process(context.Background(), alice, req)
	if after := len(okPayload(t, e.do(alice, item(kmip14.OperationLocate, groupAttr("kmip-default"))), 0).All(kmip14.TagUniqueIdentifier)); after != before {
		t.Fatalf("undone Locate left a key behind: %d members, want %d", after, before)
	}
}

func TestGroupMemberDefaultRotates(t *testing.T) {
	e := newEnv(t, Options{})
	g := groupAttr("rr")
	resp := e.do(alice, createAES(256, g), createAES(256, g.Clone()), createAES(256, g.Clone()))
	var k []string
	for i := range 3 {
		k = append(k, text(t, okPayload(t, resp, i), kmip14.TagUniqueIdentifier))
	}
	for i, w := range []string{k[0], k[1], k[2], k[0], k[1]} {
		if got := locateGet(t, e, alice, kmip14.ObjectGroupMemberGroupMemberDefault, "rr"); got != w {
			t.Fatalf("default member %d: got %s, want %s (made %v)", i, got, w, k)
		}
	}
	// A Locate alone does not move the rotation; a Get of the member does.
	loc := func() string {
		return text(t, okPayload(t, e.do(alice, item(kmip14.OperationLocate, memberF(kmip14.ObjectGroupMemberGroupMemberDefault), g.Clone())), 0), kmip14.TagUniqueIdentifier)
	}
	if a, b := loc(), loc(); a != k[2] || b != k[2] {
		t.Fatalf("Locate alone moved the rotation: %s, %s, want %s", a, b, k[2])
	}
	// With Active members, only they take turns.
	for _, u := range []string{k[0], k[2]} {
		okPayload(t, e.do(alice, item(kmip14.OperationActivate, uidF(u))), 0)
	}
	for i, w := range []string{k[2], k[0], k[2]} {
		if got := locateGet(t, e, alice, kmip14.ObjectGroupMemberGroupMemberDefault, "rr"); got != w {
			t.Fatalf("active default member %d: got %s, want %s", i, got, w)
		}
	}
}

func TestAssignDefaultGroup(t *testing.T) {
	groups := func(e *env, uid string) []string {
		var out []string
		for _, v := range e.getAttrs(alice, uid, "Object Group")["Object Group"] {
			out = append(out, v.Text)
		}
		return out
	}
	on := newEnv(t, Options{DefaultObjectGroup: "dflt", AssignDefaultGroup: true})
	if g := groups(on, on.create(alice)); len(g) != 1 || g[0] != "dflt" {
		t.Fatalf("object made without a group is in %v, want [dflt]", g)
	}
	if g := groups(on, on.create(alice, groupAttr("mine"))); len(g) != 1 || g[0] != "mine" {
		t.Fatalf("object made in a group is in %v, want [mine]", g)
	}
	off := newEnv(t, Options{DefaultObjectGroup: "dflt"})
	if g := groups(off, off.create(alice)); len(g) != 0 {
		t.Fatalf("without assign_default_group the object is in %v", g)
	}
}
