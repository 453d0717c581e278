package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The HSM figures come from kmipd's own telemetry endpoint rather than from
// inside the process, so the same numbers can be taken from a production
// server, and the load generator needs nothing but an address.
const (
	metricCalls = "kmipd_hsm_calls_total"
	metricPeak  = "kmipd_hsm_sessions_peak"

	// The synced write path (storage/metrics.go): what a Create, Register
	// or Destroy waits for before kmipd answers.
	metricWrites    = "kmipd_storage_committed_writes_total"
	metricCommits   = "kmipd_storage_commits_total"
	metricWaitSum   = "kmipd_storage_write_wait_seconds_sum"
	metricCommitSum = "kmipd_storage_commit_seconds_sum"
)

// scraped is every series a run reads, at the start and the end of its
// measured phase.
var scraped = []string{metricCalls, metricPeak, metricWrites, metricCommits, metricWaitSum, metricCommitSum}

// storageStats is the measured phase's share of kmipd's write counters.
func storageStats(before, after map[string]float64) *StorageStats {
	d := func(name string) float64 { return after[name] - before[name] }
	s := &StorageStats{Writes: d(metricWrites), Commits: d(metricCommits)}
	if s.Commits > 0 {
		s.WritesPerCommit = s.Writes / s.Commits
		s.MeanCommitMS = d(metricCommitSum) * 1e3 / s.Commits
	}
	if s.Writes > 0 {
		s.MeanWaitMS = d(metricWaitSum) * 1e3 / s.Writes
	}
	return s
}

var metricsClient = &http.Client{Timeout: 2 * time.Second}

// scrape fetches a Prometheus text exposition and returns the values of the
// unlabelled series named in want. A name absent from the page is an error:
// it means the URL is not a kmipd /metrics page.
func scrape(ctx context.Context, url string, want ...string) (map[string]float64, error) {
	out, err := scrapeFound(ctx, url, want...)
	if err != nil {
		return nil, err
	}
	for _, name := range want {
		if _, ok := out[name]; !ok {
			return nil, fmt.Errorf("%s: no %s series (is this kmipd's /metrics?)", url, name)
		}
	}
	return out, nil
}

// scrapeFound is scrape without the check that every name is there (a
// PostgreSQL replica has no Badger write-path series).
func scrapeFound(ctx context.Context, url string, want ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	// Ask for the classic text format: one "name value" line per series.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := metricsClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	out := make(map[string]float64, len(want))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		for _, name := range want {
			rest, ok := strings.CutPrefix(line, name)
			if !ok || len(rest) == 0 || rest[0] != ' ' {
				continue
			}
			f := strings.Fields(rest)
			v, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %q: %w", url, line, err)
			}
			out[name] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
