package hsmfaults_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmipd/kmipd/testkit"
)

// failure is one failed request, kept for the report.
type failure struct {
	at    time.Time
	op    string
	owner string
	err   error
}

// tally counts a load's requests. Every request is counted once, when it
// ends; a request whose answer is wrong (bad key length, secret mismatch)
// counts as failed just like a KMIP error or a broken connection.
type tally struct {
	start    time.Time
	end      time.Time
	requests atomic.Int64
	failures atomic.Int64
	inflight atomic.Int64
	byOp     sync.Map // op name → *atomic.Int64

	mu   sync.Mutex
	errs []failure // the first maxKept
}

const maxKept = 20

func (tl *tally) do(op string, c *testkit.Client, fn func() error) error {
	tl.inflight.Add(1)
	err := fn()
	tl.inflight.Add(-1)
	tl.requests.Add(1)
	n, _ := tl.byOp.LoadOrStore(op, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	if err != nil {
		tl.failures.Add(1)
		tl.mu.Lock()
		if len(tl.errs) < maxKept {
			tl.errs = append(tl.errs, failure{at: time.Now(), op: op, owner: c.Name, err: err})
		}
		tl.mu.Unlock()
	}
	return err
}

// failed returns the kept failures.
func (tl *tally) failed() []failure {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]failure(nil), tl.errs...)
}

func (tl *tally) String() string {
	d := tl.end.Sub(tl.start)
	var ops []string
	for _, op := range []string{"Create", "Get", "Register", "Destroy"} {
		if n, ok := tl.byOp.Load(op); ok {
			ops = append(ops, fmt.Sprintf("%s %d", op, n.(*atomic.Int64).Load()))
		}
	}
	return fmt.Sprintf("%d requests in %v (%.0f/s; %s), %d failed",
		tl.requests.Load(), d.Round(time.Millisecond), float64(tl.requests.Load())/d.Seconds(),
		strings.Join(ops, ", "), tl.failures.Load())
}

// report lists the kept failures, relative to the load's start.
func (tl *tally) report() string {
	var b strings.Builder
	for _, f := range tl.failed() {
		fmt.Fprintf(&b, "\n  +%v %s (%s): %v", f.at.Sub(tl.start).Round(time.Millisecond), f.op, f.owner, f.err)
	}
	return b.String()
}

// requireNoFailures fails the test if any request failed.
func (tl *tally) requireNoFailures(t *testing.T, d *testkit.Dev) {
	t.Helper()
	if n := tl.failures.Load(); n != 0 {
		t.Errorf("%d of %d requests failed; first ones:%s\nkmipd log tail:\n%s",
			n, tl.requests.Load(), tl.report(), d.LogTail(30))
	}
	if tl.requests.Load() == 0 {
		t.Errorf("the load made no request")
	}
}

// picker chooses the owner for worker w's i-th round.
type picker func(w, i int) *testkit.Client

// owners cycles through a fixed set, each worker starting elsewhere, and
// every freshEvery-th round of the whole load (while any are left) takes a
// brand-new owner from fresh instead.
func owners(set []*testkit.Client, fresh chan *testkit.Client, freshEvery int) picker {
	var rounds atomic.Int64
	return func(w, i int) *testkit.Client {
		if fresh != nil && freshEvery > 0 && rounds.Add(1)%int64(freshEvery) == 0 {
			select {
			case c := <-fresh:
				return c
			default:
			}
		}
		return set[(w+i)%len(set)]
	}
}

// runLoad runs workers concurrent clients until ctx ends and returns the tally.
func runLoad(ctx context.Context, workers int, pick picker) *tally {
	tl := new(tally)
	tl.run(ctx, workers, pick)
	return tl
}

// run is runLoad on a tally the caller already holds, so another goroutine
// can watch inflight while the load runs. Each round is the Barbican-like
// mix: Create an AES-256 key and Get it, Register a secret and Get it back
// (checking the bytes), then Destroy both.
func (tl *tally) run(ctx context.Context, workers int, pick picker) {
	tl.start = time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				round(ctx, tl, pick(w, i))
			}
		}()
	}
	wg.Wait()
	tl.end = time.Now()
}

func round(ctx context.Context, tl *tally, c *testkit.Client) {
	var uid, sid string
	if tl.do("Create", c, func() (err error) { uid, err = c.Create(); return err }) == nil {
		tl.do("Get", c, func() error {
			key, err := c.Get(uid)
			if err == nil && len(key) != 32 {
				err = fmt.Errorf("Get %s: %d-byte key, want 32", uid, len(key))
			}
			return err
		})
	}
	if ctx.Err() != nil {
		return
	}
	secret := randomSecret()
	if tl.do("Register", c, func() (err error) { sid, err = c.Register(secret); return err }) == nil {
		tl.do("Get", c, func() error {
			got, err := c.Get(sid)
			if err == nil && !bytes.Equal(got, secret) {
				err = fmt.Errorf("Get %s: secret came back as %x, want %x", sid, got, secret)
			}
			return err
		})
	}
	for _, id := range []string{uid, sid} {
		if id != "" {
			tl.do("Destroy", c, func() error { return c.Destroy(id) })
		}
	}
}

func randomSecret() []byte {
	n, _ := rand.Int(rand.Reader, big.NewInt(48))
	b := make([]byte, 16+n.Int64())
	_, _ = rand.Read(b)
	return b
}

// sampler polls fn every interval until stop is called, keeping the lowest
// and highest values seen.
type sampler struct {
	mu       sync.Mutex
	min, max float64
	n        int
	done     chan struct{}
	wg       sync.WaitGroup
}

func sample(interval time.Duration, fn func() float64) *sampler {
	s := &sampler{done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			v := fn()
			s.mu.Lock()
			if s.n == 0 || v < s.min {
				s.min = v
			}
			if s.n == 0 || v > s.max {
				s.max = v
			}
			s.n++
			s.mu.Unlock()
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) stop() (lo, hi float64, n int) {
	close(s.done)
	s.wg.Wait()
	return s.min, s.max, s.n
}
