// Package sessionbudget keeps a cluster-wide HSM session budget in
// PostgreSQL, so that kmipd replicas sharing one HSM never hold more than
// cluster_max_sessions sessions on it between them, whatever happens to any
// one of them.
//
// Every replica holds a lease: a row in kmipd_hsm_budget (storage's schema,
// step 2) with the sessions it may hold open (its share), its demand and an
// expiry in the database's clock. A Client renews its lease every Renew,
// in one short transaction under an advisory lock on the budget, and grows
// or shrinks its share there; the sum of the shares of the leases alive
// never exceeds the budget. Shares follow demand (max-min fair, every
// replica keeping at least one session for its login), a replica only
// ever changes its own row, and it writes a smaller share only once its
// pool has closed down to it.
//
// Fencing is by time. A replica's share is valid, on its own monotonic
// clock, until the start of its last successful renewal + Lease - Margin:
// then its pool closes every session (hsm.Lessee). The others may reclaim a
// lease only once it is Margin past its expiry by the database's clock,
// which is at least Lease after that renewal started. So a replica that is
// killed, hangs, or loses the database has closed its sessions before
// anyone may reopen them elsewhere, provided the clocks' rates differ by
// much less than Margin/Lease and the database's clock is not stepped by
// Margin or more (see DEVELOPERS.md, "One HSM session budget").
package sessionbudget

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/storage"
)

// Defaults applied by Options.
const (
	DefaultName  = "default"
	DefaultLease = 10 * time.Second
)

// Options configures a Client.
type Options struct {
	// URL is the PostgreSQL database (libpq URL or key=value form), the
	// store's own: its schema holds the lease table.
	URL string
	// Name tells budgets apart in one database: one budget per HSM that
	// replicas share (default "default").
	Name string
	// Sessions is the budget, cluster_max_sessions: the most sessions open
	// to the HSM summed over every replica. Replicas configured with
	// different values all keep to the smallest.
	Sessions int
	// Replica names this replica among the live ones (default host-pid).
	// Two live processes with one name are refused (ErrReplicaInUse).
	Replica string
	// Lease is how long a renewal keeps the share reserved (default 10 s):
	// a dead replica's share is reclaimed Lease + Margin after its last
	// renewal, within one more Renew.
	Lease time.Duration
	// Renew is the renewal interval (default Lease/5); a share is valid
	// for Lease - Margin, which must span at least two renewals.
	Renew time.Duration
	// Margin is the safety margin on each side of the expiry (default
	// Lease/5): a replica stops using its share Margin before its lease
	// ends, the others reclaim it Margin after.
	Margin time.Duration
	// NoMigrate checks that the lease table exists instead of migrating
	// the schema (storage.MigratePostgres).
	NoMigrate bool
}

func (o Options) withDefaults() (Options, error) {
	if o.URL == "" {
		return o, errors.New("sessionbudget: postgres url is empty")
	}
	if o.Sessions < 1 {
		return o, fmt.Errorf("sessionbudget: cluster_max_sessions must be at least 1 (got %d)", o.Sessions)
	}
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Replica == "" {
		host, err := os.Hostname()
		if err != nil {
			host = "kmipd"
		}
		o.Replica = host + "-" + strconv.Itoa(os.Getpid())
	}
	if o.Lease == 0 {
		o.Lease = DefaultLease
	}
	if o.Renew == 0 {
		o.Renew = o.Lease / 5
	}
	if o.Margin == 0 {
		o.Margin = o.Lease / 5
	}
	if o.Lease < 0 || o.Renew <= 0 || o.Margin <= 0 {
		return o, errors.New("sessionbudget: lease, renew interval and margin must be positive")
	}
	if 2*o.Renew > o.Lease-o.Margin {
		return o, fmt.Errorf("sessionbudget: a share is valid for lease - margin (%v), which must span two renewals (renew %v)",
			o.Lease-o.Margin, o.Renew)
	}
	return o, nil
}

// ErrReplicaInUse is returned when another live process renews a lease
// under this replica's name.
var ErrReplicaInUse = errors.New("sessionbudget: replica name in use by another live process")

// Client is one replica's lease on the budget, and the hsm.Budget its HSM
// pool is attached to. It is safe for concurrent use.
type Client struct {
	opts      Options
	log       hclog.Logger
	db        *pgxpool.Pool
	instance  string        // random per Client: tells a reused replica name
	validFor  time.Duration // Lease - Margin
	txTimeout time.Duration
	m         *metrics

	tickMu sync.Mutex // one renewal at a time

	mu         sync.Mutex
	l          hsm.Lessee
	cap        int       // the share l holds
	until      time.Time // and until when (monotonic)
	target     int       // what the rebalancer would give us
	held       int       // what our row holds in the database, as last committed
	size       int       // the budget in force at the last renewal
	replicas   int       // live leases at the last renewal, ours included
	demand     hsm.Demand
	joined     bool // our row existed after the last renewal
	lostSeen   bool // the current lapse is counted
	failStreak int
	closed     bool
	stop       chan struct{} // nil while run is not running
	done       chan struct{}

	// paused stops renewals without stopping anything else: a renewer that
	// hangs (tests).
	paused atomic.Bool
}

var _ hsm.Budget = (*Client)(nil)

// Open connects to the database, migrates (or checks) the schema and
// returns a Client, not yet renewing: hsm.Open(..., hsm.WithBudget(c))
// attaches the HSM's pool, which starts the lease. log should be a named
// sub-logger (e.g. logger.Named("budget")).
func Open(ctx context.Context, opts Options, log hclog.Logger) (*Client, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if !opts.NoMigrate {
		if _, _, err := storage.MigratePostgres(ctx, opts.URL); err != nil {
			return nil, fmt.Errorf("sessionbudget: %w", err)
		}
	}
	cfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("sessionbudget: postgres url: %w", err)
	}
	// Renewals are sequential: one connection, and a spare for Detach.
	cfg.MaxConns = 2
	rp := cfg.ConnConfig.RuntimeParams
	rp["application_name"] = "kmipd-budget"
	// A replica cut off in the middle of a renewal holds the budget's lock
	// until the server ends its transaction: the others must not wait
	// longer than a renewal interval for it, nor for any statement.
	rp["idle_in_transaction_session_timeout"] = ms(opts.Renew)
	c := &Client{
		opts:      opts,
		log:       log,
		instance:  randomID(),
		validFor:  opts.Lease - opts.Margin,
		txTimeout: max(opts.Renew, (opts.Lease-opts.Margin)/2),
		m:         newMetrics(),
	}
	rp["statement_timeout"] = ms(c.txTimeout)
	if c.db, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("sessionbudget: postgres pool: %w", err)
	}
	if opts.NoMigrate {
		if err := c.checkTable(ctx); err != nil {
			c.db.Close()
			return nil, err
		}
	}
	return c, nil
}

func ms(d time.Duration) string { return strconv.FormatInt(max(d.Milliseconds(), 1), 10) }

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Replica is this replica's name in the lease table.
func (c *Client) Replica() string { return c.opts.Replica }

// Attach implements hsm.Budget: it renews the lease once (retrying until
// that works or ctx ends), hands l its first share (possibly 0 while the
// others still hold the whole budget) and keeps renewing every Renew. A
// replica restarted under its old name waits here for the old process's
// lease to run out (ErrReplicaInUse until then).
func (c *Client) Attach(ctx context.Context, l hsm.Lessee) error {
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return errors.New("sessionbudget: client closed")
	case c.l != nil:
		c.mu.Unlock()
		return errors.New("sessionbudget: a pool is attached already")
	}
	c.l = l
	c.mu.Unlock()
	for {
		err := c.tick(ctx) // logs its failures
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(c.opts.Renew):
		}
		if ctx.Err() != nil {
			c.mu.Lock()
			c.l = nil
			c.mu.Unlock()
			return fmt.Errorf("sessionbudget: no lease: %w", errors.Join(err, ctx.Err()))
		}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	c.mu.Lock()
	c.stop, c.done = stop, done
	c.mu.Unlock()
	go c.run(stop, done)
	return nil
}

// run renews every Renew until stop is closed.
func (c *Client) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(c.opts.Renew)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if c.paused.Load() {
			continue
		}
		_ = c.tick(context.Background())
	}
}

// tick renews the lease once and hands the pool its new share. The share
// is valid from the renewal's start for Lease - Margin: the expiry the
// database writes is at least Lease after that start.
func (c *Client) tick(ctx context.Context) error {
	c.tickMu.Lock()
	defer c.tickMu.Unlock()
	start := time.Now()
	c.mu.Lock()
	l, capNow, until, joined := c.l, c.cap, c.until, c.joined
	if l != nil && capNow > 0 && !start.Before(until) {
		capNow = 0
		c.lapseLocked("the lease ran out before it was renewed")
	}
	c.mu.Unlock()
	if l == nil {
		return nil
	}
	d := l.Demand()
	// What we may have open: the share the pool holds (0 past its
	// deadline) or, if more, what is open still (closing, or stuck).
	held := max(capNow, d.Open)
	want := min(max(d.Want, 1), max(d.Max, 1))
	tctx, cancel := context.WithTimeout(ctx, c.txTimeout)
	g, err := c.renew(tctx, held, want, max(d.Max, 1))
	cancel()
	c.m.renewSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		c.m.failures.Inc()
		c.mu.Lock()
		remaining := time.Until(c.until)
		c.failStreak++
		n := c.failStreak
		c.mu.Unlock()
		if n == 1 || n%10 == 0 { // a partition fails every renewal: say so now and then
			c.log.Warn("session budget: lease renewal failed", "replica", c.opts.Replica, "failures_in_a_row", n,
				"share_valid_for", max(remaining, 0).Round(time.Millisecond), "error", err)
		}
		return err
	}
	for _, r := range g.reclaimed {
		c.m.reclaimed.Inc()
		c.log.Info("session budget: reclaimed an expired lease", "replica", r.replica, "sessions", r.sessions)
	}
	newCap := min(g.share, g.target)
	newUntil := start.Add(c.validFor)
	c.mu.Lock()
	if joined && !g.found {
		c.lapseLocked("the lease had expired and was reclaimed")
	}
	prevCap, streak := c.cap, c.failStreak
	c.failStreak = 0
	c.cap, c.until, c.target, c.held = newCap, newUntil, g.target, g.share
	c.size, c.replicas, c.demand, c.joined = g.size, g.live, d, true
	if newCap > 0 {
		c.lostSeen = false
	}
	c.mu.Unlock()
	c.m.renewals.Inc()
	if streak > 0 {
		c.log.Info("session budget: lease renewed again", "replica", c.opts.Replica, "failures", streak, "sessions", newCap)
	}
	if newCap != prevCap {
		c.log.Debug("session budget: share changed", "from", prevCap, "to", newCap, "target", g.target,
			"held", g.share, "budget", g.size, "replicas", g.live, "want", want)
	}
	l.SetShare(hsm.Share{Sessions: newCap, Until: newUntil})
	return nil
}

// lapseLocked counts a lost lease once per lapse.
func (c *Client) lapseLocked(why string) {
	if c.lostSeen {
		return
	}
	c.lostSeen = true
	c.m.losses.Inc()
	c.log.Warn("session budget: lease lost; the HSM pool closed its sessions", "replica", c.opts.Replica, "why", why)
}

// Detach implements hsm.Budget: it stops renewing, withdraws l's share,
// waits (within ctx and the share's validity) for l to close what it holds
// and then deletes the lease, handing its share to the others at once. If
// sessions stay open, the lease is left to run out instead.
func (c *Client) Detach(ctx context.Context, l hsm.Lessee) error {
	c.mu.Lock()
	if c.l == nil || c.l != l {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	c.stopLoop()
	c.tickMu.Lock()
	defer c.tickMu.Unlock()
	c.mu.Lock()
	until := c.until
	c.l, c.cap = nil, 0
	c.mu.Unlock()
	l.SetShare(hsm.Share{Until: time.Now()})
	for l.Demand().Open > 0 {
		if !time.Now().Before(until) || ctx.Err() != nil {
			c.log.Warn("session budget: sessions still open at detach; leaving the lease to run out",
				"replica", c.opts.Replica, "open", l.Demand().Open)
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := c.release(ctx); err != nil {
		return fmt.Errorf("sessionbudget: release lease: %w", err)
	}
	c.mu.Lock()
	c.held, c.joined = 0, false
	c.mu.Unlock()
	c.log.Info("session budget: lease released", "replica", c.opts.Replica)
	return nil
}

// stopLoop stops run, if it runs, and waits for it.
func (c *Client) stopLoop() {
	c.mu.Lock()
	stop, done := c.stop, c.done
	c.stop, c.done = nil, nil
	c.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

// Close detaches a pool still attached (see Detach) and closes the
// connection pool. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	l := c.l
	c.mu.Unlock()
	var err error
	if l != nil {
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.Lease)
		err = c.Detach(ctx, l)
		cancel()
	}
	c.db.Close()
	return err
}

// Stats is a snapshot of the lease as of the last renewal.
type Stats struct {
	Share    int        // sessions the pool may hold now (0 once the lease ran out)
	Target   int        // what the rebalancer gives this replica
	Held     int        // what the lease holds in the database
	Budget   int        // the budget in force (smallest cluster_max_sessions among live replicas)
	Replicas int        // live leases, this one included
	Demand   hsm.Demand // the pool's demand reported at the last renewal
	Until    time.Time  // the share's local deadline
}

// Stats returns a snapshot.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{Share: c.cap, Target: c.target, Held: c.held, Budget: c.size, Replicas: c.replicas,
		Demand: c.demand, Until: c.until}
	if !time.Now().Before(c.until) {
		s.Share = 0
	}
	return s
}

// String describes the client for logs.
func (c *Client) String() string {
	return fmt.Sprintf("session budget %q (replica %s, %d sessions, lease %v)",
		c.opts.Name, c.opts.Replica, c.opts.Sessions, c.opts.Lease)
}

var _ fmt.Stringer = (*Client)(nil)
