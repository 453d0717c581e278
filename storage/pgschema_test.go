package storage

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kmipd/kmipd/storage/pgtest"
)

func versionRows(t *testing.T, url string) []int {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, "SELECT version FROM "+schemaTable+" ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func exec(t *testing.T, url, sql string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

func TestMigrationsOrdered(t *testing.T) {
	for i, m := range migrations {
		if m.version != i+1 || m.name == "" || len(m.stmts) == 0 {
			t.Fatalf("migration %d is version %d %q with %d statements; versions must run 1, 2, … with names", i, m.version, m.name, len(m.stmts))
		}
	}
}

func TestMigrateFreshAndAgain(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Database(t)
	known := migrations[len(migrations)-1].version
	from, to, err := MigratePostgres(ctx, url)
	if err != nil || from != 0 || to != known {
		t.Fatalf("fresh MigratePostgres = %d → %d, %v; want 0 → %d", from, to, err, known)
	}
	from, to, err = MigratePostgres(ctx, url)
	if err != nil || from != known || to != known {
		t.Fatalf("second MigratePostgres = %d → %d, %v; want %d → %d", from, to, err, known, known)
	}
	if vs := versionRows(t, url); len(vs) != known || vs[len(vs)-1] != known {
		t.Fatalf("version rows %v, want 1…%d once each", vs, known)
	}
	// A store opens on it, with or without migrating.
	Exercise(t, openPG(t, url, PostgresOptions{NoMigrate: true}))
}

// Replicas starting together on an empty database: every one opens, the
// schema is made once.
func TestMigrateConcurrent(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Database(t)
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				p, err := OpenPostgres(ctx, PostgresOptions{URL: url}, testLogger(t))
				if err == nil {
					err = p.Create(ctx, "k", []byte{byte(i)})
					if errors.Is(err, ErrExists) {
						err = nil
					}
					_ = p.Close()
				}
				errs[i] = err
				return
			}
			_, _, errs[i] = MigratePostgres(ctx, url)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	if vs := versionRows(t, url); len(vs) != len(migrations) {
		t.Fatalf("version rows %v after concurrent migrations, want each once", vs)
	}
}

func TestMigrateNewerRefused(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Database(t)
	if _, _, err := MigratePostgres(ctx, url); err != nil {
		t.Fatal(err)
	}
	exec(t, url, "INSERT INTO "+schemaTable+" (version, name) VALUES (999, 'from a newer kmipd')")
	if _, err := OpenPostgres(ctx, PostgresOptions{URL: url}, nil); !errors.Is(err, ErrSchemaVersion) {
		t.Fatalf("OpenPostgres on a newer schema = %v, want ErrSchemaVersion", err)
	}
	if _, err := OpenPostgres(ctx, PostgresOptions{URL: url, NoMigrate: true}, nil); !errors.Is(err, ErrSchemaVersion) {
		t.Fatalf("OpenPostgres(NoMigrate) on a newer schema = %v, want ErrSchemaVersion", err)
	}
	if _, _, err := MigratePostgres(ctx, url); !errors.Is(err, ErrSchemaVersion) {
		t.Fatalf("MigratePostgres on a newer schema = %v, want ErrSchemaVersion", err)
	}
}

func TestNoMigrateNeedsMigrated(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Database(t)
	if _, err := OpenPostgres(ctx, PostgresOptions{URL: url, NoMigrate: true}, nil); !errors.Is(err, ErrSchemaVersion) {
		t.Fatalf("OpenPostgres(NoMigrate) on an empty database = %v, want ErrSchemaVersion", err)
	}
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var exists bool
	if err := c.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", recordsTable).Scan(&exists); err != nil || exists {
		t.Fatalf("NoMigrate created the records table (%v, %v)", exists, err)
	}
}

// A later step applies on top of the earlier ones, and a binary that knows
// only the earlier ones then refuses the database.
func TestMigrateSteps(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Database(t)
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	base := len(migrations)
	next := append(append([]migration(nil), migrations...),
		migration{base + 1, "test-extra", []string{"CREATE TABLE kmipd_test_extra (id integer)"}})
	if from, to, err := migrate(ctx, c, migrations, true); err != nil || from != 0 || to != base {
		t.Fatalf("migrate to %d = %d → %d, %v", base, from, to, err)
	}
	if from, to, err := migrate(ctx, c, next, true); err != nil || from != base || to != base+1 {
		t.Fatalf("migrate to %d = %d → %d, %v", base+1, from, to, err)
	}
	if _, err := c.Exec(ctx, "INSERT INTO kmipd_test_extra VALUES (1)"); err != nil {
		t.Fatalf("step %d's table: %v", base+1, err)
	}
	if _, _, err := migrate(ctx, c, migrations, true); !errors.Is(err, ErrSchemaVersion) {
		t.Fatalf("older binary on a newer schema: %v, want ErrSchemaVersion", err)
	}
	// A failing step leaves nothing behind: the transaction rolls back.
	bad := append(append([]migration(nil), next...),
		migration{base + 2, "test-bad", []string{"CREATE TABLE kmipd_test_bad (id integer)", "SELECT no_such_function()"}})
	if _, _, err := migrate(ctx, c, bad, true); err == nil {
		t.Fatal("a failing step migrated")
	}
	if v, err := schemaVersion(ctx, c); err != nil || v != base+1 {
		t.Fatalf("version after a failed step = %d, %v; want %d", v, err, base+1)
	}
	var exists bool
	if err := c.QueryRow(ctx, "SELECT to_regclass('kmipd_test_bad') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Fatalf("a failed step's table exists (%v, %v)", exists, err)
	}
}
