package testkit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// DefaultModule is the PKCS#11 module kmipd dev uses when none is given.
const DefaultModule = "/usr/lib/softhsm/libsofthsm2.so"

// DevOptions configure StartDev. The zero value is kmipd dev on SoftHSM2 with
// kmipd's defaults.
type DevOptions struct {
	// Module is the PKCS#11 module (-hsm-module); default DefaultModule.
	Module string
	// MaxSessions is -max-sessions; 0 keeps kmipd's default.
	MaxSessions int
	// Env is added to the server's environment (e.g. CAPPED_STATE).
	Env map[string]string
	// LogLevel is -log-level; default "info".
	LogLevel string
	// ExtraArgs are appended to the `kmipd dev` command line.
	ExtraArgs []string
	// KEKCacheSize, when positive, bounds kmipd's pKEK cache (kek.cache_size).
	// `kmipd dev` has no flag for it, so StartDev runs `kmipd dev` once to
	// create the token, PKI, store and kmipd.hcl, stops it, sets cache_size
	// in kmipd.hcl and serves that file with `kmipd serve`. A cache smaller
	// than the number of owners keeps pKEKs being unwrapped by the HSM.
	KEKCacheSize int
	// StartTimeout bounds the wait for readiness; default 60s.
	StartTimeout time.Duration
}

// Dev is a running kmipd server. Its methods may be called from any
// goroutine of the test.
type Dev struct {
	t             testing.TB
	bin           string
	opts          DevOptions
	Dir           string // the dev folder: pki/, data/, tokens/, kmipd.hcl
	Addr          string // KMIP host:port
	TelemetryAddr string // host:port of /metrics, /healthz, /readyz
	logPath       string
	http          *http.Client

	mu       sync.Mutex // guards cmd, exited, exitErr
	cmd      *exec.Cmd
	exited   chan struct{}
	exitErr  error
	stopping atomic.Bool // set before we signal it: its exit is expected
	serving  atomic.Bool // set once ready: an exit after that is a death
	stopped  bool

	caOnce sync.Once
	ca     caIssuer
	caErr  error
	idSeq  atomic.Int64
}

// StartDev starts `kmipd dev` in a fresh directory on free loopback ports,
// waits until it is ready, and stops it when the test ends. It fails the test,
// with the tail of the server's log, if the server does not become ready or
// later dies on its own.
func StartDev(t testing.TB, opts DevOptions) *Dev {
	t.Helper()
	if opts.Module == "" {
		opts.Module = DefaultModule
	}
	if _, err := os.Stat(opts.Module); err != nil {
		t.Skipf("testkit: PKCS#11 module %s missing (%v); apt-get install softhsm2", opts.Module, err)
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	d := &Dev{
		t:    t,
		bin:  BuildKmipd(t),
		opts: opts,
		Dir:  t.TempDir(),
		// No keep-alives: a scrape must not hold a connection the server's
		// shutdown then waits for.
		http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	d.logPath = filepath.Join(d.Dir, "kmipd.log")
	t.Cleanup(func() {
		if !d.stopped {
			d.Stop()
		}
	})
	addrs := FreeAddrs(t, 2)
	d.Addr, d.TelemetryAddr = addrs[0], addrs[1]
	d.launch(d.devArgs())
	if opts.KEKCacheSize > 0 {
		d.Stop()
		d.setCacheSize(opts.KEKCacheSize)
		d.stopped = false
		d.launch([]string{"serve", "-config", filepath.Join(d.Dir, "kmipd.hcl")},
			// dev mode points SoftHSM at its token folder itself; serve
			// leaves that to the environment.
			"SOFTHSM2_CONF="+filepath.Join(d.Dir, "softhsm2.conf"))
	}
	return d
}

func (d *Dev) devArgs() []string {
	args := []string{"dev", "-dir", d.Dir, "-addr", d.Addr, "-telemetry-addr", d.TelemetryAddr,
		"-hsm-module", d.opts.Module, "-log-level", d.opts.LogLevel}
	if d.opts.MaxSessions > 0 {
		args = append(args, "-max-sessions", strconv.Itoa(d.opts.MaxSessions))
	}
	return append(args, d.opts.ExtraArgs...)
}

var cacheSizeRE = regexp.MustCompile(`(?m)^(\s*cache_size\s*=\s*)\d+`)

func (d *Dev) setCacheSize(n int) {
	path := filepath.Join(d.Dir, "kmipd.hcl")
	b, err := os.ReadFile(path)
	if err != nil {
		d.t.Fatalf("testkit: %v", err)
	}
	if !cacheSizeRE.Match(b) {
		d.t.Fatalf("testkit: no kek cache_size in %s:\n%s", path, b)
	}
	b = cacheSizeRE.ReplaceAll(b, []byte("${1}"+strconv.Itoa(n)))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		d.t.Fatalf("testkit: %v", err)
	}
}

// spawn starts commands from one goroutine locked to its OS thread for the
// life of the process: Pdeathsig fires when the thread that forked the child
// exits, and this thread never does, so servers die with a test binary that
// is killed (a go test timeout) instead of lingering on their ports.
var (
	spawnOnce sync.Once
	spawnCh   chan spawnReq
)

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func start(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnReq)
		go func() {
			runtime.LockOSThread()
			for r := range spawnCh {
				r.done <- r.cmd.Start()
			}
		}()
	})
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	r := spawnReq{cmd: cmd, done: make(chan error, 1)}
	spawnCh <- r
	return <-r.done
}

func (d *Dev) launch(args []string, extraEnv ...string) {
	t := d.t
	t.Helper()
	logf, err := os.OpenFile(d.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	defer logf.Close() // the child has its own descriptor
	fmt.Fprintf(logf, "=== testkit: %s %s\n", d.bin, strings.Join(args, " "))
	cmd := exec.Command(d.bin, args...)
	cmd.Dir = d.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// A -race kmipd otherwise sleeps a second at exit; halt_on_error makes
	// a race fatal, so it cannot scroll by unnoticed.
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0 halt_on_error=1")
	for k, v := range d.opts.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, extraEnv...)
	if err := start(cmd); err != nil {
		t.Fatalf("testkit: starting kmipd: %v", err)
	}
	exited := make(chan struct{})
	d.mu.Lock()
	d.cmd, d.exited, d.exitErr = cmd, exited, nil
	d.mu.Unlock()
	d.stopping.Store(false)
	d.serving.Store(false)
	go func() {
		err := cmd.Wait()
		d.mu.Lock()
		d.exitErr = err
		d.mu.Unlock()
		if d.serving.Load() && !d.stopping.Load() {
			// Errorf, not Fatalf: this is not the test's goroutine. It
			// runs before exited is closed, and the cleanup waits for
			// that, so it never runs after the test has ended.
			t.Errorf("testkit: kmipd (pid %d) exited on its own: %v\n%s", cmd.Process.Pid, err, d.LogTail(40))
		}
		close(exited)
	}()
	d.waitReady(exited)
	d.serving.Store(true)
}

func (d *Dev) waitReady(exited chan struct{}) {
	t := d.t
	t.Helper()
	deadline := time.Now().Add(d.opts.StartTimeout)
	for {
		select {
		case <-exited:
			t.Fatalf("testkit: kmipd exited before becoming ready: %v\n%s", d.exitErrNow(), d.LogTail(60))
		default:
		}
		if d.Ready() {
			if c, err := net.DialTimeout("tcp", d.Addr, time.Second); err == nil {
				c.Close()
				return
			}
		}
		if time.Now().After(deadline) {
			d.Kill()
			t.Fatalf("testkit: kmipd not ready after %v\n%s", d.opts.StartTimeout, d.LogTail(60))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exitErrNow is the process's exit status (nil while it runs or if it exited 0).
func (d *Dev) exitErrNow() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.exitErr
}

// PID is the server process's id (a restart would change it).
func (d *Dev) PID() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cmd.Process.Pid
}

// Alive reports whether the server process is still running.
func (d *Dev) Alive() bool {
	d.mu.Lock()
	ch := d.exited
	d.mu.Unlock()
	select {
	case <-ch:
		return false
	default:
		return true
	}
}

// Stop asks the server to shut down (SIGTERM), kills it after 15s, and fails
// the test if it exited with an error or reported a data race. It is called
// at cleanup if the test did not.
func (d *Dev) Stop() {
	d.t.Helper()
	d.halt(syscall.SIGTERM, 15*time.Second)
	if err := d.exitErrNow(); err != nil {
		d.t.Errorf("testkit: kmipd did not stop cleanly: %v\n%s", err, d.LogTail(40))
	}
	d.checkRaces()
}

// Kill ends the server at once (SIGKILL), as a crash would.
func (d *Dev) Kill() {
	d.halt(syscall.SIGKILL, 0)
	d.checkRaces()
}

func (d *Dev) halt(sig syscall.Signal, grace time.Duration) {
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	d.stopping.Store(true)
	d.stopped = true
	if cmd == nil { // it never started
		return
	}
	_ = cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-exited:
			return
		case <-time.After(grace):
			d.t.Errorf("testkit: kmipd ignored %v for %v; killing it\n%s", sig, grace, d.LogTail(40))
			_ = cmd.Process.Kill()
		}
	}
	<-exited
}

func (d *Dev) checkRaces() {
	if log := d.Log(); strings.Contains(log, "WARNING: DATA RACE") {
		i := strings.Index(log, "WARNING: DATA RACE")
		d.t.Errorf("testkit: the race detector fired inside kmipd:\n%s", log[i:])
	}
}

// Log returns everything the server wrote to stdout and stderr so far.
func (d *Dev) Log() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// LogTail returns the last n lines of the log.
func (d *Dev) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(d.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitLog waits until the log contains substr and reports whether it did
// within timeout.
func (d *Dev) WaitLog(substr string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(d.Log(), substr) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Ready reports whether GET /readyz answers 200.
func (d *Dev) Ready() bool {
	resp, err := d.http.Get("http://" + d.TelemetryAddr + "/readyz")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// Metric scrapes /metrics and returns the value of the series called name
// whose labels include the given name, value pairs; with several matching
// series (a vector queried by fewer labels) it returns their sum, and for a
// histogram or summary the sample count. It returns NaN when no series
// matches, and fails the test when the scrape itself fails.
func (d *Dev) Metric(name string, labels ...string) float64 {
	d.t.Helper()
	v, err := d.TryMetric(name, labels...)
	if err != nil {
		d.t.Fatalf("testkit: %v", err)
	}
	return v
}

// TryMetric is Metric returning the scrape's error instead of failing the
// test, for use outside the test's goroutine.
func (d *Dev) TryMetric(name string, labels ...string) (float64, error) {
	if len(labels)%2 != 0 {
		return 0, fmt.Errorf("Metric(%s): labels must be name, value pairs", name)
	}
	fams, err := d.scrape()
	if err != nil {
		return 0, fmt.Errorf("scraping %s: %w", d.TelemetryAddr, err)
	}
	fam, ok := fams[name]
	if !ok {
		return math.NaN(), nil
	}
	sum, found := 0.0, false
series:
	for _, m := range fam.GetMetric() {
		for i := 0; i < len(labels); i += 2 {
			matched := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					matched = true
					break
				}
			}
			if !matched {
				continue series
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Summary != nil:
			sum += float64(m.Summary.GetSampleCount())
		}
	}
	if !found {
		return math.NaN(), nil
	}
	return sum, nil
}

func (d *Dev) scrape() (map[string]*dto.MetricFamily, error) {
	resp, err := d.http.Get("http://" + d.TelemetryAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, errors.Join(errors.New("parsing /metrics"), err)
	}
	return fams, nil
}
