package certs

import (
	"crypto/x509"
	"testing"
	"time"
)

// stub is a certificate as the cache sees one: only its validity matters.
func stub(notBefore, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{NotBefore: notBefore, NotAfter: notAfter}
}

func TestChainKeyIsInjective(t *testing.T) {
	a := ChainKeyOf([][]byte{[]byte("ab"), []byte("c")}, "")
	b := ChainKeyOf([][]byte{[]byte("a"), []byte("bc")}, "")
	c := ChainKeyOf([][]byte{[]byte("abc")}, "")
	if a == b || a == c || b == c {
		t.Fatal("different certificate lists share a key")
	}
}

func TestChainCacheBounded(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	leaf := stub(now.Add(-time.Hour), now.Add(24*time.Hour))
	ca := stub(now.Add(-48*time.Hour), now.Add(365*24*time.Hour))
	chains := [][]*x509.Certificate{{leaf, ca}}
	c := NewChainCache(4)
	for i := range 10 {
		c.Put(ChainKeyOf([][]byte{{byte(i)}}, ""), chains)
	}
	if n := c.Len(); n != 4 {
		t.Fatalf("cache holds %d entries, bound 4", n)
	}
	k := ChainKeyOf([][]byte{{9}}, "")
	if _, ok := c.Get(k, time.Now()); !ok {
		t.Fatal("latest entry missing")
	}
	w := ChainWindow(chains[0]) // the leaf's and the CA's validity intersected
	if w.NotAfter.After(leaf.NotAfter) || w.NotBefore.Before(leaf.NotBefore) {
		t.Fatalf("window %v wider than the leaf's", w)
	}
	if _, ok := c.Get(k, w.NotAfter.Add(time.Second)); ok {
		t.Fatal("verdict used after the chain expired")
	}
	if _, ok := c.Get(k, w.NotBefore.Add(-time.Second)); ok {
		t.Fatal("verdict used before the chain was valid")
	}
	if _, ok := c.Get(k, w.NotAfter); !ok {
		t.Fatal("verdict refused at NotAfter, which x509 still accepts")
	}
}

// The chains a hit returns are those valid now, as Verify would find.
func TestVerdictDropsExpiredChains(t *testing.T) {
	now := time.Now()
	leaf := stub(now.Add(-time.Hour), now.Add(24*time.Hour))
	long, short := stub(now.Add(-time.Hour), now.Add(48*time.Hour)), stub(now.Add(-time.Hour), now.Add(time.Minute))
	v := newVerdict([][]*x509.Certificate{{leaf, long}, {leaf, short}})
	if chains, ok := v.at(now); !ok || len(chains) != 2 {
		t.Fatalf("now: %d chains, %v", len(chains), ok)
	}
	if chains, ok := v.at(now.Add(time.Hour)); !ok || len(chains) != 1 || chains[0][1] != long {
		t.Fatalf("later: %d chains, %v", len(chains), ok)
	}
	if _, ok := (&verdict{}).at(now); ok {
		t.Fatal("empty verdict used")
	}
}
