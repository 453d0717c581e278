package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmipd/kmipd/storage"
)

// pgMinimal is minimal on the postgres backend.
var pgMinimal = strings.Replace(minimal, "storage {\n  path = \"data\"\n}\n",
	"storage {\n  backend = \"postgres\"\n  postgres {\n    url = \"postgres://kmipd:s3cret@db1,db2/kmipd?target_session_attrs=read-write\"\n  }\n}\n", 1)

func TestPostgresConfig(t *testing.T) {
	src := strings.Replace(pgMinimal, "  }\n}\n", "    password = \"env:KMIPD_PG_PW\"\n    max_conns = 8\n  }\n}\n", 1)
	src = strings.Replace(src, "pin         = \"env:KMIPD_HSM_PIN\"", "pin = \"env:KMIPD_HSM_PIN\"\n  cluster_max_sessions = 6", 1)
	dir := t.TempDir()
	c, err := ParseConfig([]byte(src), filepath.Join(dir, "kmipd.hcl"))
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	if c.Storage.Backend != BackendPostgres || c.Storage.Postgres == nil || c.Storage.Postgres.MaxConns != 8 ||
		c.Storage.Path != "" || c.HSM.ClusterMaxSessions != 6 {
		t.Fatalf("%+v %+v", c.Storage, c.HSM)
	}
	if s := c.String(); strings.Contains(s, "s3cret") || !strings.Contains(s, "postgres") {
		t.Errorf("summary %q", s)
	}
	if _, err := c.PostgresURL(); err == nil || !strings.Contains(err.Error(), "KMIPD_PG_PW is not set") {
		t.Errorf("unset password variable: %v", err)
	}
	t.Setenv("KMIPD_PG_PW", "p'w@/x")
	u, err := c.PostgresURL()
	if err != nil || u != "postgres://kmipd:p%27w%40%2Fx@db1,db2/kmipd?target_session_attrs=read-write" {
		t.Errorf("url with password: %q %v", u, err)
	}
	roundTrip(t, c, filepath.Join(dir, "kmipd.hcl"))

	// key=value form, the whole url from a file, no password key.
	if err := writeFile(filepath.Join(dir, "pg.url"), "host=db port=5433 dbname=kmipd user=kmipd\n"); err != nil {
		t.Fatal(err)
	}
	c.Storage.Postgres.URL = Secret("file:" + filepath.Join(dir, "pg.url"))
	if u, err = c.PostgresURL(); err != nil || u != `host=db port=5433 dbname=kmipd user=kmipd password='p\'w@/x'` {
		t.Errorf("key=value url: %q %v", u, err)
	}
	c.Storage.Postgres.Password, c.Storage.Postgres.MaxConns, c.HSM.ClusterMaxSessions = "", 0, 0
	if u, err = c.PostgresURL(); err != nil || u != "host=db port=5433 dbname=kmipd user=kmipd" {
		t.Errorf("url from a file: %q %v", u, err)
	}
	roundTrip(t, c, filepath.Join(dir, "kmipd.hcl"))

	// badger, the default backend, named explicitly.
	c, err = ParseConfig([]byte(strings.Replace(minimal, "storage {\n", "storage {\n  backend = \"badger\"\n", 1)), "k.hcl")
	if err != nil || c.Storage.Backend != BackendBadger || c.Storage.Postgres != nil {
		t.Errorf("badger: %v %+v", err, c)
	}
	if _, err := c.PostgresURL(); err == nil {
		t.Error("PostgresURL on badger")
	}
}

// TestPostgresConfigErrors: each mistake is reported at its line, and no
// message quotes the url (it may hold a password).
func TestPostgresConfigErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{strings.Replace(minimal, "storage {\n", "storage {\n  backend = \"mysql\"\n", 1),
			`kmipd.hcl:12,3-20: storage.backend must be one of ["badger" "postgres"], not "mysql"`},
		{strings.Replace(minimal, "storage {\n  path = \"data\"\n", "storage {\n  backend = \"postgres\"\n", 1),
			`kmipd.hcl:12,3-23: storage.backend = "postgres" needs a postgres block`},
		{strings.Replace(minimal, "storage {\n", "storage {\n  postgres {\n    url = \"host=x\"\n  }\n", 1),
			`kmipd.hcl:12,3-11: storage.postgres needs backend = "postgres"`},
		{strings.Replace(pgMinimal, "storage {\n", "storage {\n  path = \"data\"\n", 1),
			"kmipd.hcl:12,3-16: storage.path applies to the badger backend only"},
		{strings.Replace(pgMinimal, "storage {\n", "storage {\n  sync_writes = false\n", 1),
			"kmipd.hcl:12,3-22: storage.sync_writes applies to the badger backend only"},
		{strings.Replace(pgMinimal, "storage {\n", "storage {\n  block_cache_bytes = \"1MiB\"\n", 1),
			"kmipd.hcl:12,3-29: storage.block_cache_bytes applies to the badger backend only"},
		{strings.Replace(pgMinimal, "url = \"postgres://kmipd:s3cret@", "url = \"mysql://kmipd:s3cret@", 1),
			"kmipd.hcl:14,5-"},
		{strings.Replace(pgMinimal, "url = \"postgres://kmipd:s3cret@db1,db2/kmipd?target_session_attrs=read-write\"", "url = \"s3cret\"", 1),
			"kmipd.hcl:14,5-19: storage.postgres.url must be a postgres:// or postgresql:// URL"},
		{strings.Replace(pgMinimal, "url = \"postgres://kmipd:s3cret@db1,db2/kmipd?target_session_attrs=read-write\"", "url = \"env:\"", 1),
			"kmipd.hcl:14,5-17: storage.postgres.url env: needs an environment variable name"},
		{strings.Replace(pgMinimal, "    url = \"postgres://kmipd:s3cret@db1,db2/kmipd?target_session_attrs=read-write\"\n", "    max_conns = 2\n", 1),
			"kmipd.hcl:13,3-11: storage.postgres.url is required"},
		{strings.Replace(pgMinimal, "  }\n}\n", "    max_conns = 0\n  }\n}\n", 1),
			"kmipd.hcl:15,5-18: storage.postgres.max_conns must be between 1 and"},
		{strings.Replace(pgMinimal, "  }\n}\n", "    password = \"file:\"\n  }\n}\n", 1),
			"kmipd.hcl:15,5-23: storage.postgres.password file: needs a path"},
		{strings.Replace(pgMinimal, "  }\n}\n", "    port = 5432\n  }\n}\n", 1),
			`kmipd.hcl:15,5-9: Unsupported argument: An argument named "port"`},
		{strings.Replace(pgMinimal, "  }\n}\n", "  }\n  postgres {\n  }\n}\n", 1),
			"kmipd.hcl:16,3-11: duplicate storage.postgres block"},
		{strings.Replace(minimal, "pin         = \"env:KMIPD_HSM_PIN\"", "pin = \"env:X\"\n  cluster_max_sessions = 6", 1),
			`kmipd.hcl:10,3-27: hsm.cluster_max_sessions needs storage.backend = "postgres"`},
		{strings.Replace(pgMinimal, "pin         = \"env:KMIPD_HSM_PIN\"", "pin = \"env:X\"\n  cluster_max_sessions = 0", 1),
			"kmipd.hcl:10,3-27: hsm.cluster_max_sessions must be between 1 and 65536"},
	}
	for _, tc := range cases {
		_, err := ParseConfig([]byte(tc.src), "kmipd.hcl")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want %q, got %v\n%s", tc.want, err, tc.src)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error quotes the url: %v", err)
		}
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// TestBadgerMemoryConfig: the storage block's memory keys reach the Badger
// store's options; without them every bound is kmipd's default, and 0
// turns the value and block caches off.
func TestBadgerMemoryConfig(t *testing.T) {
	c, err := ParseConfig([]byte(minimal), "kmipd.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.Badger != DefaultBadgerMemory {
		t.Fatalf("defaults = %+v, want %+v", c.Storage.Badger, DefaultBadgerMemory)
	}
	src := strings.Replace(minimal, "storage {\n", "storage {\n  cache_bytes = 0\n  block_cache_bytes = \"8MiB\"\n"+
		"  index_cache_bytes = \"16MiB\"\n  memtable_bytes = \"32MiB\"\n  num_memtables = 3\n", 1)
	if c, err = ParseConfig([]byte(src), "kmipd.hcl"); err != nil {
		t.Fatal(err)
	}
	want := BadgerMemory{CacheBytes: 0, BlockCacheBytes: 8 << 20, IndexCacheBytes: 16 << 20, MemTableBytes: 32 << 20, NumMemtables: 3}
	if c.Storage.Badger != want {
		t.Fatalf("parsed %+v, want %+v", c.Storage.Badger, want)
	}
	o := c.Storage.Badger.Options(storage.BadgerOptions{})
	if o.CacheBytes >= 0 || o.BlockCacheBytes != 8<<20 || o.IndexCacheBytes != 16<<20 || o.MemTableBytes != 32<<20 || o.NumMemtables != 3 {
		t.Fatalf("options %+v", o)
	}
}
