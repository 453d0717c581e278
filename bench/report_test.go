package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReportPairsRunsAndChecksTargets(t *testing.T) {
	res := func(label, mix, mode string, workers int, ok float64, p99 float64, calls *HSMStats) *Result {
		return &Result{Label: label, Mix: mix, Mode: mode, Workers: workers, Ops: 1000, OKPerSec: ok, LoadProcs: 1,
			Latency: Latency{P50: p99 / 2, P99: p99}, HSM: calls, ByOp: map[string]OpStats{"Get": {Ops: 1000, Latency: Latency{P50: 1, P99: p99}}}}
	}
	zero := &HSMStats{Calls: 0, PeakSessions: 2}
	rep := BuildReport([]*Result{
		res("kmipd", MixGet, Persistent, 32, 50000, 3, zero),
		res("pykmip", MixGet, Persistent, 32, 250, 300, nil),
		res("kmipd", MixCreateGetDestroy, Reconnect, 16, 900, 40, nil),
		res("pykmip", MixCreateGetDestroy, Reconnect, 16, 100, 900, nil),
		res("kmipd", MixCreate, Persistent, 16, 2000, 30, &HSMStats{Calls: 3}),
	}, "kmipd", "pykmip")
	if rep.LoadProcs != 1 {
		t.Errorf("load_procs %d, want 1 (from the results)", rep.LoadProcs)
	}
	if len(rep.Rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rep.Rows))
	}
	if r := rep.Rows[0].Ratio; r == nil || *r != 200 {
		t.Fatalf("get ratio = %v, want 200", r)
	}
	if rep.Rows[2].Ratio != nil {
		t.Fatal("a row without a baseline has no ratio")
	}
	status := map[string]string{}
	for _, tg := range rep.Targets {
		status[tg.Name] = tg.Status
	}
	want := map[string]string{
		"get persistent 32 workers: kmipd / pykmip":                     "met",
		"create-get-destroy reconnect 16 workers: kmipd / pykmip":       "missed", // 9×
		"p99 Get latency, get persistent 32 workers":                    "met",
		"HSM calls per op, get persistent 32 workers (cached owner)":    "met",
		"HSM calls per op, create persistent 16 workers (cached owner)": "missed",
	}
	for name, st := range want {
		if status[name] != st {
			t.Errorf("%s: %q, want %q (all: %v)", name, status[name], st, status)
		}
	}
	rep.Rows[2].Subject.Storage = &StorageStats{Writes: 1500, Commits: 500, WritesPerCommit: 3, MeanWaitMS: 2.5, MeanCommitMS: 1.25}
	rep.Rows[0].Subject.WarmupSeconds = 2
	rep.CPUs = 2
	var md bytes.Buffer
	rep.WriteMarkdown(&md)
	for _, s := range []string{"on 2 CPUs; load generator and both servers share the machine, the load generator running on at most 1 of them at once (GOMAXPROCS).",
		"| get | persistent | 32 | 50000 |", "**200.0×**", "| missed |", "## Per operation",
		"the figures exclude a 2s warm-up.",
		"## kmipd's synced writes", "| create | persistent | 16 | 1.50 | 3.0 | 2.50 ms | 1.25 ms |"} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("markdown lacks %q:\n%s", s, md.String())
		}
	}
}

// With several rounds per scenario, a ratio is taken within each round,
// the table shows the median round, and the targets use medians: one
// disturbed round decides nothing.
func TestReportMedianOfRounds(t *testing.T) {
	res := func(label string, ok, p99 float64) *Result {
		return &Result{Label: label, Mix: MixGet, Mode: Persistent, Workers: 32, Ops: 1000, OKPerSec: ok,
			Latency: Latency{P50: p99 / 2, P99: p99}}
	}
	rep := BuildReport([]*Result{
		res("kmipd", 30000, 4), res("pykmip", 250, 100), // 120×
		res("kmipd", 20000, 9), res("pykmip", 250, 100), // 80×, a disturbed round
		res("kmipd", 26000, 4.5), res("pykmip", 250, 100), // 104×
	}, "kmipd", "pykmip")
	row := rep.Rows[0]
	if len(row.Rounds) != 3 {
		t.Fatalf("%d rounds, want 3", len(row.Rounds))
	}
	if row.Ratio == nil || *row.Ratio != 104 || row.Subject.OKPerSec != 26000 {
		t.Fatalf("median round: ratio %v, subject %v; want 104× from the third round", row.Ratio, row.Subject.OKPerSec)
	}
	got := map[string]Target{}
	for _, tg := range rep.Targets {
		got[tg.Name] = tg
	}
	if tg := got["get persistent 32 workers: kmipd / pykmip"]; tg.Status != "met" || !strings.Contains(tg.Got, "median of 3 rounds: 120.0×, 80.0×, 104.0×") {
		t.Errorf("ratio target %+v", tg)
	}
	if tg := got["p99 Get latency, get persistent 32 workers"]; tg.Status != "met" || !strings.HasPrefix(tg.Got, "4.50 ms (median of 3 rounds") {
		t.Errorf("p99 target %+v", tg)
	}
	var md bytes.Buffer
	rep.WriteMarkdown(&md)
	for _, s := range []string{"## Rounds", "| get | persistent | 32 | 2 | 20000 | 9.00ms | 250 | 80.0× |", "**104.0×**"} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("markdown lacks %q:\n%s", s, md.String())
		}
	}
	// Two slow rounds of three are a missed target.
	rep = BuildReport([]*Result{
		res("kmipd", 30000, 6), res("pykmip", 250, 100),
		res("kmipd", 20000, 6), res("pykmip", 250, 100),
		res("kmipd", 24000, 4), res("pykmip", 250, 100),
	}, "kmipd", "pykmip")
	for _, tg := range rep.Targets {
		if strings.HasPrefix(tg.Name, "get persistent") || strings.HasPrefix(tg.Name, "p99") {
			if tg.Status != "missed" {
				t.Errorf("%s: %s (%s), want missed", tg.Name, tg.Status, tg.Got)
			}
		}
	}
}

func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	r := &Result{Label: "kmipd", Mix: MixGet, Mode: Persistent, Workers: 32, Ops: 10, OKPerSec: 10}
	b, _ := json.Marshal(r)
	in := filepath.Join(dir, "r.json")
	if err := os.WriteFile(in, b, 0o600); err != nil {
		t.Fatal(err)
	}
	md, js := filepath.Join(dir, "out.md"), filepath.Join(dir, "out.json")
	var stdout, stderr bytes.Buffer
	if code := Main(t.Context(), []string{"report", "-md", md, "-json", js, "-note", "hello", in}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	mdText, _ := os.ReadFile(md)
	if !strings.Contains(string(mdText), "- hello") {
		t.Errorf("note missing:\n%s", mdText)
	}
	var rep Report
	jsText, _ := os.ReadFile(js)
	if err := json.Unmarshal(jsText, &rep); err != nil || len(rep.Rows) != 1 {
		t.Fatalf("json report: %v %s", err, jsText)
	}
	if code := Main(t.Context(), []string{"report"}, &stdout, &stderr); code != 2 {
		t.Errorf("no inputs: exit %d, want 2", code)
	}
}
