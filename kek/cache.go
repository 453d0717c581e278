package kek

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"
)

// entry is one owner's unsealed pKEK. Only the AEAD (an *ownerKey: the
// cipher and the blind-index key derived from the pKEK) is kept: the raw
// key bytes are zeroed as soon as the cipher is built, so eviction has
// nothing left to zero except what crypto/aes holds internally (which Go
// gives no way to wipe; dropping the last reference is the best available).
type entry struct {
	owner   string
	aead    *keyset
	expires time.Time
	gen     uint64 // which unwrapping this is (Keyring.KeyGeneration)
}

// flight is one in-progress load for an owner; later misses for the same
// owner wait on done instead of calling the HSM again.
type flight struct {
	create bool // whether the leader may create a missing pKEK
	done   chan struct{}
	aead   *keyset
	err    error
	stale  bool // evicted while loading: its result may predate a record change
}

// cache is an LRU bounded by size, with an absolute TTL per entry so that an
// unwrapped pKEK is re-checked against the HSM at least every TTL.
type cache struct {
	ttl  time.Duration
	size int
	now  func() time.Time

	mu      sync.Mutex
	lru     *list.List // of *entry, most recently used at the front
	byOwner map[string]*list.Element
	flights map[string]*flight
	evicted uint64
	gens    uint64 // generations handed out
}

func newCache(ttl time.Duration, size int) *cache {
	return &cache{
		ttl: ttl, size: size, now: time.Now,
		lru:     list.New(),
		byOwner: make(map[string]*list.Element),
		flights: make(map[string]*flight),
	}
}

// getLocked returns the owner's AEAD if cached and fresh. c.mu must be held.
func (c *cache) getLocked(owner string) *keyset {
	if e := c.entryLocked(owner); e != nil {
		return e.aead
	}
	return nil
}

// entryLocked returns the owner's entry if fresh, dropping an expired one,
// and counts it as a use for the LRU order. c.mu must be held.
func (c *cache) entryLocked(owner string) *entry {
	el, ok := c.byOwner[owner]
	if !ok {
		return nil
	}
	e := el.Value.(*entry)
	if !c.now().Before(e.expires) {
		c.removeLocked(el)
		return nil
	}
	c.lru.MoveToFront(el)
	return e
}

func (c *cache) putLocked(owner string, aead *keyset) {
	if el, ok := c.byOwner[owner]; ok {
		c.removeLocked(el)
	}
	now := c.now()
	c.gens++
	c.byOwner[owner] = c.lru.PushFront(&entry{owner: owner, aead: aead, expires: now.Add(c.ttl), gen: c.gens})
	// Drop expired entries from the cold end, then enforce the bound.
	for el := c.lru.Back(); el != nil && c.lru.Len() > 1; el = c.lru.Back() {
		if c.lru.Len() <= c.size && now.Before(el.Value.(*entry).expires) {
			break
		}
		c.removeLocked(el)
	}
}

func (c *cache) removeLocked(el *list.Element) {
	e := c.lru.Remove(el).(*entry)
	delete(c.byOwner, e.owner)
	e.aead = nil
	c.evicted++
}

func (c *cache) evict(owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byOwner[owner]; ok {
		c.removeLocked(el)
	}
	if f, ok := c.flights[owner]; ok {
		f.stale = true
	}
}

// generation is the generation of owner's cached, fresh entry; like a
// hit, it counts as a use for the LRU order.
func (c *cache) generation(owner string) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entryLocked(owner); e != nil {
		return e.gen, true
	}
	return 0, false
}

func (c *cache) len() (int, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.evicted
}

// get returns the owner's AEAD from the cache or from load, which runs at
// most once at a time per owner. hit reports a cache hit. A caller that may
// create (create=true) does not accept the result of a non-creating load
// that found nothing; it runs its own.
func (c *cache) get(ctx context.Context, owner string, create bool,
	load func(ctx context.Context, create bool) (*keyset, error),
) (aead *keyset, hit bool, err error) {
	for {
		c.mu.Lock()
		if a := c.getLocked(owner); a != nil {
			c.mu.Unlock()
			return a, true, nil
		}
		if f, ok := c.flights[owner]; ok {
			c.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, false, passThrough("waiting for pKEK load", ctx.Err())
			}
			if f.stale && ctx.Err() == nil {
				continue // loaded before an Evict: load again
			}
			if f.err == nil {
				return f.aead, false, nil
			}
			// The leader's own cancellation, or a not-found that a creator
			// can fix, is not ours: try again.
			if ctx.Err() == nil && (isContextErr(f.err) || (create && !f.create && isNoPKEK(f.err))) {
				continue
			}
			return nil, false, f.err
		}
		f := &flight{create: create, done: make(chan struct{})}
		c.flights[owner] = f
		c.mu.Unlock()

		c.lead(ctx, owner, f, load)
		if f.stale && ctx.Err() == nil {
			continue
		}
		return f.aead, false, f.err
	}
}

// lead runs the load for a flight. The deferred cleanup releases waiters even
// if load panics, so one bad request cannot wedge an owner forever.
func (c *cache) lead(ctx context.Context, owner string, f *flight,
	load func(ctx context.Context, create bool) (*keyset, error),
) {
	f.err = errLoadPanicked
	defer func() {
		c.mu.Lock()
		delete(c.flights, owner)
		if f.err == nil && !f.stale {
			c.putLocked(owner, f.aead)
		}
		c.mu.Unlock()
		close(f.done)
	}()
	f.aead, f.err = load(ctx, f.create)
}

var errLoadPanicked = errors.New("pKEK load panicked")

// peek returns the owner's cached, fresh key set, or nil; it loads nothing.
func (c *cache) peek(owner string) *keyset {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getLocked(owner)
}
