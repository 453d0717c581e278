package bench

import (
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/hsm/hsmtest"
	"github.com/kmipd/kmipd/kmipops"
)

// inProcess is kmipd built by daemon.Build from the dev configuration
// (SoftHSM, Badger with synced writes, the dev PKI) but inside the test
// binary, so `go test -bench InProcess -cpuprofile` sees the server's hot
// paths without adding a profiling endpoint to the production binary.
type inProcess struct {
	addr     string
	tls      *tls.Config // the client's
	hsm      *hsm.HSM
	accepted *atomic.Int64 // TCP connections accepted by the server
	verifier *chainVerifier
	store    daemon.Store
}

// countingListener counts accepted connections: in reconnect mode, one per
// request the server was sent.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// startInProcess starts the server; each of with may change the processor's
// options (the audit benchmark turns auditing on).
func startInProcess(tb testing.TB, with ...func(*kmipops.Options)) *inProcess {
	tb.Helper()
	return startInProcessOn(tb, nil, with...)
}

// startInProcessOn is startInProcess on store (nil: the dev configuration's
// Badger store).
func startInProcessOn(tb testing.TB, store daemon.Store, with ...func(*kmipops.Options)) *inProcess {
	tb.Helper()
	hc := hsmtest.SoftHSM(tb)
	dir := tb.TempDir()
	pki := filepath.Join(dir, daemon.DevPKIDir)
	if err := certs.Init(pki, certs.Options{}); err != nil {
		tb.Fatal(err)
	}
	cfg := daemon.DevConfig(dir, "127.0.0.1:0", hc.ModulePath, 0) // 4 sessions, as kmipd dev
	cfg.HSM.TokenLabel, cfg.HSM.PIN = hc.TokenLabel, daemon.Secret(hc.PIN)
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.BuildWith(ctx, cfg, hclog.NewNullLogger(), daemon.Hooks{Store: store, Processor: func(o *kmipops.Options) {
		for _, f := range with {
			f(o)
		}
	}})
	if err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	accepted := new(atomic.Int64)
	served := make(chan struct{})
	go func() { defer close(served); _ = d.Serve(ctx, countingListener{l, accepted}) }()
	tb.Cleanup(func() {
		cancel()
		<-served
		d.Close()
	})
	ca, err := certs.LoadCA(pki, certs.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	cli, err := ca.IssueClient("bench-inprocess")
	if err != nil {
		tb.Fatal(err)
	}
	// The client verifies the server's chain once, as `kmipd bench` does.
	ctls := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{cli.TLS()}}
	v := verifyOnce(ctls)
	return &inProcess{addr: l.Addr().String(), tls: ctls, hsm: d.HSM(), accepted: accepted, verifier: v, store: d.Store()}
}

// TestWarmupIsNotMeasured: the server is sent the warm-up's requests, but
// the result counts only those of the measured phase, exactly MaxOps.
func TestWarmupIsNotMeasured(t *testing.T) {
	env := startInProcess(t)
	before := env.accepted.Load()
	const n = 40
	res, err := Run(t.Context(), Config{
		Addr: env.addr, TLS: []*tls.Config{env.tls}, Mode: Reconnect, Mix: MixCreate,
		Workers: 4, Warmup: 300 * time.Millisecond, MaxOps: n, Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != n || res.Errors != 0 || res.ByOp["Create"].Ops != n {
		t.Fatalf("measured %d ops (%d errors), want exactly %d: %v", res.Ops, res.Errors, n, res.ErrorSamples)
	}
	warm := env.accepted.Load() - before - 1 - n // one connection for setup
	if warm <= 0 {
		t.Fatalf("%d warm-up requests reached the server", warm)
	}
	if res.WarmupSeconds != 0.3 || res.Seconds <= 0 {
		t.Fatalf("warm-up %.2fs, measured %.2fs", res.WarmupSeconds, res.Seconds)
	}
	t.Logf("%d warm-up requests, then %d measured in %.2fs", warm, res.Ops, res.Seconds)

	// A duration-bounded run measures only the duration after the warm-up.
	res, err = Run(t.Context(), Config{
		Addr: env.addr, TLS: []*tls.Config{env.tls}, Mode: Persistent, Mix: MixCreate,
		Workers: 2, Warmup: time.Second, Duration: 500 * time.Millisecond, Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops == 0 || res.Errors != 0 || res.Seconds < 0.5 || res.Seconds >= 1.4 {
		t.Fatalf("%d ops (%d errors) in %.2fs, want some in 0.5s after a 1s warm-up", res.Ops, res.Errors, res.Seconds)
	}
	// Hundreds of handshakes, one chain verification (setup's).
	if n := env.verifier.verified.Load(); n != 1 {
		t.Errorf("server chain verified %d times, want 1", n)
	}
}

// BenchmarkInProcess runs the load generator against an in-process kmipd.
// b.N is the number of KMIP requests; ns/op is wall time per request at the
// given concurrency (not CPU time). Client and server share the CPUs, as in
// scripts/bench.sh. Profile the Get path with:
//
//	go test -run '^$' -bench 'InProcess/get/persistent/32/tls1.3' -benchtime 300000x -cpuprofile cpu.prof ./bench/
//	go tool pprof -top -focus 'server.\(\*conn\)' bench.test cpu.prof
func BenchmarkInProcess(b *testing.B) {
	env := startInProcess(b)
	for _, sc := range []struct {
		name, mix, mode string
		workers         int
		tlsMax          uint16
	}{
		{"get/persistent/32/tls1.3", MixGet, Persistent, 32, tls.VersionTLS13},
		{"get/persistent/32/tls1.2", MixGet, Persistent, 32, tls.VersionTLS12},
		{"create/persistent/16/tls1.3", MixCreate, Persistent, 16, tls.VersionTLS13},
		{"create-get-destroy/reconnect/16/tls1.3", MixCreateGetDestroy, Reconnect, 16, tls.VersionTLS13},
		{"create-get-destroy/reconnect/16/tls1.2", MixCreateGetDestroy, Reconnect, 16, tls.VersionTLS12},
	} {
		b.Run(sc.name, func(b *testing.B) {
			c := env.tls.Clone()
			c.MaxVersion = sc.tlsMax
			calls := env.hsm.Stats().Calls
			res, err := Run(context.Background(), Config{
				Addr: env.addr, TLS: []*tls.Config{c}, Mode: sc.mode, Mix: sc.mix,
				Workers: sc.workers, MaxOps: uint64(b.N), Timeout: 30 * time.Second,
			})
			if err != nil {
				b.Fatal(err)
			}
			if res.Errors > 0 {
				b.Fatalf("%d errors: %v", res.Errors, res.ErrorSamples)
			}
			// Calls include setup (a warm-up Create), so a cached owner
			// shows a handful at most, not one per request.
			b.ReportMetric(float64(env.hsm.Stats().Calls-calls), "hsm-calls")
			b.ReportMetric(res.Seconds*1e9/float64(max(res.Ops, 1)), "ns/op")
			b.ReportMetric(res.OKPerSec, "ops/s")
			b.ReportMetric(res.Latency.P50, "p50-ms")
			b.ReportMetric(res.Latency.P99, "p99-ms")
		})
	}
}
