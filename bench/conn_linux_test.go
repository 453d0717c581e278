package bench

import (
	"context"
	"crypto/tls"
	"net"
	"syscall"
	"testing"
	"time"
)

// The load generator dials as PyKMIP's client does, without TCP
// keep-alive (Go would otherwise turn it on for every dial).
func TestDialTurnsOffKeepAlive(t *testing.T) {
	ca := newCA(t)
	addr := handshakeServer(t, issueServer(t, ca, []string{"127.0.0.1"}))
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	c, err := dial(context.Background(), addr, cfg, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.tc.NetConn().(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var on int
	var serr error
	if err := raw.Control(func(fd uintptr) {
		on, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	if on != 0 {
		t.Errorf("SO_KEEPALIVE = %d on the load generator's connection, want 0", on)
	}
}
