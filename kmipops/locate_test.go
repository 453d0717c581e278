package kmipops

import (
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

func TestLocateGroupsCustomAndStorage(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1700000000, 0).UTC()}
	e := newEnv(t, Options{Now: clock.Now})
	group := attrNode("Object Group", tree.Text(0, "G"))
	day := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	g1 := e.create(alice, group,
		attrNode("x-NETAPP-ClusterName", tree.Text(0, "c1")),
		attrNode("x-count", tree.Int(0, 7)),
		attrNode("x-when", tree.Time(0, day)),
		attrNode("x-blob", tree.Bytes(0, []byte{1, 2})))
	clock.Add(time.Second)
	g2 := e.create(alice, group, attrNode("x-when", tree.Time(0, day.Add(48*time.Hour))))
	clock.Add(time.Second)
	e.create(bob, group, attrNode("x-count", tree.Int(0, 7))) // never found by alice

	locate := func(fields ...*tree.Node) []string {
		t.Helper()
		var out []string
		for _, n := range okPayload(t, e.do(alice, item(kmip14.OperationLocate, fields...)), 0).All(kmip14.TagUniqueIdentifier) {
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
	member := func(m kmip14.ObjectGroupMember) *tree.Node { return tree.Enum(kmip14.TagObjectGroupMember, uint32(m)) }

	eq(locate(group), g2, g1)
	// Custom attributes of any type, and a date range over one.
	eq(locate(attrNode("x-NETAPP-ClusterName", tree.Text(0, "c1"))), g1)
	eq(locate(attrNode("x-count", tree.Int(0, 7))), g1)
	eq(locate(attrNode("x-count", tree.Text(0, "7")))) // same name, other type: no match
	eq(locate(attrNode("x-blob", tree.Bytes(0, []byte{1, 2}))), g1)
	eq(locate(attrNode("x-when", tree.Time(0, day.Add(24*time.Hour))), attrNode("x-when", tree.Time(0, day.Add(72*time.Hour)))), g2)
	eq(locate(attrNode("x-when", tree.Time(0, day)), attrNode("x-when", tree.Time(0, day.Add(48*time.Hour)))), g2, g1)

	// Group Member Fresh: objects never served. Get makes g2 not Fresh.
	okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(g2))), 0)
	eq(locate(group, member(kmip14.ObjectGroupMemberGroupMemberFresh)), g1)
	// Group Member Default: the members in turn, from the oldest, the
	// Active ones if any (groups_test.go has the rotation).
	eq(locate(group, member(kmip14.ObjectGroupMemberGroupMemberDefault)), g1)
	okPayload(t, e.do(alice, item(kmip14.OperationActivate, uidF(g1))), 0)
	eq(locate(group, member(kmip14.ObjectGroupMemberGroupMemberDefault)), g1)
	wantFail(t, e.do(alice, item(kmip14.OperationLocate, group, member(7))), 0, kmip14.ResultReasonInvalidField)

	// Storage Status Mask: every object is on-line; none is archived.
	ssm := func(m kmip14.StorageStatusMask) *tree.Node { return tree.Int(kmip14.TagStorageStatusMask, int32(m)) }
	eq(locate(group, ssm(kmip14.StorageStatusMaskOnLineStorage)), g2, g1)
	eq(locate(group, ssm(kmip14.StorageStatusMaskArchivalStorage)))
	eq(locate(group, ssm(kmip14.StorageStatusMaskOnLineStorage|kmip14.StorageStatusMaskArchivalStorage)), g2, g1)
}
