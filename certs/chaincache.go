package certs

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
)

// Verified-chain caching, shared by the server (client chains, per TLS
// configuration) and the load generator (server chains): x509 verification
// of the same presented chain, under the same roots and options, decides the
// same way for as long as every certificate in the chain is in date. A cache
// serves one set of roots and options; its owner makes a new one when they
// change.

// ChainKey names a presented certificate list by its exact bytes.
type ChainKey [sha256.Size]byte

// ChainKeyOf names a presented certificate list (raw DER, leaf first) and
// the peer name it is verified for ("" where none is checked, as for client
// chains). The count, each certificate and the name are length-prefixed, so
// no two different (list, name) pairs share an encoding.
func ChainKeyOf(raw [][]byte, name string) ChainKey {
	h := sha256.New()
	var n [4]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	binary.BigEndian.PutUint32(n[:], uint32(len(raw)))
	h.Write(n[:])
	for _, der := range raw {
		field(der)
	}
	field([]byte(name))
	var k ChainKey
	h.Sum(k[:0])
	return k
}

// Window is the span in which every certificate of a chain is valid, with
// x509's bounds: valid from NotBefore through NotAfter, both included.
type Window struct{ NotBefore, NotAfter time.Time }

// ChainWindow intersects the validity of every certificate in chain.
func ChainWindow(chain []*x509.Certificate) Window {
	var v Window
	for i, c := range chain {
		if i == 0 || c.NotBefore.After(v.NotBefore) {
			v.NotBefore = c.NotBefore
		}
		if i == 0 || c.NotAfter.Before(v.NotAfter) {
			v.NotAfter = c.NotAfter
		}
	}
	return v
}

// Contains reports whether t is inside the span.
func (v Window) Contains(t time.Time) bool {
	return !t.Before(v.NotBefore) && !t.After(v.NotAfter)
}

// verdict is what one successful x509 verification found: the chains, in
// the order Verify returned them, and the validity of each.
type verdict struct {
	chains  [][]*x509.Certificate
	windows []Window
}

func newVerdict(chains [][]*x509.Certificate) *verdict {
	v := &verdict{chains: chains, windows: make([]Window, len(chains))}
	for i, c := range chains {
		v.windows[i] = ChainWindow(c)
	}
	return v
}

// at returns the chains still valid at t, or false when the first chain is
// not: outside its window a fresh Verify might decide differently (another
// certificate expired or not yet valid), so the verdict must not be reused.
func (v *verdict) at(t time.Time) ([][]*x509.Certificate, bool) {
	if len(v.windows) == 0 || !v.windows[0].Contains(t) {
		return nil, false
	}
	for i := 1; i < len(v.windows); i++ {
		if !v.windows[i].Contains(t) {
			return v.validAt(t), true
		}
	}
	return v.chains, true // the common case: no copy
}

func (v *verdict) validAt(t time.Time) [][]*x509.Certificate {
	var out [][]*x509.Certificate
	for i, w := range v.windows {
		if w.Contains(t) {
			out = append(out, v.chains[i])
		}
	}
	return out
}

// ChainCache maps presented certificate lists to successful verifications.
// It never holds a failure: a rejected chain is verified (and rejected)
// again every time. Safe for concurrent handshakes.
type ChainCache struct {
	max int

	mu      sync.Mutex
	entries map[ChainKey]*verdict

	hits, misses atomic.Uint64
}

// NewChainCache returns a cache holding at most max chains, so a peer that
// presents endless distinct chains (extra certificates can be appended to a
// valid chain at will) cannot grow memory.
func NewChainCache(max int) *ChainCache {
	return &ChainCache{max: max, entries: make(map[ChainKey]*verdict)}
}

// Get returns the chains cached for k that are valid at now, or false when
// the first of them is not (then verify afresh).
func (c *ChainCache) Get(k ChainKey, now time.Time) ([][]*x509.Certificate, bool) {
	c.mu.Lock()
	v := c.entries[k]
	c.mu.Unlock()
	if v != nil {
		if chains, ok := v.at(now); ok {
			c.hits.Add(1)
			return chains, true
		}
	}
	c.misses.Add(1)
	return nil, false
}

// Put records the chains a successful x509 Verify of k's certificates
// returned. When full it drops one entry first: whichever map iteration
// yields, which Go randomises. That is cheap and, unlike LRU, needs no
// bookkeeping on the hit path; a miss only costs one Verify.
func (c *ChainCache) Put(k ChainKey, chains [][]*x509.Certificate) {
	v := newVerdict(chains)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		for old := range c.entries {
			delete(c.entries, old)
			break
		}
	}
	c.entries[k] = v
}

// Len is the number of chains held.
func (c *ChainCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Counts returns the hits and misses of Get so far.
func (c *ChainCache) Counts() (hits, misses uint64) { return c.hits.Load(), c.misses.Load() }
