package cluster

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/jackc/pgx/v5"

	"github.com/kmipd/kmipd/kmipclient"
	"github.com/kmipd/kmipd/storage/pgserver"
)

// failoverPair is a PostgreSQL primary and its synchronous streaming
// standby, each in its own temporary folder.
type failoverPair struct {
	primary, standby *pgserver.Server
}

// startFailoverPair starts a primary that commits only once the standby
// (application_name "standby", cloned with pg_basebackup -R) has flushed
// the commit, and database db on it.
func startFailoverPair(t *testing.T, db string) *failoverPair {
	t.Helper()
	if _, err := pgserver.BinDir(); err != nil {
		t.Skipf("%v to run this test", err)
	}
	tmp := func(what string) string {
		// Not t.TempDir: when root, the postgres user must get through
		// every folder above the data.
		d, err := os.MkdirTemp("", "kmipd-failover-"+what+"-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(d) })
		return d
	}
	p, err := pgserver.Init(tmp("primary"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.EnableReplication("standby"); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	// The primary is crashed by the test: stop it if it still runs.
	t.Cleanup(func() { _ = p.Crash() })
	s, err := p.Standby(tmp("standby"), "standby")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop standby: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// CREATE DATABASE commits, so it returns once the standby streams.
	if err := p.Exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var state string
	if err := c.QueryRow(ctx, "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'").Scan(&state); err != nil {
		t.Fatalf("standby not streaming: %v", err)
	}
	if state != "sync" {
		t.Fatalf("standby replication is %q, want sync", state)
	}
	return &failoverPair{primary: p, standby: s}
}

// url names both servers, primary first: libpq-style multi-host with
// target_session_attrs=read-write, so a pool connects to whichever one
// takes writes.
func (f *failoverPair) url(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"),
		Host: f.primary.Addr() + "," + f.standby.Addr(), Path: "/" + db,
		RawQuery: "sslmode=disable&target_session_attrs=read-write"}
	return u.String()
}

// attempt is one Create (and Get of its material) of the failover load.
type attempt struct {
	start, end time.Time
	id         string // set when the Create was acknowledged
	material   []byte // set when the Get after it succeeded
	err        error
}

// TestFailoverToSynchronousStandby: under a load of Creates, the PostgreSQL
// primary crashes and its synchronous standby is promoted. The replicas
// reconnect by themselves, every acknowledged Create reads back byte for
// byte afterwards, and the unavailability is measured.
func TestFailoverToSynchronousStandby(t *testing.T) {
	const db = "kmipd"
	pair := startFailoverPair(t, db)
	c := startClusterOn(t, pair.url(db), 2, 4)
	id := c.identity("alice")

	const workers = 4
	clients := make([]*kmipclient.Client, workers)
	for w := range workers {
		clients[w] = c.client(w%2, id)
	}

	var (
		mu       sync.Mutex
		attempts []attempt
		crashAt  time.Time
		promoted time.Time
		stopAt   = time.Now().Add(40 * time.Second) // hard bound on the load
		done     = make(chan struct{})
		stopOnce sync.Once
	)
	stop := func() { stopOnce.Do(func() { close(done) }) }
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := clients[w]
			for {
				select {
				case <-done:
					return
				default:
				}
				mu.Lock()
				over := time.Now().After(stopAt)
				mu.Unlock()
				if over {
					return
				}
				a := attempt{start: time.Now()}
				ctx, cancel := context.WithTimeout(t.Context(), 25*time.Second)
				uid, err := cl.Create(ctx, aes)
				if err == nil {
					a.id = uid
					var o *kmipclient.Object
					if o, err = cl.Get(ctx, uid, 0); err == nil {
						a.material = o.Material
					}
				}
				cancel()
				a.end, a.err = time.Now(), err
				mu.Lock()
				attempts = append(attempts, a)
				// Keep the load on for 2 s after the first Create acknowledged
				// after the promotion.
				if a.id != "" && !promoted.IsZero() && a.start.After(promoted) {
					if end := a.end.Add(2 * time.Second); end.Before(stopAt) {
						stopAt = end
					}
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(50 * time.Millisecond) // a failed request is not a busy loop
				}
			}
		}()
	}

	time.Sleep(2 * time.Second) // load against the healthy pair
	mu.Lock()
	before := len(attempts)
	mu.Unlock()
	if before == 0 {
		stop()
		wg.Wait()
		t.Fatal("no request finished before the failover")
	}
	mu.Lock()
	crashAt = time.Now()
	mu.Unlock()
	if err := pair.primary.Crash(); err != nil {
		stop()
		wg.Wait()
		t.Fatalf("crash primary: %v", err)
	}
	if err := pair.standby.Promote(); err != nil {
		stop()
		wg.Wait()
		t.Fatalf("promote standby: %v", err)
	}
	mu.Lock()
	promoted = time.Now()
	mu.Unlock()
	wg.Wait() // the workers end 2 s after the first Create acknowledged after the promotion

	// Unavailability: from the first request that failed or was still
	// running at the crash, to the first Create acknowledged after the
	// promotion.
	var (
		outageStart, firstOK time.Time
		acked, failed        int
		failedErrs           []error
	)
	for _, a := range attempts {
		if a.id != "" {
			acked++
		}
		if a.err != nil {
			failed++
			if len(failedErrs) < 3 {
				failedErrs = append(failedErrs, a.err)
			}
		}
		if (a.err != nil || a.end.After(crashAt)) && (outageStart.IsZero() || a.start.Before(outageStart)) {
			outageStart = a.start
		}
		if a.id != "" && a.start.After(promoted) && (firstOK.IsZero() || a.end.Before(firstOK)) {
			firstOK = a.end
		}
	}
	if firstOK.IsZero() {
		t.Fatalf("no Create acknowledged after the promotion (%d attempts, %d failed, e.g. %v): the replicas did not reconnect",
			len(attempts), failed, errors.Join(failedErrs...))
	}
	if outageStart.After(crashAt) {
		outageStart = crashAt // nothing was in flight: the outage starts at the crash
	}
	t.Logf("failover: %d Creates acknowledged, %d failed; crash and promotion took %.2f s; unavailable %.2f s (first failed or blocked request to first Create acknowledged after promotion), %.2f s after the promotion",
		acked, failed, promoted.Sub(crashAt).Seconds(), firstOK.Sub(outageStart).Seconds(), firstOK.Sub(promoted).Seconds())
	if failed > 0 {
		t.Logf("failures during the failover, e.g.: %v", errors.Join(failedErrs...))
	}

	// Each replica serves writes again, by itself.
	ctx := ctxT(t)
	readers := c.clients(id)
	for i, r := range readers {
		if _, err := r.Create(ctx, aes); err != nil {
			t.Fatalf("replica %d after the failover: %v", i, err)
		}
	}
	// Nothing acknowledged is lost: every acknowledged object reads back,
	// byte for byte, through both replicas.
	for _, a := range attempts {
		if a.id == "" {
			continue
		}
		for i, r := range readers {
			o, err := r.Get(ctx, a.id, 0)
			if err != nil {
				if reason, ok := kmipclient.ReasonOf(err); ok && reason == kmip14.ResultReasonItemNotFound {
					t.Fatalf("acknowledged Create %s (at %s) lost: replica %d: %v", a.id, a.end.Sub(crashAt), i, err)
				}
				t.Fatalf("Get %s on replica %d: %v", a.id, i, err)
			}
			if a.material != nil && !bytes.Equal(o.Material, a.material) {
				t.Fatalf("object %s reads back different material on replica %d", a.id, i)
			}
			if len(o.Material) != 32 {
				t.Fatalf("object %s has %d bytes of material", a.id, len(o.Material))
			}
		}
	}
}
