// Package hostile is issue 7's in-process harness and hostile-client suite.
//
// StartServer builds the whole of kmipd in this process with package daemon,
// as `kmipd serve` does: the dev configuration over a fresh SoftHSM token
// (hsmtest), a Badger store in a temporary folder and a dev PKI (certs.Init)
// for mutual TLS, served on 127.0.0.1:0. Tests can reach the pieces (the
// store to tamper with, the metrics to count connections, the log to scan
// for secrets) that a subprocess would hide. It is ordinary Go, not a _test
// file, so the isolation, crash and secrets suites can import it.
package hostile

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/hsm/hsmtest"
	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/kmipops"
	"github.com/kmipd/kmipd/server"
	"github.com/kmipd/kmipd/storage"
)

// Options tune StartServer. The zero value is two identities, the server's
// default limits and a debug-level log kept in memory.
type Options struct {
	// Server replaces the listener's limits and timeouts (zero fields take
	// server's defaults, as the dev configuration's do); Address, TLS and
	// Metrics always come from the daemon.
	Server server.Config
	// Identities is the number of client identities (owners); default 2.
	Identities int
	// LogLevel of the in-memory log (Env.Logs); default hclog.Debug.
	LogLevel hclog.Level
	// LogOutput, if set, receives the log instead of the in-memory buffer
	// (a fuzz run must not accumulate millions of lines).
	LogOutput io.Writer
	// Processor replaces the processor options (credentials, clock,
	// randomness; zero fields take kmipops' defaults); Observer is always
	// the daemon's metrics.
	Processor kmipops.Options
	// KEK tunes the pKEK cache; zero fields keep the configuration's.
	KEK kek.Config
}

// Env is a running in-process kmipd.
type Env struct {
	t    testing.TB
	opts Options
	cfg  *daemon.Config

	CA      *certs.CA
	Clients []*certs.Issued // one ClientAuth certificate per identity
	Owners  []string        // kmipd's owner id of each client (server.Identity)

	HSM     *hsm.HSM // opened once, so it outlives Stop and Start
	DataDir string   // the Badger folder; survives Stop for tampering

	log *LogBuffer

	mu        sync.Mutex // guards the fields below across Stop/Start
	addr      string
	d         *daemon.Daemon
	cancel    context.CancelFunc
	serveDone chan error
}

// StartServer builds and starts an in-process kmipd. Everything is torn
// down when the test ends.
func StartServer(t testing.TB, opts Options) *Env {
	t.Helper()
	if opts.Identities <= 0 {
		opts.Identities = 2
	}
	if opts.LogLevel == hclog.NoLevel {
		opts.LogLevel = hclog.Debug
	}
	e := &Env{t: t, opts: opts, log: &LogBuffer{}}
	hc := hsmtest.SoftHSM(t)
	dir := t.TempDir()
	e.cfg = daemon.DevConfig(dir, "127.0.0.1:0", hc.ModulePath, hc.MaxSessions)
	if opts.KEK.CacheTTL > 0 {
		e.cfg.KEK.CacheTTL = opts.KEK.CacheTTL
	}
	if opts.KEK.CacheSize > 0 {
		e.cfg.KEK.CacheSize = opts.KEK.CacheSize
	}
	e.DataDir = e.cfg.Storage.Path
	pki := filepath.Join(dir, daemon.DevPKIDir)
	var err error
	if err = certs.Init(pki, certs.Options{}); err != nil {
		t.Fatalf("hostile: PKI: %v", err)
	}
	if e.CA, err = certs.LoadCA(pki, certs.Options{}); err != nil {
		t.Fatalf("hostile: CA: %v", err)
	}
	for i := range opts.Identities {
		c, err := e.CA.IssueClient(fmt.Sprintf("id%d", i))
		if err != nil {
			t.Fatalf("hostile: client certificate: %v", err)
		}
		e.Clients = append(e.Clients, c)
		e.Owners = append(e.Owners, server.Identity(c.Cert))
	}
	if e.HSM, err = hsm.Open(context.Background(), hc, e.Logger().Named("hsm")); err != nil {
		t.Fatalf("hostile: hsm.Open: %v", err)
	}
	// Cleanups run last-in first-out: the server stops before the HSM closes.
	t.Cleanup(func() { e.HSM.Close() })
	t.Cleanup(e.Stop)
	e.Start()
	return e
}

// Logger is the trace-capable logger every component of the Env writes to.
func (e *Env) Logger() hclog.Logger {
	var out io.Writer = e.log
	if e.opts.LogOutput != nil {
		out = e.opts.LogOutput
	}
	return hclog.New(&hclog.LoggerOptions{Name: "kmipd", Level: e.opts.LogLevel, Output: out})
}

// Logs returns everything logged so far.
func (e *Env) Logs() string { return e.log.String() }

// Start builds kmipd over the open HSM, with the store in DataDir, and
// serves on a fresh loopback port. A new Keyring means a cold pKEK cache: the
// next use of every owner reads and verifies its pKEK record again.
func (e *Env) Start() {
	t := e.t
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.d != nil {
		t.Fatalf("hostile: Start while running")
	}
	d, err := daemon.BuildWith(context.Background(), e.cfg, e.Logger(), daemon.Hooks{
		HSM: e.HSM,
		Server: func(sc *server.Config) {
			o := e.opts.Server
			o.Address, o.TLS, o.Metrics = sc.Address, sc.TLS, sc.Metrics
			*sc = o
		},
		Processor: func(po *kmipops.Options) {
			o := e.opts.Processor
			o.Observer = po.Observer
			if o.Issuer == nil {
				o.Issuer = po.Issuer // the dev configuration's issuing CA (certify block)
			}
			*po = o
		},
	})
	if err != nil {
		t.Fatalf("hostile: daemon.Build: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		d.Close()
		t.Fatalf("hostile: listen: %v", err)
	}
	e.d, e.addr = d, l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	done := make(chan error, 1)
	e.serveDone = done
	go func() { done <- d.Serve(ctx, l) }()
}

// Stop shuts the server down and closes the store (the HSM stays open), so
// a test can open DataDir itself. Safe to call twice.
func (e *Env) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.d == nil {
		return
	}
	e.cancel()
	select {
	case err := <-e.serveDone:
		if err != nil {
			e.t.Errorf("hostile: Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		e.t.Errorf("hostile: server did not stop within 30s")
	}
	if err := e.d.Close(); err != nil {
		e.t.Errorf("hostile: %v", err)
	}
	e.d = nil
}

// Restart is Stop then Start: same data, same HSM token, new port.
func (e *Env) Restart() {
	e.Stop()
	e.Start()
}

// Addr is the server's current KMIP address.
func (e *Env) Addr() string { e.mu.Lock(); defer e.mu.Unlock(); return e.addr }

// Store is the running server's store.
func (e *Env) Store() storage.Store { e.mu.Lock(); defer e.mu.Unlock(); return e.d.Store() }

// Keyring is the running server's key hierarchy.
func (e *Env) Keyring() *kek.Keyring { e.mu.Lock(); defer e.mu.Unlock(); return e.d.Keyring() }

// Processor is the running server's KMIP processor.
func (e *Env) Processor() *kmipops.Processor {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.d.Processor()
}

// Metrics is the running server's metrics.
func (e *Env) Metrics() *server.Metrics { e.mu.Lock(); defer e.mu.Unlock(); return e.d.Metrics() }

// Caller is identity i as kmipops sees it, for driving the Processor
// directly (fuzzing) with the same owner the TLS path would derive.
func (e *Env) Caller(i int) kmipops.Caller {
	return kmipops.Caller{Identity: e.Owners[i], CommonName: e.Clients[i].Cert.Subject.CommonName}
}

// ClientTLS is a mutual-TLS client configuration presenting identity i.
func (e *Env) ClientTLS(i int) *tls.Config {
	return e.TLSWith(e.Clients[i])
}

// TLSWith is a client configuration presenting cert (none if nil) and
// trusting the Env's CA.
func (e *Env) TLSWith(cert *certs.Issued) *tls.Config {
	c := &tls.Config{RootCAs: e.CA.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if cert != nil {
		c.Certificates = []tls.Certificate{cert.TLS()}
	}
	return c
}

// Dial opens a mutual-TLS connection as identity i, closed when the test
// ends. It fails the test if the handshake fails.
func (e *Env) Dial(i int) *Conn {
	e.t.Helper()
	c, err := e.DialTLS(e.ClientTLS(i))
	if err != nil {
		e.t.Fatalf("hostile: dial as %s: %v", e.Clients[i].Cert.Subject.CommonName, err)
	}
	return c
}

// DialTLS opens a TLS connection with cfg and completes the handshake; the
// connection is closed when the test ends, if not before.
func (e *Env) DialTLS(cfg *tls.Config) (*Conn, error) {
	c, err := DialAddr(e.Addr(), cfg)
	if err != nil {
		return nil, err
	}
	e.t.Cleanup(func() { c.Close() })
	return c, nil
}

// DialAddr opens a TLS connection to any KMIP server (a kmipd subprocess,
// say) and completes the handshake; the caller closes it.
func DialAddr(addr string, cfg *tls.Config) (*Conn, error) {
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, cfg)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		raw.Close()
		return nil, err
	}
	tc.SetDeadline(time.Time{})
	return &Conn{Conn: tc, Timeout: DefaultTimeout}, nil
}

// LogBuffer is a goroutine-safe in-memory log sink.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
