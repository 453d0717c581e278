package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/kmipclient"
)

// devPKI mints client identities from a dev cluster's CA (DIR/pki).
type devPKI struct {
	t    *testing.T
	ca   *certs.CA
	pool *x509.CertPool
}

func loadDevPKI(t *testing.T, dir string) *devPKI {
	t.Helper()
	ca, err := certs.LoadCA(filepath.Join(dir, "pki"), certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &devPKI{t: t, ca: ca, pool: ca.Pool()}
}

// owners issues n client certificates: n distinct owners.
func (p *devPKI) owners(prefix string, n int) []tls.Certificate {
	p.t.Helper()
	out := make([]tls.Certificate, n)
	for i := range out {
		is, err := p.ca.IssueClient(fmt.Sprintf("%s-%d", prefix, i))
		if err != nil {
			p.t.Fatal(err)
		}
		out[i] = is.TLS()
	}
	return out
}

func (p *devPKI) client(addr string, id tls.Certificate, timeout time.Duration) *kmipclient.Client {
	p.t.Helper()
	cl, err := kmipclient.New(kmipclient.Config{Addr: addr, Timeout: timeout,
		TLS: &tls.Config{RootCAs: p.pool, ServerName: "localhost", Certificates: []tls.Certificate{id}, MinVersion: tls.VersionTLS12}})
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// ack is a Create the server acknowledged, and the material Get read back.
type ack struct {
	replica, owner int
	id             string
	material       []byte
	start, end     time.Time // of the Create
}

// procLoad runs KMIP clients against replicas until stop: each worker
// loops Create, Get (and every fourth round Destroy) as one owner, over one
// connection (persistent) or a new one per request (reconnect).
type procLoad struct {
	stopc chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex
	ok     map[int]int     // replica: requests served
	failed map[int][]error // replica: failed requests
	nfail  map[int]int
	acks   []ack
}

// loadWorker is one client of a procLoad.
type loadWorker struct {
	replica, owner int
	cl             *kmipclient.Client
	reconnect      bool
	think          time.Duration // pause between rounds
}

// startProcLoad starts the workers over ramp, evenly: clients arriving
// together, not in one instant (200 simultaneous TLS handshakes on two
// cores would test the handshake timeout, not the cluster).
func startProcLoad(workers []loadWorker, ramp time.Duration) *procLoad {
	l := &procLoad{stopc: make(chan struct{}), ok: map[int]int{}, failed: map[int][]error{}, nfail: map[int]int{}}
	for i, w := range workers {
		l.wg.Add(1)
		go l.run(w, ramp*time.Duration(i)/time.Duration(len(workers)))
	}
	return l
}

func (l *procLoad) run(w loadWorker, delay time.Duration) {
	defer l.wg.Done()
	select {
	case <-l.stopc:
		return
	case <-time.After(delay):
	}
	ctx := context.Background()
	for round := 0; ; round++ {
		select {
		case <-l.stopc:
			return
		case <-time.After(w.think):
		}
		a := ack{replica: w.replica, owner: w.owner, start: time.Now()}
		id, err := w.cl.Create(ctx, aes)
		a.end = time.Now()
		l.record(w.replica, err)
		if w.reconnect {
			_ = w.cl.Close()
		}
		if err != nil {
			time.Sleep(50 * time.Millisecond) // a failing replica is not a busy loop
			continue
		}
		a.id = id
		o, err := w.cl.Get(ctx, id, 0)
		if err == nil && len(o.Material) != 32 {
			err = fmt.Errorf("Get %s: %d bytes of material", id, len(o.Material))
		}
		l.record(w.replica, err)
		if err == nil {
			a.material = o.Material
		}
		if w.reconnect {
			_ = w.cl.Close()
		}
		if round%4 == 3 && err == nil {
			l.record(w.replica, w.cl.Destroy(ctx, id))
			if w.reconnect {
				_ = w.cl.Close()
			}
			continue // destroyed: not among the acknowledged objects to read back
		}
		l.mu.Lock()
		l.acks = append(l.acks, a)
		l.mu.Unlock()
	}
}

func (l *procLoad) record(replica int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.ok[replica]++
		return
	}
	l.nfail[replica]++
	if len(l.failed[replica]) < 3 {
		l.failed[replica] = append(l.failed[replica], err)
	}
}

// stop ends the load and waits for every worker's last request.
func (l *procLoad) stop() {
	select {
	case <-l.stopc:
	default:
		close(l.stopc)
	}
	l.wg.Wait()
}
