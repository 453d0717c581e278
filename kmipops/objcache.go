package kmipops

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/kmipd/kmipd/storage"
)

// KeyGenerations is implemented by a Sealer that caches its per-owner keys
// (kek.Keyring). KeyGeneration names the cached unwrapping of owner's key —
// a number that changes each time the key is unwrapped again — or reports
// false when none is cached and fresh. It must never block on the HSM.
//
// A Processor whose Sealer implements it keeps recently opened objects
// (objectCache); with any other Sealer it opens every record it reads.
type KeyGenerations interface {
	KeyGeneration(owner string) (uint64, bool)
}

// DefaultObjectCacheBytes bounds the cache of opened objects when
// Options.ObjectCacheBytes is zero.
const DefaultObjectCacheBytes = 32 << 20

// objectCache keeps objects already opened and decoded, so a Get or Encrypt
// of a hot key skips the AES-GCM open and the record decode, which were half
// of Process's time for a repeated Get (BenchmarkProcessGet: 4.9 against
// 2.5 µs) and about an eighth of the server's CPU on a Get-heavy load.
//
// An entry is used only if both still hold:
//   - the record in storage is byte for byte the one that was opened. The
//     store stays the only source of truth, so no write path has to keep
//     the cache coherent: a changed, restored or deleted record simply
//     misses.
//   - the owner's pKEK is still cached under the same unwrapping
//     (KeyGenerations). An opened object therefore lives no longer than the
//     pKEK that opened it: after the pKEK's TTL, an eviction or a reload,
//     the next read opens the record again, through the HSM if the pKEK
//     must be unwrapped, exactly as without this cache.
//
// Entries hold key material in the clear, as the pKEK cache does. Writes
// drop the entry of the record they replace (drop), so a destroyed key's
// material does not wait for eviction to leave memory.
//
// Sharing. get hands out a copy whose attribute slice is the caller's own;
// the body and the encoded attribute values are shared with the cache and
// with every other reader, and nothing may change them in place. Code that
// derives a different body clones it first (convertFormat, wrapBody), and
// keyMaterial copies the key bytes it will wipe.
type objectCache struct {
	keys KeyGenerations

	mu      sync.RWMutex
	m       map[string]*openedObject
	size    int
	max     int
	version atomic.Uint64 // bumped by every drop, under mu; see put
}

type openedObject struct {
	sealed []byte // the record as stored
	gen    uint64 // the pKEK unwrapping that opened it
	o      *object
	size   int
}

// newObjectCache returns nil (no caching) when maxBytes is negative or s
// does not report key generations.
func newObjectCache(s Sealer, maxBytes int) *objectCache {
	keys, ok := s.(KeyGenerations)
	if !ok || maxBytes < 0 {
		return nil
	}
	if maxBytes == 0 {
		maxBytes = DefaultObjectCacheBytes
	}
	return &objectCache{keys: keys, m: make(map[string]*openedObject), max: maxBytes}
}

// objectRead is what a read notes before it reads the store: the cache's
// version, and which unwrapping of the owner's pKEK is cached.
type objectRead struct {
	version uint64
	gen     uint64
	genOK   bool
}

func (c *objectCache) begin(owner string) objectRead {
	if c == nil {
		return objectRead{}
	}
	r := objectRead{version: c.version.Load()}
	r.gen, r.genOK = c.keys.KeyGeneration(owner)
	return r
}

// fetch reads key's record from st: either the cached object opened from it
// (a private copy) or, on a miss, the record itself, which the caller owns.
// A hit reads the record in place when st is a storage.Viewer.
func (c *objectCache) fetch(ctx context.Context, st storage.Store, r objectRead, key string) (*object, []byte, error) {
	v, ok := st.(storage.Viewer)
	if !c.mayKeep(r) || !ok {
		sealed, err := st.Get(ctx, key)
		if err != nil {
			return nil, nil, err
		}
		return c.get(r, key, sealed), sealed, nil
	}
	var o *object
	var sealed []byte
	err := v.View(ctx, key, func(b []byte) error {
		if o = c.get(r, key, b); o == nil {
			sealed = bytes.Clone(b)
		}
		return nil
	})
	return o, sealed, err
}

// get returns a private copy of the object opened from sealed, if it is
// cached under the unwrapping r saw.
func (c *objectCache) get(r objectRead, key string, sealed []byte) *object {
	if !c.mayKeep(r) {
		return nil
	}
	c.mu.RLock()
	e := c.m[key]
	hit := e != nil && e.gen == r.gen && bytes.Equal(e.sealed, sealed)
	c.mu.RUnlock()
	if !hit {
		return nil
	}
	return e.o.clone()
}

// mayKeep reports whether the cache can serve or keep anything for a read
// that began as r: not without a pKEK cached at its start, so such a read
// need not copy the record or the object it opens.
func (c *objectCache) mayKeep(r objectRead) bool { return c != nil && r.genOK }

// put caches o, opened from sealed (which the cache now owns), unless it
// could be stale: a drop since r (a write may have raced the read), or a
// pKEK unwrapping other than r's around the open. A read that began with no
// pKEK cached cannot tell which unwrapping opened the record, so it caches
// nothing; the next read will.
func (c *objectCache) put(r objectRead, owner, key string, sealed []byte, o *object) {
	if !c.mayKeep(r) {
		return
	}
	if gen, ok := c.keys.KeyGeneration(owner); !ok || gen != r.gen {
		return
	}
	size := len(key) + entrySize(sealed)
	if size > c.max/16 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version.Load() != r.version {
		return
	}
	c.removeLocked(key)
	// Evict arbitrary entries (map order is randomised) until it fits, as
	// storage's value cache does: the hot set is small.
	for k := range c.m {
		if c.size+size <= c.max {
			break
		}
		c.removeLocked(k)
	}
	c.m[key] = &openedObject{sealed: sealed, gen: r.gen, o: o, size: size}
	c.size += size
}

// drop forgets key's entry; every write of an object record calls it.
func (c *objectCache) drop(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.version.Add(1)
	c.removeLocked(key)
}

func (c *objectCache) removeLocked(key string) {
	if e, ok := c.m[key]; ok {
		c.size -= e.size
		delete(c.m, key)
	}
}

// entrySize estimates what an entry holds: the record, the attribute values
// decodeObject copies out of it, and the decoded body's nodes.
func entrySize(sealed []byte) int { return 3*len(sealed) + 256 }

// clone copies o deeply enough for a caller to change its attributes: the
// slice is new, while the values and the body are shared (see objectCache).
func (o *object) clone() *object {
	c := *o
	c.attrs = slices.Clone(o.attrs)
	return &c
}
