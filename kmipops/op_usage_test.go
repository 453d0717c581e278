package kmipops

import (
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

func allocate(uid string, n int64) *tree.Node {
	return item(kmip14.OperationGetUsageAllocation, uidF(uid), countF(n))
}

func (e *env) usageLeft(c Caller, uid string) int64 {
	e.t.Helper()
	return e.getAttrs(c, uid, "Usage Limits")["Usage Limits"][0].Child(kmip14.TagUsageLimitsCount).Int
}

// TestGetUsageAllocation: allocations come off the Usage Limits Count until
// it cannot cover one; the server's own Encrypt draws on the same count.
func TestGetUsageAllocation(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.create(alice, crActive())
	// Added without a Count, Usage Limits gets one equal to the Total
	// (OASIS TC-51).
	p := okPayload(t, e.do(alice, item(kmip14.OperationAddAttribute, uidF(uid), usageLimits(1000))), 0)
	if ul := p.Child(kmip14.TagAttribute).Child(kmip14.TagAttributeValue); ul.Child(kmip14.TagUsageLimitsCount).Int != 1000 {
		t.Fatalf("Add Attribute answered %s", ul)
	}
	resp := e.do(alice, allocate(uid, 500), item(kmip14.OperationGetUsageAllocation, countF(400)))
	if text(t, okPayload(t, resp, 1), kmip14.TagUniqueIdentifier) != uid {
		t.Fatal("the ID Placeholder did not carry the uid")
	}
	msg := wantFail(t, e.do(alice, allocate(uid, 101)), 0, kmip14.ResultReasonPermissionDenied)
	if left := e.usageLeft(alice, uid); left != 100 {
		t.Fatalf("%d left after allocating 900 of 1000 (refusal %q)", left, msg)
	}
	// 100 bytes left: a 64-byte Encrypt passes, the next one does not.
	data := crData(make([]byte, 64))
	params := crParams(crMode(kmip14.BlockCipherModeCBC), crPad(kmip14.PaddingMethodNone))
	okPayload(t, e.do(alice, item(kmip14.OperationEncrypt, uidF(uid), params, data)), 0)
	wantFail(t, e.do(alice, item(kmip14.OperationEncrypt, uidF(uid), params, data)), 0, kmip14.ResultReasonPermissionDenied)
	okPayload(t, e.do(alice, allocate(uid, 36)), 0)
	if left := e.usageLeft(alice, uid); left != 0 {
		t.Fatalf("%d left", left)
	}
	// Undone with its batch, an allocation is given back.
	okPayload(t, e.do(alice, item(kmip14.OperationModifyAttribute, uidF(uid), usageLimits(1000))), 0)
	e.send(alice, undoMsg(e, allocate(uid, 10), item(kmip14.OperationGet, uidF("no-such-object"))))
	if left := e.usageLeft(alice, uid); left != 1000 {
		t.Fatalf("%d left after an undone allocation", left)
	}
}

// TestGetUsageAllocationRefusals: only a key that applies protection, has
// Usage Limits and may protect now gets an allocation.
func TestGetUsageAllocationRefusals(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1700000000, 0).UTC()}
	e := newEnv(t, Options{Now: clock.Now})
	active := attrNode("Activation Date", tree.Time(0, clock.Now()))
	uid := e.create(alice, active, usageLimits(1000),
		attrNode("Protect Stop Date", tree.Time(0, clock.Now().Add(time.Hour))))
	m1 := wantFail(t, e.do(bob, allocate(uid, 1)), 0, kmip14.ResultReasonItemNotFound)
	m2 := wantFail(t, e.do(bob, allocate("00000000-0000-4000-8000-000000000000", 1)), 0, kmip14.ResultReasonItemNotFound)
	if m1 != m2 {
		t.Errorf("another owner's key answers %q, a missing one %q", m1, m2)
	}
	wantFail(t, e.do(alice, item(kmip14.OperationGetUsageAllocation, uidF(uid))), 0, kmip14.ResultReasonInvalidMessage)
	for _, bad := range []*tree.Node{countF(0), countF(-5), tree.Int(kmip14.TagUsageLimitsCount, 5)} {
		wantFail(t, e.do(alice, item(kmip14.OperationGetUsageAllocation, uidF(uid), bad)), 0, kmip14.ResultReasonInvalidField)
	}
	unlimited := e.create(alice, active)
	wantFail(t, e.do(alice, allocate(unlimited, 1)), 0, kmip14.ResultReasonIllegalOperation)
	decryptOnly := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16), crMask(kmip14.CryptographicUsageMaskDecrypt), usageLimits(10))
	wantFail(t, e.do(alice, allocate(decryptOnly, 1)), 0, kmip14.ResultReasonIllegalOperation)
	preActive := e.create(alice, usageLimits(10))
	wantFail(t, e.do(alice, allocate(preActive, 1)), 0, kmip14.ResultReasonPermissionDenied)
	clock.Add(time.Hour) // the Protect Stop Date
	wantFail(t, e.do(alice, allocate(uid, 1)), 0, kmip14.ResultReasonPermissionDenied)
	if left := e.usageLeft(alice, uid); left != 1000 {
		t.Errorf("refusals took %d", 1000-left)
	}
	// Counts a client gives must make sense.
	wantFail(t, e.do(alice, createAES(128, attrNode("Usage Limits", tree.Struct(0,
		tree.Long(kmip14.TagUsageLimitsTotal, 10), tree.Long(kmip14.TagUsageLimitsCount, 11),
		tree.Enum(kmip14.TagUsageLimitsUnit, uint32(kmip14.UsageLimitsUnitByte)))))), 0, kmip14.ResultReasonInvalidField)
}
