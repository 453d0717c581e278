package storage

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

var _ Batcher = (*Postgres)(nil)

// Apply runs the writes in one SQL transaction, exactly once as Create
// (pgretry.go): the transaction tells its id before COMMIT, a lost COMMIT
// answer is settled by re-reading every row once the transaction is decided
// (committed only if each holds what it wrote), and only an attempt that
// did not commit is retried. A Create that finds its key present rolls the whole
// transaction back and reports ErrExists; a compare-and-set that finds its
// key changed (or absent), ErrConflict.
func (p *Postgres) Apply(ctx context.Context, writes []Write) error {
	if err := checkWrites(writes); err != nil {
		return err
	}
	if err := p.begin(ctx, "", false); err != nil {
		return err
	}
	if len(writes) == 0 {
		return nil
	}
	err := p.do(ctx, "apply", func(ctx context.Context) error {
		return p.applyOnce(ctx, writes)
	})
	return p.wrap("apply", writes[0].Key, err)
}

// applyOnce makes one attempt, settling a lost COMMIT answer itself (as
// writeOnce does).
func (p *Postgres) applyOnce(ctx context.Context, writes []Write) error {
	c, err := p.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release() // destroys a connection still inside a transaction
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	for _, w := range writes {
		k := []byte(w.Key)
		switch w.Kind {
		case WritePut:
			b.Queue("INSERT INTO "+recordsTable+" (key, value) VALUES ($1, $2) "+
				"ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", k, nonNil(w.Value))
		case WriteCreate:
			b.Queue("INSERT INTO "+recordsTable+" (key, value) VALUES ($1, $2) "+
				"ON CONFLICT (key) DO NOTHING RETURNING true", k, nonNil(w.Value))
		case WriteDelete:
			b.Queue("DELETE FROM "+recordsTable+" WHERE key = $1", k)
		case WriteIfUnchanged:
			// The row lock UPDATE takes, and its re-check of the
			// condition on a row another transaction has just
			// changed, make the compare and the set one step.
			b.Queue("UPDATE "+recordsTable+" SET value = $3 WHERE key = $1 AND value = $2 RETURNING true",
				k, nonNil(w.Expect), nonNil(w.Value))
		case WriteDeleteIfUnchanged:
			b.Queue("DELETE FROM "+recordsTable+" WHERE key = $1 AND value = $2 RETURNING true", k, nonNil(w.Expect))
		}
	}
	b.Queue("SELECT pg_current_xact_id()::text")
	br := c.SendBatch(ctx, b)
	_, err = br.Exec() // BEGIN
	var refused error  // ErrExists or ErrConflict
	for _, w := range writes {
		if err != nil {
			break
		}
		if w.Kind != WriteCreate && !w.conditional() {
			_, err = br.Exec()
			continue
		}
		var ok bool
		if err = br.QueryRow().Scan(&ok); errors.Is(err, pgx.ErrNoRows) {
			err = nil
			if refused == nil {
				refused = ErrConflict
				if w.Kind == WriteCreate {
					refused = ErrExists
				}
			}
		}
	}
	var xid string
	if err == nil {
		err = br.QueryRow().Scan(&xid)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// COMMIT was never sent: nothing can have committed.
		if classify(err) != permanent {
			err = &pgOutcome{notApplied, err}
		}
		return err
	}
	if refused != nil {
		_, _ = c.Exec(ctx, "ROLLBACK") // on failure Release drops the connection
		return refused
	}
	_, err = p.commit(ctx, c, "apply", xid, written(writes))
	return err
}
