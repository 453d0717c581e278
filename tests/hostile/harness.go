// Package hostile is issue 7's in-process harness and hostile-client suite.
//
// StartServer builds the whole of kmipd in this process — SoftHSM token
// (hsmtest), Badger store in a temporary folder, kek.Keyring,
// kmipops.Processor and server.Server on 127.0.0.1:0 with mutual TLS from a
// fresh certs.CA — so tests can reach the pieces (the store to tamper with,
// the metrics to count connections, the log to scan for secrets) that a
// subprocess would hide. It is ordinary Go, not a _test file, so the
// isolation, crash and secrets suites can import it.
package hostile

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/certs"
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
	// Server overrides limits and timeouts; Address, TLS and Metrics are
	// always set by the harness.
	Server server.Config
	// Identities is the number of client identities (owners); default 2.
	Identities int
	// LogLevel of the in-memory log (Env.Logs); default hclog.Debug.
	LogLevel hclog.Level
	// LogOutput, if set, receives the log instead of the in-memory buffer
	// (a fuzz run must not accumulate millions of lines).
	LogOutput io.Writer
	// Processor options (credentials, clock).
	Processor kmipops.Options
	// KEK tunes the pKEK cache.
	KEK kek.Config
}

// Env is a running in-process kmipd.
type Env struct {
	t    testing.TB
	opts Options

	CA      *certs.CA
	Server  *certs.Issued   // the server certificate
	Clients []*certs.Issued // one ClientAuth certificate per identity
	Owners  []string        // kmipd's owner id of each client (server.Identity)

	HSM     *hsm.HSM
	DataDir string // the Badger folder; survives Stop for tampering

	log *LogBuffer

	mu        sync.Mutex // guards the fields below across Stop/Start
	addr      string
	store     *storage.Badger
	keyring   *kek.Keyring
	proc      *kmipops.Processor
	srv       *server.Server
	metrics   *server.Metrics
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
	var err error
	if e.CA, err = certs.NewCA(certs.Options{}); err != nil {
		t.Fatalf("hostile: CA: %v", err)
	}
	if e.Server, err = e.CA.IssueServer(nil); err != nil {
		t.Fatalf("hostile: server certificate: %v", err)
	}
	for i := range opts.Identities {
		c, err := e.CA.IssueClient(fmt.Sprintf("id%d", i))
		if err != nil {
			t.Fatalf("hostile: client certificate: %v", err)
		}
		e.Clients = append(e.Clients, c)
		e.Owners = append(e.Owners, server.Identity(c.Cert))
	}
	cfg := hsmtest.SoftHSM(t)
	if e.HSM, err = hsm.Open(context.Background(), cfg, e.Logger().Named("hsm")); err != nil {
		t.Fatalf("hostile: hsm.Open: %v", err)
	}
	e.DataDir = t.TempDir()
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

// Start opens the store in DataDir and serves on a fresh loopback port. A
// new Keyring means a cold pKEK cache: the next use of every owner reads and
// verifies its pKEK record again.
func (e *Env) Start() {
	t := e.t
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv != nil {
		t.Fatalf("hostile: Start while running")
	}
	log := e.Logger()
	st, err := storage.OpenBadger(e.DataDir, storage.BadgerOptions{GCInterval: -1}, log.Named("storage"))
	if err != nil {
		t.Fatalf("hostile: OpenBadger: %v", err)
	}
	e.store = st
	e.keyring = kek.New(e.HSM, st, e.opts.KEK, log.Named("kek"))
	e.metrics = server.NewMetrics()
	po := e.opts.Processor
	po.Observer = e.metrics
	e.proc = kmipops.NewProcessor(st, e.keyring, po, log.Named("kmip"))
	sc := e.opts.Server
	sc.Address = "127.0.0.1:0"
	sc.Metrics = e.metrics
	sc.TLS = &tls.Config{
		Certificates: []tls.Certificate{e.Server.TLS()},
		ClientCAs:    e.CA.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
	e.srv = server.New(sc, e.proc, log)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("hostile: listen: %v", err)
	}
	e.addr = l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	done := make(chan error, 1)
	e.serveDone = done
	go func() { done <- e.srv.Serve(ctx, l) }()
}

// Stop shuts the server down and closes the store (the HSM stays open), so
// a test can open DataDir itself. Safe to call twice.
func (e *Env) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv == nil {
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
	if err := e.store.Close(); err != nil {
		e.t.Errorf("hostile: closing the store: %v", err)
	}
	e.srv, e.store, e.keyring, e.proc = nil, nil, nil, nil
}

// Restart is Stop then Start: same data, same HSM token, new port.
func (e *Env) Restart() {
	e.Stop()
	e.Start()
}

// Addr is the server's current KMIP address.
func (e *Env) Addr() string { e.mu.Lock(); defer e.mu.Unlock(); return e.addr }

// Store is the running server's store.
func (e *Env) Store() *storage.Badger { e.mu.Lock(); defer e.mu.Unlock(); return e.store }

// Keyring is the running server's key hierarchy.
func (e *Env) Keyring() *kek.Keyring { e.mu.Lock(); defer e.mu.Unlock(); return e.keyring }

// Processor is the running server's KMIP processor.
func (e *Env) Processor() *kmipops.Processor { e.mu.Lock(); defer e.mu.Unlock(); return e.proc }

// Metrics is the running server's metrics.
func (e *Env) Metrics() *server.Metrics { e.mu.Lock(); defer e.mu.Unlock(); return e.metrics }

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
