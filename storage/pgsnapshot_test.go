package storage

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kmipd/kmipd/storage/pgtest"
)

// TestPostgresSnapshotConsistent: a snapshot over more than one page of
// each prefix shows the records as they were when it started, while other
// connections create, change and delete records under both prefixes (and
// wait longer than the idle-in-transaction timeout the pool sets).
func TestPostgresSnapshotConsistent(t *testing.T) {
	ctx := context.Background()
	p := openPG(t, pgtest.Database(t), PostgresOptions{})
	const n = listPage + 40
	for _, pre := range []string{"pkek/", "obj/"} {
		for i := range n {
			k := fmt.Sprintf("%s%04d", pre, i)
			if err := p.Put(ctx, k, []byte("v-"+k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	seen := map[string]int{}
	calls := 0
	err := p.Snapshot(ctx, []string{"pkek/", "obj/"}, func(k string, v []byte) error {
		if string(v) != "v-"+k {
			t.Errorf("%s = %q", k, v)
		}
		seen[k]++
		calls++
		if calls == 1 {
			// Another replica's writes, committed mid-snapshot.
			for _, pre := range []string{"pkek/", "obj/"} {
				if err := p.Create(ctx, pre+"0000a", []byte("late")); err != nil {
					t.Fatal(err)
				}
				if err := p.Put(ctx, fmt.Sprintf("%s%04d", pre, n-1), []byte("changed")); err != nil {
					t.Fatal(err)
				}
				if err := p.Delete(ctx, fmt.Sprintf("%s%04d", pre, n-2)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if calls == listPage+1 {
			time.Sleep(6 * time.Second) // past idleInTxTimeout (5s)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2*n || calls != 2*n {
		t.Fatalf("%d keys in %d calls, want %d", len(seen), calls, 2*n)
	}
	if err := p.Snapshot(ctx, []string{"obj/"}, func(k string, v []byte) error {
		if k == "obj/0000a" {
			return nil
		}
		if k == fmt.Sprintf("obj/%04d", n-2) {
			t.Errorf("deleted %s in a later snapshot", k)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
