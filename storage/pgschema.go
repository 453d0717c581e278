package storage

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// ErrSchemaVersion is returned (wrapped) when a PostgreSQL database's
// schema is not one this binary can use: newer than it knows, or, with
// NoMigrate, not yet migrated.
var ErrSchemaVersion = errors.New("storage: postgres schema version mismatch")

// migration is one step of the schema. Steps are applied in order, each in
// the same transaction as its row in the version table.
type migration struct {
	version int
	name    string
	stmts   []string
}

// migrations is append-only: a released step is never edited or reordered,
// a change is a new step. Each step must keep the schema usable by the
// previous release (add; do not rename or drop), so that replicas can be
// upgraded one at a time while the others keep serving.
var migrations = []migration{
	{1, "records", []string{
		`CREATE TABLE ` + recordsTable + ` (
			key   bytea PRIMARY KEY,
			value bytea NOT NULL
		)`,
		// Values are AES-GCM ciphertext, which does not compress: keep
		// large ones out of line without trying (as Badger stores them
		// uncompressed).
		`ALTER TABLE ` + recordsTable + ` ALTER COLUMN value SET STORAGE EXTERNAL`,
	}},
	// The cluster-wide HSM session budget's leases, one row per replica
	// (package hsm/sessionbudget owns the table and documents it).
	{2, "hsm session budget", []string{
		`CREATE TABLE ` + BudgetTable + ` (
			budget       text NOT NULL,
			replica      text NOT NULL,
			instance     text NOT NULL,
			sessions     integer NOT NULL CHECK (sessions >= 0),
			demand       integer NOT NULL,
			max_sessions integer NOT NULL,
			cluster_max  integer NOT NULL,
			joined_at    timestamptz NOT NULL,
			renewed_at   timestamptz NOT NULL,
			expires_at   timestamptz NOT NULL,
			renewals     bigint NOT NULL DEFAULT 0,
			PRIMARY KEY (budget, replica)
		)`,
	}},
}

// BudgetTable holds the leases of hsm/sessionbudget: it lives in the
// store's schema so that one migration list versions the whole database.
const BudgetTable = "kmipd_hsm_budget"

const (
	schemaTable = "kmipd_schema_version"
	// migrateLock is the advisory lock key that serialises migrations of
	// one database ("kmipdsch"), so replicas starting at once migrate once.
	migrateLock = int64(0x6b6d697064736368)
	// minServerVersion: pg_current_xact_id and pg_xact_status (pgretry.go)
	// came with PostgreSQL 13.
	minServerVersion = 130000
)

// MigratePostgres brings the schema of the database at url up to the one
// this binary knows, as OpenPostgres does on start (for a separate
// `kmipd storage migrate` step). It reports the version found and the
// version left. Concurrent callers, replicas included, migrate once.
func MigratePostgres(ctx context.Context, url string) (from, to int, err error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return 0, 0, fmt.Errorf("storage: postgres url: %w", err)
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, 0, fmt.Errorf("storage: connect to postgres: %w", err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	if err := checkServerVersion(ctx, c); err != nil {
		return 0, 0, err
	}
	from, to, err = migrate(ctx, c, migrations, true)
	if err != nil {
		return from, to, fmt.Errorf("storage: migrate postgres: %w", err)
	}
	return from, to, nil
}

func checkServerVersion(ctx context.Context, c *pgx.Conn) error {
	var s string
	if err := c.QueryRow(ctx, "SHOW server_version_num").Scan(&s); err != nil {
		return err
	}
	if n, err := strconv.Atoi(s); err != nil || n < minServerVersion {
		return &pgOutcome{permanent, fmt.Errorf("postgres server version %s: kmipd needs PostgreSQL 13 or newer", s)}
	}
	return nil
}

// migrate applies the steps of list newer than the database's version, in
// one transaction under the migration lock; with apply false it only
// checks that the database is at list's last version. A database already
// there is not locked at all, so replicas restarting need no lock nor
// DDL privileges.
func migrate(ctx context.Context, c *pgx.Conn, list []migration, apply bool) (from, to int, err error) {
	known := list[len(list)-1].version
	cur, err := schemaVersion(ctx, c)
	if err != nil {
		return 0, 0, err
	}
	if err := compatible(cur, known); err != nil || cur == known {
		return cur, cur, err
	}
	if !apply {
		return cur, cur, &pgOutcome{permanent, fmt.Errorf("%w: the database schema is version %d and this kmipd needs %d; migrate it first (kmipd storage migrate)", ErrSchemaVersion, cur, known)}
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		return cur, cur, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLock); err != nil {
		return cur, cur, err
	}
	// Another replica may have migrated while we waited for the lock, and
	// an advisory lock does not refresh this session's catalog caches: a
	// name lookup could still miss the tables it created. CREATE TABLE
	// locks the schema, which does refresh them, so it comes first.
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+schemaTable+` (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return cur, cur, err
	}
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+schemaTable).Scan(&cur); err != nil {
		return cur, cur, err
	}
	if err := compatible(cur, known); err != nil || cur == known {
		return cur, cur, err
	}
	for _, m := range list {
		if m.version <= cur {
			continue
		}
		for _, s := range m.stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return cur, cur, fmt.Errorf("schema step %d (%s): %w", m.version, m.name, err)
			}
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+schemaTable+" (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
			return cur, cur, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return cur, cur, err
	}
	return cur, known, nil
}

// compatible refuses a schema newer than this binary: its steps may have
// changed what this binary reads or writes.
func compatible(cur, known int) error {
	if cur > known {
		return &pgOutcome{permanent, fmt.Errorf("%w: the database schema is version %d, newer than this kmipd knows (%d); upgrade kmipd", ErrSchemaVersion, cur, known)}
	}
	return nil
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// schemaVersion is the newest step applied, 0 for a database kmipd has
// never used.
func schemaVersion(ctx context.Context, q querier) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", schemaTable).Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		return 0, nil
	}
	var v int
	err := q.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+schemaTable).Scan(&v)
	return v, err
}
