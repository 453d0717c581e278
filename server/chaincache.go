package server

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
)

// defaultChainCacheSize bounds the verdicts one TLS configuration keeps.
// Clients are few (Barbican, PyKMIP, a handful of arrays); the bound only
// stops a client that presents endless distinct chains (extra certificates
// can be appended to a valid chain at will) from growing memory.
const defaultChainCacheSize = 4096

// chainKey names a presented certificate list by its exact bytes.
type chainKey [sha256.Size]byte

// chainKeyOf hashes the raw certificates, leaf first, each prefixed by its
// length so that no two different lists share an encoding.
func chainKeyOf(raw [][]byte) chainKey {
	h := sha256.New()
	var n [4]byte
	for _, der := range raw {
		binary.BigEndian.PutUint32(n[:], uint32(len(der)))
		h.Write(n[:])
		h.Write(der)
	}
	var k chainKey
	h.Sum(k[:0])
	return k
}

// validity is the span in which every certificate of a chain is valid, with
// x509's bounds: valid from NotBefore through NotAfter, both included.
type validity struct{ notBefore, notAfter time.Time }

func chainValidity(chain []*x509.Certificate) validity {
	var v validity
	for i, c := range chain {
		if i == 0 || c.NotBefore.After(v.notBefore) {
			v.notBefore = c.NotBefore
		}
		if i == 0 || c.NotAfter.Before(v.notAfter) {
			v.notAfter = c.NotAfter
		}
	}
	return v
}

func (v validity) contains(t time.Time) bool {
	return !t.Before(v.notBefore) && !t.After(v.notAfter)
}

// verdict is what one successful x509 verification found: the chains, in
// the order Verify returned them, and the validity of each.
type verdict struct {
	chains  [][]*x509.Certificate
	windows []validity
}

func newVerdict(chains [][]*x509.Certificate) *verdict {
	v := &verdict{chains: chains, windows: make([]validity, len(chains))}
	for i, c := range chains {
		v.windows[i] = chainValidity(c)
	}
	return v
}

// at returns the chains still valid at t, or false when the first chain is
// not: outside its window a fresh Verify might decide differently (another
// certificate expired or not yet valid), so the verdict must not be reused.
func (v *verdict) at(t time.Time) ([][]*x509.Certificate, bool) {
	if len(v.windows) == 0 || !v.windows[0].contains(t) {
		return nil, false
	}
	for i := 1; i < len(v.windows); i++ {
		if !v.windows[i].contains(t) {
			return v.validAt(t), true
		}
	}
	return v.chains, true // the common case: no copy
}

func (v *verdict) validAt(t time.Time) [][]*x509.Certificate {
	var out [][]*x509.Certificate
	for i, w := range v.windows {
		if w.contains(t) {
			out = append(out, v.chains[i])
		}
	}
	return out
}

// chainCache maps presented certificate lists to successful verdicts. It
// never holds a failure: a rejected chain is verified (and rejected) again
// every time. Safe for concurrent handshakes.
type chainCache struct {
	max int

	mu      sync.Mutex
	entries map[chainKey]*verdict

	hits, misses atomic.Uint64 // for tests
}

func newChainCache(max int) *chainCache {
	return &chainCache{max: max, entries: make(map[chainKey]*verdict)}
}

// get returns the cached chains for k if its verdict still holds at now.
func (c *chainCache) get(k chainKey, now time.Time) ([][]*x509.Certificate, bool) {
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

// put stores a verdict. When full it drops one entry first: whichever map
// iteration yields, which Go randomises. That is cheap and, unlike LRU,
// needs no bookkeeping on the hit path; a miss only costs one Verify.
func (c *chainCache) put(k chainKey, v *verdict) {
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

func (c *chainCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
