package conformance

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/kmipd/kmipd/kmipmsg"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// MaxResponse caps the size of a response we read, checked from the TTLV
// header before allocating.
const MaxResponse = 16 << 20

// DefaultTimeout bounds a round trip when the context has no deadline.
const DefaultTimeout = 60 * time.Second

// TLSConfig builds a mutual-TLS client configuration from PEM files.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no PEM certificates", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Dial opens a mutual-TLS connection to a KMIP server.
func Dial(addr, caFile, certFile, keyFile string) (Conn, error) {
	cfg, err := TLSConfig(caFile, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return DialTLS(context.Background(), addr, cfg)
}

// DialTLS opens a connection with a prepared configuration; the server name
// defaults to the host part of addr.
func DialTLS(ctx context.Context, addr string, cfg *tls.Config) (Conn, error) {
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		cfg.ServerName = host
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &streamConn{c: c}, nil
}

// NewConn wraps an established stream (e.g. a net.Pipe in tests).
func NewConn(c net.Conn) Conn { return &streamConn{c: c} }

type streamConn struct{ c net.Conn }

func (s *streamConn) Close() error { return s.c.Close() }

func (s *streamConn) RoundTrip(ctx context.Context, req *tree.Node) (*tree.Node, error) {
	b, err := tree.Encode(req)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(DefaultTimeout)
	}
	if err := s.c.SetDeadline(dl); err != nil {
		return nil, err
	}
	// Unblock I/O when ctx is cancelled before the deadline.
	stop := context.AfterFunc(ctx, func() { _ = s.c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := s.c.Write(b); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	resp, err := kmipmsg.ReadTree(s.c, MaxResponse, tree.DefaultLimits)
	if errors.Is(err, io.EOF) {
		return nil, errors.New("server closed the connection without a response")
	}
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	return resp, nil
}
