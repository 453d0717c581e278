package storage

import "sync"

// valueCache keeps values in memory so a Get of a hot key skips badger's
// read transaction, its LSM lookup and its value copies (about a tenth of the
// server's CPU on a Get-heavy load). It holds exactly the bytes badger
// holds, and kmipd seals everything it stores, so it exposes nothing that is
// not already on disk.
//
// Coherence rests on the committer being the only writer: it updates the
// cache after each commit and before answering the callers, so a Get that
// starts after a write returned sees that write. A Get that misses reads
// badger and fills the cache only if no write was applied to the cache in
// between (gen), so a slow reader can never put back a value a concurrent
// write has just replaced.
type valueCache struct {
	mu    sync.RWMutex
	m     map[string][]byte
	size  int // bytes of keys and values held
	max   int
	gen   uint64 // bumped by every write applied to the cache
	limit int    // values larger than this are not cached
}

func newValueCache(maxBytes int) *valueCache {
	return &valueCache{m: make(map[string][]byte), max: maxBytes, limit: min(maxBytes/16, 64<<10)}
}

// copyOf returns a copy of v, never nil, like badger's own copies.
func copyOf(v []byte) []byte { return append(make([]byte, 0, len(v)), v...) }

// get returns a copy of the cached value, which the caller owns.
func (c *valueCache) get(key string) ([]byte, bool) {
	v, ok := c.peek(key)
	if ok {
		v = copyOf(v)
	}
	return v, ok
}

// peek returns the cached value itself. Cached slices are never written
// after they are stored (set and fill copy, keep's caller gives up v, set
// and remove replace), so the caller may read and keep it after the lock
// is released, but must not modify it.
func (c *valueCache) peek(key string) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.RLock()
	v, ok := c.m[key]
	c.mu.RUnlock()
	return v, ok
}

// generation is read before a miss goes to badger, and passed to fill.
func (c *valueCache) generation() uint64 {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// fill caches a copy of v, read from badger, unless a write reached the
// cache since gen was read. The copy is made before the lock is taken.
func (c *valueCache) fill(key string, v []byte, gen uint64) {
	if c == nil || len(v) > c.limit {
		return
	}
	c.keep(key, copyOf(v), gen)
}

// keep is fill without the copy: the cache holds v itself, which nobody
// may write from now on (View's readers share it).
func (c *valueCache) keep(key string, v []byte, gen uint64) {
	if c == nil || len(v) > c.limit {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.putLocked(key, v)
	}
}

// set records a committed Put or Create; remove a committed Delete, or a key
// whose commit failed (its state in badger is then unknown).
//
// An empty value is only dropped, not kept: kmipd's empty values are its
// blind-index entries (five or six per Create), which Locate reads by
// listing keys and no Get asks for. Keeping them cost a copy and a map
// entry each, a tenth of the store's CPU in create-get-destroy
// (BenchmarkDurableCycle), and pushed records out of the cache. A Get of
// one still caches it (fill).
func (c *valueCache) set(key string, v []byte) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.removeLocked(key)
	if len(v) > 0 && len(v) <= c.limit {
		c.putLocked(key, copyOf(v))
	}
}

func (c *valueCache) remove(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.removeLocked(key)
}

// putLocked caches v itself, which the cache now owns.
func (c *valueCache) putLocked(key string, v []byte) {
	c.removeLocked(key)
	// Evict arbitrary entries (map order is randomised) until it fits: a
	// key store's hot set is small, and this needs no bookkeeping per Get.
	for k := range c.m {
		if c.size+len(key)+len(v) <= c.max {
			break
		}
		c.removeLocked(k)
	}
	c.m[key] = v
	c.size += len(key) + len(v)
}

func (c *valueCache) removeLocked(key string) {
	if old, ok := c.m[key]; ok {
		c.size -= len(key) + len(old)
		delete(c.m, key)
	}
}
