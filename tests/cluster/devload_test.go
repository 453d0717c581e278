package cluster

import (
	"bufio"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// loadDuration is how long TestDevClusterUnderLoad's clients run: short in
// make test, minutes in make test-cluster-long.
var loadDuration = flag.Duration("cluster.load-duration", 15*time.Second, "how long TestDevClusterUnderLoad runs its 200 clients")

// metric reads one unlabelled sample from a replica's /metrics.
func metric(telemetry, name string) (float64, bool) {
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + telemetry + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// diagnose logs what each replica refused at the transport and the end of
// its log, for a failed run.
func diagnose(t *testing.T, info devCluster, dir string) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	for i, r := range info.Replicas {
		var lines []string
		if resp, err := hc.Get("http://" + r.Telemetry + "/metrics"); err == nil {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "kmipd_messages_rejected_total{") || strings.HasPrefix(sc.Text(), "kmipd_hsm_budget_lease_") {
					lines = append(lines, sc.Text())
				}
			}
			resp.Body.Close()
		}
		b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("replica-%d.log", i)))
		var logged []string // warnings and errors, and why handshakes failed
		for _, l := range strings.Split(string(b), "\n") {
			if len(logged) < 8 && (strings.Contains(l, "[WARN]") || strings.Contains(l, "[ERROR]") || strings.Contains(l, "handshake")) {
				logged = append(logged, l)
			}
		}
		b = []byte(strings.Join(logged, "\n"))
		t.Logf("replica %d: %v\nlog:\n%s", i, lines, b)
	}
}

// TestDevClusterUnderLoad: `kmipd dev -cluster 3` over the capped module
// (HSM-wide cap 6, every call delayed 2 ms like a network HSM) with
// cluster_max_sessions = 6, and 200 concurrent clients, three quarters on
// one connection each and a quarter reconnecting for every request, as 24
// owners, arriving over 3 s.
// The replicas keep a pKEK unwrapped for 250 ms only, so every replica goes
// back to the HSM for each owner several times a second and the shares
// are contended. Nobody fails, the HSM never holds more than 6 sessions and
// never refuses one.
func TestDevClusterUnderLoad(t *testing.T) {
	const budget, clients, owners = 6, 200, 24
	info, dir, ctl := startDevClusterWith(t, devOptions{budget: budget,
		// info: the replicas log why a handshake failed
		args: []string{"-kek-cache-ttl", "250ms", "-log-level", "info"}, env: []string{"CAPPED_DELAY_US=2000"}})
	pki := loadDevPKI(t, dir)
	ids := pki.owners("load", owners)
	var workers []loadWorker
	for i := range clients {
		r := i % len(info.Replicas)
		// Generous: two cores run 3 servers (under -race) and 200 clients.
		cl := pki.client(info.Replicas[r].Addr, ids[i%owners], 2*time.Minute)
		// A quarter reconnect for every request, as a client process that
		// connects when it needs a key (with a pause between its rounds:
		// full handshakes in a tight loop would measure TLS on two cores).
		w := loadWorker{replica: r, owner: i % owners, cl: cl}
		if i%4 == 1 {
			w.reconnect, w.think = true, 200*time.Millisecond
		}
		workers = append(workers, w)
	}
	ctl.ResetPeak()
	before := ctl.Stats()
	const ramp = 3 * time.Second
	l := startProcLoad(workers, ramp)
	time.Sleep(ramp + *loadDuration)
	var shares []float64
	for _, r := range info.Replicas {
		s, _ := metric(r.Telemetry, "kmipd_hsm_budget_share")
		shares = append(shares, s)
	}
	l.stop()
	after := ctl.Stats()
	defer func() {
		if t.Failed() {
			diagnose(t, info, dir)
		}
	}()

	l.mu.Lock()
	defer l.mu.Unlock()
	total := 0
	for r := range info.Replicas {
		total += l.ok[r]
		if l.nfail[r] > 0 {
			t.Errorf("replica %d: %d failed requests, e.g. %v", r, l.nfail[r], l.failed[r])
		}
		if l.ok[r] == 0 {
			t.Errorf("replica %d served nothing", r)
		}
	}
	calls := after.Calls - before.Calls
	t.Logf("%d clients, %v: %d requests served %v (%.0f/s), failed %v; HSM: %d calls, peak %d of %d sessions, %d refused opens; shares at the end %v",
		clients, *loadDuration, total, l.ok, float64(total)/(ramp+*loadDuration).Seconds(), l.nfail, calls, after.Peak, budget, after.Refusals-before.Refusals, shares)
	if after.Peak > budget || after.Refusals != before.Refusals {
		t.Errorf("HSM peak %d (budget %d), %d refused opens", after.Peak, budget, after.Refusals-before.Refusals)
	}
	// The load must have reached the HSM for the budget to be tested: each
	// replica re-opens each owner's pKEK (Unwrap, VerifyMAC) as it expires.
	if calls < 100 {
		t.Errorf("only %d HSM calls under load: the pKEK cache kept the HSM idle", calls)
	}
}
