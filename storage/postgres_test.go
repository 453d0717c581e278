package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmipd/kmipd/storage/pgtest"
)

func openPG(t testing.TB, url string, opts PostgresOptions) *Postgres {
	t.Helper()
	opts.URL = url
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := OpenPostgres(ctx, opts, testLogger(t))
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestPostgresExercise(t *testing.T) {
	Exercise(t, openPG(t, pgtest.Database(t), PostgresOptions{}))
}

func TestPostgresClose(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Database(t)
	p := openPG(t, url, PostgresOptions{})
	if err := p.Put(ctx, "pkek/alice", []byte("record")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := p.Get(ctx, "pkek/alice"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
	if err := p.Create(ctx, "x", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Create after Close = %v, want ErrClosed", err)
	}
	// What was committed is there for the next store.
	q := openPG(t, url, PostgresOptions{})
	mustGet(t, q, "pkek/alice", []byte("record"))
}

// TestPostgresReplicas: two stores on one database, as two kmipd replicas.
func TestPostgresReplicas(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Database(t)
	a := openPG(t, url, PostgresOptions{MaxConns: 8})
	b := openPG(t, url, PostgresOptions{MaxConns: 8})
	replicas := []*Postgres{a, b}

	t.Run("CreateRace", func(t *testing.T) {
		// 100 keys raced at once, each by 3 callers on each replica.
		const keys, perReplica = 100, 3
		type result struct {
			err   error
			value []byte
		}
		results := make([][]result, keys)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for k := range keys {
			results[k] = make([]result, 2*perReplica)
			for i := range 2 * perReplica {
				wg.Add(1)
				go func() {
					defer wg.Done()
					v := []byte(fmt.Sprintf("key %d caller %d", k, i))
					<-start
					err := replicas[i%2].Create(ctx, fmt.Sprintf("race/%d", k), v)
					results[k][i] = result{err, v}
				}()
			}
		}
		close(start)
		wg.Wait()
		for k, rs := range results {
			var won []byte
			for _, r := range rs {
				switch {
				case r.err == nil && won != nil:
					t.Fatalf("key %d: two Creates won", k)
				case r.err == nil:
					won = r.value
				case !errors.Is(r.err, ErrExists):
					t.Fatalf("key %d: Create = %v, want nil or ErrExists", k, r.err)
				}
			}
			if won == nil {
				t.Fatalf("key %d: no Create won", k)
			}
			for _, s := range replicas {
				mustGet(t, s, fmt.Sprintf("race/%d", k), won)
			}
		}
	})

	t.Run("SeeEachOther", func(t *testing.T) {
		for i := range 20 {
			w, r := replicas[i%2], replicas[1-i%2]
			v := []byte(fmt.Sprintf("v%d", i))
			mustPut(t, w, "shared/k", v)
			mustGet(t, r, "shared/k", v) // at once: no replica-local cache
			var seen []byte
			if err := r.View(ctx, "shared/k", func(b []byte) error { seen = bytes.Clone(b); return nil }); err != nil || !bytes.Equal(seen, v) {
				t.Fatalf("View on the other replica = %q, %v; want %q", seen, err, v)
			}
		}
		if err := b.Delete(ctx, "shared/k"); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Get(ctx, "shared/k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after the other replica's Delete = %v, want ErrNotFound", err)
		}
		if err := a.Delete(ctx, "shared/k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second Delete on the other replica = %v, want ErrNotFound", err)
		}
		// A swap based on a read the other replica has since overtaken is refused.
		mustPut(t, a, "shared/s", []byte("read by a"))
		mustPut(t, b, "shared/s", []byte("written by b"))
		if err := a.Swap(ctx, "shared/s", []byte("read by a"), []byte("a's change")); !errors.Is(err, ErrConflict) {
			t.Fatalf("stale Swap = %v, want ErrConflict", err)
		}
		mustGet(t, a, "shared/s", []byte("written by b"))
	})
}

// TestPostgresListPages lists more than a page while fn uses the store,
// with a pool of one connection: List must not hold it while fn runs.
func TestPostgresListPages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := openPG(t, pgtest.Database(t), PostgresOptions{MaxConns: 1})
	n := 2*listPage + 7
	for i := range n {
		mustPut(t, p, fmt.Sprintf("obj/o/%05d", i), []byte{byte(i)})
	}
	mustPut(t, p, "obj/o0", nil)
	mustPut(t, p, "obj/n", nil)
	i := 0
	err := p.List(ctx, "obj/o/", func(k string, v []byte) error {
		if want := fmt.Sprintf("obj/o/%05d", i); k != want || !bytes.Equal(v, []byte{byte(i)}) {
			return fmt.Errorf("record %d = %q %x, want %q %x", i, k, v, want, []byte{byte(i)})
		}
		got, err := p.Get(ctx, k)
		if err != nil || !bytes.Equal(got, v) {
			return fmt.Errorf("Get inside List = %x, %v", got, err)
		}
		i++
		return nil
	})
	if err != nil || i != n {
		t.Fatalf("List = %d records, %v; want %d", i, err, n)
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"a", "b"},
		{"obj/", "obj0"},
		{"a\xff", "b"},
		{"a\xfe\xff\xff", "a\xff"},
		{"\xff\xff", ""},
		{"\x00", "\x01"},
	} {
		got := prefixEnd([]byte(c.in))
		if string(got) != c.want || (c.want == "") != (got == nil) {
			t.Errorf("prefixEnd(%q) = %q (nil %v), want %q", c.in, got, got == nil, c.want)
		}
	}
}

// TestPostgresRestart restarts the server under a store that stays open,
// with writers running: every Create must succeed exactly once, neither
// lost nor answered ErrExists for its own row after a lost commit answer.
func TestPostgresRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := pgtest.New(t)
	p := openPG(t, srv.Database(t), PostgresOptions{MaxConns: 4, RetryTimeout: time.Minute})
	mustPut(t, p, "before", []byte("restart"))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	written := map[string][]byte{}
	var errs []error
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k, v := fmt.Sprintf("w%d/%d", w, i), []byte(fmt.Sprintf("value %d/%d", w, i))
				err := p.Create(ctx, k, v)
				if err == nil && i%2 == 0 {
					err = p.Delete(ctx, k)
					v = nil
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", k, err))
				}
				written[k] = v
				mu.Unlock()
				if err != nil || i >= 2000 {
					return
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	conns := p.pool.Stat().NewConnsCount()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("writes across a restart failed: %v", errs)
	}
	mustGet(t, p, "before", []byte("restart"))
	for k, v := range written {
		got, err := p.Get(ctx, k)
		switch {
		case v == nil && !errors.Is(err, ErrNotFound):
			t.Fatalf("%s: deleted, but Get = %q, %v", k, got, err)
		case v != nil && (err != nil || !bytes.Equal(got, v)):
			t.Fatalf("%s: Get = %q, %v; want %q", k, got, err, v)
		}
	}
	// The restart ended every connection: the pool made new ones.
	if n := p.pool.Stat().NewConnsCount(); n <= conns {
		t.Fatalf("pool opened %d connections before the restart and %d in all, want new ones", conns, n)
	}
	t.Logf("%d writes across the restart; %s", len(written), retriesSummary(t, p))
}

func retriesSummary(t testing.TB, p *Postgres) string {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(p.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, mf := range mfs {
		if !strings.Contains(mf.GetName(), "retries") && !strings.Contains(mf.GetName(), "lost_commits") {
			continue
		}
		for _, m := range mf.GetMetric() {
			parts = append(parts, fmt.Sprintf("%s%v=%v", mf.GetName(), m.GetLabel(), m.GetCounter().GetValue()))
		}
	}
	return strings.Join(parts, " ")
}

func TestPostgresCollector(t *testing.T) {
	p := openPG(t, pgtest.Database(t), PostgresOptions{MaxConns: 3})
	mustPut(t, p, "k", []byte("v"))
	mustGet(t, p, "k", []byte("v"))
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(p.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				got[mf.GetName()] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[mf.GetName()] += float64(m.GetHistogram().GetSampleCount())
			case m.GetCounter() != nil:
				got[mf.GetName()] += m.GetCounter().GetValue()
			}
		}
	}
	if got["kmipd_storage_postgres_pool_max_conns"] != 3 {
		t.Errorf("max_conns = %v, want 3", got["kmipd_storage_postgres_pool_max_conns"])
	}
	if got["kmipd_storage_postgres_op_seconds"] < 2 {
		t.Errorf("op_seconds counted %v operations, want at least the Put and Get", got["kmipd_storage_postgres_op_seconds"])
	}
	if got["kmipd_storage_postgres_pool_acquires_total"] < 2 {
		t.Errorf("acquires_total = %v", got["kmipd_storage_postgres_pool_acquires_total"])
	}
}

func TestPostgresOptions(t *testing.T) {
	ctx := context.Background()
	if _, err := OpenPostgres(ctx, PostgresOptions{}, nil); err == nil {
		t.Fatal("OpenPostgres with no URL succeeded")
	}
	_, err := OpenPostgres(ctx, PostgresOptions{URL: "postgres://kmipd:s3cret-pw@127.0.0.1:1/x?sslmode=bogus"}, nil)
	if err == nil || strings.Contains(err.Error(), "s3cret-pw") {
		t.Fatalf("bad URL: err = %v; want an error without the password", err)
	}
	cfg, err := poolConfig(PostgresOptions{URL: "postgres://a,b:5433/db?sslmode=disable&target_session_attrs=read-write", MaxConns: 7})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConns != 7 || len(cfg.ConnConfig.Fallbacks) != 1 || cfg.ConnConfig.ValidateConnect == nil {
		t.Fatalf("multi-host config: max %d, fallbacks %d, validate %v", cfg.MaxConns, len(cfg.ConnConfig.Fallbacks), cfg.ConnConfig.ValidateConnect != nil)
	}
	if cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] != idleInTxTimeout {
		t.Fatalf("runtime params %v", cfg.ConnConfig.RuntimeParams)
	}
	for url, want := range map[string]int32{
		"postgres://h/db":                  defaultMaxConns,
		"postgres://h/db?pool_max_conns=3": 3,
	} {
		cfg, err := poolConfig(PostgresOptions{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.MaxConns != want {
			t.Fatalf("poolConfig(%s) max conns = %d, want %d", url, cfg.MaxConns, want)
		}
	}
}

// TestPostgresFailover: a URL naming two servers with
// target_session_attrs=read-write. The store writes to the writable one;
// when it stops and the other becomes writable (as a promoted standby
// does), the same store carries on there by itself.
func TestPostgresFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const db = "kmipd_failover"
	primary, standby := pgtest.New(t), pgtest.New(t)
	for _, s := range []*pgtest.Server{primary, standby} {
		if err := s.Exec(ctx, "postgres", "CREATE DATABASE "+db); err != nil {
			t.Fatal(err)
		}
		if _, _, err := MigratePostgres(ctx, s.URL(db)); err != nil {
			t.Fatal(err)
		}
	}
	setReadOnly := func(s *pgtest.Server, on bool) {
		sql := "ALTER DATABASE " + db + " RESET default_transaction_read_only"
		if on {
			sql = "ALTER DATABASE " + db + " SET default_transaction_read_only = on"
		}
		if err := s.Exec(ctx, "postgres", sql); err != nil {
			t.Fatal(err)
		}
	}
	setReadOnly(standby, true)
	url := "postgres://postgres@" + standby.Addr() + "," + primary.Addr() + "/" + db +
		"?sslmode=disable&target_session_attrs=read-write"
	p := openPG(t, url, PostgresOptions{MaxConns: 2, RetryTimeout: time.Minute})
	mustPut(t, p, "k", []byte("on the first primary"))
	onServer := func(s *pgtest.Server) string {
		q := openPG(t, s.URL(db), PostgresOptions{NoMigrate: true})
		defer q.Close()
		v, err := q.Get(ctx, "k")
		if err != nil {
			return err.Error()
		}
		return string(v)
	}
	if got := onServer(primary); got != "on the first primary" {
		t.Fatalf("the first primary holds %q", got)
	}

	if err := primary.Stop(); err != nil {
		t.Fatal(err)
	}
	setReadOnly(standby, false)
	if err := p.Create(ctx, "k", []byte("on the new primary")); err != nil {
		t.Fatalf("Create after failover: %v", err)
	}
	mustGet(t, p, "k", []byte("on the new primary"))
	if got := onServer(standby); got != "on the new primary" {
		t.Fatalf("the new primary holds %q", got)
	}
}
