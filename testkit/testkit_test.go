package testkit_test

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/testkit"
)

// The kit against plain SoftHSM: every client method, identities as owners,
// readiness and metrics.
func TestDevRoundTrip(t *testing.T) {
	d := testkit.StartDev(t, testkit.DevOptions{MaxSessions: 3})
	if !d.Ready() {
		t.Fatal("not ready after StartDev")
	}
	c := d.Client(t)
	uid, err := c.Create()
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	key, err := c.Get(uid)
	if err != nil || len(key) != 32 {
		t.Fatalf("Get: %d bytes, %v", len(key), err)
	}
	secret := []byte("correct horse battery staple")
	sid, err := c.Register(secret)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if got, err := c.Get(sid); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Get secret: %q, %v", got, err)
	}

	other := d.NewIdentity(t, "other")
	if other.Owner == c.Owner {
		t.Fatal("a new identity has the dev client's owner id")
	}
	if _, err := other.Get(uid); !testkit.IsReason(err, kmip14.ResultReasonItemNotFound) {
		t.Fatalf("another owner's Get: %v, want Item Not Found", err)
	}
	var kerr *testkit.Error
	if err := other.Destroy(uid); !errors.As(err, &kerr) ||
		kerr.ResultStatus != kmip14.ResultStatusOperationFailed || kerr.ResultReason != kmip14.ResultReasonItemNotFound {
		t.Fatalf("another owner's Destroy: %#v, want an Item Not Found *testkit.Error", err)
	}

	if err := c.Destroy(uid); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if _, err := c.Get(uid); !testkit.IsReason(err, kmip14.ResultReasonItemNotFound) {
		t.Fatalf("Get after Destroy: %v", err)
	}
	if v := d.Metric("kmipd_hsm_sessions_max"); v != 3 {
		t.Fatalf("kmipd_hsm_sessions_max = %v, want 3", v)
	}
	if v := d.Metric("kmipd_requests_total", "operation", "Create"); !(v >= 1) {
		t.Fatalf("Create requests = %v", v)
	}
	// Create, Register and Destroy each wrote through the group committer.
	if w, c := d.Metric("kmipd_storage_committed_writes_total"), d.Metric("kmipd_storage_commits_total"); !(w >= 3 && c >= 1 && c <= w) {
		t.Fatalf("storage: %v writes in %v commits, want ≥ 3 writes in 1..writes commits", w, c)
	}
	if v := d.Metric("kmipd_no_such_metric"); !math.IsNaN(v) {
		t.Fatalf("missing metric = %v, want NaN", v)
	}
	pid := d.PID()
	d.Stop()
	if d.Alive() || d.Ready() {
		t.Fatalf("pid %d still serving after Stop", pid)
	}
}
