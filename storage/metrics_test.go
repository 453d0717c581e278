package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/kmipd/kmipd/testkit"
)

func TestCollectorCountsWrites(t *testing.T) {
	b := openTest(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Create(ctx, fmt.Sprintf("m/%d", i), []byte("v")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := range 4 {
		mustPut(t, b, fmt.Sprintf("m/%d", i), []byte("w"))
		if err := b.Delete(ctx, fmt.Sprintf("m/%d", 10+i)); err != nil {
			t.Fatal(err)
		}
	}
	// A write that decides not to write still waited for its group.
	if err := b.Create(ctx, "m/20", []byte("x")); !errors.Is(err, ErrExists) {
		t.Fatalf("Create of an existing key = %v, want ErrExists", err)
	}
	const writes = 32 + 4 + 4 + 1

	got := testkit.Gather(t, b.Collector())
	commits := got["kmipd_storage_commits_total"]
	if commits < 1 || commits > writes {
		t.Errorf("commits_total = %v, want 1..%d", commits, writes)
	}
	for name, want := range map[string]float64{
		"kmipd_storage_committed_writes_total": writes,
		"kmipd_storage_write_wait_seconds":     writes,
		"kmipd_storage_commit_seconds":         commits,
		"kmipd_storage_level0_tables":          0, // everything is still in the memtable
		"kmipd_storage_lsm_bytes{level=0}":     0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if _, ok := got["kmipd_storage_lsm_bytes{level=6}"]; !ok {
		t.Error("lsm_bytes has no sample for level 6")
	}
	// Every wait covers at least its group's commit.
	if w, c := got["kmipd_storage_write_wait_seconds_sum"], got["kmipd_storage_commit_seconds_sum"]; w <= 0 || c <= 0 || w < c {
		t.Errorf("write wait sum %v s, commit sum %v s: want both > 0 and wait ≥ commit", w, c)
	}
}

// level0_tables reports badger's real state: a memtable that fills is
// flushed to a level-0 table, which the gauge then counts.
func TestCollectorSeesLevel0Tables(t *testing.T) {
	b, err := openBadger(t.TempDir(), BadgerOptions{}, testLogger(t), func(o badger.Options) badger.Options {
		return o.WithMemTableSize(1 << 20).WithValueThreshold(64 << 10)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	value := make([]byte, 8<<10)
	for i := range 400 { // about 3 MiB: three memtables
		mustPut(t, b, fmt.Sprintf("l/%04d", i), value)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := testkit.Gather(t, b.Collector())
		if got["kmipd_storage_level0_tables"] >= 1 && got["kmipd_storage_lsm_bytes{level=0}"] > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no level-0 table reported after 3 MiB of writes to a 1 MiB memtable: %v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Scraping a closed store must not touch badger (it would panic); the
// write counters remain.
func TestCollectorAfterClose(t *testing.T) {
	b := openTest(t, t.TempDir())
	mustPut(t, b, "k", []byte("v"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	got := testkit.Gather(t, b.Collector())
	if got["kmipd_storage_committed_writes_total"] != 1 {
		t.Errorf("committed_writes_total = %v, want 1", got["kmipd_storage_committed_writes_total"])
	}
	if _, ok := got["kmipd_storage_level0_tables"]; ok {
		t.Error("a closed store reported level0_tables")
	}
}
