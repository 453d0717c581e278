package cluster

import (
	"slices"
	"testing"

	"github.com/kmipd/kmipd/admin"
	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/kmipclient"
	"github.com/kmipd/kmipd/kmipops/tree"
)

func group(g string) kmipclient.Attribute { return kmipclient.Attr("Object Group", tree.Text(0, g)) }

// TestRotationOnAnotherReplica: replica A rotates alice's pKEK and rebuilds
// her index while replica B still caches the old pKEK. B's Locate finds
// every key, and a key B then creates is one A opens and finds: B neither
// computes index tags under the old pKEK nor seals under it.
func TestRotationOnAnotherReplica(t *testing.T) {
	c := startCluster(t, 2, 4)
	cl := c.clients(c.identity("alice"))
	a, b := cl[0], cl[1]
	ctx := ctxT(t)
	spec := aes
	spec.Attributes = []kmipclient.Attribute{group("g")}
	var ids []string
	for range 6 {
		id, err := a.Create(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	locate := func(who string, cl *kmipclient.Client, g string, want []string) {
		t.Helper()
		got, err := cl.Locate(ctx, 0, group(g))
		if err != nil {
			t.Fatalf("%s: Locate: %v", who, err)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: Locate %q found %d keys, want %d", who, g, len(got), len(want))
		}
	}
	locate("B before the rotation", b, "g", ids) // B caches alice's pKEK

	var owner string
	if err := c.replicas[0].d.Store().List(ctx, kek.RecordPrefix, func(key string, _ []byte) error {
		owner, _ = kek.IsRecordKey(key)
		return nil
	}); err != nil || owner == "" {
		t.Fatalf("alice's pKEK record: %q %v", owner, err)
	}
	args := daemon.OwnerArgs{Owner: owner}
	if _, err := admin.Call(ctx, c.replicas[0].admin, "rotate-pkek", args, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Call(ctx, c.replicas[0].admin, "reindex", args, nil, nil); err != nil {
		t.Fatal(err)
	}
	locate("B after A's rotation", b, "g", ids)

	spec.Attributes = []kmipclient.Attribute{group("late")}
	late, err := b.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx, late, 0); err != nil {
		t.Errorf("A: Get of the key B created: %v", err)
	}
	locate("A", a, "late", []string{late})
	locate("B", b, "late", []string{late})
}
