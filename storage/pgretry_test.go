package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kmipd/kmipd/storage/pgtest"
)

// loseCommit makes the next COMMIT of p's exact writes lose its answer
// after doing what lose does.
func loseCommit(p *Postgres, lose func(ctx context.Context, c *pgxpool.Conn) error) *atomic.Int32 {
	var fired atomic.Int32
	p.commitHook = func(ctx context.Context, c *pgxpool.Conn) (pgconn.CommandTag, error) {
		if fired.Add(1) > 1 {
			return c.Exec(ctx, "COMMIT")
		}
		if err := lose(ctx, c); err != nil {
			return pgconn.CommandTag{}, err
		}
		return pgconn.CommandTag{}, fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF)
	}
	return &fired
}

func lost(p *Postgres, outcome string) float64 {
	return testutil.ToFloat64(p.metrics.ambiguous.WithLabelValues(outcome))
}

// A COMMIT that happened, whose answer was lost: the write reports success,
// not ErrExists or ErrNotFound for its own row.
func TestLostCommitCommitted(t *testing.T) {
	ctx := context.Background()
	p := openPG(t, pgtest.Database(t), PostgresOptions{})
	committed := func(ctx context.Context, c *pgxpool.Conn) error {
		if _, err := c.Exec(ctx, "COMMIT"); err != nil {
			return err
		}
		return c.Conn().Close(ctx)
	}
	for i, step := range []struct {
		name string
		op   func() error
		want []byte // nil: absent
	}{
		{"Create", func() error { return p.Create(ctx, "k", []byte("created")) }, []byte("created")},
		{"Swap", func() error { return p.Swap(ctx, "k", []byte("created"), []byte("swapped")) }, []byte("swapped")},
		{"Delete", func() error { return p.Delete(ctx, "k") }, nil},
	} {
		fired := loseCommit(p, committed)
		if err := step.op(); err != nil {
			t.Fatalf("%s whose commit answer was lost = %v, want nil", step.name, err)
		}
		if fired.Load() != 1 {
			t.Fatalf("%s: COMMIT ran %d times, want once", step.name, fired.Load())
		}
		if step.want == nil {
			if _, err := p.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("after %s: Get = %v, want ErrNotFound", step.name, err)
			}
		} else {
			mustGet(t, p, "k", step.want)
		}
		if n := lost(p, "committed"); n != float64(i+1) {
			t.Fatalf("after %s: lost_commits{committed} = %v, want %d", step.name, n, i+1)
		}
	}
}

// A COMMIT that never reached the server (the connection dropped first):
// the server aborts the transaction, and the write is retried and done.
func TestLostCommitNeverSent(t *testing.T) {
	ctx := context.Background()
	p := openPG(t, pgtest.Database(t), PostgresOptions{})
	fired := loseCommit(p, func(ctx context.Context, c *pgxpool.Conn) error { return c.Conn().Close(ctx) })
	if err := p.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Create = %v, want nil after a retry", err)
	}
	if fired.Load() != 2 {
		t.Fatalf("COMMIT attempts = %d, want 2 (lost, then retried)", fired.Load())
	}
	mustGet(t, p, "k", []byte("v"))
	if lost(p, "aborted") != 1 || lost(p, "committed") != 0 {
		t.Fatalf("lost_commits aborted %v committed %v, want 1 and 0", lost(p, "aborted"), lost(p, "committed"))
	}
}

// A COMMIT lost while the server still holds the session idle in its
// transaction (a half-open connection): resolve ends that session rather
// than wait for the server's idle timeout, which here outlasts the retry
// time, so only ending it lets the Create succeed.
func TestLostCommitIdleSession(t *testing.T) {
	ctx := context.Background()
	p := openPG(t, pgtest.Database(t), PostgresOptions{RetryTimeout: 2 * time.Second})
	loseCommit(p, func(context.Context, *pgxpool.Conn) error { return nil })
	if err := p.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Create = %v, want nil after ending the idle session and retrying", err)
	}
	mustGet(t, p, "k", []byte("v"))
	if lost(p, "aborted") != 1 {
		t.Fatalf("lost_commits{aborted} = %v, want 1", lost(p, "aborted"))
	}
}

// A transaction id the server never assigned (a promoted standby that did
// not receive it) did not commit there.
func TestResolveUnknownTransaction(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Database(t)
	p := openPG(t, url, PostgresOptions{})
	committed, err := p.resolve(ctx, 0, "999999999999")
	if err != nil || committed {
		t.Fatalf("resolve(future xid) = %v, %v; want false, nil", committed, err)
	}
	// And one that committed, from another session.
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var xid string
	if err := tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&xid); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if committed, err := p.resolve(ctx, c.PgConn().PID(), xid); err != nil || !committed {
		t.Fatalf("resolve(committed xid) = %v, %v; want true, nil", committed, err)
	}
}

func TestClassify(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("query: %w", &pgconn.PgError{Code: code}) }
	for _, c := range []struct {
		err  error
		want failure
	}{
		{pg("40001"), notApplied},
		{pg("40P01"), notApplied},
		{pg("25006"), notApplied},
		{pg("57P03"), notApplied},
		{pg("57P01"), unknown},
		{pg("08006"), unknown},
		{pg("23505"), permanent},
		{pg("42P01"), permanent},
		{&net.OpError{Op: "read", Err: errors.New("connection reset")}, unknown},
		{fmt.Errorf("x: %w", io.ErrUnexpectedEOF), unknown},
		{&pgconn.ConnectError{}, notApplied},
		{fmt.Errorf("apply: %w", pgconn.ErrConnClosed), unknown},
		{ErrNotFound, permanent},
		{fmt.Errorf("w: %w", ErrSchemaVersion), permanent},
		{&pgOutcome{notApplied, io.EOF}, notApplied},
		{&pgOutcome{permanent, io.EOF}, permanent},
		{errors.New("something else"), permanent},
	} {
		if got := classify(c.err); got != c.want {
			t.Errorf("classify(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// A batch that writes one key twice (kmipops' fence: a Create and a
// Delete), whose COMMIT happened and lost its answer: the rows are checked
// against the batch's last write of each key, so it reports success, not
// ErrExists for its own Create on the retry.
func TestLostCommitBatchRepeatedKey(t *testing.T) {
	ctx := context.Background()
	p := openPG(t, pgtest.Database(t), PostgresOptions{})
	fired := loseCommit(p, func(ctx context.Context, c *pgxpool.Conn) error {
		if _, err := c.Exec(ctx, "COMMIT"); err != nil {
			return err
		}
		return c.Conn().Close(ctx)
	})
	err := p.Apply(ctx, []Write{
		{Kind: WriteCreate, Key: "obj", Value: []byte("v")},
		{Kind: WriteCreate, Key: "fence"},
		{Kind: WriteDelete, Key: "fence"},
	})
	if err != nil {
		t.Fatalf("Apply whose commit answer was lost = %v, want nil", err)
	}
	if fired.Load() != 1 {
		t.Fatalf("COMMIT ran %d times, want once", fired.Load())
	}
	mustGet(t, p, "obj", []byte("v"))
	if _, err := p.Get(ctx, "fence"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fence: Get = %v, want ErrNotFound", err)
	}
}
