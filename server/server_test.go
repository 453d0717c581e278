package server

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kmipd/kmipd/kmipops/tree"
)

func TestRequestsInOrderAndConcurrentClients(t *testing.T) {
	e := startServer(t, envOpt{})
	clientB := e.ca.issue(t, "client-b", ecKey(t), x509.ExtKeyUsageClientAuth)
	var wg sync.WaitGroup
	for _, cert := range []*issued{e.client, clientB} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := e.dial(cert, 0, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			// Pipelined: all requests first, then the answers, in order.
			for i := int32(1); i <= 10; i++ {
				if _, err := c.Write(request(i)); err != nil {
					t.Error(err)
					return
				}
			}
			want := Identity(cert.leaf) + "/" + cert.leaf.Subject.CommonName
			for i := int32(1); i <= 10; i++ {
				resp, err := readResponse(c)
				if err != nil {
					t.Error(err)
					return
				}
				bc, _ := resp.Path(kmip14.TagResponseHeader, kmip14.TagBatchCount).IntValue()
				_, msg := resultReason(resp)
				if bc != i || msg != want {
					t.Errorf("response %d: batch count %d, caller %q; want %q", i, bc, msg, want)
				}
			}
		}()
	}
	wg.Wait()
}

func TestOversizeHeaderAnsweredWithoutAllocating(t *testing.T) {
	e := startServer(t, envOpt{})
	c := e.mustDial(e.client)
	// Warm up the connection so handshake allocations are not counted.
	if _, err := roundTrip(c, request(1)); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	// A RequestMessage structure claiming 4 GiB.
	if _, err := c.Write([]byte{0x42, 0x00, 0x78, 0x01, 0xff, 0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	resp, err := readResponse(c)
	if err != nil {
		t.Fatal(err)
	}
	reason, msg := resultReason(resp)
	if reason != kmip14.ResultReasonInvalidMessage || msg != "message exceeds 1048576 bytes" {
		t.Fatalf("got %v %q", reason, msg)
	}
	expectClosed(t, c)
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 4<<20 {
		t.Fatalf("allocated %d bytes for an oversized header", d)
	}
}

func TestBadFraming(t *testing.T) {
	e := startServer(t, envOpt{cfg: Config{ReadTimeout: 300 * time.Millisecond}})
	t.Run("garbage header", func(t *testing.T) {
		c := e.mustDial(e.client)
		c.Write([]byte{0x00, 0x00, 0x78, 0x01, 0, 0, 0, 8})
		expectClosed(t, c)
	})
	t.Run("not a structure", func(t *testing.T) {
		c := e.mustDial(e.client)
		c.Write([]byte{0x42, 0x00, 0x78, 0x07, 0, 0, 0, 8})
		expectClosed(t, c)
	})
	t.Run("truncated then EOF", func(t *testing.T) {
		c := e.mustDial(e.client)
		c.Write(request(1)[:20])
		c.CloseWrite()
		expectClosed(t, c)
	})
	t.Run("slow loris", func(t *testing.T) {
		c := e.mustDial(e.client)
		start := time.Now()
		c.Write(request(1)[:4])
		expectClosed(t, c)
		if d := time.Since(start); d < 250*time.Millisecond || d > 5*time.Second {
			t.Fatalf("closed after %v, want about the 300ms read timeout", d)
		}
	})
	t.Run("drip within message", func(t *testing.T) {
		// Each byte is in time for an idle timeout, but the whole message is not.
		c := e.mustDial(e.client)
		req := request(1)
		start := time.Now()
		for i := 0; i < len(req); i++ {
			if _, err := c.Write(req[i : i+1]); err != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
			if time.Since(start) > 2*time.Second {
				break
			}
		}
		expectClosed(t, c)
		if time.Since(start) > 2*time.Second {
			t.Fatal("dripping client was not cut off")
		}
	})
	body := e.metrics.rejects
	for _, r := range []string{"bad_header", "truncated", "timeout"} {
		if v := testutilValue(body.WithLabelValues(r)); v == 0 {
			t.Errorf("messages_rejected_total{reason=%q} = 0", r)
		}
	}
}

func TestIdleTimeout(t *testing.T) {
	e := startServer(t, envOpt{cfg: Config{IdleTimeout: 200 * time.Millisecond}})
	c := e.mustDial(e.client)
	if _, err := roundTrip(c, request(1)); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c)
}

func TestMalformedBodyKeepsConnection(t *testing.T) {
	e := startServer(t, envOpt{})
	c := e.mustDial(e.client)
	// Correctly framed, but the inner item has an unknown type.
	bad := []byte{0x42, 0x00, 0x78, 0x01, 0, 0, 0, 8, 0x42, 0x00, 0x77, 0x0c, 0, 0, 0, 0}
	resp, err := roundTrip(c, bad)
	if err != nil {
		t.Fatal(err)
	}
	if reason, _ := resultReason(resp); reason != kmip14.ResultReasonInvalidMessage {
		t.Fatalf("reason = %v", reason)
	}
	resp, err = roundTrip(c, request(7))
	if err != nil {
		t.Fatalf("connection not usable after a malformed message: %v", err)
	}
	if bc := batchCount(t, resp); bc != 7 {
		t.Fatalf("batch count = %d", bc)
	}
}

func TestDecodeLimitsApplied(t *testing.T) {
	e := startServer(t, envOpt{cfg: Config{Limits: tree.Limits{MaxDepth: 2}}})
	c := e.mustDial(e.client)
	resp, err := roundTrip(c, request(1)) // depth 4
	if err != nil {
		t.Fatal(err)
	}
	if reason, _ := resultReason(resp); reason != kmip14.ResultReasonInvalidMessage {
		t.Fatalf("reason = %v", reason)
	}
}

func TestProcessorPanicClosesOnlyThatConnection(t *testing.T) {
	e := startServer(t, envOpt{})
	other := e.mustDial(e.client)
	if _, err := roundTrip(other, request(1)); err != nil {
		t.Fatal(err)
	}
	c := e.mustDial(e.client)
	c.Write(request(99))
	expectClosed(t, c)
	if _, err := roundTrip(other, request(2)); err != nil {
		t.Fatalf("other connection broken: %v", err)
	}
	if _, err := roundTrip(e.mustDial(e.client), request(3)); err != nil {
		t.Fatalf("new connection refused: %v", err)
	}
	if !strings.Contains(e.logs.String(), "test processor panic") {
		t.Fatal("panic not logged")
	}
}

func TestMaxConns(t *testing.T) {
	e := startServer(t, envOpt{cfg: Config{MaxConns: 1}})
	first := e.mustDial(e.client)
	if _, err := roundTrip(first, request(1)); err != nil {
		t.Fatal(err)
	}
	if c, err := e.dial(e.client, 0, 0); err == nil {
		_, err = roundTrip(c, request(2))
		c.Close()
		if err == nil {
			t.Fatal("connection beyond MaxConns was served")
		}
	}
	first.Close()
	// The slot frees once the server notices the close.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := e.dial(e.client, 0, 0)
		if err == nil {
			_, err = roundTrip(c, request(3))
			c.Close()
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestShutdownFinishesInFlightAndLeaksNothing(t *testing.T) {
	base := runtime.NumGoroutine()
	block := make(chan struct{})
	e := startServer(t, envOpt{proc: echoProc{block: block}})
	busy := e.mustDial(e.client)
	idle := e.mustDial(e.client)
	busy.Write(request(5))
	time.Sleep(100 * time.Millisecond) // let the request reach Process
	stopped := make(chan struct{})
	go func() { e.stop(); close(stopped) }()
	expectClosed(t, idle) // idle connections go at once
	select {
	case <-stopped:
		t.Fatal("Serve returned before the in-flight request finished")
	case <-time.After(100 * time.Millisecond):
	}
	close(block)
	resp, err := readResponse(busy)
	if err != nil {
		t.Fatalf("in-flight request lost: %v", err)
	}
	if bc := batchCount(t, resp); bc != 5 {
		t.Fatalf("batch count = %d", bc)
	}
	expectClosed(t, busy)
	<-stopped
	busy.Close()
	idle.Close()
	waitGoroutines(t, base)
}

func TestShutdownGivesUpOnStuckRequests(t *testing.T) {
	block := make(chan struct{}) // never closed: Process returns on ctx only
	e := startServer(t, envOpt{proc: echoProc{block: block}, cfg: Config{ShutdownTimeout: 200 * time.Millisecond}})
	c := e.mustDial(e.client)
	c.Write(request(1))
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	e.stop()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
}

// waitGoroutines allows the runtime a moment to retire exiting goroutines.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base+2 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// putBuf scrubs what the buffer held, key material included.
func TestPutBufClears(t *testing.T) {
	b := getBuf()
	used := append((*b)[:0], "secret key material"...)
	putBuf(b, used)
	for _, c := range used {
		if c != 0 {
			t.Fatalf("buffer not scrubbed: %q", used)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	s := New(Config{}, echoProc{}, nil)
	c := s.cfg
	if c.Address != "127.0.0.1:5696" || c.MaxMessageSize != 1<<20 || c.ReadTimeout != 30*time.Second ||
		c.IdleTimeout != 2*time.Minute || c.WriteTimeout != 30*time.Second ||
		c.HandshakeTimeout != 10*time.Second || c.MaxConns != 10000 {
		t.Fatalf("defaults: %+v", c)
	}
	if s.Addr() != nil {
		t.Fatal("Addr before Serve")
	}
	if err := s.Serve(t.Context(), nopListener{}); err == nil {
		t.Fatal("Serve without TLS config succeeded")
	}
}

// testutilValue reads a counter without prometheus/testutil's extra deps.
func testutilValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

type nopListener struct{}

func (nopListener) Accept() (net.Conn, error) { return nil, errors.New("closed") }
func (nopListener) Close() error              { return nil }
func (nopListener) Addr() net.Addr            { return &net.TCPAddr{} }

func TestListenAndServe(t *testing.T) {
	e := startServer(t, envOpt{}) // for its PKI
	s := New(Config{Address: "127.0.0.1:0", TLS: e.srv.tls.Load().all}, echoProc{}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe(ctx) }()
	for i := 0; s.Addr() == nil; i++ {
		if i > 500 {
			t.Fatal("server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.addr = s.Addr().String()
	if _, err := roundTrip(e.mustDial(e.client), request(4)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("ListenAndServe: %v", err)
	}
}
