package sessionbudget

import (
	"net"
	"net/url"
	"sync"
	"testing"
)

// proxy is a TCP relay on 127.0.0.1 between one replica and PostgreSQL,
// which a test freezes to cut the replica off: bytes stop flowing both
// ways and no connection is closed or reset, as in a network partition.
type proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	frozen bool
	thaw   chan struct{} // closed when the freeze ends
	conns  map[net.Conn]struct{}
	closed bool
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, thaw: make(chan struct{})}
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// via returns url with its host replaced by the proxy's address.
func (p *proxy) via(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		go p.serve(c)
	}
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) serve(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil || !p.track(up) {
		c.Close()
		return
	}
	go p.pipe(up, c)
	p.pipe(c, up)
}

// pipe copies src to dst; while frozen it holds what it read, and an
// end of src too (a partition delivers no FIN either).
func (p *proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if !p.pass() {
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			src.Close()
			dst.Close()
			return
		}
	}
}

// pass waits out a freeze; false once the proxy is closed.
func (p *proxy) pass() bool {
	for {
		p.mu.Lock()
		frozen, thaw, closed := p.frozen, p.thaw, p.closed
		p.mu.Unlock()
		if closed {
			return false
		}
		if !frozen {
			return true
		}
		<-thaw
	}
}

// freeze cuts the replica off: nothing passes, nothing is closed.
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.frozen {
		p.frozen, p.thaw = true, make(chan struct{})
	}
}

// heal ends the partition. The connections it froze are broken (the
// server has long given up on them): they are closed, new ones work.
func (p *proxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	if p.frozen {
		p.frozen = false
		close(p.thaw)
	}
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.heal()
}
