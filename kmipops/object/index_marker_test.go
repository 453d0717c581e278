package object

import (
	"crypto/rand"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/storage"
)

// sharedView is a store as replicas would share it: the same Badger,
// without storage.Exclusive.
type sharedView struct {
	storage.Store
	storage.Batcher
	storage.KeyLister
	storage.Viewer
}

// TestIndexMarkersRemembered: a built marker is remembered under the pKEK
// unwrapping it was read under, and not when a rebuild forgot the owner
// between the read and the keeping, nor once the pKEK is unwrapped again;
// a store replicas could share remembers nothing.
func TestIndexMarkersRemembered(t *testing.T) {
	f := newFixture(t, -1)
	uid := f.insert() // the first object marks the index built; the pKEK is cached
	m := &f.r.markers
	seen := m.begin(alice)
	if seen.current() || !seen.ok {
		t.Fatalf("before any read: %+v", seen)
	}
	m.forget(alice) // a rebuild between the read and the keeping
	m.built(alice, seen)
	if m.begin(alice).current() {
		t.Fatal("kept a marker read before a rebuild forgot the owner")
	}
	if err := f.r.ensureIndex(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if !m.begin(alice).current() {
		t.Fatal("ensureIndex did not remember a built marker")
	}
	f.kr.Evict(alice) // as a rotation does, when it starts and when it ends
	if s := m.begin(alice); s.current() || s.ok {
		t.Fatalf("remembered with no pKEK cached: %+v", s)
	}
	f.load(uid) // unwraps the pKEK again
	if m.begin(alice).current() {
		t.Fatal("remembered across a new unwrapping of the pKEK")
	}

	b := f.st
	shared := NewRepo(sharedView{b, b, b, b}, f.kr, rand.Reader, -1)
	if err := shared.ensureIndex(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if shared.markers.keys != nil || shared.markers.begin(alice).current() {
		t.Fatal("a store replicas could share remembers markers")
	}
}

// BenchmarkEnsureIndex is what the remembered marker saves each indexed
// Locate on Badger, in one run: "read" reads it every time (as over
// PostgreSQL), from Badger's value cache; "read-uncached" from Badger
// itself, as when the value cache has let the marker go (it evicts at
// random once full, and a read refills it only if no write came between).
func BenchmarkEnsureIndex(b *testing.B) {
	f := newFixture(b, -1)
	f.insert()
	st := f.st
	cold, err := storage.OpenBadger(b.TempDir(), storage.BadgerOptions{GCInterval: -1, CacheBytes: -1}, hclog.NewNullLogger())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cold.Close() })
	coldRepo := NewRepo(sharedView{cold, cold, cold, cold}, kek.New(newSoftMasterKeys(b), cold, kek.Config{}, nil), rand.Reader, -1)
	o := testObject()
	o.uid = ""
	cs := coldRepo.Scope(alice, nil)
	if err := cs.Insert(ctx, o); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		r    *Repo
	}{
		{"remembered", f.r},
		{"read", NewRepo(sharedView{st, st, st, st}, f.kr, rand.Reader, -1)},
		{"read-uncached", coldRepo},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := c.r.ensureIndex(ctx, alice); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
