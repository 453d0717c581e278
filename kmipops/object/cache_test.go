package object

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

func TestCacheServesRepeatedLoads(t *testing.T) {
	f := newFixture(t, 0)
	uid := f.insert()
	f.load(uid) // opens the record and caches it
	before, unwraps := f.opens(), f.kr.Stats().Unwraps
	for range 5 {
		o := f.load(uid)
		if m, _ := o.Body().Path(kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial).BytesValue(); !bytes.Equal(m, keyMaterial) {
			t.Fatalf("Load served key material %x", m)
		}
	}
	if n := f.opens() - before; n != 0 {
		t.Errorf("five repeated Loads opened %d records; want 0 (served from the cache)", n)
	}
	if f.kr.Stats().Unwraps != unwraps {
		t.Error("repeated Loads unwrapped the pKEK")
	}
}

// After the pKEK leaves the keyring's cache, a cached object must not be
// used: the next read opens the record again, unwrapping the pKEK, as it
// would without the object cache.
func TestCacheFollowsPKEKEviction(t *testing.T) {
	f := newFixture(t, 0)
	uid := f.insert()
	f.load(uid)

	f.kr.Evict(alice)
	before, unwraps := f.opens(), f.kr.Stats().Unwraps
	f.load(uid)
	if f.opens() == before {
		t.Error("Load after the pKEK was evicted did not open the record")
	}
	if f.kr.Stats().Unwraps != unwraps+1 {
		t.Errorf("unwraps %d, want %d: the pKEK was not unwrapped again", f.kr.Stats().Unwraps, unwraps+1)
	}
	// A pKEK unwrapped again by some other use (here an Insert) is a new
	// generation: entries made under the old one are not used.
	f.load(uid)
	f.load(uid) // cached again
	f.kr.Evict(alice)
	f.insert()
	before = f.opens()
	f.load(uid)
	if f.opens() == before {
		t.Error("an entry made under an evicted pKEK was used after the pKEK was unwrapped again")
	}
	// That Load began with no pKEK cached, so it cannot tell which
	// unwrapping its open used and caches nothing; the next one does, and
	// the one after is served from the cache.
	f.load(uid)
	before = f.opens()
	f.load(uid)
	if f.opens() != before {
		t.Error("the cache serves nothing after a pKEK reload")
	}
}

// A changed record is never served from an entry made before the change,
// whoever wrote it.
func TestCacheSeesEveryWrite(t *testing.T) {
	f := newFixture(t, 0)
	uid := f.insert()
	f.load(uid)
	if _, err := f.s.Update(ctx, uid, func(o *Object) (bool, error) {
		o.Add(AttrName, nameValue("after"))
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.load(uid).All(AttrName)); n != 3 {
		t.Fatalf("%d Names after Update, want 3", n)
	}

	// A write straight to the store (as the undo of a failed batch does)
	// is seen too: the entry is keyed by the record's bytes.
	key := objectKey(alice, uid)
	prior, err := f.st.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Update(ctx, uid, func(o *Object) (bool, error) {
		o.Delete(AttrName, 0)
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	f.load(uid) // caches the changed record
	if err := f.st.Put(ctx, key, prior); err != nil {
		t.Fatal(err)
	}
	if n := len(f.load(uid).All(AttrName)); n != 3 {
		t.Fatalf("%d Names after the record was put back, want 3", n)
	}
}

// A write drops the entry of the record it replaces, so a destroyed key's
// material leaves memory at once rather than at eviction.
func TestCacheDropsOnWrite(t *testing.T) {
	f := newFixture(t, 0)
	uid := f.insert()
	f.load(uid)
	if f.cached(uid) == nil {
		t.Fatal("nothing cached after a Load")
	}
	if _, err := f.s.Update(ctx, uid, func(o *Object) (bool, error) {
		o.SetState(kmip14.StateDestroyed)
		o.ClearBody()
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if f.cached(uid) != nil {
		t.Fatal("the destroyed key's material is still cached")
	}
	if o := f.load(uid); o.Body().Present() || !o.Destroyed() {
		t.Fatal("the destroyed object still has its body")
	}
	if f.cached(uid) == nil {
		t.Fatal("the destroyed object was not cached again")
	}
	if err := f.s.Remove(ctx, uid); err != nil {
		t.Fatal(err)
	}
	if f.cached(uid) != nil {
		t.Fatal("a removed object is still cached")
	}
	if _, err := f.s.Load(ctx, uid); err != ErrNotFound {
		t.Fatalf("Load of a removed object: %v", err)
	}
}

func TestCacheOff(t *testing.T) {
	f := newFixture(t, -1)
	if f.r.cache != nil {
		t.Fatal("cacheBytes -1 left the cache on")
	}
	uid := f.insert()
	f.load(uid)
	before := f.opens()
	f.load(uid)
	if f.opens() == before {
		t.Error("with the cache off, a Load did not open the record")
	}
	// A Sealer without key generations cannot tell when an opened object
	// must be dropped, so nothing is cached either.
	if r := NewRepo(f.st, plainSealer{f.kr}, rand.Reader, 0); r.cache != nil {
		t.Fatal("a Sealer without KeyGenerations got a cache")
	}
}

// plainSealer hides the keyring's KeyGenerations.
type plainSealer struct{ Sealer }

func TestCacheBound(t *testing.T) {
	const max = 64 << 10
	f := newFixture(t, max)
	for i := 0; i < 100; i++ {
		o := testObject()
		o.uid = ""
		o.Add("x-filler", tree.Bytes(0, make([]byte, 256)))
		if err := f.s.Insert(ctx, o); err != nil {
			t.Fatal(err)
		}
		f.load(o.UID())
	}
	c := f.r.cache
	c.mu.RLock()
	defer c.mu.RUnlock()
	sum := 0
	for _, ent := range c.m {
		sum += ent.size
	}
	if c.size != sum || c.size > max || len(c.m) == 0 {
		t.Fatalf("cache holds %d entries, size %d (sum %d), bound %d", len(c.m), c.size, sum, max)
	}
	if len(c.m) == 100 {
		t.Fatal("the bound evicted nothing")
	}
}

// A read that misses opens the record in a pooled scratch buffer, and the
// cache keeps the record the store showed it: neither may tie what a Load
// returns or keeps to memory a later read reuses.
func TestMissesShareNothingWithScratch(t *testing.T) {
	for _, c := range []struct {
		name  string
		bytes int
	}{{"cache", 0}, {"entries-too-large", 1 << 10}, {"no-cache", -1}} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, c.bytes)
			a, b := f.insert(), f.insert()
			oa := f.load(a)
			want := encoded(t, oa)
			for range 3 { // reuses the scratch buffer oa was opened in
				f.load(b)
				f.r.cache.drop(objectKey(alice, b))
			}
			if got := encoded(t, oa); !bytes.Equal(got, want) {
				t.Fatal("an object a miss returned changed when later reads reused the scratch buffer")
			}
			if m, _ := oa.Body().Path(kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial).BytesValue(); !bytes.Equal(m, keyMaterial) {
				t.Fatalf("key material became %x", m)
			}
			if f.r.cache == nil {
				return
			}
			f.r.cache.mu.RLock()
			e := f.r.cache.m[objectKey(alice, a)]
			f.r.cache.mu.RUnlock()
			if c.bytes != 0 {
				if e != nil {
					t.Fatal("an entry above the per-entry bound was cached")
				}
				return
			}
			stored, err := f.st.Get(ctx, objectKey(alice, a))
			if err != nil {
				t.Fatal(err)
			}
			if e == nil || !bytes.Equal(e.sealed, stored) {
				t.Fatal("the cached entry's record is not the stored record byte for byte")
			}
		})
	}
}
