package daemon_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kmipd/kmipd/admin"
	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/kek"
)

// rotEnv is a daemon whose HSM and build the test can restart.
type rotEnv struct {
	c  *daemon.Config
	hc hsm.Config
	h  *hsm.HSM
	d  *daemon.Daemon
}

func startRot(t *testing.T) *rotEnv {
	t.Helper()
	c, hc := testConfig(t)
	adminSocket(t, c)
	e := &rotEnv{c: c, hc: hc}
	e.open(t)
	return e
}

// open opens the HSM with e.hc's labels and builds the daemon on e.c.
func (e *rotEnv) open(t *testing.T) {
	t.Helper()
	e.h, e.d = buildOnHSM(t, e.c, e.hc)
}

// restart closes the daemon and the HSM and opens both again.
func (e *rotEnv) restart(t *testing.T) {
	t.Helper()
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	e.h.Close()
	e.open(t)
}

// records is every pKEK record and the rotation record, as stored.
func records(t *testing.T, st daemon.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range []string{kek.RecordPrefix, "meta/rotation"} {
		if err := st.List(t.Context(), p, func(k string, v []byte) error {
			out[k] = string(v)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func sameKeys(t *testing.T, what string, before, after map[string][]byte) {
	t.Helper()
	if len(after) != len(before) {
		t.Fatalf("%s: %d objects, want %d", what, len(after), len(before))
	}
	for k, v := range before {
		if string(after[k]) != string(v) {
			t.Fatalf("%s: %s changed or unreadable", what, k)
		}
	}
}

func rotateCall(t *testing.T, e *rotEnv, op string, args daemon.RotateMasterArgs) (daemon.RotateMasterResult, error) {
	t.Helper()
	var res daemon.RotateMasterResult
	raw, err := admin.Call(t.Context(), e.c.Admin.Socket, op, args, nil, nil)
	if err == nil {
		err = json.Unmarshal(raw, &res)
	}
	return res, err
}

// TestAdminRotateMKEKInterruptedResumes: a rotation cancelled after one
// owner leaves a rotation record; every object reads mid-rotation, also
// after a restart; a resume naming another label is refused with nothing
// changed; running it again finishes it; and a kmipd restarted with only
// the new label configured reads every object byte for byte.
func TestAdminRotateMKEKInterruptedResumes(t *testing.T) {
	e := startRot(t)
	const owners = 4
	seedKeys(t, e.d, owners, 3)
	before := snapshotKeys(t, e.d, owners)
	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	_, err := e.d.RotateMasterForTest(ctx, "mkek", daemon.RotateMasterArgs{}, func(done, total int) {
		if calls++; done == 1 {
			cancel()
		}
	})
	cancel()
	if err == nil {
		t.Fatal("a cancelled rotation reported success")
	}
	if calls != 1 {
		t.Fatalf("rotation went on after cancel: %d progress calls", calls)
	}
	mid := records(t, e.d.Store())
	if _, ok := mid["meta/rotation"]; !ok {
		t.Fatal("no rotation record after an interrupted rotation")
	}
	sameKeys(t, "mid-rotation", before, snapshotKeys(t, e.d, owners))
	target := e.c.HSM.MKEKLabel + "/gen-2"
	wantStatus(t, e, target, "rotate-mkek "+e.c.HSM.MKEKLabel+" -> "+target)

	e.restart(t)
	sameKeys(t, "mid-rotation after restart", before, snapshotKeys(t, e.d, owners))
	wantStatus(t, e, target, "rotate-mkek "+e.c.HSM.MKEKLabel+" -> "+target)
	if err := e.h.Check(t.Context()); err != nil {
		t.Fatalf("HSM check mid-rotation: %v", err)
	}
	// Wrong target on resume: refused, nothing changed, no key made.
	if _, err := rotateCall(t, e, "rotate-mkek", daemon.RotateMasterArgs{Label: "elsewhere"}); err == nil || !strings.Contains(err.Error(), "unfinished") {
		t.Fatalf("resume with another -label: %v", err)
	}
	if _, err := rotateCall(t, e, "rotate-hmac", daemon.RotateMasterArgs{}); err == nil {
		t.Fatal("rotate-hmac accepted while a rotate-mkek is unfinished")
	}
	if got := records(t, e.d.Store()); len(got) != len(mid) {
		t.Fatalf("refused resume changed records: %d, want %d", len(got), len(mid))
	} else {
		for k, v := range mid {
			if got[k] != v {
				t.Fatalf("refused resume changed %s", k)
			}
		}
	}
	if have, err := e.h.HasMasterKey(t.Context(), hsm.KindMKEK, "elsewhere"); err != nil || have {
		t.Fatalf("refused resume made a key: %v %v", have, err)
	}

	res, err := rotateCall(t, e, "rotate-mkek", daemon.RotateMasterArgs{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.To != e.c.HSM.MKEKLabel+"/gen-2" || res.Entries < 1 || res.Entries >= owners {
		t.Fatalf("resumed result: %+v", res)
	}
	if _, ok := records(t, e.d.Store())["meta/rotation"]; ok {
		t.Fatal("rotation record left after the rotation finished")
	}
	sameKeys(t, "after the resumed rotation", before, snapshotKeys(t, e.d, owners))
	wantStatus(t, e, target, "")
	// The configured MKEK is retired online: no longer usable, and the
	// HSM's self-check follows the new key.
	if res.Retired != "disabled" {
		t.Fatalf("old MKEK %s", res.Retired)
	}
	if _, err := e.h.WrapLabel(t.Context(), res.From, []byte("probe-probe-probe-probe-probe-32"), nil); err == nil {
		t.Fatal("the retired MKEK still wraps")
	}
	if err := e.h.Check(t.Context()); err != nil {
		t.Fatalf("HSM check after the rotation: %v", err)
	}

	// Only the new MKEK configured: every record names it, so all open.
	e.c.HSM.MKEKLabel, e.hc.MKEKLabel = res.To, res.To
	e.restart(t)
	sameKeys(t, "restarted on the new MKEK", before, snapshotKeys(t, e.d, owners))
	if _, err := create(t.Context(), e.d, caller(owners)); err != nil {
		t.Fatal(err)
	}
}

// TestAdminRotationBusy: while a rotation runs (held at an owner's gate),
// a second rotate-mkek and a rotate-hmac are refused, and status shows it.
func TestAdminRotationBusy(t *testing.T) {
	e := startRot(t)
	for i := 0; i < 2; i++ {
		if _, err := create(t.Context(), e.d, caller(i)); err != nil {
			t.Fatal(err)
		}
	}
	leave := e.d.Keyring().Enter(caller(0).Identity)
	done := make(chan error, 1)
	go func() {
		_, err := admin.Call(t.Context(), e.c.Admin.Socket, "rotate-mkek", daemon.RotateMasterArgs{}, nil, nil)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		raw, err := admin.Call(t.Context(), e.c.Admin.Socket, "status", nil, nil, nil)
		if err != nil {
			leave()
			t.Fatal(err)
		}
		var s admin.Status
		if err := json.Unmarshal(raw, &s); err != nil {
			leave()
			t.Fatal(err)
		}
		if s.Rotation != "" {
			break
		}
		if time.Now().After(deadline) {
			leave()
			t.Fatal("status never showed the rotation")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, err1 := rotateCall(t, e, "rotate-mkek", daemon.RotateMasterArgs{})
	_, err2 := rotateCall(t, e, "rotate-hmac", daemon.RotateMasterArgs{})
	leave()
	if err := <-done; err != nil {
		t.Fatalf("the first rotation: %v", err)
	}
	for _, err := range []error{err1, err2} {
		if err == nil || !strings.Contains(err.Error(), admin.ErrBusy.Error()) {
			t.Fatalf("second rotation while one runs: %v", err)
		}
	}
}

// TestAdminRotateHMAC: an HMAC-key rotation under concurrent clients fails
// no request and every object reads byte for byte afterwards.
func TestAdminRotateHMAC(t *testing.T) {
	e := startRot(t)
	const owners = 3
	seedKeys(t, e.d, owners, 4)
	before := snapshotKeys(t, e.d, owners)
	cl := startLoad(t.Context(), e.d, owners)
	time.Sleep(20 * time.Millisecond)
	res, err := rotateCall(t, e, "rotate-hmac", daemon.RotateMasterArgs{})
	failed, firstErr := cl.stop()
	if err != nil {
		t.Fatal(err)
	}
	if failed != 0 {
		t.Fatalf("%d requests failed during the rotation, e.g. %v", failed, firstErr)
	}
	if res.Kind != "hmac" || res.To != e.c.HSM.HMACLabel+"/gen-2" || res.Entries < owners || res.Retired != "disabled" {
		t.Fatalf("result: %+v", res)
	}
	if _, err := e.h.MACLabel(t.Context(), res.From, []byte("probe")); err == nil {
		t.Fatal("the retired HMAC key still signs")
	}
	if err := e.h.Check(t.Context()); err != nil {
		t.Fatalf("HSM check after the rotation: %v", err)
	}
	after := snapshotKeys(t, e.d, owners)
	for k, v := range before {
		if string(after[k]) != string(v) {
			t.Fatalf("%s changed or unreadable after the rotation", k)
		}
	}
	e.c.HSM.HMACLabel, e.hc.HMACLabel = res.To, res.To
	e.restart(t)
	sameKeys(t, "restarted on the new HMAC key", after, snapshotKeys(t, e.d, owners))
}

func wantStatus(t *testing.T, e *rotEnv, mkek, pending string) {
	t.Helper()
	raw, err := admin.Call(t.Context(), e.c.Admin.Socket, "status", nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var s admin.Status
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	if s.MKEKLabel != mkek || s.Pending != pending {
		t.Fatalf("status: MKEK %q pending %q, want %q and %q", s.MKEKLabel, s.Pending, mkek, pending)
	}
}

// TestAdminRotateMKEKRetiresOnline: the first rotation destroys the
// configured MKEK while kmipd runs, a second one (no restart between)
// disables the first's target, and every object reads byte for byte
// throughout and after a restart on the newest label.
func TestAdminRotateMKEKRetiresOnline(t *testing.T) {
	e := startRot(t)
	const owners = 2
	seedKeys(t, e.d, owners, 3)
	before := snapshotKeys(t, e.d, owners)
	first := e.c.HSM.MKEKLabel
	res, err := rotateCall(t, e, "rotate-mkek", daemon.RotateMasterArgs{DestroyOld: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Retired != "destroyed" {
		t.Fatalf("result: %+v", res)
	}
	if have, err := e.h.HasMasterKey(t.Context(), hsm.KindMKEK, first); err != nil || have {
		t.Fatalf("configured MKEK still on the token after -destroy-old: %v %v", have, err)
	}
	if err := e.h.Check(t.Context()); err != nil {
		t.Fatalf("HSM check without the configured MKEK: %v", err)
	}
	sameKeys(t, "after the first rotation", before, snapshotKeys(t, e.d, owners))
	if _, err := create(t.Context(), e.d, caller(owners)); err != nil {
		t.Fatal(err) // a new owner's pKEK goes under the new MKEK
	}
	before = snapshotKeys(t, e.d, owners+1)

	res2, err := rotateCall(t, e, "rotate-mkek", daemon.RotateMasterArgs{})
	if err != nil {
		t.Fatal(err)
	}
	if res2.From != res.To || res2.To != first+"/gen-3" || res2.Retired != "disabled" || res2.Entries != owners+1 {
		t.Fatalf("second result: %+v", res2)
	}
	sameKeys(t, "after the second rotation", before, snapshotKeys(t, e.d, owners+1))
	wantStatus(t, e, res2.To, "")

	e.c.HSM.MKEKLabel, e.hc.MKEKLabel = res2.To, res2.To
	e.restart(t)
	sameKeys(t, "restarted on the newest MKEK", before, snapshotKeys(t, e.d, owners+1))
}
