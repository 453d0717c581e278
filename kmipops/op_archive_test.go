package kmipops

import (
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

func locateByName(name string, mask ...kmip14.StorageStatusMask) *tree.Node {
	fields := []*tree.Node{nameAttr(name)}
	for _, m := range mask {
		fields = append(fields, tree.Int(kmip14.TagStorageStatusMask, int32(m)))
	}
	return item(kmip14.OperationLocate, fields...)
}

func located(t *testing.T, resp *tree.Node) []string {
	t.Helper()
	var out []string
	for _, n := range okPayload(t, resp, 0).All(kmip14.TagUniqueIdentifier) {
		out = append(out, n.Text)
	}
	return out
}

// TestArchiveAndRecover: an archived object is off-line (OASIS TC-101):
// Get and every other use answer Object Archived, Locate finds it only in
// archival storage, its attributes stay readable; Recover brings it back.
func TestArchiveAndRecover(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1700000000, 0).UTC()}
	e := newEnv(t, Options{Now: clock.Now})
	uid := e.create(alice, nameAttr("cold"), crActive())
	key := e.material(alice, uid) // and in the cache of opened objects
	clock.Add(time.Minute)
	resp := e.do(alice, item(kmip14.OperationArchive, uidF(uid)), item(kmip14.OperationGetAttributes, tree.Text(kmip14.TagAttributeName, "Archive Date")))
	p := okPayload(t, resp, 1)
	if text(t, p, kmip14.TagUniqueIdentifier) != uid || !p.Child(kmip14.TagAttribute).Child(kmip14.TagAttributeValue).Time.Equal(clock.Now()) {
		t.Fatalf("Archive Date after Archive: %s", p)
	}
	for name, it := range map[string]*tree.Node{
		"Get":                item(kmip14.OperationGet, uidF(uid)),
		"Encrypt":            item(kmip14.OperationEncrypt, uidF(uid), crData(make([]byte, 16))),
		"Revoke":             revoke(uid, kmip14.RevocationReasonCodeCessationOfOperation),
		"Destroy":            item(kmip14.OperationDestroy, uidF(uid)),
		"AddAttribute":       item(kmip14.OperationAddAttribute, uidF(uid), attrNode("x-a", tree.Text(0, "v"))),
		"ObtainLease":        item(kmip14.OperationObtainLease, uidF(uid)),
		"Archive":            item(kmip14.OperationArchive, uidF(uid)),
		"ReKey":              rekey(uidF(uid)),
		"Check":              check(uidF(uid)),
		"GetUsageAllocation": allocate(uid, 1),
	} {
		if r, _ := batchItems(t, e.do(alice, it))[0].Child(kmip14.TagResultReason).EnumValue(); kmip14.ResultReason(r) != kmip14.ResultReasonObjectArchived {
			t.Errorf("%s on an archived object: %s", name, kmip14.ResultReason(r))
		}
	}
	// Reading its attributes lets no later item of the batch use it.
	resp = e.do(alice, item(kmip14.OperationGetAttributeList, uidF(uid)), item(kmip14.OperationGet))
	okPayload(t, resp, 0)
	wantFail(t, resp, 1, kmip14.ResultReasonObjectArchived)
	if got := located(t, e.do(alice, locateByName("cold"))); len(got) != 0 {
		t.Errorf("Locate found the archived object: %v", got)
	}
	for _, m := range []kmip14.StorageStatusMask{kmip14.StorageStatusMaskArchivalStorage,
		kmip14.StorageStatusMaskArchivalStorage | kmip14.StorageStatusMaskOnLineStorage} {
		if got := located(t, e.do(alice, locateByName("cold", m))); len(got) != 1 || got[0] != uid {
			t.Errorf("Locate in %s: %v", m, got)
		}
	}
	// The mark is in the stored record: a restarted server sees it.
	restarted := &env{t: t, st: e.st, kr: e.kr, p: NewProcessor(e.st, e.kr, Options{Now: clock.Now}, nil), v: e.v}
	wantFail(t, restarted.do(alice, item(kmip14.OperationGet, uidF(uid))), 0, kmip14.ResultReasonObjectArchived)

	wantFail(t, e.do(bob, item(kmip14.OperationRecover, uidF(uid))), 0, kmip14.ResultReasonItemNotFound)
	resp = e.do(alice, item(kmip14.OperationRecover, uidF(uid)), item(kmip14.OperationGet))
	if got := crBytes(t, okPayload(t, resp, 1).Path(kmip14.TagSymmetricKey, kmip14.TagKeyBlock, kmip14.TagKeyValue), kmip14.TagKeyMaterial); string(got) != string(key) {
		t.Error("the recovered key is not the archived one")
	}
	if a := e.getAttrs(alice, uid); a["Archive Date"] != nil {
		t.Error("Archive Date survived Recover")
	}
	if got := located(t, e.do(alice, locateByName("cold", kmip14.StorageStatusMaskArchivalStorage))); len(got) != 0 {
		t.Errorf("the recovered object is still in archival storage: %v", got)
	}
	// Recovering an on-line object changes nothing.
	okPayload(t, e.do(alice, item(kmip14.OperationRecover, uidF(uid))), 0)
}

// TestArchiveRefusals: ownership and batch Undo.
func TestArchiveRefusals(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.create(alice)
	m1 := wantFail(t, e.do(bob, item(kmip14.OperationArchive, uidF(uid))), 0, kmip14.ResultReasonItemNotFound)
	m2 := wantFail(t, e.do(bob, item(kmip14.OperationArchive, uidF("00000000-0000-4000-8000-000000000000"))), 0, kmip14.ResultReasonItemNotFound)
	if m1 != m2 {
		t.Errorf("another owner's object answers %q, a missing one %q", m1, m2)
	}
	wantFail(t, e.do(alice, item(kmip14.OperationArchive)), 0, kmip14.ResultReasonMissingData)
	wantFail(t, e.do(alice, item(kmip14.OperationRecover, tree.Int(kmip14.TagUniqueIdentifier, 3))), 0, kmip14.ResultReasonInvalidField)
	e.send(alice, undoMsg(e, item(kmip14.OperationArchive, uidF(uid)), item(kmip14.OperationGet, uidF("no-such-object"))))
	okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0)
}
