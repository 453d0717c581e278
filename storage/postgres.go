package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresOptions configures OpenPostgres.
type PostgresOptions struct {
	// URL is a libpq connection string (URL or key=value form). It may
	// name several hosts with target_session_attrs=read-write: the pool
	// then connects only to the writable primary, and after a failover new
	// connections find the new one by themselves.
	URL string

	// MaxConns bounds the pool (per kmipd replica; the server's
	// max_connections must cover every replica's). Concurrent writes
	// commit in parallel, one per connection. 0 means pool_max_conns in
	// URL, else 16.
	MaxConns int32

	// RetryTimeout is how long one operation keeps retrying transient
	// failures (connection loss, a restarting or failing-over server,
	// serialization failures) before it gives up; the caller's context
	// can end it sooner. 0 means 15 s.
	RetryTimeout time.Duration

	// NoMigrate makes OpenPostgres check the schema instead of migrating
	// it: it refuses a database whose schema is not exactly the one this
	// binary knows. For deployments that migrate in a separate step
	// (MigratePostgres) with a more privileged role.
	NoMigrate bool
}

const (
	defaultRetryTimeout = 15 * time.Second
	defaultMaxConns     = 16
	// listPage is how many records List reads per query: it holds no
	// connection while fn runs, since fn may itself use the store.
	listPage = 256
	// idleInTxTimeout ends a session the server sees idle inside a
	// transaction: kmipd's transactions wait only one round trip between
	// statements, so this only cuts short a transaction whose client
	// vanished, which would otherwise hold its row locks (and leave a
	// pending commit undecided, pgretry.go) until TCP keepalive notices.
	idleInTxTimeout = "5s"
)

// recordsTable holds every key. Keys and values are bytea: keys may be any
// bytes (a text column cannot hold NUL), and bytea compares and orders by
// bytes, so List's prefix range is a primary-key range scan in byte order.
const recordsTable = "kmipd_records"

// Postgres is a Store on PostgreSQL through a pgx connection pool. Several
// kmipd replicas may share one database: every operation is one statement
// or one short transaction on the server, so there is no replica-local
// state to keep coherent, and Create and Delete are exactly-once across
// replicas (pgretry.go). Values are the sealed bytes kmipd hands in, as
// Badger holds them.
//
// A nil error from a write means the server committed it, as durable as the
// server's synchronous_commit makes it (on a synchronous standby too when
// the operator configures one); kmipd does not override that setting.
type Postgres struct {
	pool    *pgxpool.Pool
	log     hclog.Logger
	retry   time.Duration
	closed  atomic.Bool
	metrics *pgMetrics

	// commitHook replaces exactWrite's COMMIT in tests that lose its answer.
	commitHook func(context.Context, *pgxpool.Conn) (pgconn.CommandTag, error)
}

var (
	_ Store   = (*Postgres)(nil)
	_ Viewer  = (*Postgres)(nil)
	_ Swapper = (*Postgres)(nil)
)

// OpenPostgres connects to the database in opts.URL, migrates (or with
// NoMigrate, checks) its schema, and returns the store. log should be a
// named sub-logger (e.g. logger.Named("storage")).
func OpenPostgres(ctx context.Context, opts PostgresOptions, log hclog.Logger) (*Postgres, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	cfg, err := poolConfig(opts)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("storage: postgres pool: %w", err)
	}
	p := &Postgres{pool: pool, log: log, retry: opts.RetryTimeout, metrics: newPGMetrics()}
	if p.retry <= 0 {
		p.retry = defaultRetryTimeout
	}
	if err := p.prepare(ctx, opts.NoMigrate); err != nil {
		pool.Close()
		return nil, err
	}
	return p, nil
}

func poolConfig(opts PostgresOptions) (*pgxpool.Config, error) {
	if opts.URL == "" {
		return nil, errors.New("storage: postgres url is empty")
	}
	cfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		// pgx redacts the password from its parse errors.
		return nil, fmt.Errorf("storage: postgres url: %w", err)
	}
	switch {
	case opts.MaxConns > 0:
		cfg.MaxConns = opts.MaxConns
	case !strings.Contains(opts.URL, "pool_max_conns"):
		cfg.MaxConns = defaultMaxConns
	}
	rp := cfg.ConnConfig.RuntimeParams
	if rp["application_name"] == "" {
		rp["application_name"] = "kmipd"
	}
	if rp["idle_in_transaction_session_timeout"] == "" {
		rp["idle_in_transaction_session_timeout"] = idleInTxTimeout
	}
	return cfg, nil
}

// prepare migrates or checks the schema, retrying while the server is
// unreachable, and warns about settings that weaken durability.
func (p *Postgres) prepare(ctx context.Context, noMigrate bool) error {
	err := p.do(ctx, "open", func(ctx context.Context) error {
		c, err := p.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer c.Release()
		if err := checkServerVersion(ctx, c.Conn()); err != nil {
			return err
		}
		from, to, err := migrate(ctx, c.Conn(), migrations, !noMigrate)
		if err != nil {
			return err
		}
		if from != to {
			p.log.Info("postgres schema migrated", "from", from, "to", to)
		}
		var syncCommit, fsync string
		if err := c.QueryRow(ctx, "SELECT current_setting('synchronous_commit'), current_setting('fsync')").Scan(&syncCommit, &fsync); err != nil {
			return err
		}
		if syncCommit == "off" || fsync == "off" {
			p.log.Warn("postgres runs with synchronous_commit or fsync off: acknowledged writes may be lost on a crash",
				"synchronous_commit", syncCommit, "fsync", fsync)
		}
		p.log.Debug("postgres store open", "schema", to, "max_conns", p.pool.Config().MaxConns, "synchronous_commit", syncCommit)
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: open postgres: %w", err)
	}
	return nil
}

// begin checks what every operation checks first.
func (p *Postgres) begin(ctx context.Context, key string, checkKey bool) error {
	if checkKey && key == "" {
		return ErrInvalidKey
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	if p.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Get returns the value at key, or ErrNotFound.
func (p *Postgres) Get(ctx context.Context, key string) ([]byte, error) {
	if err := p.begin(ctx, key, true); err != nil {
		return nil, err
	}
	v, err := p.read(ctx, "get", key)
	return v, p.wrap("get", key, err)
}

// View calls fn with the value at key. There is no replica-local cache to
// show in place (another replica may change the record at any time), so
// the value is a fresh read, as Get's.
func (p *Postgres) View(ctx context.Context, key string, fn func(value []byte) error) error {
	if err := p.begin(ctx, key, true); err != nil {
		return err
	}
	v, err := p.read(ctx, "view", key)
	if err != nil {
		return p.wrap("view", key, err)
	}
	return fn(v)
}

func (p *Postgres) read(ctx context.Context, op, key string) ([]byte, error) {
	var v []byte
	err := p.do(ctx, op, func(ctx context.Context) error {
		err := p.pool.QueryRow(ctx, "SELECT value FROM "+recordsTable+" WHERE key = $1", []byte(key)).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// Put stores value at key. One statement, committed when it returns.
// Retrying it after a lost answer is safe: writing the same value again
// leaves what one Put would have left, and a Put another request made in
// between was concurrent with this one, so either order is a valid outcome.
func (p *Postgres) Put(ctx context.Context, key string, value []byte) error {
	if err := p.begin(ctx, key, true); err != nil {
		return err
	}
	err := p.do(ctx, "put", func(ctx context.Context) error {
		_, err := p.pool.Exec(ctx, "INSERT INTO "+recordsTable+" (key, value) VALUES ($1, $2) "+
			"ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", []byte(key), nonNil(value))
		return err
	})
	return p.wrap("put", key, err)
}

// Create stores value at key unless it exists (ErrExists). The insert and
// its check are one statement (ON CONFLICT DO NOTHING), so of concurrent
// Creates on any number of replicas exactly one inserts; exactWrite makes
// sure a retried Create never reports ErrExists for its own row.
func (p *Postgres) Create(ctx context.Context, key string, value []byte) error {
	if err := p.begin(ctx, key, true); err != nil {
		return err
	}
	ok, err := p.exactWrite(ctx, "create", written{{Kind: WriteCreate, Key: key, Value: value}}, "INSERT INTO "+recordsTable+" (key, value) VALUES ($1, $2) "+
		"ON CONFLICT (key) DO NOTHING", []byte(key), nonNil(value))
	if err == nil && !ok {
		err = ErrExists
	}
	return p.wrap("create", key, err)
}

// Delete removes key, or returns ErrNotFound. Exactly-once like Create: a
// retried Delete never reports ErrNotFound for the row it removed itself.
func (p *Postgres) Delete(ctx context.Context, key string) error {
	if err := p.begin(ctx, key, true); err != nil {
		return err
	}
	ok, err := p.exactWrite(ctx, "delete", written{{Kind: WriteDelete, Key: key}}, "DELETE FROM "+recordsTable+" WHERE key = $1", []byte(key))
	if err == nil && !ok {
		err = ErrNotFound
	}
	return p.wrap("delete", key, err)
}

// Swap replaces the value at key with value if the stored value is old,
// atomically on the server, exactly once like Create (Swapper).
func (p *Postgres) Swap(ctx context.Context, key string, old, value []byte) error {
	if err := p.begin(ctx, key, true); err != nil {
		return err
	}
	var (
		sql  string
		args []any
	)
	k := []byte(key)
	switch {
	case old == nil && value == nil:
		var err error
		if _, err = p.read(ctx, "swap", key); err == nil {
			err = ErrConflict
		} else if errors.Is(err, ErrNotFound) {
			err = nil
		}
		return p.wrap("swap", key, err)
	case old == nil:
		sql, args = "INSERT INTO "+recordsTable+" (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", []any{k, value}
	case value == nil:
		sql, args = "DELETE FROM "+recordsTable+" WHERE key = $1 AND value = $2", []any{k, old}
	default:
		sql, args = "UPDATE "+recordsTable+" SET value = $3 WHERE key = $1 AND value = $2", []any{k, old, value}
	}
	w := written{{Kind: WritePut, Key: key, Value: value}}
	if value == nil {
		w[0].Kind = WriteDelete
	}
	ok, err := p.exactWrite(ctx, "swap", w, sql, args...)
	if err == nil && !ok {
		err = ErrConflict
	}
	return p.wrap("swap", key, err)
}

// List calls fn for each key under prefix in ascending byte order, with
// the value's own copy. It reads listPage records per query and holds no
// connection while fn runs (fn may use the store: Locate opens records
// with pKEKs it may have to read), so each page is a snapshot but the List
// as a whole is not: every key is seen at most once, in order, with a value
// it held during the List.
func (p *Postgres) List(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	if err := p.begin(ctx, prefix, false); err != nil {
		return err
	}
	lo, hi := []byte(prefix), prefixEnd([]byte(prefix))
	first := true
	for {
		type rec struct{ k, v []byte }
		page := make([]rec, 0, 16)
		err := p.do(ctx, "list", func(ctx context.Context) error {
			page = page[:0]
			sql, args := listQuery(lo, hi, first)
			rows, err := p.pool.Query(ctx, sql, args...)
			if err != nil {
				return err
			}
			var k, v []byte
			_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error {
				page = append(page, rec{k, nonNil(v)})
				k, v = nil, nil // Scan into fresh slices: each record is the caller's
				return nil
			})
			return err
		})
		if err != nil {
			return p.wrap("list", prefix, err)
		}
		for _, r := range page {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("storage: %w", err)
			}
			if err := fn(string(r.k), r.v); err != nil {
				return err // the caller's own error, unchanged
			}
		}
		if len(page) < listPage {
			return nil
		}
		lo, first = page[len(page)-1].k, false
	}
}

// listQuery reads the page after lo (from lo itself on the first page),
// below hi when the prefix has an upper bound. Each shape is its own
// statement so the planner always sees a plain primary-key range.
func listQuery(lo, hi []byte, first bool) (string, []any) {
	op := ">"
	if first {
		op = ">="
	}
	q := "SELECT key, value FROM " + recordsTable + " WHERE key " + op + " $1"
	args := []any{lo}
	if hi != nil {
		q += " AND key < $2"
		args = append(args, hi)
	}
	return q + fmt.Sprintf(" ORDER BY key LIMIT %d", listPage), args
}

// prefixEnd is the least byte string above every string that starts with
// prefix, or nil when there is none (empty or all-0xff prefix).
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Close closes the pool, waiting for operations in flight; later calls
// return ErrClosed. It is idempotent.
func (p *Postgres) Close() error {
	if p.closed.CompareAndSwap(false, true) {
		p.pool.Close()
	}
	return nil
}

// wrap maps errors onto the storage sentinels; the messages name the key
// (not secret: owner identity hash and object uid) and never a value.
func (p *Postgres) wrap(op, key string, err error) error {
	switch {
	case err == nil, errors.Is(err, ErrNotFound), errors.Is(err, ErrExists), errors.Is(err, ErrConflict),
		errors.Is(err, ErrClosed), errors.Is(err, ErrSchemaVersion):
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("storage: %s %q: %w", op, key, err)
	case p.closed.Load():
		return ErrClosed
	}
	return fmt.Errorf("storage: postgres %s %q: %w", op, key, err)
}

// nonNil keeps an empty value a value: pgx sends a nil slice as NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
