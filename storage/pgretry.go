package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Retrying, and when it is safe.
//
// Reads and Put retry any transient failure: reading again is harmless, and
// a Put whose answer was lost may be written again (see Put). Create and
// Delete may not: retried blindly after its COMMIT's answer was lost, a
// Create that had committed would find its own row and report ErrExists,
// and a Delete would report ErrNotFound for the row it removed. Reading the
// rows settles it, but only once the transaction can no longer commit. So
// exactWrite runs them in an explicit transaction
// that tells its id before COMMIT is sent; when COMMIT's answer is lost it
// waits, through pg_xact_status on whichever server answers, until that
// transaction is decided. A transaction whose session the server still
// holds, idle before a COMMIT that never arrived, is ended first so that it
// is decided; one already committing is waited for, never cut short (that
// could skip a synchronous standby's confirmation).
//
// Once it is decided, the rows say whether the write happened, not the
// transaction's status: after a failover to a standby that never received
// the transaction, the promoted server hands out the same transaction id
// again, so pg_xact_status may call a lost write committed (or a committed
// one aborted). Each write says what it leaves behind (written): the value
// it stored, which is a sealed record with a random nonce, so equal bytes
// prove this very write, or the key's absence for a delete. Only a write
// whose rows are not there is retried. (A row another replica changed in
// between reads as not written: a Create is then retried and reports
// ErrExists, which its callers, a pKEK's first use, handle by reading the
// winner; objects' keys are fresh random uids nobody else knows yet. A
// compare-and-set is settled like a Put or Delete, by what it leaves, never
// by its expected value, which a committed attempt has replaced: retried,
// it reports ErrConflict, and its callers, a rotation's reseal and Undo,
// re-read the record or leave it, as for another replica's change.)

// failure sorts errors for retrying.
type failure int

const (
	permanent  failure = iota // a definite answer: return it
	notApplied                // the server did not apply the work: any retry is safe
	unknown                   // the answer was lost: the work may have been applied
)

// pgOutcome marks an error whose failure class exactWrite has settled.
type pgOutcome struct {
	class failure
	err   error
}

func (e *pgOutcome) Error() string { return e.err.Error() }
func (e *pgOutcome) Unwrap() error { return e.err }

// ErrOutcomeUnknown is returned (wrapped) by a Create, Delete or Swap whose
// commit could not be confirmed or ruled out before its retry time ran out:
// the write may or may not have happened.
var ErrOutcomeUnknown = errors.New("storage: write outcome unknown")

func classify(err error) failure {
	var o *pgOutcome
	if errors.As(err, &o) {
		return o.class
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrExists) || errors.Is(err, ErrConflict) ||
		errors.Is(err, ErrSchemaVersion) || errors.Is(err, ErrClosed) {
		return permanent
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01", // serialization failure, deadlock: the transaction was rolled back
			"25006", // read-only transaction: a server that is no longer the primary
			"53300", // too many connections
			"57P03": // cannot connect now: starting up or in recovery
			return notApplied
		case "57P01", "57P02", "57P05", "25P03": // terminating connection (shutdown, crash, idle timeouts)
			return unknown
		}
		if strings.HasPrefix(pe.Code, "08") { // connection exception
			return unknown
		}
		return permanent
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), pgconn.SafeToRetry(err):
		return notApplied
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), pgconn.Timeout(err),
		// The connection died after a request was sent (a lock failure
		// on a closed one is SafeToRetry, above): as lost as EOF.
		errors.Is(err, pgconn.ErrConnClosed):
		return unknown
	}
	return permanent
}

// do runs fn until it succeeds, fails for good, the context ends, or the
// retry time runs out. fn must be safe to repeat after any failure
// (exactWrite makes its writes so).
func (p *Postgres) do(ctx context.Context, op string, fn func(context.Context) error) error {
	start := time.Now()
	defer p.metrics.observe(op, start)
	deadline := start.Add(p.retry)
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil || ctx.Err() != nil || p.closed.Load() || classify(err) == permanent {
			return err
		}
		if !sleep(ctx, attempt, deadline) {
			return err
		}
		p.metrics.retries.WithLabelValues(op).Inc()
		p.log.Debug("retrying after a transient postgres failure", "op", op, "attempt", attempt+1, "error", err)
	}
}

// sleep backs off (10 ms doubling to 1 s, jittered) unless that would pass
// deadline or ctx ends first; it reports whether to try again.
func sleep(ctx context.Context, attempt int, deadline time.Time) bool {
	d := 10 * time.Millisecond << min(attempt, 7)
	d = min(d, time.Second)
	d = d/2 + rand.N(d/2+1)
	if time.Now().Add(d).After(deadline) {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// written reports whether a write's effect is in the database now: it
// re-reads the rows the write changed (written.check).
type written []Write

// exactWrite runs a single-row write statement (one without RETURNING) so
// that it happens at most once and its caller learns whether it did: it
// reports whether the statement changed a row. w is what the statement
// leaves behind when it did (a Put of the value written, or a Delete),
// which settles a lost COMMIT answer.
func (p *Postgres) exactWrite(ctx context.Context, op string, w written, sql string, args ...any) (bool, error) {
	var changed bool
	err := p.do(ctx, op, func(ctx context.Context) error {
		var err error
		changed, err = p.writeOnce(ctx, op, w, sql+" RETURNING pg_current_xact_id()::text", args)
		return err
	})
	return changed, err
}

// check reads every row of w in one query and reports whether each holds
// what w wrote (a put or create: these very bytes; a delete: no row). A
// key a batch writes more than once holds what its last write left (a
// fence's Create and Delete: no row).
func (w written) check(ctx context.Context, p *Postgres) (bool, error) {
	keys := make([][]byte, len(w))
	for i, x := range w {
		keys[i] = []byte(x.Key)
	}
	rows, err := p.pool.Query(ctx, "SELECT key, value FROM "+recordsTable+" WHERE key = ANY($1)", keys)
	if err != nil {
		return false, err
	}
	stored := map[string][]byte{}
	for rows.Next() {
		var k, v []byte
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return false, err
		}
		stored[string(k)] = v
	}
	if err := rows.Err(); err != nil {
		return false, err
	}
	last := make(map[string]int, len(w))
	for i, x := range w {
		last[x.Key] = i
	}
	for i, x := range w {
		if last[x.Key] != i {
			continue
		}
		v, ok := stored[x.Key]
		if x.deletes() {
			if ok {
				return false, nil
			}
			continue
		}
		if !ok || !bytes.Equal(v, nonNil(x.Value)) {
			return false, nil
		}
	}
	return true, nil
}

// writeOnce makes one attempt. Whatever it returns is either success, a
// definite answer, or an error marked notApplied: it settles a lost COMMIT
// answer itself.
func (p *Postgres) writeOnce(ctx context.Context, op string, w written, sql string, args []any) (bool, error) {
	c, err := p.pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	// Release destroys a connection still inside a transaction.
	defer c.Release()
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(sql, args...)
	br := c.SendBatch(ctx, b)
	_, err = br.Exec()
	var xid string
	changed := true
	if err == nil {
		if err = br.QueryRow().Scan(&xid); errors.Is(err, pgx.ErrNoRows) {
			changed, err = false, nil
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// COMMIT was never sent: nothing can have committed.
		if classify(err) != permanent {
			err = &pgOutcome{notApplied, err}
		}
		return false, err
	}
	if !changed {
		_, _ = c.Exec(ctx, "ROLLBACK") // on failure Release drops the connection
		return false, nil
	}
	return p.commit(ctx, c, op, xid, w)
}

// commit sends COMMIT for transaction xid on c and, when its answer is
// lost, settles whether it committed: once the transaction is decided, by
// whether w's rows are there. It returns true, a definite error, or an
// error marked notApplied.
func (p *Postgres) commit(ctx context.Context, c *pgxpool.Conn, op, xid string, w written) (bool, error) {
	commit := p.commitHook
	if commit == nil {
		commit = func(ctx context.Context, c *pgxpool.Conn) (pgconn.CommandTag, error) { return c.Exec(ctx, "COMMIT") }
	}
	tag, err := commit(ctx, c)
	switch {
	case err == nil && tag.String() == "COMMIT":
		return true, nil
	case err == nil:
		return false, &pgOutcome{notApplied, fmt.Errorf("transaction ended with %s", tag)}
	case ctx.Err() != nil:
		return false, err // the caller gave up; the outcome is unknown to it
	}
	switch classify(err) {
	case permanent:
		return false, err
	case notApplied:
		return false, &pgOutcome{notApplied, err}
	}
	p.log.Warn("postgres commit answer lost; asking the server whether it committed", "op", op, "error", err)
	status, rerr := p.resolve(ctx, c.Conn().PgConn().PID(), xid)
	var applied bool
	if rerr == nil {
		applied, rerr = p.checkWritten(ctx, w)
	}
	switch {
	case rerr != nil:
		p.metrics.ambiguous.WithLabelValues("unknown").Inc()
		return false, &pgOutcome{permanent, fmt.Errorf("%w: commit answer lost (%v), then %w", ErrOutcomeUnknown, err, rerr)}
	case applied != status:
		// The transaction id was handed out again (a failover to a server
		// that never received this transaction): the rows are the truth.
		p.log.Warn("postgres commit answer lost, and the transaction id's status disagrees with the rows (reused after a failover?); going by the rows",
			"op", op, "xid_committed", status, "written", applied)
		p.metrics.ambiguous.WithLabelValues("reused").Inc()
	}
	if applied {
		p.metrics.ambiguous.WithLabelValues("committed").Inc()
		return true, nil
	}
	p.metrics.ambiguous.WithLabelValues("aborted").Inc()
	return false, &pgOutcome{notApplied, err}
}

// checkWritten runs w.check, retrying transient failures (the server may
// be failing over) within the retry time.
func (p *Postgres) checkWritten(ctx context.Context, w written) (bool, error) {
	deadline := time.Now().Add(p.retry)
	for attempt := 0; ; attempt++ {
		ok, err := w.check(ctx, p)
		if err == nil || ctx.Err() != nil || classify(err) == permanent || !sleep(ctx, attempt, deadline) {
			return ok, err
		}
	}
}

// resolve asks the server whether transaction xid (begun on the session
// with process id pid) committed, waiting while it is still undecided.
func (p *Postgres) resolve(ctx context.Context, pid uint32, xid string) (bool, error) {
	x, err := strconv.ParseUint(xid, 10, 64)
	if err != nil {
		return false, fmt.Errorf("transaction id %q: %w", xid, err)
	}
	xid32 := strconv.FormatUint(x&0xffffffff, 10) // pg_stat_activity shows the epoch-less xid
	deadline := time.Now().Add(p.retry)
	for attempt := 0; ; attempt++ {
		var status *string
		err := p.pool.QueryRow(ctx, "SELECT pg_xact_status($1::xid8)", xid).Scan(&status)
		var pe *pgconn.PgError
		switch {
		case err == nil && status == nil:
			return false, errors.New("pg_xact_status: transaction too old to be known")
		case err == nil && *status == "committed":
			return true, nil
		case err == nil && *status == "aborted":
			return false, nil
		case err == nil: // in progress
			// A session idle inside the transaction never got COMMIT (or
			// the server has not yet seen its client go); ending it
			// aborts the transaction. A committing one is left alone.
			_, err = p.pool.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "+
				"WHERE pid = $1 AND backend_xid::text = $2 AND state LIKE 'idle in transaction%'", int64(pid), xid32)
			if err != nil {
				p.log.Debug("could not end an undecided transaction's session", "error", err)
			}
		case errors.As(err, &pe) && pe.Code == "22023" && strings.Contains(pe.Message, "in the future"):
			// This server never saw the transaction: a standby promoted
			// before the commit reached it. Lost, so not committed.
			return false, nil
		case ctx.Err() != nil:
			return false, err
		case classify(err) == permanent:
			return false, err
		}
		if !sleep(ctx, attempt, deadline) {
			if err == nil {
				err = errors.New("transaction still in progress")
			}
			return false, err
		}
	}
}
