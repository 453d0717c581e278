// Package kmipclient is a small typed KMIP client on kmipd's own codec: one
// mutual-TLS connection, requests built and responses read through kmipmsg,
// and a typed helper per operation (Create, CreateKeyPair, Register, Get,
// Locate, GetAttributes, Activate, Revoke, Destroy, Encrypt, Decrypt, Query).
// `kmipd client` is its command line; any Go program may use it too.
//
// A request that fails returns an *Error whose Kind says whether the server
// refused the operation (with its Result Reason and Message), the connection
// failed, or the answer made no sense; a bad argument (an address without a
// port, an object type Register cannot send) is a plain error, found before
// anything is sent. No error this package produces carries key material: it
// is only in what an operation returns.
package kmipclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipmsg"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// DefaultTimeout bounds one request (dial and handshake included) when
// Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Config says where a Client connects and as whom.
type Config struct {
	Addr string      // host:port
	TLS  *tls.Config // client certificate and trusted CA; see LoadTLS
	// Version is the protocol version requests are written in; zero means
	// 1.4, the first with the Authenticated Encryption Tag (AES-GCM).
	Version kmipmsg.Version
	// Timeout bounds each request; DefaultTimeout when zero.
	Timeout time.Duration
	// MaxResponse caps a response's size, checked from its header before
	// anything is allocated; kmipmsg.DefaultMax when zero.
	MaxResponse int64
}

// LoadTLS builds a mutual-TLS client configuration from PEM files: the CA
// that signed the server's certificate, and the client's certificate and key.
func LoadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("CA certificate %s: no PEM certificate in it", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		// crypto/tls names the files' problem, never the key's bytes.
		return nil, fmt.Errorf("client certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Client sends KMIP requests over one connection, dialled on first use and
// again after a transport failure. It is safe for concurrent use; requests
// are sent one at a time.
type Client struct {
	cfg Config

	mu   sync.Mutex
	conn net.Conn
}

// New returns a client for cfg; nothing is dialled yet.
func New(cfg Config) (*Client, error) {
	if cfg.Addr == "" {
		return nil, errors.New("kmipclient: no server address")
	}
	if cfg.TLS == nil {
		return nil, errors.New("kmipclient: no TLS configuration")
	}
	if cfg.Version == (kmipmsg.Version{}) {
		cfg.Version = kmipmsg.Version{Major: 1, Minor: 4}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	cfg.TLS = cfg.TLS.Clone()
	if cfg.TLS.ServerName == "" {
		host, _, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("kmipclient: address %q: %w", cfg.Addr, err)
		}
		cfg.TLS.ServerName = host
	}
	return &Client{cfg: cfg}, nil
}

// Version is the protocol version the client speaks.
func (c *Client) Version() kmipmsg.Version { return c.cfg.Version }

// Close closes the connection, if one is open; the client may still be used.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn = nil
	return err
}

// Do sends one request holding one batch item (op with the payload fields)
// and returns the item's Response Payload. A refusal by the server is an
// *Error of Kind Failed; transport and protocol failures are *Errors too.
func (c *Client) Do(ctx context.Context, op kmip14.Operation, fields ...*tree.Node) (*tree.Node, error) {
	req := kmipmsg.Request(c.cfg.Version, kmipmsg.Options{}, kmipmsg.Item(op, fields...))
	b, err := tree.Encode(req)
	if err != nil {
		return nil, &Error{Kind: Protocol, Operation: op, Err: fmt.Errorf("encoding the request: %w", err)}
	}
	defer clear(b) // a Register or Encrypt request holds key material or plaintext
	resp, err := c.send(ctx, b)
	if err != nil {
		return nil, &Error{Kind: Transport, Operation: op, Err: err}
	}
	return payloadOf(op, resp)
}

// RoundTrip sends a whole Request Message and returns the Response Message,
// for requests Do does not build (batches). Its errors are unclassified.
func (c *Client) RoundTrip(ctx context.Context, req *tree.Node) (*tree.Node, error) {
	b, err := tree.Encode(req)
	if err != nil {
		return nil, fmt.Errorf("encoding the request: %w", err)
	}
	defer clear(b)
	return c.send(ctx, b)
}

// send writes one encoded request and reads the response. A connection the
// server closed while it sat idle (kmipd closes them after its idle
// timeout) is found only now: when a reused connection fails before any
// answer, the request cannot have been served, and it is sent once more on
// a new connection.
func (c *Client) send(ctx context.Context, b []byte) (*tree.Node, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	for retried := false; ; retried = true {
		reused := c.conn != nil
		if !reused {
			d := &tls.Dialer{Config: c.cfg.TLS}
			conn, err := d.DialContext(ctx, "tcp", c.cfg.Addr)
			if err != nil {
				return nil, err
			}
			c.conn = conn
		}
		resp, reusable, err := c.exchange(ctx, b)
		if !reusable {
			// Whatever state the stream is in, it cannot carry the next request.
			_ = c.conn.Close()
			c.conn = nil
		}
		if err != nil && reused && !retried && errors.Is(err, errUnanswered) && ctx.Err() == nil {
			continue
		}
		return resp, err
	}
}

// errUnanswered: the connection failed before the first byte of an answer,
// while sending the request or right after.
var errUnanswered = errors.New("no answer")

// exchange writes one request and reads its response; reusable is false
// when the connection cannot carry another.
func (c *Client) exchange(ctx context.Context, b []byte) (_ *tree.Node, reusable bool, _ error) {
	dl, _ := ctx.Deadline()
	if err := c.conn.SetDeadline(dl); err != nil {
		return nil, false, err
	}
	// The connection itself, not c.conn: send may clear c.conn while a
	// deadline's AfterFunc is still running.
	conn := c.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	_, werr := c.conn.Write(b)
	// A server that refuses a request early (one larger than its cap)
	// answers and closes: its answer says more than the failed write, and
	// the connection is done even though the answer was read.
	cr := &countingReader{r: c.conn}
	resp, rerr := kmipmsg.ReadTree(cr, c.cfg.MaxResponse, tree.DefaultLimits)
	switch {
	case rerr == nil:
		return resp, werr == nil, nil
	case cr.n == 0 && werr != nil:
		return nil, false, fmt.Errorf("%w: sending the request: %w", errUnanswered, werr)
	case cr.n == 0 && (errors.Is(rerr, io.EOF) || errors.Is(rerr, syscall.ECONNRESET)):
		return nil, false, fmt.Errorf("%w: the server closed the connection: %w", errUnanswered, rerr)
	case werr != nil:
		return nil, false, fmt.Errorf("sending the request: %w", werr)
	}
	return nil, false, fmt.Errorf("reading the response: %w", rerr)
}

// countingReader counts the bytes read, to tell an answer that failed
// part-way from none at all.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// payloadOf reads the one batch item of a response to op.
func payloadOf(op kmip14.Operation, resp *tree.Node) (*tree.Node, error) {
	bad := func(format string, args ...any) error {
		return &Error{Kind: Protocol, Operation: op, Err: fmt.Errorf(format, args...)}
	}
	if resp.Tag != kmip14.TagResponseMessage {
		return nil, bad("the answer is a %s, not a Response Message", resp.Tag)
	}
	rs := kmipmsg.Results(resp)
	if len(rs) != 1 {
		return nil, bad("%d batch items in the response, want 1", len(rs))
	}
	r := rs[0]
	switch {
	case r.Status == kmipmsg.NoStatus:
		return nil, bad("the response item has no Result Status")
	case !r.OK():
		// A framing-level refusal (kmipmsg.ErrorMessage) names no operation.
		return nil, &Error{Kind: Failed, Operation: op, Status: r.Status, Reason: r.Reason, Message: r.Message}
	case r.Operation != 0 && r.Operation != op:
		return nil, bad("the response answers %s", r.Operation)
	case r.Payload == nil:
		return nil, bad("a successful item without a Response Payload")
	}
	return r.Payload, nil
}
