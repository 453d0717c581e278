package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/kmipd/kmipd/kmipmsg"
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
	fr  kmipmsg.Reader
	buf []byte
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
	tc := c.(*tls.Conn)
	return &conn{tc: tc, fr: kmipmsg.Reader{R: tc, Max: maxResponse}}, nil
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
	msg, err := c.fr.Read(c.buf)
	c.buf = msg[:0] // keeps a regrown buffer for the next response
	if err == io.EOF {
		return nil, fmt.Errorf("server closed the connection without a response")
	}
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	return msg, nil
}
