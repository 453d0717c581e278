package object

import "sync"

// What ensureIndex remembers of the built markers (index.go).
//
// Every indexed Locate asks whether its owner's index is built. A marker
// that says so stops being true only when a pKEK rotation drops
// idx/<owner>/ (kek.Sealed.Derived), or when the store's records are
// replaced by a restore, which is offline and so starts a new process. So
// the repository remembers "seen built while the owner's pKEK was cached
// as unwrapping g" (KeyGenerations): a rotation evicts the owner's pKEK
// when it starts and again once it has dropped the index, so the next
// Locate sees another unwrapping and reads the marker again (as it does
// after the pKEK's TTL). Only "built" is remembered: while it is not, a
// rebuild is about to change it. A rebuild forgets its owner when it
// starts and when it marks the index built, so what it did is read afresh.
//
// Only over a store this process alone writes (storage.Exclusive: Badger,
// the in-memory store). Replicas sharing PostgreSQL each keep their own
// pKEK cache, which another replica's rotation does not evict, so a
// remembered "built" could outlive the index it named; there every Locate
// reads the marker (one query) as before, and has the owner's cached pKEK
// checked against its record (Repo.refresh, fence.go).
type indexMarkers struct {
	keys KeyGenerations // nil: nothing is remembered

	mu    sync.Mutex
	m     map[string]uint64 // owner → the unwrapping under which it was seen built
	epoch uint64            // bumped by forget
}

// markerRead is what one ensureIndex saw before reading the marker.
type markerRead struct {
	gen, epoch uint64
	ok, hit    bool // ok: the owner's pKEK was cached, so the answer may be kept
}

// current reports whether the owner's index is known built.
func (r markerRead) current() bool { return r.hit }

func (c *indexMarkers) begin(owner string) markerRead {
	if c.keys == nil {
		return markerRead{}
	}
	var r markerRead
	if r.gen, r.ok = c.keys.KeyGeneration(owner); !r.ok {
		return r
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g, seen := c.m[owner]
	r.hit, r.epoch = seen && g == r.gen, c.epoch
	return r
}

// built remembers that owner's marker, read after r began, said built,
// unless the owner's pKEK was unwrapped again or a rebuild forgot the
// owner meanwhile (either may have changed the marker after the read).
func (c *indexMarkers) built(owner string, r markerRead) {
	if !r.ok {
		return
	}
	if gen, ok := c.keys.KeyGeneration(owner); !ok || gen != r.gen {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != r.epoch {
		return
	}
	if c.m == nil || len(c.m) >= maxBuiltOwners {
		c.m = map[string]uint64{} // forgetting costs each owner one read
	}
	c.m[owner] = r.gen
}

// forget makes the next ensureIndex of owner read its marker.
func (c *indexMarkers) forget(owner string) {
	if c.keys == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, owner)
	c.epoch++
}
