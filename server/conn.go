package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/kmipmsg"
	"github.com/kmipd/kmipd/kmipops"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// conn is one client connection, served by its own goroutine.
type conn struct {
	s      *Server
	raw    net.Conn
	ctx    context.Context // cancelled when the connection ends or shutdown gives up on it
	cancel context.CancelFunc
	log    hclog.Logger

	mu       sync.Mutex
	draining bool
}

func (s *Server) newConn(ctx context.Context, raw net.Conn) *conn {
	// Requests must not die the instant shutdown starts: they get
	// ShutdownTimeout to finish, so the connection context is detached from
	// the server's and cancelled only by kill.
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return &conn{
		s:      s,
		raw:    raw,
		ctx:    cctx,
		cancel: cancel,
		log:    s.log.With("remote", raw.RemoteAddr().String()),
	}
}

// drain makes an idle connection stop now and a busy one stop after its
// current response.
func (c *conn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	c.raw.SetReadDeadline(time.Unix(1, 0))
}

// kill ends the connection regardless of what it is doing.
func (c *conn) kill() {
	c.cancel()
	c.raw.Close()
}

// setReadDeadline refuses once draining, so the loop never re-arms a
// deadline that shutdown has just cut short.
func (c *conn) setReadDeadline(t time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining {
		return false
	}
	c.raw.SetReadDeadline(t)
	return true
}

func (c *conn) isDraining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

func (c *conn) serve() {
	start := time.Now()
	defer c.s.removeConn(c)
	defer c.cancel()
	defer c.raw.Close()
	// A panic here (or in a Processor that does not recover) costs this
	// connection only.
	defer func() {
		if r := recover(); r != nil {
			c.s.m.rejected("panic")
			c.log.Error("panic while serving connection; closing it", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	c.s.m.connOpened()
	defer c.s.m.connClosed()

	tc := tls.Server(c.raw, c.s.baseTLS)
	hctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.HandshakeTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		c.s.m.rejected("handshake")
		if errors.Is(err, io.EOF) {
			// A health check's connect and close: nothing to audit.
			c.log.Debug("connection closed before TLS handshake")
		} else {
			c.log.Info("TLS handshake failed", "error", err)
			c.auditMalformed(kmipops.Caller{}, "TLS handshake failed")
		}
		return
	}
	st := tc.ConnectionState()
	if len(st.PeerCertificates) == 0 { // unreachable: harden requires a client certificate
		c.log.Error("no client certificate after handshake; closing")
		return
	}
	leaf := st.PeerCertificates[0]
	caller := kmipops.Caller{Identity: Identity(leaf), CommonName: leaf.Subject.CommonName}
	c.log = c.log.With("identity", caller.Identity)
	c.log.Debug("connection opened", "cn", caller.CommonName,
		"tls", tls.VersionName(st.Version), "cipher", tls.CipherSuiteName(st.CipherSuite))

	n := c.loop(tc, caller)
	c.log.Debug("connection closed", "requests", n, "duration", time.Since(start))
	// Best effort close_notify so well-behaved clients see a clean EOF.
	tc.SetWriteDeadline(time.Now().Add(time.Second))
	tc.Close()
}

// errDraining stops a message read that shutdown has cut short.
var errDraining = errors.New("connection draining")

// loop serves requests in order until the connection should end; it
// returns how many it answered.
func (c *conn) loop(tc *tls.Conn, caller kmipops.Caller) (served int) {
	cfg := &c.s.cfg
	fr := kmipmsg.Reader{R: tc, Max: cfg.MaxMessageSize, Started: func() error {
		// From the first byte, the whole message must arrive within
		// ReadTimeout, whatever pace the client drips it at.
		if !c.setReadDeadline(time.Now().Add(cfg.ReadTimeout)) {
			return errDraining
		}
		return nil
	}}
	for {
		if !c.setReadDeadline(time.Now().Add(cfg.IdleTimeout)) {
			return served
		}
		_, err := fr.Next()
		var tooLarge *kmipmsg.TooLargeError
		switch {
		case err == nil:
		case errors.Is(err, errDraining):
			return served
		case errors.Is(err, kmipmsg.ErrTruncated):
			c.readFailed(caller, err)
			return served
		case errors.Is(err, kmipmsg.ErrBadHeader):
			// Without a trustworthy length there is no next message to find.
			c.s.m.rejected("bad_header")
			c.log.Debug("unparseable message header; closing", "error", err)
			c.auditMalformed(caller, "unparseable message header; connection closed")
			return served
		case errors.As(err, &tooLarge):
			// Answer before closing so the client learns why; the claimed
			// size is never allocated.
			c.s.m.rejected("too_large")
			c.log.Info("message too large; closing", "size", tooLarge.Size, "max", cfg.MaxMessageSize)
			c.auditMalformed(caller, fmt.Sprintf("message larger than the limit of %d bytes; answered Invalid Message and closed", cfg.MaxMessageSize))
			c.write(tc, kmipmsg.ErrorMessage(kmip14.ResultReasonInvalidMessage,
				fmt.Sprintf("message exceeds %d bytes", cfg.MaxMessageSize)))
			return served
		default: // before the first byte: a close, an idle timeout, a reset
			c.log.Debug("connection ended between messages", "error", err)
			return served
		}
		buf := getBuf()
		msg, err := fr.Body((*buf)[:0])
		if err != nil {
			putBuf(buf, msg)
			c.readFailed(caller, err)
			return served
		}
		var resp *tree.Node
		req, err := tree.Decode(msg, cfg.Limits)
		// The tree shares no memory with msg, so the buffer (which may hold
		// key material a client registered) is scrubbed and reused now.
		putBuf(buf, msg)
		if err != nil {
			// The message was read to its declared end, so framing is
			// intact: answer the error and keep serving the connection.
			c.s.m.rejected("malformed")
			c.log.Debug("malformed message", "error", err)
			c.auditMalformed(caller, "message not decodable as TTLV; answered Invalid Message")
			resp = kmipmsg.ErrorMessage(kmip14.ResultReasonInvalidMessage, err.Error())
		} else {
			// As context.WithTimeout, without its timer (reqctx.go).
			rctx := newRequestContext(c.ctx, c.s.cfg.RequestTimeout)
			resp = c.s.proc.Process(rctx, caller, req)
			rctx.release()
		}
		if !c.write(tc, resp) {
			return served
		}
		served++
	}
}

func (c *conn) readFailed(caller kmipops.Caller, err error) {
	switch {
	case c.isDraining():
		c.log.Debug("shutdown interrupted a message read")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		c.s.m.rejected("truncated")
		c.log.Debug("connection closed mid-message")
		c.auditMalformed(caller, "connection closed mid-message")
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		c.s.m.rejected("timeout")
		c.log.Info("message not received within read timeout; closing", "timeout", c.s.cfg.ReadTimeout)
		c.auditMalformed(caller, fmt.Sprintf("message not received within the read timeout (%s); connection closed", c.s.cfg.ReadTimeout))
	default:
		c.log.Debug("read failed", "error", err)
		c.auditMalformed(caller, "read failed mid-message; connection closed")
	}
}

// FramingAuditor is what a Processor implements to audit the messages the
// server refuses before they reach it (*kmipops.Processor does): reason
// is fixed text, never the message's bytes; caller is empty when the TLS
// handshake did not finish.
type FramingAuditor interface {
	AuditMalformed(ctx context.Context, caller kmipops.Caller, reason string)
}

var _ FramingAuditor = (*kmipops.Processor)(nil)

// auditMalformed records a refused message, before the connection closes.
func (c *conn) auditMalformed(caller kmipops.Caller, reason string) {
	if a, ok := c.s.proc.(FramingAuditor); ok {
		a.AuditMalformed(c.ctx, caller, reason)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Message buffers are pooled: a connection in steady state then allocates
// nothing to read a request or encode a response. Buffers are cleared before
// they go back, because requests and responses carry key material.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBuf keeps the occasional large message from pinning its buffer.
const maxPooledBuf = 64 << 10

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

// putBuf scrubs used (the buffer's latest contents, which may have been
// regrown away from *b) and returns it to the pool.
func putBuf(b *[]byte, used []byte) {
	clear(used)
	if cap(used) > maxPooledBuf {
		return
	}
	*b = used[:0]
	bufPool.Put(b)
}

// write encodes and sends one response under WriteTimeout; false means the
// connection is unusable. The whole message goes to tls.Conn in one Write,
// which seals it into one record (responses are far below 16 KiB).
func (c *conn) write(tc *tls.Conn, resp *tree.Node) bool {
	if resp == nil {
		c.log.Error("processor returned no response")
		resp = kmipmsg.ErrorMessage(kmip14.ResultReasonGeneralFailure, "internal error")
	}
	buf := getBuf()
	b, err := tree.AppendEncode((*buf)[:0], resp)
	if err != nil {
		c.log.Error("cannot encode response", "error", err)
		b = tree.MustEncode(kmipmsg.ErrorMessage(kmip14.ResultReasonGeneralFailure, "internal error"))
	}
	tc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	_, err = tc.Write(b)
	putBuf(buf, b)
	if err != nil {
		c.log.Debug("write failed", "error", err)
		return false
	}
	return true
}
