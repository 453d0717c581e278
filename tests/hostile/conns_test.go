package hostile

import (
	"bytes"
	"crypto/tls"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/server"
)

// Connection-level abuse: clients that write too slowly, never read, leave
// connections half open or simply hold thousands of them. The server must
// cut each off by its deadlines, keep serving everybody else meanwhile, and
// give back every goroutine and byte afterwards.

const (
	shortRead      = time.Second
	shortIdle      = 2 * time.Second
	shortWrite     = time.Second
	shortHandshake = time.Second
)

func shortTimeouts() server.Config {
	return server.Config{ReadTimeout: shortRead, IdleTimeout: shortIdle, WriteTimeout: shortWrite, HandshakeTimeout: shortHandshake}
}

// timedRoundTrip is one Discover Versions as identity 1 that must be
// answered within limit, proving the hostile clients do not block others.
func timedRoundTrip(t *testing.T, e *Env, limit time.Duration) {
	t.Helper()
	start := time.Now()
	alive(t, e)
	if d := time.Since(start); d > limit {
		t.Errorf("a well-behaved client waited %v (limit %v)", d, limit)
	}
}

func TestSlowLorisWriters(t *testing.T) {
	e := StartServer(t, Options{Server: shortTimeouts()})
	base := Measure()
	timeouts := Metric(e.Metrics(), "kmipd_messages_rejected_total", "reason", "timeout")
	req := enc(Request(Item(kmip14.OperationDiscoverVersions)))
	const lorises = 20
	var wg sync.WaitGroup
	closedAfter := make(chan time.Duration, lorises)
	for range lorises {
		c := e.Dial(0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			start := time.Now()
			// One byte every 100 ms: each is well within the idle timeout,
			// the whole message never within the read timeout.
			for i := range req {
				if c.Send(req[i:i+1]) != nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
				if time.Since(start) > 10*time.Second {
					break
				}
			}
			if c.WaitClosed(2*time.Second) == nil {
				closedAfter <- time.Since(start)
			}
		}()
	}
	for range 10 {
		timedRoundTrip(t, e, 5*time.Second)
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	close(closedAfter)
	n := 0
	for d := range closedAfter {
		n++
		if d > shortRead+3*time.Second {
			t.Errorf("a slow-loris writer was cut off only after %v", d)
		}
	}
	if n != lorises {
		t.Errorf("%d of %d slow writers were cut off", n, lorises)
	}
	WaitMetric(t, e.Metrics(), "kmipd_messages_rejected_total", func(v float64) bool { return v >= timeouts+lorises }, 5*time.Second, "reason", "timeout")
	WaitGoroutines(t, base.Goroutines, 2, 10*time.Second)
}

// TestSlowHandshakes: TCP connections that start a TLS handshake (or never
// do) hold a slot only for the handshake timeout.
func TestSlowHandshakes(t *testing.T) {
	e := StartServer(t, Options{Server: shortTimeouts()})
	base := Measure()
	var conns []net.Conn
	for i := range 50 {
		c, err := net.Dial("tcp", e.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			// The first bytes of a ClientHello record, then nothing.
			c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01})
		}
		conns = append(conns, c)
	}
	timedRoundTrip(t, e, 5*time.Second)
	start := time.Now()
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(shortHandshake + 5*time.Second))
		var b [64]byte
		for {
			if _, err := c.Read(b[:]); err != nil {
				if isTimeout(err) {
					t.Fatalf("a stalled handshake was not cut off")
				}
				break
			}
		}
		c.Close()
	}
	if d := time.Since(start); d > shortHandshake+3*time.Second {
		t.Errorf("stalled handshakes cut off after %v", d)
	}
	WaitGoroutines(t, base.Goroutines, 2, 10*time.Second)
}

// TestReadersThatNeverRead: a client pipelines requests whose answers are
// large and never reads them. The server may only buffer what the socket
// holds; when a write stalls for WriteTimeout it drops that client.
func TestReadersThatNeverRead(t *testing.T) {
	e := StartServer(t, Options{Server: shortTimeouts()})
	owner := e.Dial(0)
	secret := bytes.Repeat([]byte("never-read "), 48<<10) // 528 KiB per answer
	uid := owner.MustUID(t, RegisterSecret(secret))
	owner.Close()
	m := e.Metrics()
	const active = 0
	WaitMetric(t, m, "kmipd_connections_active", func(v float64) bool { return v == active }, 5*time.Second)
	base := Measure()

	const readers = 4
	getReq := enc(Request(Item(kmip14.OperationGet, UID(uid))))
	var wg sync.WaitGroup
	for range readers {
		c := e.Dial(0)
		c.Timeout = 20 * time.Second
		wg.Add(1)
		go func() {
			defer wg.Done()
			// 64 answers are 33 MiB, far more than loopback socket buffers.
			for range 64 {
				if c.Send(getReq) != nil {
					return
				}
			}
		}()
	}
	WaitMetric(t, m, "kmipd_connections_active", func(v float64) bool { return v == active+readers }, 5*time.Second)
	// While their writes are stalled, everybody else is served.
	for range 5 {
		timedRoundTrip(t, e, 5*time.Second)
	}
	// Each stalled connection is dropped about WriteTimeout after its
	// socket filled up, although its client never closes it.
	WaitMetric(t, m, "kmipd_connections_active", func(v float64) bool { return v == active }, shortWrite+10*time.Second)
	wg.Wait()
	// They were dropped by the write deadline, not by anything else.
	waitLog(t, e, 0, "write failed", "i/o timeout")
	after := Measure()
	if grow := int64(after.HeapInuse) - int64(base.HeapInuse); grow > 16<<20 {
		t.Errorf("heap grew by %d MiB holding answers for clients that never read", grow>>20)
	}
	WaitGoroutines(t, base.Goroutines, 2, 10*time.Second)
}

// TestHalfOpenConnections covers a client that half-closes after its
// request (it must still get the answer), one that handshakes and then
// goes silent, and one that disconnects without waiting for its answer.
func TestHalfOpenConnections(t *testing.T) {
	e := StartServer(t, Options{Server: shortTimeouts()})
	base := Measure()
	t.Run("request then half-close", func(t *testing.T) {
		c := e.Dial(0)
		defer c.Close()
		c.Send(enc(Request(Item(kmip14.OperationDiscoverVersions))))
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		resp, err := c.ReadResponse()
		if err != nil {
			t.Fatalf("no answer after the client half-closed: %v", err)
		}
		WantOK(t, Only(t, resp))
		if err := c.WaitClosed(5 * time.Second); err != nil {
			t.Fatalf("after answering a half-closed client: %v", err)
		}
	})
	t.Run("silent after the handshake", func(t *testing.T) {
		c := e.Dial(0)
		defer c.Close()
		start := time.Now()
		if err := c.WaitClosed(shortIdle + 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < shortIdle-100*time.Millisecond {
			t.Fatalf("closed after %v, before the %v idle timeout", d, shortIdle)
		}
	})
	t.Run("gone before the answer", func(t *testing.T) {
		for range 20 {
			c := e.Dial(0)
			c.Send(enc(Request(CreateAES(128))))
			c.Close()
		}
		timedRoundTrip(t, e, 5*time.Second)
	})
	t.Run("half a header then silence", func(t *testing.T) {
		c := e.Dial(0)
		defer c.Close()
		c.Send([]byte{0x42, 0x00, 0x78})
		if err := c.WaitClosed(shortRead + 5*time.Second); err != nil {
			t.Fatal(err)
		}
	})
	WaitMetric(t, e.Metrics(), "kmipd_connections_active", func(v float64) bool { return v == 0 }, 10*time.Second)
	WaitGoroutines(t, base.Goroutines, 2, 10*time.Second)
}

// TestThousandsOfIdleConnections: 2,000 connections that never send a byte
// against a server capped at 1,000 — the cap holds, refused ones close at
// once, the others go at the handshake timeout, and then a real client
// gets in — and 2,000 idle but authenticated connections, beside which a
// normal client is served promptly and which cost bounded memory each.
func TestThousandsOfIdleConnections(t *testing.T) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur < 8192 {
		t.Skipf("needs ulimit -n ≥ 8192 for both ends of 2,000 connections (have %d)", rl.Cur)
	}
	t.Run("2000 silent TCP connections, cap 1000", func(t *testing.T) {
		cfg := shortTimeouts()
		cfg.MaxConns = 1000
		cfg.HandshakeTimeout = 3 * time.Second
		e := StartServer(t, Options{Server: cfg})
		m := e.Metrics()
		base := Measure()
		refused := Metric(m, "kmipd_messages_rejected_total", "reason", "max_conns")
		var raw []net.Conn
		defer func() {
			for _, c := range raw {
				c.Close()
			}
		}()
		for range 2000 {
			c, err := net.Dial("tcp", e.Addr())
			if err != nil {
				t.Fatalf("after %d connections: %v", len(raw), err)
			}
			raw = append(raw, c)
		}
		WaitMetric(t, m, "kmipd_messages_rejected_total", func(v float64) bool { return v >= refused+1000 }, 10*time.Second, "reason", "max_conns")
		if v := Metric(m, "kmipd_connections_active"); v > 1000 {
			t.Fatalf("%v connections active, cap 1000", v)
		}
		// The handshake timeout frees the slots although the clients
		// never close; then a real client gets in.
		WaitMetric(t, m, "kmipd_connections_active", func(v float64) bool { return v == 0 }, cfg.HandshakeTimeout+10*time.Second)
		timedRoundTrip(t, e, 5*time.Second)
		for _, c := range raw {
			c.Close()
		}
		raw = nil
		WaitGoroutines(t, base.Goroutines, 2, 10*time.Second)
	})
	t.Run("2000 idle TLS connections", func(t *testing.T) {
		cfg := shortTimeouts()
		cfg.IdleTimeout = time.Minute // they stay for the whole test
		// Nor may a handshake the loaded machine finishes late drop one:
		// the handshake timeout is the subtest above's subject, not this one's.
		cfg.HandshakeTimeout = 30 * time.Second
		e := StartServer(t, Options{Server: cfg})
		m := e.Metrics()
		base := Measure()
		const n = 2000
		idle := make([]*Conn, n)
		// Resumed sessions skip the certificate signatures, which under
		// the race detector cost most of the handshake; the server still
		// holds one full connection each.
		tlsCfg := []*tls.Config{e.ClientTLS(0), e.ClientTLS(1)}
		for _, c := range tlsCfg {
			c.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for i := range idle {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				c, err := e.DialTLS(tlsCfg[i%2])
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				idle[i] = c
			}()
		}
		wg.Wait()
		WaitMetric(t, m, "kmipd_connections_active", func(v float64) bool { return v == n }, 10*time.Second)
		timedRoundTrip(t, e, 5*time.Second)
		held := Measure()
		perConn := (int64(held.HeapInuse) - int64(base.HeapInuse)) / n
		t.Logf("%d idle TLS connections: %d goroutines, %d KiB heap per connection (both ends)", n, held.Goroutines-base.Goroutines, perConn>>10)
		if perConn > 128<<10 {
			t.Errorf("%d KiB of heap per idle connection", perConn>>10)
		}
		for _, c := range idle {
			if c != nil {
				c.Close()
			}
		}
		WaitMetric(t, m, "kmipd_connections_active", func(v float64) bool { return v == 0 }, 10*time.Second)
		WaitGoroutines(t, base.Goroutines, 2, 10*time.Second)
	})
}

// TestPipeliningAndFragments: framing is by the TTLV length alone, so many
// requests in one write, and one request in many tiny TLS records (within
// the read timeout), are each answered exactly once, in order.
func TestPipeliningAndFragments(t *testing.T) {
	e := StartServer(t, Options{Server: shortTimeouts()})
	c := e.Dial(0)
	const n = 1000
	var all []byte
	for i := range n {
		all = append(all, enc(Request(Item(kmip14.OperationGet, UID("missing-"+strconv.Itoa(i)))))...)
	}
	go c.Send(all)
	for i := range n {
		resp, err := c.ReadResponse()
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		WantFailure(t, Only(t, resp), kmip14.ResultReasonItemNotFound)
	}
	req := enc(Request(Item(kmip14.OperationDiscoverVersions)))
	for i := range req {
		if err := c.Send(req[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	WantOK(t, Only(t, must(c.ReadResponse())))
}
