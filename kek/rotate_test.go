package kek

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/kmipd/kmipd/kek/kektest"
	"github.com/kmipd/kmipd/storage"
)

// TestRotatePKEKResumes: a rotation that stopped part-way (the record holds
// both generations, half the objects moved) is finished by a later call on
// a fresh Keyring (a restarted kmipd), and every object opens to what it
// held.
func TestRotatePKEKResumes(t *testing.T) {
	ctx := context.Background()
	mk, st := kektest.NewMasterKeys(), storage.NewMemory()
	const owner, prefix = "alice", "obj/alice/"
	recs := Sealed{Prefix: prefix, AAD: func(k string) []byte { return []byte(strings.TrimPrefix(k, prefix)) }}
	k := New(mk, st, Config{}, nil)
	want := map[string][]byte{}
	for i := 0; i < 70; i++ {
		uid := fmt.Sprintf("u%03d", i)
		pt := []byte("secret " + uid)
		sealed, err := k.Seal(ctx, owner, []byte(uid), pt)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Put(ctx, prefix+uid, sealed); err != nil {
			t.Fatal(err)
		}
		want[prefix+uid] = pt
	}
	// Crash after step 1 and one batch of step 2.
	var res RotateResult
	ks, err := k.beginRotation(ctx, owner, &res)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.resealBatch(ctx, owner, recs, ks, []string{prefix + "u000", prefix + "u001"}); err != nil {
		t.Fatal(err)
	}
	rec, _ := st.Get(ctx, storageKey(owner))
	if g, pending, err := RecordInfo(rec); err != nil || g != 1 || !pending {
		t.Fatalf("record mid-rotation: gen %d pending %v %v", g, pending, err)
	}
	// Objects open mid-rotation, whichever generation sealed them.
	k2 := New(mk, st, Config{}, nil)
	for key, pt := range want {
		v, _ := st.Get(ctx, key)
		got, err := k2.Open(ctx, owner, []byte(strings.TrimPrefix(key, prefix)), v)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%s mid-rotation: %v", key, err)
		}
	}
	res, err = k2.RotatePKEK(ctx, owner, recs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.From != 0 || res.To != 1 || res.Resealed != 68 {
		t.Fatalf("resumed rotation: %+v", res)
	}
	rec, _ = st.Get(ctx, storageKey(owner))
	if g, pending, err := RecordInfo(rec); err != nil || g != 1 || pending {
		t.Fatalf("record after: gen %d pending %v %v", g, pending, err)
	}
	k3 := New(mk, st, Config{}, nil)
	for key, pt := range want {
		v, _ := st.Get(ctx, key)
		if g, _ := SealedGeneration(v); g != 1 {
			t.Fatalf("%s still under generation %d", key, g)
		}
		got, err := k3.Open(ctx, owner, []byte(strings.TrimPrefix(key, prefix)), v)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%s after rotation: %v", key, err)
		}
	}
	// A record relabelled to another generation does not verify.
	es, _ := decodeRecord(rec)
	es[0].gen = 7
	bad, _ := encodeRecord(es)
	if err := VerifyRecord(ctx, mk, owner, bad); err == nil {
		t.Fatal("relabelled pKEK generation verified")
	}
	if err := VerifyRecord(ctx, mk, owner, rec); err != nil {
		t.Fatal(err)
	}
	// A second rotation while one runs is refused.
	k3.rotating[owner] = true
	if _, err := k3.RotatePKEK(ctx, owner, recs, nil); err != ErrRotationRunning {
		t.Fatalf("second rotation: %v", err)
	}
}
