package object

import (
	"crypto/rand"
	"errors"
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

// TestSharedUndoSparesOtherReplicasWrite: replica a rolls back a batch's
// rename, and replica b renames the object again between a's check that
// the record is still the batch's and a's write of the before-image. The
// restore fails its compare and leaves b's write, reporting the object.
func TestSharedUndoSparesOtherReplicasWrite(t *testing.T) {
	c := newSharedStore(t)
	b := c.replica()
	uid := b.insert(t, "n")
	rename := func(s Scope, name string) error {
		_, err := s.Update(ctx, uid, func(o *Object) (bool, error) {
			o.Set(AttrName, nameValue(name))
			return true, nil
		})
		return err
	}
	a, hs := c.hookedReplica(objectKey(alice, uid), nil)
	s := a.r.Scope(alice, NewUndoLog())
	if err := rename(s, "batch"); err != nil {
		t.Fatal(err)
	}
	hs.onGet = func() {
		if err := rename(b.s, "other"); err != nil {
			t.Errorf("b's rename during the rollback: %v", err)
		}
	}
	var reported []string
	s.Rollback(ctx, func(u string, err error) {
		reported = append(reported, u)
		if !errors.Is(err, errChangedSince) {
			t.Errorf("Rollback reported %s: %v, want errChangedSince", u, err)
		}
	})
	if hs.onGet != nil {
		t.Fatal("the rollback never read the record")
	}
	if len(reported) != 1 || reported[0] != uid {
		t.Errorf("Rollback reported %v, want the object b wrote (its write overwritten?)", reported)
	}
	fresh := c.replica()
	fresh.wantFound(t, "a fresh process", "other", []string{uid})
	fresh.wantFound(t, "a fresh process", "n", nil)
	fresh.wantFound(t, "a fresh process", "batch", nil)
}
