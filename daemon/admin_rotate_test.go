package daemon_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kmipd/kmipd/admin"
	"github.com/kmipd/kmipd/daemon"
)

// TestAdminRotateMKEK: an MKEK rotation under concurrent clients fails no
// request, every object reads byte for byte afterwards, and a second
// rotation while one runs is refused.
func TestAdminRotateMKEK(t *testing.T) {
	e := startAdmin(t)
	const owners = 3
	seedKeys(t, e.d, owners, 5)
	before := snapshotKeys(t, e.d, owners)
	cl := startLoad(t.Context(), e.d, owners)
	time.Sleep(20 * time.Millisecond)
	raw, err := admin.Call(t.Context(), e.c.Admin.Socket, "rotate-mkek", daemon.RotateMasterArgs{}, nil, nil)
	failed, firstErr := cl.stop()
	if err != nil {
		t.Fatal(err)
	}
	if failed != 0 {
		t.Fatalf("%d requests failed during the rotation, e.g. %v", failed, firstErr)
	}
	var res daemon.RotateMasterResult
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	if res.To != e.c.HSM.MKEKLabel+"/gen-2" || res.Entries < owners || res.Retired != "disabled" {
		t.Fatalf("result: %+v", res)
	}
	after := snapshotKeys(t, e.d, owners)
	for k, v := range before {
		if string(after[k]) != string(v) {
			t.Fatalf("%s changed or unreadable after the rotation", k)
		}
	}
	// Resuming a rotation that is not under way with a label that names
	// another target is refused, nothing changed.
	if _, err := admin.Call(t.Context(), e.c.Admin.Socket, "rotate-mkek", daemon.RotateMasterArgs{Label: res.To}, nil, nil); err == nil {
		t.Fatal("rotation to the current MKEK accepted")
	}
}
