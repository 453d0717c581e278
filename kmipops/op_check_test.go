package kmipops

import (
	"strings"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

func check(fields ...*tree.Node) *tree.Node { return item(kmip14.OperationCheck, fields...) }

func countF(n int64) *tree.Node { return tree.Long(kmip14.TagUsageLimitsCount, n) }

func maskF(m kmip14.CryptographicUsageMask) *tree.Node {
	return tree.Int(kmip14.TagCryptographicUsageMask, int32(m))
}

func leaseF(d time.Duration) *tree.Node { return tree.Interval(kmip14.TagLeaseTime, d) }

// checkRefused asserts item i is a refused Check: Operation Failed /
// Permission Denied, with a payload of the refused fields and no uid.
func checkRefused(t *testing.T, resp *tree.Node, i int) (msg string, refused *tree.Node) {
	t.Helper()
	it := batchItems(t, resp)[i]
	s, _ := it.Child(kmip14.TagResultStatus).EnumValue()
	r, _ := it.Child(kmip14.TagResultReason).EnumValue()
	msg, _ = it.Child(kmip14.TagResultMessage).TextValue()
	refused = it.Child(kmip14.TagResponsePayload)
	if s != uint32(kmip14.ResultStatusOperationFailed) || kmip14.ResultReason(r) != kmip14.ResultReasonPermissionDenied ||
		refused == nil || refused.Child(kmip14.TagUniqueIdentifier) != nil {
		t.Fatalf("item %d: %s, want Permission Denied with the refused fields and no uid", i, it)
	}
	return msg, refused
}

// TestCheck: allowed, Check answers the uid and hands it to the next item;
// refused, it is Permission Denied naming each refused field, and a batch
// stops there. It changes nothing.
func TestCheck(t *testing.T) {
	e := newEnv(t, Options{LeaseTime: time.Hour})
	uid := e.create(alice, crActive(), usageLimits(1000))

	resp := e.do(alice, check(uidF(uid), countF(1000), maskF(kmip14.CryptographicUsageMaskEncrypt), leaseF(time.Hour)),
		item(kmip14.OperationGet))
	if text(t, okPayload(t, resp, 0), kmip14.TagUniqueIdentifier) != uid || text(t, okPayload(t, resp, 1), kmip14.TagUniqueIdentifier) != uid {
		t.Fatal("Check did not pass the uid on")
	}
	// Each refusal, alone and together; the batch ends at the Check.
	for _, c := range []struct {
		fields  []*tree.Node
		refused []*tree.Node // as the request gave them
		says    []string
	}{
		{[]*tree.Node{countF(1001), leaseF(time.Minute)}, []*tree.Node{countF(1001)}, []string{"Usage Limits Count"}},
		{[]*tree.Node{maskF(kmip14.CryptographicUsageMaskSign)}, []*tree.Node{maskF(kmip14.CryptographicUsageMaskSign)}, []string{"Cryptographic Usage Mask"}},
		{[]*tree.Node{countF(1), leaseF(time.Hour + time.Second)}, []*tree.Node{leaseF(time.Hour + time.Second)}, []string{"Lease Time"}},
		{[]*tree.Node{countF(5000), maskF(kmip14.CryptographicUsageMaskEncrypt | kmip14.CryptographicUsageMaskSign), leaseF(2 * time.Hour)},
			[]*tree.Node{countF(5000), maskF(kmip14.CryptographicUsageMaskEncrypt | kmip14.CryptographicUsageMaskSign), leaseF(2 * time.Hour)},
			[]string{"Usage Limits Count", "Cryptographic Usage Mask", "Lease Time"}},
	} {
		resp := e.do(alice, check(append([]*tree.Node{uidF(uid)}, c.fields...)...), item(kmip14.OperationGet))
		msg, refused := checkRefused(t, resp, 0)
		if len(batchItems(t, resp)) != 1 {
			t.Errorf("the batch went on after a refused Check")
		}
		if want := tree.Struct(kmip14.TagResponsePayload, c.refused...); !refused.View().Equal(want.View()) {
			t.Errorf("refused fields %s, want %s", refused, want)
		}
		for _, s := range c.says {
			if !strings.Contains(msg, s) {
				t.Errorf("refusal %q does not name %s", msg, s)
			}
		}
	}
	// Check allocates nothing.
	if ul := e.getAttrs(alice, uid, "Usage Limits")["Usage Limits"][0]; ul.Child(kmip14.TagUsageLimitsCount).Int != 1000 {
		t.Errorf("Check changed the Usage Limits: %s", ul)
	}
	// Once Deactivated, a key may still process (Decrypt) but not protect,
	// and is not leased.
	okPayload(t, e.do(alice, revoke(uid, kmip14.RevocationReasonCodeCessationOfOperation)), 0)
	okPayload(t, e.do(alice, check(uidF(uid), maskF(kmip14.CryptographicUsageMaskDecrypt))), 0)
	for _, f := range []*tree.Node{maskF(kmip14.CryptographicUsageMaskEncrypt), countF(1), leaseF(time.Second)} {
		checkRefused(t, e.do(alice, check(uidF(uid), f)), 0)
	}
	// A key without Usage Limits has no limit to exceed.
	free := e.create(alice, crActive())
	okPayload(t, e.do(alice, check(uidF(free), countF(1<<40))), 0)
	// Pre-Active: no use at all, not even to process.
	pre := e.create(alice)
	checkRefused(t, e.do(alice, check(uidF(pre), maskF(kmip14.CryptographicUsageMaskDecrypt))), 0)
	// Destroyed: every field asked is refused.
	okPayload(t, e.do(alice, item(kmip14.OperationDestroy, uidF(pre))), 0)
	if _, f := checkRefused(t, e.do(alice, check(uidF(pre), countF(1), leaseF(0))), 0); len(f.Children) != 2 {
		t.Errorf("refused for a destroyed key: %s", f)
	}
}

// TestCheckDates: the Process Start and Protect Stop Dates bound the two
// kinds of use.
func TestCheckDates(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1700000000, 0).UTC()}
	e := newEnv(t, Options{Now: clock.Now})
	uid := e.create(alice, attrNode("Activation Date", tree.Time(0, clock.Now())),
		attrNode("Process Start Date", tree.Time(0, clock.Now().Add(time.Hour))),
		attrNode("Protect Stop Date", tree.Time(0, clock.Now().Add(2*time.Hour))))
	okPayload(t, e.do(alice, check(uidF(uid), maskF(kmip14.CryptographicUsageMaskEncrypt))), 0)
	checkRefused(t, e.do(alice, check(uidF(uid), maskF(kmip14.CryptographicUsageMaskDecrypt))), 0)
	clock.Add(2 * time.Hour)
	okPayload(t, e.do(alice, check(uidF(uid), maskF(kmip14.CryptographicUsageMaskDecrypt))), 0)
	checkRefused(t, e.do(alice, check(uidF(uid), maskF(kmip14.CryptographicUsageMaskEncrypt))), 0)
}

// TestCheckRefusals: ownership, object type, archiving and malformed
// fields.
func TestCheckRefusals(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.create(alice, crActive())
	m1 := wantFail(t, e.do(bob, check(uidF(uid))), 0, kmip14.ResultReasonItemNotFound)
	m2 := wantFail(t, e.do(bob, check(uidF("00000000-0000-4000-8000-000000000000"))), 0, kmip14.ResultReasonItemNotFound)
	if m1 != m2 {
		t.Errorf("another owner's key answers %q, a missing one %q", m1, m2)
	}
	wantFail(t, e.do(alice, check()), 0, kmip14.ResultReasonMissingData)
	for _, bad := range []*tree.Node{tree.Int(kmip14.TagUsageLimitsCount, 5), countF(-1),
		tree.Long(kmip14.TagCryptographicUsageMask, 4), tree.Int(kmip14.TagLeaseTime, 5)} {
		wantFail(t, e.do(alice, check(uidF(uid), bad)), 0, kmip14.ResultReasonInvalidField)
	}
	op := text(t, okPayload(t, e.do(alice, register(kmip14.ObjectTypeOpaqueObject, tree.Struct(kmip14.TagOpaqueObject,
		tree.Enum(kmip14.TagOpaqueDataType, 0x80000001), tree.Bytes(kmip14.TagOpaqueDataValue, []byte("x"))))), 0), kmip14.TagUniqueIdentifier)
	wantFail(t, e.do(alice, check(uidF(op))), 0, kmip14.ResultReasonIllegalOperation)
	okPayload(t, e.do(alice, item(kmip14.OperationArchive, uidF(uid))), 0)
	wantFail(t, e.do(alice, check(uidF(uid))), 0, kmip14.ResultReasonObjectArchived)
}
