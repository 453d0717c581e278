package daemon_test

import (
	"strings"
	"testing"

	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/hsm/hsmtest"
	"github.com/kmipd/kmipd/storage"
	"github.com/kmipd/kmipd/tests/hostile"
)

// TestRestartOnStaleLabelsAfterDestroyOld: after rotate-mkek and
// rotate-hmac with -destroy-old, a kmipd whose hsm block still names the
// destroyed keys starts on the keys the store records, says so, and reads
// every object byte for byte. On a token without the store's keys, and on
// a store without the record, it names what it found and does not send
// the operator to `kmipd hsm init`.
func TestRestartOnStaleLabelsAfterDestroyOld(t *testing.T) {
	e := startRot(t)
	const owners = 2
	seedKeys(t, e.d, owners, 3)
	before := snapshotKeys(t, e.d, owners)
	oldMKEK, oldHMAC := e.c.HSM.MKEKLabel, e.c.HSM.HMACLabel
	m, err := rotateCall(t, e, "rotate-mkek", daemon.RotateMasterArgs{DestroyOld: true})
	if err != nil {
		t.Fatal(err)
	}
	h, err := rotateCall(t, e, "rotate-hmac", daemon.RotateMasterArgs{DestroyOld: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct {
		kind  hsm.KeyKind
		label string
	}{{hsm.KindMKEK, oldMKEK}, {hsm.KindHMAC, oldHMAC}} {
		if have, err := e.h.HasMasterKey(t.Context(), k.kind, k.label); err != nil || have {
			t.Fatalf("%q still on the token after -destroy-old: %v %v", k.label, have, err)
		}
	}
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	e.h.Close()

	// kmipd.hcl unchanged: Build opens the HSM itself, on the old labels.
	logs := &hostile.LogBuffer{}
	d, err := daemon.Build(t.Context(), e.c, daemon.NewLogger(e.c.Log, logs))
	if err != nil {
		t.Fatalf("restart on the old labels: %v\nlogs:\n%s", err, logs)
	}
	sameKeys(t, "restarted on the old labels", before, snapshotKeys(t, d, owners))
	if _, err := create(t.Context(), d, caller(owners)); err != nil {
		t.Fatal(err) // a new owner's pKEK goes under the store's keys
	}
	before = snapshotKeys(t, d, owners+1)
	for _, want := range []string{m.To, h.To, "using the store's", "mkek_generation=1", "hmac_generation=1"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("start-up logs do not say %q:\n%s", want, logs)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// And again, now that new records exist under the store's keys.
	d, err = daemon.Build(t.Context(), e.c, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameKeys(t, "second restart on the old labels", before, snapshotKeys(t, d, owners+1))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// Another token, holding keys under the configured (old) labels only.
	other := *e.c
	ohc := hsmtest.SoftHSM(t)
	other.HSM.TokenLabel = ohc.TokenLabel
	if d, err := daemon.Build(t.Context(), &other, nil); err == nil {
		d.Close()
		t.Fatal("started on a token without the store's master keys")
	} else if msg := err.Error(); !strings.Contains(msg, m.To) || !strings.Contains(msg, h.To) ||
		!strings.Contains(msg, "not both on this token") || strings.Contains(msg, "to create them") {
		t.Fatalf("error on a token without the store's keys: %v", err)
	}

	// A store without the record (kmipd before it, or one restored) whose
	// keys are missing: the error counts its owners instead.
	st, err := storage.OpenBadger(e.c.Storage.Path, storage.BadgerOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(t.Context(), "meta/master"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if d, err := daemon.Build(t.Context(), e.c, nil); err == nil {
		d.Close()
		t.Fatal("started without the configured master keys")
	} else if msg := err.Error(); !strings.Contains(msg, "pKEK records of 3 owners") || !strings.Contains(msg, "cannot open these records") {
		t.Fatalf("error without the store's record: %v", err)
	}
}
