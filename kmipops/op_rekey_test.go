package kmipops

import (
	"bytes"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

func rekey(fields ...*tree.Node) *tree.Node { return item(kmip14.OperationReKey, fields...) }

func offsetF(d time.Duration) *tree.Node { return tree.Interval(kmip14.TagOffset, d) }

func usageLimits(total int64) *tree.Node {
	return attrNode("Usage Limits", tree.Struct(0,
		tree.Long(kmip14.TagUsageLimitsTotal, total),
		tree.Enum(kmip14.TagUsageLimitsUnit, uint32(kmip14.UsageLimitsUnitByte))))
}

// linkList returns uid's Link attributes as type → linked uid, in index order.
func (e *env) linkList(c Caller, uid string) (types []kmip14.LinkType, to []string) {
	e.t.Helper()
	for _, v := range e.getAttrs(c, uid, "Link")["Link"] {
		types = append(types, kmip14.LinkType(v.Child(kmip14.TagLinkType).Int))
		to = append(to, v.Child(kmip14.TagLinkedObjectIdentifier).Text)
	}
	return types, to
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestReKey: the replacement has new material and the existing key's
// attributes, names and dates; what the server sets is set anew; the two
// keys are linked and the existing key keeps its material.
func TestReKey(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1700000000, 0).UTC()}
	e := newEnv(t, Options{Now: clock.Now})
	t0 := clock.Now()
	old := e.create(alice, nameAttr("k"), nameAttr("k-alias"),
		attrNode("Object Group", tree.Text(0, "g")), attrNode("x-app", tree.Text(0, "v")),
		attrNode("Key Value Location", tree.Struct(0, tree.Text(kmip14.TagKeyValueLocationValue, "vault 7"),
			tree.Enum(kmip14.TagKeyValueLocationType, uint32(kmip14.KeyValueLocationTypeUninterpretedTextString)))),
		attrNode("Activation Date", tree.Time(0, t0.Add(-time.Hour))),
		attrNode("Deactivation Date", tree.Time(0, t0.Add(time.Hour))), usageLimits(1000))
	okPayload(t, e.do(alice, item(kmip14.OperationGetUsageAllocation, uidF(old), tree.Long(kmip14.TagUsageLimitsCount, 300))), 0)
	oldKey := e.material(alice, old)
	clock.Add(time.Minute)

	// The ID Placeholder carries the replacement to the next item.
	resp := e.do(alice, rekey(uidF(old)), item(kmip14.OperationGetAttributes))
	repl := text(t, okPayload(t, resp, 0), kmip14.TagUniqueIdentifier)
	if repl == old || text(t, okPayload(t, resp, 1), kmip14.TagUniqueIdentifier) != repl {
		t.Fatalf("Re-key answered %s, then the placeholder was %s", repl, text(t, okPayload(t, resp, 1), kmip14.TagUniqueIdentifier))
	}
	a := e.getAttrs(alice, repl)
	newKey := e.material(alice, repl)
	sum := sha256.Sum256(newKey)
	switch {
	case !equalStrings(e.names(alice, repl), []string{"k", "k-alias"}) || len(e.names(alice, old)) != 0:
		t.Errorf("names: replacement %v, existing %v", e.names(alice, repl), e.names(alice, old))
	case len(newKey) != 32 || bytes.Equal(newKey, oldKey):
		t.Errorf("replacement material: %d bytes, same as the old: %v", len(newKey), bytes.Equal(newKey, oldKey))
	case a["Object Group"][0].Text != "g" || a["x-app"][0].Text != "v" || a["Cryptographic Usage Mask"][0].Int != int64(kmip14.CryptographicUsageMaskEncrypt|kmip14.CryptographicUsageMaskDecrypt):
		t.Errorf("attributes not copied: %v", a)
	case !a["Activation Date"][0].Time.Equal(t0.Add(-time.Hour)) || !a["Deactivation Date"][0].Time.Equal(t0.Add(time.Hour)) ||
		kmip14.State(a["State"][0].Int) != kmip14.StateActive:
		t.Errorf("dates and state: %v %v %v", a["Activation Date"], a["Deactivation Date"], a["State"])
	case !a["Initial Date"][0].Time.Equal(clock.Now()) || !a["Last Change Date"][0].Time.Equal(clock.Now()):
		t.Errorf("Initial Date %v, Last Change Date %v, want now", a["Initial Date"], a["Last Change Date"])
	case a["Usage Limits"][0].Child(kmip14.TagUsageLimitsCount).Int != 1000 || a["Usage Limits"][0].Child(kmip14.TagUsageLimitsTotal).Int != 1000:
		t.Errorf("Usage Limits %s: the replacement starts from the Total", a["Usage Limits"][0])
	case a["Fresh"][0].Int != 1:
		t.Error("the replacement is not Fresh")
	case !bytes.Equal(a["Digest"][0].Child(kmip14.TagDigestValue).Bytes, sum[:]):
		t.Error("Digest is not the replacement's")
	case a["Random Number Generator"] == nil:
		t.Error("no Random Number Generator")
	case a["Key Value Location"] != nil:
		t.Error("the replacement, made on the server, says its key value is elsewhere")
	}
	if ty, to := e.linkList(alice, repl); len(ty) != 1 || ty[0] != kmip14.LinkTypeReplacedObjectLink || to[0] != old {
		t.Errorf("replacement links %v %v", ty, to)
	}
	if ty, to := e.linkList(alice, old); len(ty) != 1 || ty[0] != kmip14.LinkTypeReplacementObjectLink || to[0] != repl {
		t.Errorf("existing key links %v %v", ty, to)
	}
	if lcd := e.getAttrs(alice, old, "Last Change Date")["Last Change Date"][0].Time; !lcd.Equal(clock.Now()) {
		t.Errorf("existing key's Last Change Date %v", lcd)
	}
	if !bytes.Equal(e.material(alice, old), oldKey) {
		t.Error("the existing key's material changed")
	}
	// Re-keyed again, the existing key points to its newest replacement.
	again := text(t, okPayload(t, e.do(alice, rekey(uidF(old))), 0), kmip14.TagUniqueIdentifier)
	if ty, to := e.linkList(alice, old); len(ty) != 1 || to[0] != again {
		t.Errorf("after a second Re-key, existing key links %v %v", ty, to)
	}
}

// A compromised or revoked key's replacement starts clean: no compromise,
// revocation or destruction attributes pass to it.
func TestReKeyCompromisedKey(t *testing.T) {
	e := newEnv(t, Options{})
	old := e.create(alice, crActive())
	okPayload(t, e.do(alice, revoke(old, kmip14.RevocationReasonCodeKeyCompromise)), 0)
	repl := text(t, okPayload(t, e.do(alice, rekey(uidF(old))), 0), kmip14.TagUniqueIdentifier)
	a := e.getAttrs(alice, repl)
	for _, name := range []string{"Compromise Date", "Compromise Occurrence Date", "Revocation Reason", "Deactivation Date", "Destroy Date"} {
		if a[name] != nil {
			t.Errorf("replacement has %s", name)
		}
	}
	if s := kmip14.State(a["State"][0].Int); s != kmip14.StateActive {
		t.Errorf("replacement is %s", s)
	}
	if s := e.state(alice, old); s != kmip14.StateCompromised {
		t.Errorf("existing key became %s", s)
	}
}

// TestReKeyOffset: the replacement is activated Offset after its Initial
// Date and its other dates keep their distance from the Activation Date.
func TestReKeyOffset(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1700000000, 0).UTC()}
	e := newEnv(t, Options{Now: clock.Now})
	t0 := clock.Now()
	old := e.create(alice,
		attrNode("Activation Date", tree.Time(0, t0.Add(-10*time.Hour))),
		attrNode("Process Start Date", tree.Time(0, t0.Add(-9*time.Hour))),
		attrNode("Protect Stop Date", tree.Time(0, t0.Add(-2*time.Hour))),
		attrNode("Deactivation Date", tree.Time(0, t0.Add(-time.Hour))))
	repl := text(t, okPayload(t, e.do(alice, rekey(uidF(old), offsetF(30*time.Minute))), 0), kmip14.TagUniqueIdentifier)
	a := e.getAttrs(alice, repl)
	at2 := t0.Add(30 * time.Minute) // moved by 10.5 h
	for name, want := range map[string]time.Time{
		"Activation Date":    at2,
		"Process Start Date": at2.Add(time.Hour),
		"Protect Stop Date":  at2.Add(8 * time.Hour),
		"Deactivation Date":  at2.Add(9 * time.Hour),
	} {
		if got := a[name]; len(got) != 1 || !got[0].Time.Equal(want) {
			t.Errorf("%s %v, want %v", name, got, want)
		}
	}
	if s := kmip14.State(a["State"][0].Int); s != kmip14.StatePreActive {
		t.Errorf("replacement activated in 30 min is %s", s)
	}
	// An Offset of zero activates it now.
	repl = text(t, okPayload(t, e.do(alice, rekey(uidF(old), offsetF(0))), 0), kmip14.TagUniqueIdentifier)
	if s := e.state(alice, repl); s != kmip14.StateActive {
		t.Errorf("Offset 0: %s", s)
	}
	// Without dates to move, the Offset still sets the Activation Date.
	bare := e.create(alice)
	repl = text(t, okPayload(t, e.do(alice, rekey(uidF(bare), offsetF(time.Hour))), 0), kmip14.TagUniqueIdentifier)
	if a := e.getAttrs(alice, repl); !a["Activation Date"][0].Time.Equal(t0.Add(time.Hour)) || a["Deactivation Date"] != nil {
		t.Errorf("replacement of a key without dates: %v %v", a["Activation Date"], a["Deactivation Date"])
	}
	// Dates that cannot be moved, and an Offset given with dates of its own.
	noAT := e.create(alice, attrNode("Deactivation Date", tree.Time(0, t0.Add(time.Hour))))
	wantFail(t, e.do(alice, rekey(uidF(noAT), offsetF(0))), 0, kmip14.ResultReasonIllegalOperation)
	wantFail(t, e.do(alice, rekey(uidF(old), offsetF(0), template(kmip14.TagTemplateAttribute,
		attrNode("Deactivation Date", tree.Time(0, t0))))), 0, kmip14.ResultReasonInvalidMessage)
	wantFail(t, e.do(alice, rekey(uidF(old), tree.Int(kmip14.TagOffset, 0))), 0, kmip14.ResultReasonInvalidField)
}

// TestReKeyTemplate: a template value replaces a single-instance
// attribute and adds a Name after the existing key's; what a client may
// not set it may not set here either.
func TestReKeyTemplate(t *testing.T) {
	e := newEnv(t, Options{})
	old := e.create(alice, nameAttr("a"), attrNode("Contact Information", tree.Text(0, "ops")))
	repl := text(t, okPayload(t, e.do(alice, rekey(uidF(old), template(kmip14.TagTemplateAttribute,
		nameAttr("b"), attrNode("Contact Information", tree.Text(0, "sec")),
		attrNode("Cryptographic Length", tree.Int(0, 128))))), 0), kmip14.TagUniqueIdentifier)
	a := e.getAttrs(alice, repl)
	if !equalStrings(e.names(alice, repl), []string{"a", "b"}) || len(a["Contact Information"]) != 1 ||
		a["Contact Information"][0].Text != "sec" || len(e.material(alice, repl)) != 16 || a["Cryptographic Length"][0].Int != 128 {
		t.Errorf("replacement %v", a)
	}
	if idx := e.do(alice, item(kmip14.OperationGetAttributes, uidF(repl), tree.Text(kmip14.TagAttributeName, "Name"))); len(okPayload(t, idx, 0).All(kmip14.TagAttribute)) != 2 ||
		okPayload(t, idx, 0).All(kmip14.TagAttribute)[1].Child(kmip14.TagAttributeIndex).Int != 1 {
		t.Errorf("Name indices: %s", okPayload(t, idx, 0))
	}
	for _, bad := range []*tree.Node{attrNode("State", tree.Enum(0, 2)), attrNode("Lease Time", tree.Interval(0, time.Minute)),
		attrNode("Cryptographic Length", tree.Int(0, 100))} {
		wantFail(t, e.do(alice, rekey(uidF(repl), template(kmip14.TagTemplateAttribute, bad))), 0, kmip14.ResultReasonInvalidField)
	}
	// Nothing happened to the key on the refusals.
	if ty, _ := e.linkList(alice, repl); len(ty) != 1 || len(e.names(alice, repl)) != 2 {
		t.Error("a refused Re-key changed the key")
	}
}

// TestReKeyRefusals: another owner's key is not found; only a symmetric
// key whose material exists is re-keyed; bad input gets its reason.
func TestReKeyRefusals(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.create(alice, nameAttr("mine"))
	m1 := wantFail(t, e.do(bob, rekey(uidF(uid))), 0, kmip14.ResultReasonItemNotFound)
	m2 := wantFail(t, e.do(bob, rekey(uidF("00000000-0000-4000-8000-000000000000"))), 0, kmip14.ResultReasonItemNotFound)
	if m1 != m2 {
		t.Errorf("another owner's key answers %q, a missing one %q", m1, m2)
	}
	wantFail(t, e.do(alice, rekey()), 0, kmip14.ResultReasonMissingData)
	wantFail(t, e.do(alice, rekey(tree.Int(kmip14.TagUniqueIdentifier, 1))), 0, kmip14.ResultReasonInvalidField)
	wantFail(t, e.do(alice, rekey(uidF(uid), tree.Struct(kmip14.TagTemplateAttribute, tree.Struct(kmip14.TagName,
		tree.Text(kmip14.TagNameValue, "tmpl"), tree.Enum(kmip14.TagNameType, 1))))), 0, kmip14.ResultReasonItemNotFound)
	priv, _ := e.crECPair(alice, nil, nil)
	wantFail(t, e.do(alice, rekey(uidF(priv))), 0, kmip14.ResultReasonIllegalOperation)
	gone := e.create(alice)
	okPayload(t, e.do(alice, item(kmip14.OperationDestroy, uidF(gone))), 0)
	wantFail(t, e.do(alice, rekey(uidF(gone))), 0, kmip14.ResultReasonPermissionDenied)
	okPayload(t, e.do(alice, item(kmip14.OperationArchive, uidF(gone))), 0)
	wantFail(t, e.do(alice, rekey(uidF(gone))), 0, kmip14.ResultReasonObjectArchived)
	if !equalStrings(e.names(alice, uid), []string{"mine"}) {
		t.Error("refusals changed the key")
	}
}

// Under Undo, a Re-key is undone whole: no replacement, the names and
// links of the existing key as they were.
func TestReKeyUndo(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.create(alice, nameAttr("n"))
	before := countObjects(t, e, alice)
	resp := e.send(alice, undoMsg(e, rekey(uidF(uid)), item(kmip14.OperationGet, uidF("no-such-object"))))
	if s, _ := batchItems(t, resp)[0].Child(kmip14.TagResultStatus).EnumValue(); s != uint32(kmip14.ResultStatusOperationUndone) {
		t.Fatalf("Re-key answered %s under Undo", batchItems(t, resp)[0])
	}
	if n := countObjects(t, e, alice); n != before {
		t.Errorf("%d objects after the undo, %d before", n, before)
	}
	if ty, _ := e.linkList(alice, uid); len(ty) != 0 || !equalStrings(e.names(alice, uid), []string{"n"}) {
		t.Errorf("existing key after undo: links %v, names %v", ty, e.names(alice, uid))
	}
}

// With the owner's pKEK cached, the lifecycle operations make no PKCS#11
// call: keys come from the same random source as Create's and every record
// is sealed in software.
func TestLifecycleOpsMakeNoHSMCalls(t *testing.T) {
	e := newRealEnv(t, Options{})
	h := sharedHSM(t)
	e.create(alice) // warm: the owner's pKEK is cached after this
	before := h.Stats().Calls
	for range 3 {
		uid := e.create(alice, crActive(), usageLimits(100))
		repl := text(t, okPayload(t, e.do(alice, rekey(uidF(uid), offsetF(0))), 0), kmip14.TagUniqueIdentifier)
		okPayload(t, e.do(alice, check(uidF(repl), countF(10), maskF(kmip14.CryptographicUsageMaskEncrypt))), 0)
		okPayload(t, e.do(alice, allocate(repl, 10)), 0)
		okPayload(t, e.do(alice, item(kmip14.OperationArchive, uidF(uid))), 0)
		okPayload(t, e.do(alice, item(kmip14.OperationRecover, uidF(uid))), 0)
		priv, _ := e.createECPair(alice, nil, nil)
		okPayload(t, e.do(alice, rekeyPair(privF(priv))), 0)
	}
	if after := h.Stats().Calls; after != before {
		t.Fatalf("%d PKCS#11 calls during Re-key, Check, Get Usage Allocation, Archive, Recover and Re-key Key Pair", after-before)
	}
}
