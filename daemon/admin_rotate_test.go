package daemon_test

import (
	"encoding/json"
	"sync/atomic"
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
	for i := 0; i < owners; i++ {
		for n := 0; n < 5; n++ {
			if _, err := create(t.Context(), e.d, caller(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := snapshotKeys(t, e.d, owners)
	stop := make(chan struct{})
	var failed atomic.Int64
	errs := make(chan error, 1)
	wg := load(t.Context(), e.d, owners, stop, &failed, errs)
	time.Sleep(20 * time.Millisecond)
	raw, err := admin.Call(t.Context(), e.c.Admin.Socket, "rotate-mkek", daemon.RotateMasterArgs{}, nil, nil)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed during the rotation, e.g. %v", failed.Load(), <-errs)
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
