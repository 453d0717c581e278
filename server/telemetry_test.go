package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestTelemetryEndpoints(t *testing.T) {
	e := startServer(t, envOpt{})
	if _, err := roundTrip(e.mustDial(e.client), request(1)); err != nil {
		t.Fatal(err)
	}
	e.metrics.ObserveOperation("Create", "Success", 3*time.Millisecond)
	extra := prometheus.NewCounter(prometheus.CounterOpts{Name: "kmipd_hsm_test_total", Help: "x"})
	if err := e.metrics.Register(extra); err != nil {
		t.Fatal(err)
	}

	var ready atomic.Bool
	hs := TelemetryServer("127.0.0.1:0", e.metrics, ready.Load, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
	})
	base := "http://" + l.Addr().String()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		"kmipd_connections_total 1",
		"kmipd_connections_active 1",
		`kmipd_requests_total{operation="Create",result="Success"} 1`,
		`kmipd_request_duration_seconds_bucket{operation="Create"`,
		"kmipd_hsm_test_total 0",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	if code, body := get("/readyz"); code != 503 || body != "not ready\n" {
		t.Fatalf("/readyz before ready: %d %q", code, body)
	}
	ready.Store(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz when ready: %d", code)
	}
	ready.Store(false)
	if code, _ := get("/readyz"); code != 503 {
		t.Fatalf("/readyz after losing readiness: %d", code)
	}
}

func TestMetricsNilSafe(t *testing.T) {
	var m *Metrics
	m.ObserveOperation("Get", "Success", time.Millisecond)
	m.connOpened()
	m.connClosed()
	m.rejected("x")
	if err := m.Register(prometheus.NewCounter(prometheus.CounterOpts{Name: "x", Help: "x"})); err != nil {
		t.Fatal(err)
	}
	hs := TelemetryServer("", nil, nil, nil)
	if hs.Handler == nil {
		t.Fatal("no handler")
	}
}
