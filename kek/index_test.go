package kek

import (
	"bytes"
	"context"
	"testing"

	"github.com/kmipd/kmipd/kek/kektest"
)

func TestBlindIndex(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, kektest.NewMasterKeys(), Config{})
	terms := [][]byte{[]byte("Name\x00a"), []byte("Name\x00b"), []byte("Name\x00a")}

	// No pKEK: no objects, nothing to index, and none is created.
	if tags, err := f.k.BlindIndex(ctx, "alice", terms); tags != nil || err != nil {
		t.Fatalf("BlindIndex before any pKEK = %x, %v; want nil, nil", tags, err)
	}
	if f.mk.random.Load() != 0 || f.mk.wrap.Load() != 0 {
		t.Fatalf("BlindIndex created a pKEK")
	}
	f.seal("alice", "u", "x")
	f.seal("bob", "u", "x")
	a, err := f.k.BlindIndex(ctx, "alice", terms)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 3 || len(a[0]) != IndexTagLen || !bytes.Equal(a[0], a[2]) || bytes.Equal(a[0], a[1]) {
		t.Fatalf("tags = %x: want equal terms to give equal tags of %d bytes, distinct ones distinct", a, IndexTagLen)
	}
	for _, tag := range a {
		if bytes.Contains(tag, []byte("Name")) {
			t.Fatalf("tag %x holds the term", tag)
		}
	}
	// Another owner's tags are unrelated.
	b, err := f.k.BlindIndex(ctx, "bob", terms)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a[0], b[0]) {
		t.Fatalf("two owners got the same tag %x", a[0])
	}
	// A cached owner costs no HSM call; after an eviction the pKEK is
	// unwrapped again and gives the same tags (the index stays valid).
	unwraps := f.mk.unwrap.Load()
	if _, err := f.k.BlindIndex(ctx, "alice", terms); err != nil {
		t.Fatal(err)
	}
	if n := f.mk.unwrap.Load(); n != unwraps {
		t.Fatalf("BlindIndex of a cached owner unwrapped (%d -> %d)", unwraps, n)
	}
	f.k.Evict("alice")
	again, err := f.k.BlindIndex(ctx, "alice", terms)
	if err != nil {
		t.Fatal(err)
	}
	if f.mk.unwrap.Load() != unwraps+1 || !bytes.Equal(again[0], a[0]) {
		t.Fatalf("after an eviction: %d unwraps, tag %x; want %d and %x", f.mk.unwrap.Load(), again[0], unwraps+1, a[0])
	}
	// Another Keyring (another replica, a restart) derives the same tags.
	other := f.keyring(f.mk, Config{})
	o, err := other.BlindIndex(ctx, "alice", terms)
	if err != nil || !bytes.Equal(o[1], a[1]) {
		t.Fatalf("another Keyring over the same store: %x, %v; want %x", o, err, a[1])
	}
}
