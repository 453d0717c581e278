package object

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"

	"github.com/kmipd/kmipd/storage"
)

// KeyGenerations is implemented by a Sealer that caches its per-owner keys
// (kek.Keyring). KeyGeneration names the cached unwrapping of owner's key —
// a number that changes each time the key is unwrapped again — or reports
// false when none is cached and fresh. It must never block on the HSM.
//
// A Repo whose Sealer implements it keeps recently opened objects (cache);
// with any other Sealer it opens every record it reads.
type KeyGenerations interface {
	KeyGeneration(owner string) (uint64, bool)
}

// DefaultCacheBytes bounds the cache of opened objects when NewRepo is
// given zero.
const DefaultCacheBytes = 32 << 20

// cache keeps objects already opened and decoded, so a Get or Encrypt of a
// hot key skips the AES-GCM open and the record decode, which were half of
// Process's time for a repeated Get (kmipops' BenchmarkProcessGet: 4.9
// against 2.5 µs) and about an eighth of the server's CPU on a Get-heavy
// load.
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
// Sharing. get hands out a copy whose attribute list is the caller's own;
// the body and the attribute values are shared with the cache and with
// every other reader. The Object API keeps them unchanged (see the package
// comment): they are reachable only as tree.Views.
type cache struct {
	keys KeyGenerations

	mu      sync.RWMutex
	m       map[string]*opened
	size    int
	max     int
	version atomic.Uint64 // bumped by every drop, under mu; see put
}

type opened struct {
	sealed []byte // the record as stored
	gen    uint64 // the pKEK unwrapping that opened it
	o      *Object
	size   int
}

// newCache returns nil (no caching) when maxBytes is negative or s does not
// report key generations.
func newCache(s Sealer, maxBytes int) *cache {
	keys, ok := s.(KeyGenerations)
	if !ok || maxBytes < 0 {
		return nil
	}
	if maxBytes == 0 {
		maxBytes = DefaultCacheBytes
	}
	return &cache{keys: keys, m: make(map[string]*opened), max: maxBytes}
}

// cacheRead is what a read notes before it reads the store: the cache's
// version, and which unwrapping of the owner's pKEK is cached.
type cacheRead struct {
	version uint64
	gen     uint64
	genOK   bool
}

func (c *cache) begin(owner string) cacheRead {
	if c == nil {
		return cacheRead{}
	}
	r := cacheRead{version: c.version.Load()}
	r.gen, r.genOK = c.keys.KeyGeneration(owner)
	return r
}

// fetch reads key's record from st: either the cached object opened from it
// (a private copy) or, on a miss, a copy of the record for the caller to
// open in place (sealed): in a scratch buffer to hand back (putScratch) if
// scratch is not nil. With it comes, when the cache
// may keep what the caller opens, the record for it (record). A read
// through a storage.Viewer copies the record only into the scratch buffer,
// which allocates nothing once the pool is warm. With want, raw is the
// record as read, which the caller may keep (for a compare-and-set).
func (c *cache) fetch(ctx context.Context, st storage.Store, r cacheRead, key string, want bool) (o *Object, sealed []byte, scratch *[]byte, record, raw []byte, err error) {
	v, ok := st.(storage.Viewer)
	if !c.mayKeep(r) || !ok {
		// With no pKEK cached there is nothing to compare or keep: the
		// copy Get makes is opened in place, as it is from a store that
		// has no View.
		sealed, err := st.Get(ctx, key)
		if err != nil {
			return nil, nil, nil, nil, nil, err
		}
		if o = c.get(r, key, sealed); o != nil {
			return o, nil, nil, nil, sealed, nil
		}
		if c.mayKeep(r) {
			record = bytes.Clone(sealed) // opening overwrites sealed
			raw = record
		} else if want {
			raw = bytes.Clone(sealed)
		}
		return nil, sealed, nil, record, raw, nil
	}
	var f fetched // one allocation for what the closure fills in
	err = v.View(ctx, key, func(b []byte) error {
		if want {
			f.raw = b // the store never changes it
		}
		if f.o = c.get(r, key, b); f.o != nil {
			return nil
		}
		// Opened from a pooled copy; kept as shown, for the store never
		// changes it (storage.Viewer).
		f.scratch, f.record = getScratch(b), b
		return nil
	})
	if f.scratch != nil {
		sealed = *f.scratch
	}
	return f.o, sealed, f.scratch, f.record, f.raw, err
}

type fetched struct {
	o           *Object
	scratch     *[]byte
	record, raw []byte
}

// Scratch buffers for records opened in place, so that a read that misses
// the cache allocates no buffer for the record's plaintext.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

const maxScratch = 64 << 10 // larger buffers are left to the GC

// getScratch returns a pooled buffer holding a copy of b.
func getScratch(b []byte) *[]byte {
	s := scratchPool.Get().(*[]byte)
	*s = append((*s)[:0], b...)
	return s
}

// putScratch scrubs s, which held a record and its plaintext, and pools it.
func putScratch(s *[]byte) {
	clear((*s)[:cap(*s)])
	if cap(*s) <= maxScratch {
		scratchPool.Put(s)
	}
}

// get returns a private copy of the object opened from sealed, if it is
// cached under the unwrapping r saw.
func (c *cache) get(r cacheRead, key string, sealed []byte) *Object {
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
func (c *cache) mayKeep(r cacheRead) bool { return c != nil && r.genOK }

// put caches o, opened from sealed (which the cache now owns), unless it
// could be stale: a drop since r (a write may have raced the read), or a
// pKEK unwrapping other than r's around the open. A read that began with no
// pKEK cached cannot tell which unwrapping opened the record, so it caches
// nothing; the next read will.
func (c *cache) put(r cacheRead, owner, key string, sealed []byte, o *Object) {
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
	c.m[key] = &opened{sealed: sealed, gen: r.gen, o: o, size: size}
	c.size += size
}

// drop forgets key's entry; every write of an object record calls it.
func (c *cache) drop(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.version.Add(1)
	c.removeLocked(key)
}

func (c *cache) removeLocked(key string) {
	if e, ok := c.m[key]; ok {
		c.size -= e.size
		delete(c.m, key)
	}
}

// entrySize estimates what an entry holds: the record, the attribute values
// decodeObject copies out of it, and the decoded body's nodes.
func entrySize(sealed []byte) int { return 3*len(sealed) + 256 }
