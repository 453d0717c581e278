package storage

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kmipd/kmipd/storage/pgtest"
)

// A compare-and-set batch whose COMMIT answer was lost is settled by what
// its writes left, not by the values they expected (which a committed
// attempt replaced): committed, it reports success, never ErrConflict
// against its own writes; never sent, it is retried and applies.
func TestLostCommitBatchIfUnchanged(t *testing.T) {
	ctx := context.Background()
	p := openPG(t, pgtest.Database(t), PostgresOptions{})
	cas := func() []Write {
		return []Write{
			{Kind: WriteIfUnchanged, Key: "obj", Expect: []byte("v1"), Value: []byte("v2")},
			{Kind: WriteDeleteIfUnchanged, Key: "gone", Expect: []byte("g")},
			{Kind: WritePut, Key: "idx", Value: []byte("i")},
		}
	}
	for _, c := range []struct {
		name    string
		lose    func(ctx context.Context, c *pgxpool.Conn) error
		commits int32
	}{
		{"committed", func(ctx context.Context, c *pgxpool.Conn) error {
			if _, err := c.Exec(ctx, "COMMIT"); err != nil {
				return err
			}
			return c.Conn().Close(ctx)
		}, 1},
		{"never sent", func(ctx context.Context, c *pgxpool.Conn) error { return c.Conn().Close(ctx) }, 2},
	} {
		mustPut(t, p, "obj", []byte("v1"))
		mustPut(t, p, "gone", []byte("g"))
		if err := p.Delete(ctx, "idx"); err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		fired := loseCommit(p, c.lose)
		if err := p.Apply(ctx, cas()); err != nil {
			t.Fatalf("%s: Apply whose commit answer was lost = %v, want nil", c.name, err)
		}
		p.commitHook = nil
		if fired.Load() != c.commits {
			t.Fatalf("%s: COMMIT ran %d times, want %d", c.name, fired.Load(), c.commits)
		}
		mustGet(t, p, "obj", []byte("v2"))
		mustGet(t, p, "idx", []byte("i"))
		if _, err := p.Get(ctx, "gone"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: Get(gone) = %v, want ErrNotFound", c.name, err)
		}
	}
	// Another replica's change in between: the batch fails whole.
	mustPut(t, p, "gone", []byte("g"))
	if err := p.Apply(ctx, cas()); !errors.Is(err, ErrConflict) {
		t.Fatalf("Apply over a changed record = %v, want ErrConflict", err)
	}
	mustGet(t, p, "gone", []byte("g"))
}
