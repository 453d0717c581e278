package storage

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

var _ Snapshotter = (*Postgres)(nil)

// snapshotIdleTimeout replaces idleInTxTimeout inside a snapshot: fn runs
// between two page reads (a backup writes each record to its client), and
// a slow reader must not have the server end the transaction under it.
// A read-only transaction holds no row locks; a vanished client still
// ends it, by this timeout or by fn failing.
const snapshotIdleTimeout = "10min"

// Snapshot reads every prefix in one REPEATABLE READ, READ ONLY
// transaction: every page is read from the snapshot its first statement
// took, whatever other replicas commit meanwhile. Pages are read as List
// reads them (a primary-key range, listPage rows at a time) and fn runs
// between reads, on a held connection. It is not retried: a failure part
// way (a failover, say) fails the snapshot, since fn has seen some records.
func (p *Postgres) Snapshot(ctx context.Context, prefixes []string, fn func(key string, value []byte) error) error {
	if err := p.begin(ctx, strings.Join(prefixes, ","), false); err != nil {
		return err
	}
	var fnErr error
	err := func() error {
		tx, err := p.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return err
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read only: nothing to keep
		if _, err := tx.Exec(ctx, "SET LOCAL idle_in_transaction_session_timeout = '"+snapshotIdleTimeout+"'"); err != nil {
			return err
		}
		for _, prefix := range prefixes {
			lo, hi := []byte(prefix), prefixEnd([]byte(prefix))
			for first := true; ; first = false {
				type rec struct{ k, v []byte }
				page := make([]rec, 0, 16)
				sql, args := listQuery(lo, hi, first)
				rows, err := tx.Query(ctx, sql, args...)
				if err != nil {
					return err
				}
				var k, v []byte
				if _, err := pgx.ForEachRow(rows, []any{&k, &v}, func() error {
					page = append(page, rec{k, nonNil(v)})
					k, v = nil, nil // fresh slices: each record is fn's
					return nil
				}); err != nil {
					return err
				}
				for _, r := range page {
					if err := ctx.Err(); err != nil {
						return fmt.Errorf("storage: %w", err)
					}
					if err := fn(string(r.k), r.v); err != nil {
						fnErr = err
						return err
					}
				}
				if len(page) < listPage {
					break
				}
				lo = page[len(page)-1].k
			}
		}
		return nil
	}()
	if fnErr != nil {
		return fnErr // the caller's own error, unchanged
	}
	return p.wrap("snapshot", strings.Join(prefixes, ","), err)
}
