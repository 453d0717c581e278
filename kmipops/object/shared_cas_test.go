package object

import (
	"crypto/rand"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/storage"
)

// hookedReplica is a replica whose store runs onGet once right after it
// reads key (hookedStore).
func (c *sharedStore) hookedReplica(key string, onGet func()) (*replica, *hookedStore) {
	c.t.Helper()
	pg, err := storage.OpenPostgres(ctx, storage.PostgresOptions{URL: c.url, MaxConns: 4}, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { pg.Close() })
	hs := &hookedStore{Postgres: pg, key: key, onGet: onGet}
	kr := kek.New(c.mk, hs, kek.Config{}, hclog.NewNullLogger())
	r := NewRepo(hs, kr, rand.Reader, 0)
	c.t.Cleanup(r.Close)
	return &replica{kr: kr, r: r, s: r.Scope(alice, nil)}, hs
}

// TestSharedModifyDuringOtherReplicasReseal: replica b renames an object
// between replica a's rotation reading its record and writing it back
// resealed. b's acknowledged change survives (the write-back is a
// compare-and-set; on a change the rotation reads the record again), the
// rotation completes, and every replica sees the new name.
func TestSharedModifyDuringOtherReplicasReseal(t *testing.T) {
	c := newSharedStore(t)
	b := c.replica()
	var uids []string
	for range 3 {
		uids = append(uids, b.insert(t, "n")) // b caches alice's pKEK
	}
	renamed := 0
	a, hs := c.hookedReplica(objectKey(alice, uids[1]), func() {
		if _, err := b.s.Update(ctx, uids[1], func(o *Object) (bool, error) {
			o.Set(AttrName, nameValue("renamed"))
			return true, nil
		}); err != nil {
			t.Errorf("b's rename during the reseal: %v", err)
			return
		}
		renamed++
	})
	a.rotate(t, nil)
	if hs.onGet != nil || renamed != 1 {
		t.Fatal("the rename did not run between the rotation's read and write-back")
	}
	fresh := c.replica()
	for _, p := range []struct {
		who string
		r   *replica
	}{{"a", a}, {"b", b}, {"a fresh process", fresh}} {
		p.r.wantLoads(t, p.who, uids)
		p.r.wantFound(t, p.who, "renamed", uids[1:2])
		p.r.wantFound(t, p.who, "n", []string{uids[0], uids[2]})
	}
}
