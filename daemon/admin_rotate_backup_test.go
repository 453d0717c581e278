package daemon_test

import (
	"bytes"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/admin"
	"github.com/kmipd/kmipd/backup"
	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/storage"
)

// TestAdminBackupAfterRotateHMAC: a backup taken after an HMAC-key rotation
// names the new key and restores through an HSM configured with it; one
// still configured with the retired key is refused.
func TestAdminBackupAfterRotateHMAC(t *testing.T) {
	e := startRot(t)
	if _, err := create(t.Context(), e.d, caller(0)); err != nil {
		t.Fatal(err)
	}
	res, err := rotateCall(t, e, "rotate-hmac", daemon.RotateMasterArgs{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := admin.Call(t.Context(), e.c.Admin.Socket, "backup", nil, nil, &buf); err != nil {
		t.Fatal(err)
	}
	hdr, recs, err := backup.Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if hdr.HMACLabel != res.To {
		t.Fatalf("backup names HMAC key %q, want %q", hdr.HMACLabel, res.To)
	}
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	e.h.Close()
	restore := func(label string) (int, error) {
		hc := e.hc
		hc.HMACLabel = label
		h, err := hsm.Open(t.Context(), hc, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		st, err := storage.OpenBadger(t.TempDir(), storage.BadgerOptions{GCInterval: -1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		return backup.Restore(t.Context(), st, h, bytes.NewReader(buf.Bytes()))
	}
	if _, err := restore(res.From); err == nil {
		t.Fatal("restore through the retired HMAC key accepted")
	}
	if n, err := restore(res.To); err != nil || n != len(recs) {
		t.Fatalf("restore through the new HMAC key: %d of %d, %v", n, len(recs), err)
	}
}
