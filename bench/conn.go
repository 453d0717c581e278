package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// maxResponse caps what a response may announce in its header before we
// allocate for it; a Get of an AES key is a few hundred bytes.
const maxResponse = 16 << 20

// conn is a minimal KMIP client connection. Unlike conformance.Conn it sends
// pre-encoded requests and reuses its read buffer, because the load
// generator shares the machine's cores with the server it measures and
// every client microsecond is one the server does not get.
type conn struct {
	tc  *tls.Conn
	buf []byte
	hdr [tree.HeaderLen]byte
}

// dial opens a mutual-TLS connection and completes the handshake, so a
// reconnect-mode operation's latency includes the full handshake, as it
// does for Barbican's kmip_plugin.
func dial(ctx context.Context, addr string, cfg *tls.Config, timeout time.Duration) (*conn, error) {
	// No TCP keep-alive, as in PyKMIP's client (Barbican's): a connection
	// lives for one request in reconnect mode, and Go's default keep-alive
	// costs four setsockopt calls per dial, CPU the server would not get.
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout, KeepAlive: -1}, Config: cfg}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &conn{tc: c.(*tls.Conn)}, nil
}

func (c *conn) Close() error { return c.tc.Close() }

// tlsVersion names the negotiated TLS version.
func (c *conn) tlsVersion() string { return tls.VersionName(c.tc.ConnectionState().Version) }

// roundTrip sends one request and reads its response, all within timeout.
// The response is returned raw, in the connection's read buffer: it is
// valid until the next roundTrip, and checkResponse validates it.
func (c *conn) roundTrip(req []byte, timeout time.Duration) ([]byte, error) {
	if err := c.tc.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	if _, err := c.tc.Write(req); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	if _, err := io.ReadFull(c.tc, c.hdr[:]); err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("server closed the connection without a response")
		}
		return nil, fmt.Errorf("read response: %w", err)
	}
	n, err := tree.MessageLen(c.hdr[:])
	if err != nil {
		return nil, fmt.Errorf("response: %w", err)
	}
	if n > maxResponse {
		return nil, fmt.Errorf("response of %d bytes exceeds the %d-byte cap", n, maxResponse)
	}
	if int64(cap(c.buf)) < n {
		c.buf = make([]byte, n)
	}
	msg := c.buf[:n]
	copy(msg, c.hdr[:])
	if _, err := io.ReadFull(c.tc, msg[tree.HeaderLen:]); err != nil {
		return nil, fmt.Errorf("read response body: %w", err)
	}
	return msg, nil
}
