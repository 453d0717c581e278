package kek

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/kmipd/kmipd/kek/kektest"
	"github.com/kmipd/kmipd/storage"
)

// TestStaleReplica: two keyrings over one store (two replicas) and one
// rotating owner's pKEK. The other's cache still holds the old generation:
// the rotation marks that generation retired (its Fence key now exists, a
// new generation's does not), and Refresh makes the other keyring read
// the record again, after which it computes the rotating keyring's index
// tags and seals under the new generation.
func TestStaleReplica(t *testing.T) {
	ctx := context.Background()
	mk, st := kektest.NewMasterKeys(), storage.NewMemory()
	const owner = "alice"
	k1, k2 := New(mk, st, Config{}, nil), New(mk, st, Config{}, nil)
	terms := [][]byte{[]byte("Name\x00n")}
	before, err := k2.Seal(ctx, owner, []byte("u"), []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	f0, err := k2.Fence(owner, before)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, f0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a generation in use is marked retired: %v", err)
	}
	if err := k2.Refresh(ctx, owner); err != nil {
		t.Fatal(err)
	}
	if s := k2.Stats(); s.Evictions != 0 {
		t.Fatalf("Refresh evicted a current pKEK: %+v", s)
	}
	stale, err := k2.BlindIndex(ctx, owner, terms)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := k1.RotatePKEK(ctx, owner, Sealed{Prefix: "obj/alice/", AAD: func(string) []byte { return nil }}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, f0); err != nil {
		t.Fatalf("the retired generation is not marked: %v", err)
	}
	want, err := k1.BlindIndex(ctx, owner, terms)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := k2.BlindIndex(ctx, owner, terms); !bytes.Equal(got[0], stale[0]) || bytes.Equal(got[0], want[0]) {
		t.Fatal("the stale keyring's tags are not the old generation's (the test shows nothing)")
	}
	if err := k2.Refresh(ctx, owner); err != nil {
		t.Fatal(err)
	}
	if got, err := k2.BlindIndex(ctx, owner, terms); err != nil || !bytes.Equal(got[0], want[0]) {
		t.Fatalf("after Refresh: tags differ from the rotating keyring's (%v)", err)
	}
	after, err := k2.Seal(ctx, owner, []byte("u"), []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := SealedGeneration(after); g != 1 {
		t.Fatalf("after Refresh: sealed under generation %d, want 1", g)
	}
	f1, _ := k2.Fence(owner, after)
	if _, err := st.Get(ctx, f1); !errors.Is(err, storage.ErrNotFound) || f1 == f0 {
		t.Fatalf("the current generation's fence %q is present or the old one's: %v", f1, err)
	}
}

// TestWriteTagsDuringRotation: while a rotation holds both generations,
// BlindIndex answers NoIndex (lookups scan) but WriteTags answers under
// the new generation, the tags the rebuilt index will hold.
func TestWriteTagsDuringRotation(t *testing.T) {
	ctx := context.Background()
	mk, st := kektest.NewMasterKeys(), storage.NewMemory()
	const owner = "alice"
	k := New(mk, st, Config{}, nil)
	terms := [][]byte{[]byte("Name\x00n")}
	if _, err := k.Seal(ctx, owner, []byte("u"), []byte("secret")); err != nil {
		t.Fatal(err)
	}
	var res RotateResult
	if _, err := k.beginRotation(ctx, owner, &res); err != nil {
		t.Fatal(err)
	}
	if _, err := k.BlindIndex(ctx, owner, terms); err == nil {
		t.Fatal("BlindIndex answered while the pKEK rotates")
	}
	during, err := k.WriteTags(ctx, owner, terms)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.RotatePKEK(ctx, owner, Sealed{Prefix: "obj/alice/", AAD: func(string) []byte { return nil }}, nil); err != nil {
		t.Fatal(err)
	}
	after, err := k.BlindIndex(ctx, owner, terms)
	if err != nil || !bytes.Equal(during[0], after[0]) {
		t.Fatalf("WriteTags during the rotation differ from the new generation's tags (%v)", err)
	}
}
