package hostile

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/kmipd/kmipd/kmipmsg"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// DefaultTimeout bounds every read and write of a Conn, so a server that
// stops answering fails the test instead of hanging it.
const DefaultTimeout = 30 * time.Second

// MaxResponse is the largest response a Conn accepts, checked from the
// header before allocating: the server must not be able to make the test
// allocate without bound either.
const MaxResponse = 256 << 20

// Conn is a raw KMIP client connection: it can send any bytes, well formed
// or not, and read what comes back.
type Conn struct {
	*tls.Conn
	Timeout time.Duration
}

// Send writes b under the Conn's timeout.
func (c *Conn) Send(b []byte) error {
	c.SetWriteDeadline(time.Now().Add(c.Timeout))
	_, err := c.Write(b)
	return err
}

// ReadResponse reads and decodes one response message. A connection the
// server closed before the first byte gives io.EOF; one closed mid-message
// gives kmipmsg.ErrTruncated wrapping io.ErrUnexpectedEOF.
func (c *Conn) ReadResponse() (*tree.Node, error) {
	c.SetReadDeadline(time.Now().Add(c.Timeout))
	return kmipmsg.ReadTree(c, MaxResponse, tree.Limits{MaxDepth: 64, MaxItems: 1 << 24})
}

// RoundTripBytes sends raw bytes and reads one response.
func (c *Conn) RoundTripBytes(b []byte) (*tree.Node, error) {
	if err := c.Send(b); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	return c.ReadResponse()
}

// RoundTrip encodes req, sends it and reads one response.
func (c *Conn) RoundTrip(req *tree.Node) (*tree.Node, error) {
	b, err := tree.Encode(req)
	if err != nil {
		return nil, err
	}
	return c.RoundTripBytes(b)
}

// WaitClosed reads until the server closes the connection and returns nil
// then. It returns an error if the server sends data instead, or if the
// connection is still open after d.
func (c *Conn) WaitClosed(d time.Duration) error {
	c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	n, err := c.Read(b[:])
	switch {
	case n > 0:
		return fmt.Errorf("server sent data (%#x...) instead of closing", b[0])
	case IsClosed(err):
		return nil
	case isTimeout(err):
		return fmt.Errorf("connection still open after %v", d)
	default:
		return fmt.Errorf("read: %v", err)
	}
}

// IsClosed reports whether err means the peer closed the connection
// (orderly close_notify/FIN or a reset), as opposed to a timeout.
func IsClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
