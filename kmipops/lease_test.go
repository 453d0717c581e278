package kmipops

import (
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

func TestLeaseTime(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.create(alice)
	if v := e.getAttrs(alice, uid, "Lease Time")["Lease Time"]; len(v) != 1 || v[0].Int != 3600 {
		t.Fatalf("default Lease Time %v, want one of 3600 s", v)
	}
	// Lease Time is the server's: a client can neither set nor change it.
	wantFail(t, e.do(alice, createAES(128, attrNode("Lease Time", tree.Interval(0, time.Minute)))), 0, kmip14.ResultReasonInvalidField)
	wantFail(t, e.do(alice, item(kmip14.OperationModifyAttribute, uidF(uid), attrNode("Lease Time", tree.Interval(0, time.Minute)))), 0, kmip14.ResultReasonPermissionDenied)
	// An opaque object is not a cryptographic object and has no lease.
	op := text(t, okPayload(t, e.do(alice, register(kmip14.ObjectTypeOpaqueObject, tree.Struct(kmip14.TagOpaqueObject,
		tree.Enum(kmip14.TagOpaqueDataType, 0x80000001), tree.Bytes(kmip14.TagOpaqueDataValue, []byte("x"))))), 0), kmip14.TagUniqueIdentifier)
	if v := e.getAttrs(alice, op, "Lease Time")["Lease Time"]; v != nil {
		t.Fatalf("opaque object has Lease Time %v", v)
	}
	// The policy is configurable, in whole seconds.
	e2 := newEnv(t, Options{LeaseTime: 90*time.Second + time.Millisecond})
	if v := e2.getAttrs(alice, e2.create(alice), "Lease Time")["Lease Time"]; len(v) != 1 || v[0].Int != 90 {
		t.Fatalf("Lease Time %v, want 90 s", v)
	}
}

func TestObtainLease(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.create(alice)
	lease := func(c Caller, fields ...*tree.Node) *tree.Node {
		return e.do(c, item(kmip14.OperationObtainLease, fields...))
	}
	wantFail(t, lease(alice, uidF(uid)), 0, kmip14.ResultReasonPermissionDenied) // Pre-Active
	okPayload(t, e.do(alice, item(kmip14.OperationActivate, uidF(uid))), 0)
	p := okPayload(t, lease(alice, uidF(uid)), 0)
	lcd := e.getAttrs(alice, uid, "Last Change Date")["Last Change Date"][0]
	if text(t, p, kmip14.TagUniqueIdentifier) != uid || p.Child(kmip14.TagLeaseTime).Int != 3600 ||
		!p.Child(kmip14.TagLastChangeDate).Time.Equal(lcd.Time) {
		t.Fatalf("Obtain Lease answered %s", p)
	}
	wantFail(t, lease(bob, uidF(uid)), 0, kmip14.ResultReasonItemNotFound)
	// A lowered policy shortens leases on objects made under the old one.
	short := NewProcessor(e.st, e.kr, Options{LeaseTime: 10 * time.Minute}, nil)
	orig := e.p
	e.p = short
	if p := okPayload(t, lease(alice, uidF(uid)), 0); p.Child(kmip14.TagLeaseTime).Int != 600 {
		t.Fatalf("lease under a 10m policy: %s", p)
	}
	e.p = orig
	// Revoked: no more leases. The ID Placeholder works as for any operation.
	resp := e.do(alice,
		item(kmip14.OperationRevoke, uidF(uid), tree.Struct(kmip14.TagRevocationReason,
			tree.Enum(kmip14.TagRevocationReasonCode, uint32(kmip14.RevocationReasonCodeCessationOfOperation)))),
		item(kmip14.OperationObtainLease))
	wantFail(t, resp, 1, kmip14.ResultReasonPermissionDenied)
	// Query offers it.
	q := okPayload(t, e.do(alice, item(kmip14.OperationQuery, tree.Enum(kmip14.TagQueryFunction, uint32(kmip14.QueryFunctionQueryOperations)))), 0)
	found := false
	for _, o := range q.All(kmip14.TagOperation) {
		found = found || o.Int == int64(kmip14.OperationObtainLease)
	}
	if !found {
		t.Fatal("Query does not list Obtain Lease")
	}
}
