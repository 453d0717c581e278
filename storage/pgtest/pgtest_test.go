package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestSharedDatabase(t *testing.T) {
	ctx := context.Background()
	a, b := Database(t), Database(t)
	if a == b {
		t.Fatalf("two databases share a URL: %s", a)
	}
	for _, u := range []string{a, b} {
		c, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		var fsync, db string
		if err := c.QueryRow(ctx, "SELECT current_setting('fsync'), current_database()").Scan(&fsync, &db); err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
		if fsync != "on" {
			t.Fatalf("fsync = %q, want on", fsync)
		}
		t.Logf("%s: database %s", u, db)
	}
}

func TestRestart(t *testing.T) {
	ctx := context.Background()
	s := New(t)
	u := s.Database(t)
	if err := s.Exec(ctx, "postgres", "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect after restart: %v", err)
	}
	c.Close(ctx)
}
