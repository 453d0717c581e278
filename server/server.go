// Package server is kmipd's network front: the mutual-TLS listener, the TTLV
// framing with its size cap and deadlines, the caller's identity, and the
// telemetry HTTP endpoints. KMIP semantics live in kmipops.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/kmipops"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// Processor is what the server dispatches decoded requests to
// (*kmipops.Processor satisfies it). It must always return a response.
type Processor interface {
	Process(ctx context.Context, c kmipops.Caller, req *tree.Node) *tree.Node
}

// Config of the KMIP listener. Zero values take the defaults noted.
type Config struct {
	Address          string        // default 127.0.0.1:5696
	TLS              *tls.Config   // built by TLSConfig; required
	MaxMessageSize   int64         // whole message, header included; default 1 MiB
	ReadTimeout      time.Duration // to read one whole message once its first byte arrived; default 30s
	IdleTimeout      time.Duration // between messages; default 2m
	WriteTimeout     time.Duration // default 30s
	HandshakeTimeout time.Duration // default 10s
	ShutdownTimeout  time.Duration // how long in-flight requests may finish on shutdown; default 5s
	// RequestTimeout bounds the work one request message may cause (default
	// 30s): kmipops checks it between batch items and Locate between records,
	// so a huge batch cannot keep a core busy after its client has gone.
	RequestTimeout time.Duration
	MaxConns       int         // default 10000; beyond it new connections are closed at once
	Limits         tree.Limits // Decode limits; zero means tree.DefaultLimits
	Metrics        *Metrics    // connection metrics; nil disables them
}

// Defaults.
const (
	DefaultAddress          = "127.0.0.1:5696"
	DefaultMaxMessageSize   = 1 << 20
	DefaultReadTimeout      = 30 * time.Second
	DefaultIdleTimeout      = 2 * time.Minute
	DefaultWriteTimeout     = 30 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultShutdownTimeout  = 5 * time.Second
	DefaultRequestTimeout   = 30 * time.Second
	DefaultMaxConns         = 10000
)

func (c *Config) setDefaults() {
	if c.Address == "" {
		c.Address = DefaultAddress
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
}

// Server accepts KMIP connections and dispatches their requests.
type Server struct {
	cfg  Config
	proc Processor
	log  hclog.Logger
	m    *Metrics

	tls     atomic.Pointer[serverTLS] // current config, swapped by SetTLSConfig
	baseTLS *tls.Config               // only defers to tls, so reloads need no restart

	active atomic.Int64 // open connections, for MaxConns
	addr   atomic.Pointer[net.Addr]

	mu    sync.Mutex
	conns map[*conn]struct{}
	wg    sync.WaitGroup
}

// New builds a Server. log may be nil; the server logs under the name "server".
func New(cfg Config, p Processor, log hclog.Logger) *Server {
	cfg.setDefaults()
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &Server{
		cfg:   cfg,
		proc:  p,
		log:   log.Named("server"),
		m:     cfg.Metrics,
		conns: make(map[*conn]struct{}),
	}
	s.baseTLS = &tls.Config{
		GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			c := s.tls.Load()
			if c == nil {
				return nil, errors.New("server: no TLS configuration")
			}
			return c.forHello(chi), nil
		},
	}
	if cfg.TLS != nil {
		s.SetTLSConfig(cfg.TLS)
	}
	return s
}

// SetTLSConfig replaces the TLS configuration for new handshakes (certificate
// or CA reload); established connections keep theirs. The server enforces
// TLS ≥ 1.2, verified client certificates and the client-auth EKU whatever
// the given config says, because the caller's identity depends on them.
func (s *Server) SetTLSConfig(c *tls.Config) {
	s.tls.Store(newServerTLS(c))
}

// Addr is the address Serve listens on, or nil before Serve started.
func (s *Server) Addr() net.Addr {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return nil
}

// ListenAndServe listens on cfg.Address and serves until ctx is done.
func (s *Server) ListenAndServe(ctx context.Context) error {
	// No TCP keep-alive: the idle and read deadlines already close a
	// connection whose peer vanished, and the four setsockopt calls it
	// costs per accepted connection add up for clients that connect per
	// request (Barbican).
	lc := net.ListenConfig{KeepAlive: -1}
	l, err := lc.Listen(ctx, "tcp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	return s.Serve(ctx, l)
}

// Serve accepts plain TCP connections from l (TLS is done here, per
// connection, under a deadline) until ctx is done. Then it stops accepting,
// lets in-flight requests finish for up to ShutdownTimeout, closes every
// connection and returns nil. It returns an error if accepting fails for
// another reason.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	if s.tls.Load() == nil {
		l.Close()
		return errors.New("server: no TLS configuration")
	}
	a := l.Addr()
	s.addr.Store(&a)
	s.log.Info("listening", "address", a.String())

	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()

	err := s.acceptLoop(ctx, l)
	l.Close()
	s.shutdown()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (s *Server) acceptLoop(ctx context.Context, l net.Listener) error {
	var backoff time.Duration
	for {
		raw, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Out of file descriptors and the like pass; back off as net/http does.
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "error", err, "backoff", backoff)
				select {
				case <-time.After(backoff):
					continue
				case <-ctx.Done():
					return nil
				}
			}
			return fmt.Errorf("server: accept: %w", err)
		}
		backoff = 0
		if s.active.Add(1) > int64(s.cfg.MaxConns) {
			s.active.Add(-1)
			s.m.rejected("max_conns")
			s.log.Warn("connection limit reached; closing new connection",
				"remote", raw.RemoteAddr().String(), "max_conns", s.cfg.MaxConns)
			raw.Close()
			continue
		}
		c := s.newConn(ctx, raw)
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.active.Add(-1)
	s.wg.Done()
}

// shutdown drains connections: idle ones stop at once, busy ones may finish
// their request for up to ShutdownTimeout, then everything is closed.
func (s *Server) shutdown() {
	s.mu.Lock()
	for c := range s.conns {
		c.drain()
	}
	s.mu.Unlock()
	if s.waitFor(s.cfg.ShutdownTimeout) {
		return
	}
	s.mu.Lock()
	n := len(s.conns)
	for c := range s.conns {
		c.kill()
	}
	s.mu.Unlock()
	s.log.Warn("shutdown timeout; closed busy connections", "connections", n)
	// Closing the sockets and cancelling the request context ends every
	// well-behaved goroutine quickly; a Processor that ignores its context
	// must not hang the process's exit.
	if !s.waitFor(s.cfg.ShutdownTimeout) {
		s.log.Error("connection goroutines still running after shutdown")
	}
}

func (s *Server) waitFor(d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
