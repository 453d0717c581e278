package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kmipd/kmipd/testkit"
)

const softHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// kmipdBinary builds the real kmipd once per test binary, so the bench is
// tested against the server it will measure, wiring and all.
func kmipdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kmipd-bench-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "kmipd")
		goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goBin); err != nil {
			goBin = "go"
		}
		cmd := exec.Command(goBin, "build", "-o", builtBin, "github.com/kmipd/kmipd/cmd/kmipd")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/kmipd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// devServer is a `kmipd dev` process on 127.0.0.1.
type devServer struct {
	addr, metrics, pki string
}

func startDev(t *testing.T) *devServer {
	t.Helper()
	if _, err := os.Stat(softHSMModule); err != nil {
		t.Skipf("SoftHSM2 not installed: %v", err)
	}
	bin := kmipdBinary(t)
	dir := t.TempDir()
	addrs := testkit.FreeAddrs(t, 2)
	addr, tele := addrs[0], addrs[1]
	var log bytes.Buffer
	cmd := exec.Command(bin, "dev", "-dir", filepath.Join(dir, "dev"), "-addr", addr,
		"-telemetry-addr", tele, "-log-level", "warn")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("kmipd dev exited (%v):\n%s", err, log.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("kmipd dev did not listen on %s:\n%s", addr, log.String())
		}
	}
	return &devServer{addr: addr, metrics: "http://" + tele + "/metrics", pki: filepath.Join(dir, "dev", "pki")}
}

// bench runs Main as the command line would and decodes its JSON result.
func (d *devServer) bench(t *testing.T, extra ...string) *Result {
	t.Helper()
	args := append([]string{"-addr", d.addr, "-ca", filepath.Join(d.pki, "ca.crt"),
		"-cert", filepath.Join(d.pki, "client.crt"), "-key", filepath.Join(d.pki, "client.key"),
		"-workers", "4", "-warmup", "300ms", "-duration", "1s", "-json", "-metrics", d.metrics, "-label", "kmipd"}, extra...)
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("bench %v: exit %d\n%s", extra, code, stderr.String())
	}
	var r Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("bench %v: %v\n%s", extra, err, stdout.String())
	}
	return &r
}

func TestShortRunsAgainstDevServer(t *testing.T) {
	d := startDev(t)
	cases := []struct {
		name string
		args []string
		ops  []string // operations that must appear
	}{
		{"get persistent", []string{"-mix", "get", "-pool", "8"}, []string{"Get"}},
		{"create persistent", []string{"-mix", "create"}, []string{"Create"}},
		{"create-get-destroy reconnect, 2 owners", []string{"-mix", "create-get-destroy", "-mode", "reconnect", "-owners", "2", "-pki", d.pki},
			[]string{"Create", "Get", "Destroy"}},
		{"register-get over TLS 1.2", []string{"-mix", "register-get", "-tls-max", "1.2"}, []string{"Register", "Get"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := d.bench(t, c.args...)
			if r.Ops == 0 || r.Errors != 0 {
				t.Fatalf("ops %d errors %d: %v", r.Ops, r.Errors, r.ErrorSamples)
			}
			for _, op := range c.ops {
				if s := r.ByOp[op]; s.Ops == 0 || s.Latency.P50 <= 0 || s.Latency.P99 < s.Latency.P50 || s.Latency.Max < s.Latency.P99 {
					t.Errorf("%s: %+v", op, s)
				}
			}
			if r.HSM == nil || r.HSM.PeakSessions < 1 || r.HSM.PeakSessions < r.HSM.PeakBefore {
				t.Errorf("HSM figures not scraped: %+v", r.HSM)
			}
			// Every Create is at least one synced write, give or take the
			// workers' requests in flight at either scrape.
			if creates := r.ByOp["Create"].Ops; creates > 0 {
				if st := r.Storage; st == nil || st.Writes+4 < float64(creates) || st.Commits < 1 || st.WritesPerCommit < 1 || st.MeanWaitMS <= 0 || st.MeanCommitMS <= 0 {
					t.Errorf("storage figures for %d Creates: %+v", creates, st)
				}
			}
			if r.OKPerSec <= 0 || r.Seconds <= 0 || r.WarmupSeconds != 0.3 || r.TLSVersion == "" {
				t.Errorf("result incomplete: %+v", r)
			}
			if r.LoadProcs != runtime.GOMAXPROCS(0) {
				t.Errorf("load_procs %d, want this process's GOMAXPROCS %d", r.LoadProcs, runtime.GOMAXPROCS(0))
			}
		})
	}

	// -procs bounds the load generator for the run only: Main restores
	// GOMAXPROCS, as it may run inside a longer-lived process (this one).
	t.Run("procs", func(t *testing.T) {
		before := runtime.GOMAXPROCS(0)
		want := 1
		if before == 1 {
			want = 2
		}
		r := d.bench(t, "-mix", "get", "-pool", "8", "-procs", fmt.Sprint(want))
		if r.LoadProcs != want || r.Errors != 0 || r.Ops == 0 {
			t.Errorf("load_procs %d (want %d), ops %d, errors %d", r.LoadProcs, want, r.Ops, r.Errors)
		}
		if got := runtime.GOMAXPROCS(0); got != before {
			t.Errorf("GOMAXPROCS left at %d, was %d", got, before)
		}
	})

	t.Run("encrypt counts failures instead of stopping", func(t *testing.T) {
		// kmipd may not implement Encrypt yet: either way the run
		// completes, and any failure is counted and described.
		r := d.bench(t, "-mix", "encrypt")
		if r.Ops == 0 {
			t.Fatal("no Encrypt sent")
		}
		if r.Errors > 0 && len(r.ErrorSamples) == 0 {
			t.Fatal("errors without a sample")
		}
	})

	// -ops with a -duration keeps the default warm-up, and still measures
	// exactly that many requests after it.
	t.Run("text output and op limit", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), []string{"-addr", d.addr, "-pki", d.pki,
			"-cert", filepath.Join(d.pki, "client.crt"), "-key", filepath.Join(d.pki, "client.key"),
			"-workers", "2", "-ops", "50", "-duration", "1m", "-mix", "get", "-quiet"}, &stdout, &stderr)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		for _, want := range []string{"operations  50 ", "a 2s warm-up, not measured", "errors      0", "p99"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, stdout.String())
			}
		}
	})
}

func TestInterruptedRunReturnsPromptly(t *testing.T) {
	d := startDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := Main(ctx, []string{"-addr", d.addr, "-pki", d.pki, "-cert", filepath.Join(d.pki, "client.crt"),
		"-key", filepath.Join(d.pki, "client.key"), "-workers", "4", "-warmup", "200ms", "-duration", "1h", "-mix", "get", "-quiet"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stdout.String(), "operations") {
		t.Fatalf("exit %d, want 1 with a partial result:\n%s\n%s", code, stdout.String(), stderr.String())
	}
	if el := time.Since(start); el > 30*time.Second {
		t.Fatalf("took %v to stop", el)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-addr", "127.0.0.1:1"},                                   // no credentials
		{"-ca", "x", "-owners", "2"},                               // owners without -pki
		{"-ca", "x", "-cert", "c", "-key", "k", "-tls-max", "1.1"}, // bad TLS version
		{"-ca", "x", "-cert", "c", "-key", "k", "-warmup", "-1s"},  // negative warm-up
		{"-ca", "x", "-cert", "c", "-key", "k", "-procs", "-1"},    // negative CPU count
		{"-ca", "x", "-cert", "c", "-key", "k", "extra"},
	} {
		var out, errOut bytes.Buffer
		if code := Main(context.Background(), args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"-ca", "/nonexistent", "-cert", "c", "-key", "k", "-mix", "bogus"}, &out, &errOut); code != 1 {
		t.Errorf("missing files: exit %d, want 1", code)
	}
}
