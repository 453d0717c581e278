package daemon

import (
	"fmt"
	"math"
	"net/url"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// PostgresURL resolves storage.postgres.url and, when set, its password,
// which replaces the URL's own. Errors never contain the URL or password.
func (c *Config) PostgresURL() (string, error) {
	pc := c.Storage.Postgres
	if c.Storage.Backend != BackendPostgres || pc == nil {
		return "", fmt.Errorf("storage: the backend is %q, not postgres", c.Storage.Backend)
	}
	u, err := resolveSecret("storage.postgres.url", pc.URL)
	if err != nil {
		return "", err
	}
	if pc.Password == "" {
		return u, nil
	}
	pw, err := resolveSecret("storage.postgres.password", pc.Password)
	if err != nil {
		return "", err
	}
	return withPassword(u, pw)
}

// withPassword sets the password of a libpq connection string, in URL or
// key=value form.
func withPassword(conn, pw string) (string, error) {
	if isURLForm(conn) {
		u, err := url.Parse(conn)
		if err != nil {
			return "", fmt.Errorf("storage.postgres.url does not parse as a URL") // the error would quote it
		}
		name := ""
		if u.User != nil {
			name = u.User.Username()
		}
		u.User = url.UserPassword(name, pw)
		return u.String(), nil
	}
	// key=value form: a later keyword wins in libpq and pgx.
	esc := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw)
	return strings.TrimSpace(conn) + " password='" + esc + "'", nil
}

func isURLForm(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// checkPostgresURL checks the form of a literal URL; env: and file: are
// checked when resolved. Messages never quote the value.
func checkPostgresURL(s string) error {
	if err := checkPIN(s); err != nil || strings.HasPrefix(s, "env:") || strings.HasPrefix(s, "file:") {
		return err
	}
	if strings.Contains(s, "://") {
		if !isURLForm(s) {
			return fmt.Errorf("must be a postgres:// or postgresql:// URL, a key=value connection string, env:NAME or file:PATH")
		}
		if _, err := url.Parse(s); err != nil {
			return fmt.Errorf("does not parse as a URL")
		}
		return nil
	}
	if !strings.Contains(s, "=") {
		return fmt.Errorf("must be a postgres:// or postgresql:// URL, a key=value connection string, env:NAME or file:PATH")
	}
	return nil
}

// badgerKeys are the storage block's keys for the badger backend only.
var badgerKeys = []string{"path", "sync_writes", "cache_bytes", "block_cache_bytes", "index_cache_bytes", "memtable_bytes", "num_memtables"}

// decodeStorage decodes the storage block, its postgres block and
// hsm.cluster_max_sessions, which needs the postgres backend.
func (d *decoder) decodeStorage(c *Config, blocks map[string]hcl.Attributes, at map[string]hcl.Range) {
	st, rs := &c.Storage, blocks["storage"]
	d.str(rs["backend"], "storage.backend", &st.Backend, oneOf(BackendBadger, BackendPostgres))
	rp, hasPG := blocks["storage.postgres"]
	switch st.Backend {
	case BackendBadger:
		if _, ok := blocks["storage"]; ok && rs["path"] == nil {
			d.errf(at["storage"], "storage.path is required", "the badger backend keeps its files there")
		}
		d.path(rs["path"], "storage.path", &st.Path)
		d.boolean(rs["sync_writes"], "storage.sync_writes", &st.SyncWrites)
		m := &st.Badger
		d.size(rs["cache_bytes"], "storage.cache_bytes", &m.CacheBytes, 0, 1<<40)
		d.size(rs["block_cache_bytes"], "storage.block_cache_bytes", &m.BlockCacheBytes, 0, 1<<40)
		d.size(rs["index_cache_bytes"], "storage.index_cache_bytes", &m.IndexCacheBytes, 1<<20, 1<<40)
		d.size(rs["memtable_bytes"], "storage.memtable_bytes", &m.MemTableBytes, 16<<20, 1<<30)
		d.integer(rs["num_memtables"], "storage.num_memtables", &m.NumMemtables, 1, 16)
		if hasPG {
			d.errf(at["storage.postgres"], "storage.postgres needs backend = \"postgres\"",
				"the storage backend is badger; set storage.backend = \"postgres\" or remove the postgres block")
		}
	case BackendPostgres:
		for _, k := range badgerKeys {
			if a := rs[k]; a != nil {
				hint := "the postgres backend's memory is the database server's"
				if k == "path" || k == "sync_writes" {
					hint = "the postgres backend's durability is the server's synchronous_commit"
				}
				d.errf(a.Range, "storage."+k+" applies to the badger backend only", "%s", hint)
			}
		}
		if !hasPG {
			rng := at["storage"]
			if a := rs["backend"]; a != nil {
				rng = a.Range
			}
			d.errf(rng, "storage.backend = \"postgres\" needs a postgres block", "with its url")
			break
		}
		pc := &PostgresConfig{}
		st.Postgres = pc
		var u string
		if rp["url"] == nil {
			d.errf(at["storage.postgres"], "storage.postgres.url is required", "")
		} else if d.str(rp["url"], "storage.postgres.url", &u, checkPostgresURL) {
			pc.URL = Secret(d.resolveFileSpec(u))
		}
		var pw string
		if d.str(rp["password"], "storage.postgres.password", &pw, checkPIN) {
			pc.Password = Secret(d.resolveFileSpec(pw))
		}
		d.integer(rp["max_conns"], "storage.postgres.max_conns", &pc.MaxConns, 1, math.MaxInt32)
	}

	rh := blocks["hsm"]
	a := rh["cluster_max_sessions"]
	if !d.integer(a, "hsm.cluster_max_sessions", &c.HSM.ClusterMaxSessions, 1, 1<<16) {
		return
	}
	if st.Backend != BackendPostgres {
		d.errf(a.Range, "hsm.cluster_max_sessions needs storage.backend = \"postgres\"",
			"the replicas share the budget through the PostgreSQL store")
	}
}

// resolveFileSpec makes the path of a "file:PATH" secret absolute.
func (d *decoder) resolveFileSpec(spec string) string {
	if p, ok := strings.CutPrefix(spec, "file:"); ok {
		return "file:" + d.resolve(p)
	}
	return spec
}
