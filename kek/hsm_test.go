package kek

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/hsm/hsmtest"
)

var _ MasterKeys = (*hsm.HSM)(nil)

func openSoftHSM(t testing.TB) *hsm.HSM {
	t.Helper()
	cfg := hsmtest.SoftHSM(t)
	h, err := hsm.Open(context.Background(), cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("hsm.Open: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestKeyringSoftHSM runs the whole suite with SoftHSM2 as the master keys.
func TestKeyringSoftHSM(t *testing.T) { exerciseKeyring(t, openSoftHSM(t)) }

// TestCachedOwnerMakesNoPKCS11Calls is the steady-state promise: once an
// owner's pKEK is cached, Seal/Open never touch the HSM.
func TestCachedOwnerMakesNoPKCS11Calls(t *testing.T) {
	h := openSoftHSM(t)
	f := newFixture(t, h, Config{})
	ctx := context.Background()
	f.seal("alice", "uid", "warm")
	before := h.Stats().Calls
	for range 1000 {
		s, err := f.k.Seal(ctx, "alice", []byte("uid"), []byte("payload"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.k.Open(ctx, "alice", []byte("uid"), s); err != nil {
			t.Fatal(err)
		}
	}
	if after := h.Stats().Calls; after != before {
		t.Fatalf("1000 cached Seal/Open made %d PKCS#11 calls, want 0", after-before)
	}
	// And a cold owner does go to the HSM, so the counter is live.
	f.k.Evict("alice")
	if _, err := f.k.Seal(ctx, "alice", []byte("uid"), nil); err != nil {
		t.Fatal(err)
	}
	if h.Stats().Calls == before {
		t.Fatal("an uncached owner made no PKCS#11 calls: is Stats().Calls counting?")
	}
}

// TestClosedHSMPassesThrough: a real hsm.Error reaches the caller wrapped in a
// kek.Error that keeps its client text, states General Failure (the HSM is
// unavailable, the client did nothing wrong) and is not an integrity alarm.
func TestClosedHSMPassesThrough(t *testing.T) {
	h := openSoftHSM(t)
	f := newFixture(t, h, Config{})
	f.seal("alice", "uid", "x")
	f.k.Evict("alice")
	h.Close()
	ctx := context.Background()
	for _, owner := range []string{"alice", "bob"} { // load path and create path
		_, err := f.k.Seal(ctx, owner, nil, nil)
		var he *hsm.Error
		var ke *Error
		if !errors.As(err, &he) || !errors.As(err, &ke) {
			t.Fatalf("%s: %v does not wrap both hsm.Error and kek.Error", owner, err)
		}
		if ke.ResultReason() != kmip14.ResultReasonGeneralFailure || ke.ClientMessage() != he.ClientMessage() ||
			he.ClientMessage() != "HSM unavailable" {
			t.Fatalf("%s: kek.Error says %v/%q, hsm.Error (class %s) %q", owner,
				ke.ResultReason(), ke.ClientMessage(), he.Class, he.ClientMessage())
		}
	}
	if strings.Contains(f.logs.String(), "integrity") {
		t.Fatalf("a closed HSM was logged as tampering:\n%s", f.logs.String())
	}
}
