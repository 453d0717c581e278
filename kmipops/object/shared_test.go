package object

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/storage"
	"github.com/kmipd/kmipd/storage/pgtest"
)

// Replicas sharing one PostgreSQL store (fence.go, kek/shared.go): each
// has its own keyring, whose pKEK cache another replica's rotation does
// not evict, and its own repository, over one database and one set of
// master keys (as replicas share one HSM).

type replica struct {
	kr *kek.Keyring
	r  *Repo
	s  Scope
}

type sharedStore struct {
	t   testing.TB
	url string
	mk  *softMasterKeys
}

func newSharedStore(t testing.TB) *sharedStore {
	t.Helper()
	return &sharedStore{t: t, url: pgtest.Database(t), mk: newSoftMasterKeys(t)}
}

// replica starts one more replica: its own store connections, keyring
// (cold cache, as a fresh process has) and repository.
func (c *sharedStore) replica() *replica {
	c.t.Helper()
	st, err := storage.OpenPostgres(ctx, storage.PostgresOptions{URL: c.url, MaxConns: 4}, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { st.Close() })
	kr := kek.New(c.mk, st, kek.Config{}, hclog.NewNullLogger())
	r := NewRepo(st, kr, rand.Reader, 0)
	c.t.Cleanup(r.Close)
	return &replica{kr: kr, r: r, s: r.Scope(alice, nil)}
}

// insert stores a new object named name and returns its uid.
func (p *replica) insert(t *testing.T, name string) string {
	t.Helper()
	o := testObject()
	o.uid = ""
	o.Set(AttrName, nameValue(name))
	if err := p.s.Insert(ctx, o); err != nil {
		t.Fatalf("insert %s: %v", name, err)
	}
	return o.UID()
}

// rotate rotates alice's pKEK through p, calling during (if not nil) once
// the objects are resealed and before the old generation goes, and then
// rebuilds alice's index on p, as a Locate there would.
func (p *replica) rotate(t *testing.T, during func()) {
	t.Helper()
	prefix := ownerPrefix(alice)
	called := false
	if _, err := p.kr.RotatePKEK(ctx, alice, kek.Sealed{
		Prefix:  prefix,
		AAD:     func(k string) []byte { return []byte(strings.TrimPrefix(k, prefix)) },
		Derived: IndexPrefix(alice),
	}, func(done, total int) {
		if during != nil && done == total && !called {
			called = true
			during()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if during != nil && !called {
		t.Fatal("the rotation reported no progress")
	}
	if _, err := p.r.RebuildIndex(ctx, alice, nil); err != nil {
		t.Fatal(err)
	}
}

// find is what Locate by name answers on p: the index's candidates that
// carry the name, or the scan's matches when the index does not answer.
// indexed reports whether the index answered.
func (p *replica) find(t *testing.T, name string) (uids []string, indexed bool) {
	t.Helper()
	want := nameValue(name)
	has := func(o *Object) bool {
		return slices.ContainsFunc(o.All(AttrName), func(a Attr) bool { return a.Value().Equal(want.View()) })
	}
	cands, ok, err := p.s.Lookup(ctx, []Attr{NewAttr(AttrName, want)})
	if err != nil {
		t.Fatalf("lookup %s: %v", name, err)
	}
	if !ok {
		err := p.s.Each(ctx, func(o *Object) error {
			if has(o) {
				uids = append(uids, o.UID())
			}
			return nil
		})
		if err != nil {
			t.Fatalf("scan for %s: %v", name, err)
		}
		slices.Sort(uids)
		return uids, false
	}
	for _, u := range cands {
		o, err := p.s.Load(ctx, u)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("load candidate %s: %v", u, err)
		}
		if has(o) {
			uids = append(uids, u)
		}
	}
	slices.Sort(uids)
	return uids, true
}

func (p *replica) wantFound(t *testing.T, who, name string, want []string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	got, indexed := p.find(t, name)
	if !slices.Equal(got, want) {
		t.Errorf("%s: Locate %q found %d objects (index used: %v), want %d", who, name, len(got), indexed, len(want))
	}
}

func (p *replica) wantLoads(t *testing.T, who string, uids []string) {
	t.Helper()
	for _, u := range uids {
		if _, err := p.s.Load(ctx, u); err != nil {
			t.Errorf("%s: load %s: %v", who, u, err)
		}
	}
}

// TestSharedLocateAfterOtherReplicaRotates: replica b, whose cached pKEK
// another replica has since rotated (and whose index it rebuilt under the
// new key), finds every object by name, through the index, without
// waiting for its cache to expire.
func TestSharedLocateAfterOtherReplicaRotates(t *testing.T) {
	c := newSharedStore(t)
	a, b := c.replica(), c.replica()
	var uids []string
	for range 6 {
		uids = append(uids, a.insert(t, "n"))
	}
	if _, indexed := b.find(t, "n"); !indexed {
		t.Fatal("the index is not used before the rotation")
	}
	b.wantFound(t, "b before the rotation", "n", uids)

	a.rotate(t, nil)
	got, indexed := b.find(t, "n")
	if !slices.Equal(got, slices.Sorted(slices.Values(uids))) || !indexed {
		t.Fatalf("b after a's rotation: Locate found %d of %d objects (index used: %v)", len(got), len(uids), indexed)
	}
	a.wantFound(t, "a", "n", uids)
}

// TestSharedWritesAfterOtherReplicaRotates: replica b, whose cached pKEK
// another replica has since rotated, creates and modifies objects; every
// replica, and a fresh process, opens them and finds them by name: none
// is sealed under the retired generation or indexed under its key.
func TestSharedWritesAfterOtherReplicaRotates(t *testing.T) {
	c := newSharedStore(t)
	a, b := c.replica(), c.replica()
	var uids []string
	for range 6 {
		uids = append(uids, a.insert(t, "n"))
	}
	b.wantLoads(t, "b", uids[:1]) // b caches alice's pKEK

	a.rotate(t, nil)
	late := b.insert(t, "late")
	if _, err := b.s.Update(ctx, uids[0], func(o *Object) (bool, error) {
		o.Set(AttrName, nameValue("renamed"))
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	all := append(slices.Clone(uids), late)
	fresh := c.replica()
	for _, p := range []struct {
		who string
		r   *replica
	}{{"a", a}, {"b", b}, {"a fresh process", fresh}} {
		p.r.wantLoads(t, p.who, all)
		p.r.wantFound(t, p.who, "late", []string{late})
		p.r.wantFound(t, p.who, "renamed", uids[:1])
		p.r.wantFound(t, p.who, "n", uids[1:])
	}
}

// TestSharedWritesAfterOtherReplicasRotationEnds: replica b caches
// alice's pKEK while another replica's rotation is moving the objects
// (both generations), and writes after that rotation has ended and the
// index was rebuilt: what it writes is indexed under the new key, so every
// replica finds it through the index.
func TestSharedWritesAfterOtherReplicasRotationEnds(t *testing.T) {
	c := newSharedStore(t)
	a, b := c.replica(), c.replica()
	var uids []string
	for range 6 {
		uids = append(uids, a.insert(t, "n"))
	}
	a.rotate(t, func() {
		// Resealed under the new generation: b reads the record again
		// and caches both generations.
		b.wantLoads(t, "b during the rotation", uids[:1])
	})
	late := b.insert(t, "late")
	fresh := c.replica()
	for _, p := range []struct {
		who string
		r   *replica
	}{{"a", a}, {"b", b}, {"a fresh process", fresh}} {
		got, indexed := p.r.find(t, "late")
		if !slices.Equal(got, []string{late}) || !indexed {
			t.Errorf("%s: Locate found %d objects written by b (index used: %v), want 1 through the index", p.who, len(got), indexed)
		}
		p.r.wantLoads(t, p.who, append(slices.Clone(uids), late))
	}
}

// hookedStore is a replica's PostgreSQL store that runs onGet (once) right
// after it reads key: the moment between a rebuild's last look at its own
// marker and its marking the index built.
type hookedStore struct {
	*storage.Postgres
	key   string
	onGet func()
}

func (h *hookedStore) Get(c context.Context, key string) ([]byte, error) {
	v, err := h.Postgres.Get(c, key)
	if key == h.key && h.onGet != nil {
		f := h.onGet
		h.onGet = nil
		f()
	}
	return v, err
}

// TestSharedRebuildOvertakenByOtherReplicasRotation: a rebuild on replica
// b reads its building marker, and before it marks the index built another
// replica rotates the owner's pKEK from start to end (dropping the index
// and the marker). The rebuild must not mark built an index the rotation
// emptied: every object is still found, on either replica.
func TestSharedRebuildOvertakenByOtherReplicasRotation(t *testing.T) {
	c := newSharedStore(t)
	a := c.replica()
	var uids []string
	for range 6 {
		uids = append(uids, a.insert(t, "n"))
	}
	pg, err := storage.OpenPostgres(ctx, storage.PostgresOptions{URL: c.url, MaxConns: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	hs := &hookedStore{Postgres: pg, key: buildingMarker(alice)}
	kr := kek.New(c.mk, hs, kek.Config{}, hclog.NewNullLogger())
	br := NewRepo(hs, kr, rand.Reader, 0)
	t.Cleanup(br.Close)
	b := &replica{kr: kr, r: br, s: br.Scope(alice, nil)}
	prefix := ownerPrefix(alice)
	hs.onGet = func() {
		if _, err := a.kr.RotatePKEK(ctx, alice, kek.Sealed{
			Prefix:  prefix,
			AAD:     func(k string) []byte { return []byte(strings.TrimPrefix(k, prefix)) },
			Derived: IndexPrefix(alice),
		}, nil); err != nil {
			t.Error(err)
		}
	}
	if _, err := b.r.RebuildIndex(ctx, alice, nil); err == nil {
		t.Error("a rebuild overtaken by a rotation succeeded")
	}
	if hs.onGet != nil {
		t.Fatal("the rebuild never read its marker")
	}
	a.wantFound(t, "a", "n", uids)
	b.wantFound(t, "b", "n", uids)
}

// TestSharedStaleWritesDuringOtherReplicasRotation: replica b, its pKEK
// cached before the rotation, creates objects while replica a rotates the
// owner's pKEK. The rotation completes (no write lands under the old
// generation after its last look), and a fresh process opens every object
// and finds each through the index.
func TestSharedStaleWritesDuringOtherReplicasRotation(t *testing.T) {
	c := newSharedStore(t)
	a, b := c.replica(), c.replica()
	var uids []string
	for range 40 {
		uids = append(uids, a.insert(t, "old"))
	}
	b.wantLoads(t, "b", uids[:1])
	const n = 40
	written := make(chan string, n)
	go func() {
		defer close(written)
		for range n {
			o := testObject()
			o.uid = ""
			o.Set(AttrName, nameValue("new"))
			if err := b.s.Insert(ctx, o); err != nil {
				t.Errorf("b's insert during the rotation: %v", err)
				return
			}
			written <- o.UID()
		}
	}()
	a.rotate(t, nil)
	var news []string
	for u := range written {
		news = append(news, u)
	}
	if len(news) != n {
		t.Fatalf("b wrote %d of %d objects", len(news), n)
	}
	// Rebuilt again once b is done, so that nothing depends on when the
	// first rebuild ran.
	if _, err := a.r.RebuildIndex(ctx, alice, nil); err != nil {
		t.Fatal(err)
	}
	fresh := c.replica()
	fresh.wantLoads(t, "a fresh process", append(slices.Clone(uids), news...))
	for _, p := range []struct {
		who string
		r   *replica
	}{{"a", a}, {"b", b}, {"a fresh process", fresh}} {
		for name, want := range map[string][]string{"old": uids, "new": news} {
			got, indexed := p.r.find(t, name)
			if !slices.Equal(got, slices.Sorted(slices.Values(want))) || !indexed {
				t.Errorf("%s: Locate %q found %d of %d (index used: %v)", p.who, name, len(got), len(want), indexed)
			}
		}
	}
}
