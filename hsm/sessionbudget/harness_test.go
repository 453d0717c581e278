package sessionbudget

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/hsm/hsmtest"
	"github.com/kmipd/kmipd/hsm/testmodule"
	"github.com/kmipd/kmipd/storage/pgtest"
)

// Replicas here are real parts: each its own hsm.HSM and Client, on one
// SoftHSM token behind the capped module (an HSM-wide session cap shared
// across processes, hsm/testmodule), leasing from a real PostgreSQL.

func TestMain(m *testing.M) {
	if os.Getenv("SESSIONBUDGET_CHILD") != "" {
		os.Exit(childMain())
	}
	os.Exit(pgtest.Main(m))
}

const (
	budgetN   = 6 // the HSM's cap and the cluster budget
	testLease = 2 * time.Second
	testRenew = testLease / 5 // the defaults' ratios
	testMarg  = testLease / 5
)

type cluster struct {
	t   *testing.T
	cfg hsm.Config
	ctl *testmodule.Control
	url string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	so := testmodule.Build(t)
	u := pgtest.Database(t)
	cfg := hsmtest.SoftHSM(t) // token and keys made through SoftHSM directly
	state := filepath.Join(t.TempDir(), "state")
	ctl, err := testmodule.OpenControl(state)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	ctl.SetCap(budgetN)
	ctl.SetRefuse(testmodule.RefuseSessionCount)
	t.Setenv("CAPPED_STATE", state)
	cfg.ModulePath = so
	cfg.MaxSessions = budgetN
	cfg.WaitTimeout = 30 * time.Second
	return &cluster{t: t, cfg: cfg, ctl: ctl, url: u}
}

type replica struct {
	name string
	b    *Client
	h    *hsm.HSM
	px   *proxy // nil: straight to the database
}

// join starts a replica; viaProxy puts a freezable relay between it and
// the database.
func (c *cluster) join(name string, viaProxy bool) *replica {
	t := c.t
	t.Helper()
	r := &replica{name: name}
	u := c.url
	if viaProxy {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		r.px = startProxy(t, pu.Host)
		u = r.px.via(t, u)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	r.b, err = Open(ctx, Options{URL: u, Sessions: budgetN, Replica: name, Lease: testLease}, testLogger(t, name+".budget"))
	if err != nil {
		t.Fatalf("%s: budget: %v", name, err)
	}
	r.h, err = hsm.Open(ctx, c.cfg, testLogger(t, name+".hsm"), hsm.WithBudget(r.b))
	if err != nil {
		r.b.Close()
		t.Fatalf("%s: hsm: %v", name, err)
	}
	t.Cleanup(func() {
		r.h.Close()
		r.b.Close()
	})
	return r
}

// leases reads the lease table: replica → sessions.
func (c *cluster) leases() map[string]int {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.url)
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, "SELECT replica, sessions FROM "+table)
	out := map[string]int{}
	var name string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&name, &n}, func() error { out[name] = n; return nil }); err != nil {
		c.t.Fatal(err)
	}
	return out
}

func testLogger(t testing.TB, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: testWriter{t}})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// load is a crowd of clients doing HSM work through the replicas: wrap and
// unwrap under several owners' AADs and MACs. Persistent clients stay on
// one replica; reconnecting ones move to another replica every few
// operations, pausing as a reconnect would.
type load struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	ok      map[string]*atomic.Int64
	mu      sync.Mutex
	errs    map[string][]error
	allowed func(r *replica, err error) bool
}

const maxOpsPerClient = 100000 // bounded, the test stops it long before

func startLoad(reps []*replica, persistent, reconnecting int, allowed func(r *replica, err error) bool) *load {
	l := &load{stop: make(chan struct{}), ok: map[string]*atomic.Int64{}, errs: map[string][]error{}, allowed: allowed}
	for _, r := range reps {
		l.ok[r.name] = new(atomic.Int64)
	}
	for i := 0; i < persistent+reconnecting; i++ {
		l.wg.Add(1)
		go l.client(i, reps, i >= persistent)
	}
	return l
}

func (l *load) client(i int, reps []*replica, reconnecting bool) {
	defer l.wg.Done()
	aad := []byte(fmt.Sprintf("kmipd/pkek/v1\x00owner-%d", i%7))
	r := reps[i%len(reps)]
	for n := 0; n < maxOpsPerClient; n++ {
		select {
		case <-l.stop:
			return
		default:
		}
		if reconnecting && n%5 == 4 {
			r = reps[(i+n)%len(reps)]
			time.Sleep(2 * time.Millisecond)
		}
		err := l.op(r, aad, n)
		switch {
		case err == nil:
			l.ok[r.name].Add(1)
		case l.allowed != nil && l.allowed(r, err):
			time.Sleep(5 * time.Millisecond)
		default:
			l.mu.Lock()
			l.errs[r.name] = append(l.errs[r.name], err)
			l.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func (l *load) op(r *replica, aad []byte, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n%3 == 2 {
		_, err := r.h.MAC(ctx, aad)
		return err
	}
	w, err := r.h.Wrap(ctx, []byte("pkek-material-32-bytes-long-----"), aad)
	if err != nil {
		return err
	}
	_, err = r.h.Unwrap(ctx, w, aad)
	return err
}

// finish stops the crowd and returns the errors not allowed, by replica.
func (l *load) finish() map[string][]error {
	close(l.stop)
	l.wg.Wait()
	return l.errs
}

func (l *load) okCount(name string) int64 { return l.ok[name].Load() }

func noShareOn(names ...string) func(r *replica, err error) bool {
	return func(r *replica, err error) bool {
		for _, n := range names {
			if r.name == n {
				return errors.Is(err, hsm.ErrNoShare)
			}
		}
		return false
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Now()
}

// childMain is a replica in its own process (TestKilledReplica): it joins,
// works under load until its share is at least two sessions, says "ready"
// and works on until killed (or its stdin closes).
func childMain() int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "child replica: "+format+"\n", a...)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := hclog.New(&hclog.LoggerOptions{Name: "child", Level: hclog.Warn, Output: os.Stderr})
	b, err := Open(ctx, Options{URL: os.Getenv("SB_URL"), Sessions: budgetN, Replica: os.Getenv("SB_REPLICA"),
		Lease: testLease}, log.Named("budget"))
	if err != nil {
		return fail("budget: %v", err)
	}
	cfg := hsm.Config{ModulePath: os.Getenv("SB_MODULE"), TokenLabel: os.Getenv("SB_LABEL"), PIN: os.Getenv("SB_PIN"),
		MaxSessions: budgetN, WaitTimeout: 30 * time.Second}
	h, err := hsm.Open(ctx, cfg, log.Named("hsm"), hsm.WithBudget(b))
	if err != nil {
		return fail("hsm: %v", err)
	}
	r := &replica{name: "child", b: b, h: h}
	l := startLoad([]*replica{r}, 40, 0, nil)
	for b.Stats().Share < 2 || l.okCount("child") < 100 {
		if ctx.Err() != nil {
			return fail("no share of two sessions: %+v", b.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	errs := l.finish()
	h.Close()
	b.Close()
	if len(errs["child"]) > 0 {
		return fail("%d failed operations, first %v", len(errs["child"]), errs["child"][0])
	}
	return 0
}
