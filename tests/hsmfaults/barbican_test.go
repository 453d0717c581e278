package hsmfaults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmipd/kmipd/testkit"
)

// pythonPath is Debian's Python, which has PyKMIP 0.10 (python3-pykmip); the
// python3 first on PATH may be another build without it.
const pythonPath = "/usr/bin/python3"

// pyResult is the JSON line testdata/barbican_load.py prints.
type pyResult struct {
	Requests     int      `json:"requests"`
	Failures     int      `json:"failures"`
	Connections  int      `json:"connections"`
	Errors       []string `json:"errors"`
	StuckThreads int      `json:"stuck_threads"`
}

// The Barbican picture: 8 worker processes of 32 threads each, every thread
// a PyKMIP client opening a TLS connection per round as Barbican's
// kmip_plugin does, all hammering one kmipd over an HSM capped at 4 sessions.
// Half the processes share the dev client identity (Barbican has one), the
// others have one each; the pKEK cache is smaller than that owner count, so
// the HSM stays in the path. Zero failures, and the HSM never sees a 5th
// session nor a session request beyond its cap.
func TestBarbicanPicture(t *testing.T) {
	const (
		capN, procs, threads = 4, 8, 32
		shared               = procs / 2 // processes using Barbican's one identity
		seconds              = 5
	)
	if _, err := os.Stat(pythonPath); err != nil {
		t.Skipf("%s missing (%v): apt-get install python3-pykmip", pythonPath, err)
	}
	if out, err := exec.Command(pythonPath, "-c", "import kmip.pie.client").CombinedOutput(); err != nil {
		t.Skipf("PyKMIP not importable by %s (apt-get install python3-pykmip): %v\n%s", pythonPath, err, out)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "barbican_load.py"))
	if err != nil {
		t.Fatal(err)
	}
	c := startCapped(t, capN, testkit.DevOptions{MaxSessions: capN, KEKCacheSize: 1})
	d := c.dev
	barbican := d.Client(t)
	conf := filepath.Join(t.TempDir(), "pykmip.conf")
	if err := os.WriteFile(conf, nil, 0o600); err != nil { // so /etc/pykmip is not read
		t.Fatal(err)
	}
	c.ctl.ResetPeak()
	calls0 := c.ctl.Stats().Calls

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	results := make([]pyResult, procs)
	errs := make([]error, procs)
	var wg sync.WaitGroup
	began := time.Now()
	for i := 0; i < procs; i++ {
		id := barbican
		if i >= shared {
			id = d.NewIdentity(t, "barbican-"+strconv.Itoa(i))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = runPyKMIP(ctx, script, d, id, conf, threads, seconds)
		}()
	}
	wg.Wait()
	took := time.Since(began)
	st := c.ctl.Stats()

	var total pyResult
	for i, r := range results {
		if errs[i] != nil {
			t.Errorf("process %d: %v", i, errs[i])
			continue
		}
		total.Requests += r.Requests
		total.Failures += r.Failures
		total.Connections += r.Connections
		total.StuckThreads += r.StuckThreads
		for _, e := range r.Errors {
			total.Errors = append(total.Errors, fmt.Sprintf("process %d: %s", i, e))
		}
	}
	t.Logf("%d processes × %d threads (%d on the shared identity) for %ds: %d requests on %d connections (%.0f/s over %v), %d failed",
		procs, threads, shared*threads, seconds, total.Requests, total.Connections,
		float64(total.Requests)/float64(seconds), took.Round(time.Millisecond), total.Failures)
	t.Logf("HSM: peak %d sessions (cap %d), %d PKCS#11 calls, %d refusals; kmipd saw %v connections",
		st.Peak, capN, st.Calls-calls0, st.Refusals, d.Metric("kmipd_connections_total"))

	if total.Failures != 0 || total.StuckThreads != 0 {
		t.Errorf("%d failed requests, %d threads stuck; first errors:\n  %s\nkmipd log tail:\n%s",
			total.Failures, total.StuckThreads, strings.Join(total.Errors, "\n  "), d.LogTail(30))
	}
	if total.Requests < procs*threads {
		t.Errorf("only %d requests from %d threads", total.Requests, procs*threads)
	}
	if st.Peak > capN {
		t.Errorf("the HSM saw %d sessions at once, cap %d", st.Peak, capN)
	}
	if st.Refusals != 0 {
		t.Errorf("kmipd asked the HSM for a session beyond its cap %d times", st.Refusals)
	}
	if st.Calls-calls0 < 100 {
		t.Errorf("only %d PKCS#11 calls: the HSM was not in the path", st.Calls-calls0)
	}
}

// runPyKMIP runs one worker process and parses its report.
func runPyKMIP(ctx context.Context, script string, d *testkit.Dev, id *testkit.Client, conf string, threads, seconds int) (pyResult, error) {
	host, port, _ := strings.Cut(d.Addr, ":")
	cmd := exec.CommandContext(ctx, pythonPath, script, host, port, id.CAFile, id.CertFile, id.KeyFile, conf,
		strconv.Itoa(threads), strconv.Itoa(seconds))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return pyResult{}, fmt.Errorf("%v\nstdout: %s\nstderr: %s", err, stdout.Bytes(), tail(stderr.String(), 20))
	}
	var r pyResult
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &r); err != nil {
		return pyResult{}, fmt.Errorf("report %q: %v\nstderr: %s", stdout.Bytes(), err, tail(stderr.String(), 20))
	}
	return r, nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
