package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/admin"
	"github.com/kmipd/kmipd/backup"
	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/storage"
)

// heldIndexStore is a daemon's Badger store on which, once armed, a
// rebuild of one owner's index is held where its second pass lists the
// index (every object done by then) until release is closed, or fails
// there once when fail is set. Locate lists no index by that prefix.
type heldIndexStore struct {
	*storage.Badger
	prefix  string
	armed   atomic.Bool
	fail    atomic.Bool
	entered chan struct{}
	release chan struct{}
}

var errInjected = errors.New("injected listing fault")

func (h *heldIndexStore) ListKeys(ctx context.Context, prefix string, fn func(string) error) error {
	if prefix == h.prefix && h.armed.Load() {
		if h.fail.CompareAndSwap(true, false) {
			return errInjected
		}
		h.entered <- struct{}{}
		select {
		case <-h.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return h.Badger.ListKeys(ctx, prefix, fn)
}

func adminStatus(t *testing.T, socket string) *admin.Status {
	t.Helper()
	raw, err := admin.Call(t.Context(), socket, "status", nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var s admin.Status
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// metricValue reads one sample ("name" or "name{label=value}") from the
// daemon's own registry, the one /metrics serves.
func metricValue(t *testing.T, d *daemon.Daemon, want string) float64 {
	t.Helper()
	mfs, err := d.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			if name != want {
				continue
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", want)
	return 0
}

// waitStatus polls admin status until ok says yes (a background rebuild
// ends on its own goroutine), for at most a minute.
func waitStatus(t *testing.T, socket, what string, ok func(*admin.Status) bool) *admin.Status {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		s := adminStatus(t, socket)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed %s: %+v", what, s.Index)
		}
	}
}

// TestAdminStatusShowsIndexRebuilds: a rebuild a Locate started (the
// owner's index marker out of date) shows in admin status, text and JSON,
// with its owner, start and objects done, and in the metrics, while it is
// held; once it ends it is gone, counted completed. A rebuild that fails
// (after a pKEK rotation dropped the index) shows as the owner's last
// failure with its retry time, and no Locate retries it before then; a
// reindex that succeeds clears it.
func TestAdminStatusShowsIndexRebuilds(t *testing.T) {
	c, hc := testConfig(t)
	adminSocket(t, c)
	h, err := hsm.Open(t.Context(), hc, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	bst, err := storage.OpenBadger(t.TempDir(), storage.BadgerOptions{GCInterval: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	o0 := caller(0).Identity
	held := &heldIndexStore{Badger: bst, prefix: object.IndexPrefix(o0), entered: make(chan struct{}, 4), release: make(chan struct{})}
	d, err := daemon.BuildWith(t.Context(), c, nil, daemon.Hooks{HSM: h, Store: held})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	const n = 20
	seedKeys(t, d, 1, n)

	s := adminStatus(t, c.Admin.Socket)
	if len(s.Index.Running) != 0 || len(s.Index.Failed) != 0 || s.Index.Ended["completed"] != 0 {
		t.Fatalf("index status before any rebuild: %+v", s.Index)
	}
	if v := metricValue(t, d, "kmipd_index_rebuilds_running"); v != 0 {
		t.Fatalf("kmipd_index_rebuilds_running = %v before any rebuild", v)
	}

	// An index of an older version: the first Locate scans and starts the rebuild.
	held.armed.Store(true)
	if err := held.Put(t.Context(), object.IndexPrefix(o0)+"built", []byte("1")); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	checkLocateAll(t, d, caller(0))
	<-held.entered
	s = adminStatus(t, c.Admin.Socket)
	if len(s.Index.Running) != 1 {
		t.Fatalf("index status during the rebuild: %+v", s.Index)
	}
	r := s.Index.Running[0]
	if r.Owner != o0 || r.By != "locate" || r.Objects != n || r.Total != n ||
		r.Started.Before(before.Add(-time.Second)) || r.Started.After(time.Now()) {
		t.Fatalf("rebuild shown as %+v; want owner %s, by locate, %d/%d objects, started after %v", r, o0, n, n, before)
	}
	var text bytes.Buffer
	s.Render(&text)
	if !strings.Contains(text.String(), "index:     rebuilds running 1;") ||
		!strings.Contains(text.String(), fmt.Sprintf("%d/%d", n, n)) || !strings.Contains(text.String(), o0) {
		t.Fatalf("status text does not show the rebuild:\n%s", text.String())
	}
	if v := metricValue(t, d, "kmipd_index_rebuilds_running"); v != 1 {
		t.Fatalf("kmipd_index_rebuilds_running = %v during the rebuild", v)
	}
	close(held.release)
	s = waitStatus(t, c.Admin.Socket, "the rebuild ended", func(s *admin.Status) bool { return len(s.Index.Running) == 0 })
	if s.Index.Ended["completed"] != 1 || s.Index.Ended["failed"] != 0 || len(s.Index.Failed) != 0 {
		t.Fatalf("index status after the rebuild: %+v", s.Index)
	}
	if v := metricValue(t, d, "kmipd_index_rebuilds_running"); v != 0 {
		t.Fatalf("kmipd_index_rebuilds_running = %v after the rebuild", v)
	}
	if v := metricValue(t, d, "kmipd_index_rebuilds_total{result=completed}"); v != 1 {
		t.Fatalf("kmipd_index_rebuilds_total{result=completed} = %v after the rebuild", v)
	}
	checkLocateAll(t, d, caller(0))

	// A rotation drops the index; the rebuild the next Locate starts fails.
	if _, err := admin.Call(t.Context(), c.Admin.Socket, "rotate-pkek", daemon.RotatePKEKArgs{Owner: o0}, nil, nil); err != nil {
		t.Fatal(err)
	}
	held.fail.Store(true)
	checkLocateAll(t, d, caller(0)) // by the scan
	s = waitStatus(t, c.Admin.Socket, "the failure", func(s *admin.Status) bool { return s.Index.Ended["failed"] == 1 })
	if len(s.Index.Failed) != 1 || len(s.Index.Running) != 0 {
		t.Fatalf("index status after a failed rebuild: %+v", s.Index)
	}
	f := s.Index.Failed[0]
	if f.Owner != o0 || f.RetryAt.Sub(f.At) != 30*time.Second || !strings.Contains(f.Error, errInjected.Error()) {
		t.Fatalf("failure shown as %+v", f)
	}
	text.Reset()
	s.Render(&text)
	if !strings.Contains(text.String(), "failed:  "+o0) || !strings.Contains(text.String(), "retried from "+f.RetryAt.UTC().Format(time.RFC3339)) {
		t.Fatalf("status text does not show the failure:\n%s", text.String())
	}
	if v := metricValue(t, d, "kmipd_index_rebuilds_total{result=failed}"); v != 1 {
		t.Fatalf("kmipd_index_rebuilds_total{result=failed} = %v", v)
	}
	checkLocateAll(t, d, caller(0)) // still the scan, and no retry yet
	if s := adminStatus(t, c.Admin.Socket); len(s.Index.Running) != 0 || s.Index.Ended["failed"] != 1 || s.Index.Ended["completed"] != 1 {
		t.Fatalf("a Locate retried a failed rebuild before its time: %+v", s.Index)
	}
	if _, err := reindex(t, &adminEnv{c: c, h: h, d: d}, daemon.ReindexArgs{Owner: o0}); err != nil {
		t.Fatal(err)
	}
	s = adminStatus(t, c.Admin.Socket)
	if len(s.Index.Failed) != 0 || s.Index.Ended["completed"] != 2 {
		t.Fatalf("index status after a reindex that succeeded: %+v", s.Index)
	}
	checkLocateAll(t, d, caller(0))
}

// TestRestoreThenLocate: Locate finds every object of a restored store (a
// backup carries no index), and none written after the backup, at once by
// the scan while the rebuilds Locates start run, and by the rebuilt
// indexes after. The index markers a kmipd remembers (index_marker.go)
// need no forgetting at a restore because none can happen under a running
// kmipd: its Badger directory is locked against `kmipd restore`, checked
// here; the restored store is served by a new process.
func TestRestoreThenLocate(t *testing.T) {
	e := startAdmin(t)
	const owners = 2
	seedKeys(t, e.d, owners, 15)
	for i := range owners {
		checkLocateAll(t, e.d, caller(i)) // by the index, its marker remembered
	}
	if st, err := storage.OpenBadger(e.c.Storage.Path, storage.BadgerOptions{GCInterval: -1}, nil); err == nil {
		st.Close()
		t.Fatal("the running kmipd's store opened for a restore")
	}
	var buf bytes.Buffer
	if _, err := admin.Call(t.Context(), e.c.Admin.Socket, "backup", nil, nil, &buf); err != nil {
		t.Fatal(err)
	}
	after, err := create(t.Context(), e.d, caller(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}

	fresh := t.TempDir()
	st, err := storage.OpenBadger(fresh, storage.BadgerOptions{GCInterval: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Restore(t.Context(), st, e.h, bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	c2 := *e.c
	c2.Storage.Path = fresh
	adminSocket(t, &c2)
	d2, err := daemon.BuildWith(t.Context(), &c2, nil, daemon.Hooks{HSM: e.h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.Close() })
	for i := range owners {
		checkLocateAll(t, d2, caller(i)) // by the scan: no index yet
	}
	waitStatus(t, c2.Admin.Socket, "the rebuilds completed", func(s *admin.Status) bool {
		return len(s.Index.Running) == 0 && s.Index.Ended["completed"] == owners
	})
	for i := range owners {
		checkLocateAll(t, d2, caller(i)) // by the rebuilt index
		if v, err := d2.Store().Get(t.Context(), object.IndexPrefix(caller(i).Identity)+"built"); err != nil || string(v) != "2" {
			t.Fatalf("%s: marker after the rebuild: %q, %v", caller(i).Identity, v, err)
		}
	}
	if _, err := getKey(t.Context(), d2, caller(0), after); err == nil {
		t.Fatalf("%s, created after the backup, is in the restored store", after)
	}
}
