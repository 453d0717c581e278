package daemon_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/kmipd/kmipd/backup"
	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/kmipops"
	"github.com/kmipd/kmipd/storage"
	"github.com/kmipd/kmipd/storage/pgtest"
)

// TestAdminBackupRestorePostgres: on the PostgreSQL store, admin backup
// takes one consistent snapshot online under concurrent clients (0 failed
// requests), and the backup restores into an empty database, which then
// serves every object byte for byte; a second restore into it is refused.
func TestAdminBackupRestorePostgres(t *testing.T) {
	pg := pgtest.New(t)
	src, dst := pg.Database(t), pg.Database(t)
	c, hc := testConfig(t)
	c.Storage.Backend = daemon.BackendPostgres
	c.Storage.Postgres = &daemon.PostgresConfig{URL: daemon.Secret(src)}
	adminSocket(t, c)
	h, d := buildOnHSM(t, c, hc)

	const owners = 3
	seedKeys(t, d, owners, 10)
	buf, recs := backupUnderLoad(t, d, c.Admin.Socket, owners)
	// Consistent: every object's owner has its pKEK record in the backup.
	want := map[string][]byte{}
	pkeks := map[string]bool{}
	for _, r := range recs {
		if owner, ok := strings.CutPrefix(r.Key, "pkek/"); ok {
			pkeks[owner] = true
			continue
		}
		rest, ok := strings.CutPrefix(r.Key, "obj/")
		if !ok {
			t.Fatalf("backup holds %q", r.Key)
		}
		owner, uid, _ := strings.Cut(rest, "/")
		if !pkeks[owner] {
			t.Fatalf("object %s without its owner's pKEK record", r.Key)
		}
		k, err := getKey(t.Context(), d, kmipops.Caller{Identity: owner, CommonName: "x"}, uid)
		if err != nil {
			t.Fatal(err)
		}
		want[owner+"/"+uid] = k
	}
	if len(pkeks) != owners || len(want) < owners*10 {
		t.Fatalf("backup holds %d pKEKs and %d objects, want %d and at least %d", len(pkeks), len(want), owners, owners*10)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	st, err := storage.OpenPostgres(t.Context(), storage.PostgresOptions{URL: dst}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := backup.Restore(t.Context(), st, h, bytes.NewReader(buf.Bytes()))
	if err != nil || n != len(recs) {
		t.Fatalf("restore: %d records, %v (want %d)", n, err, len(recs))
	}
	if _, err := backup.Restore(t.Context(), st, h, bytes.NewReader(buf.Bytes())); !errors.Is(err, backup.ErrNotEmpty) {
		t.Fatalf("restore into a non-empty database: %v", err)
	}
	st.Close()

	c2 := *c
	c2.Storage.Postgres = &daemon.PostgresConfig{URL: daemon.Secret(dst)}
	c2.Admin = nil
	servesRestored(t, &c2, h, want)
}
