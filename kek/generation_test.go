package kek

import (
	"context"
	"testing"
	"time"
)

// KeyGeneration names one cached unwrapping: stable while it is used,
// different after every reload, absent while nothing fresh is cached, and
// never a reason to call the HSM.
func testKeyGeneration(t *testing.T, mk MasterKeys) {
	f := newFixture(t, mk, Config{CacheTTL: time.Minute})
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	f.k.cache.now = clk.now
	ctx := context.Background()
	if _, ok := f.k.KeyGeneration("alice"); ok {
		t.Fatal("a generation before the owner's first use")
	}
	s := f.seal("alice", "uid", "generation")
	g1, ok := f.k.KeyGeneration("alice")
	if !ok {
		t.Fatal("no generation with the pKEK cached")
	}
	if _, err := f.k.Open(ctx, "alice", []byte("uid"), s); err != nil {
		t.Fatal(err)
	}
	if g, ok := f.k.KeyGeneration("alice"); !ok || g != g1 {
		t.Fatalf("generation %d, %v after a cache hit; want %d", g, ok, g1)
	}
	if _, ok := f.k.KeyGeneration("bob"); ok {
		t.Fatal("a generation for an owner never used")
	}

	f.k.Evict("alice")
	if _, ok := f.k.KeyGeneration("alice"); ok {
		t.Fatal("a generation after Evict")
	}
	if _, err := f.k.Open(ctx, "alice", []byte("uid"), s); err != nil {
		t.Fatal(err)
	}
	g2, ok := f.k.KeyGeneration("alice")
	if !ok || g2 == g1 {
		t.Fatalf("generation %d, %v after a reload; want one other than %d", g2, ok, g1)
	}

	clk.add(time.Minute) // the TTL: expired
	unwraps := f.mk.unwrap.Load()
	if _, ok := f.k.KeyGeneration("alice"); ok {
		t.Fatal("a generation for an expired pKEK")
	}
	if f.mk.unwrap.Load() != unwraps {
		t.Fatal("KeyGeneration unwrapped the pKEK")
	}
	if _, err := f.k.Open(ctx, "alice", []byte("uid"), s); err != nil {
		t.Fatal(err)
	}
	if g3, ok := f.k.KeyGeneration("alice"); !ok || g3 == g2 || g3 == g1 {
		t.Fatalf("generation %d, %v after the TTL reload; want a new one", g3, ok)
	}
}
