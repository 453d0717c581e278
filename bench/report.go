package bench

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Report pairs runs of the same scenario against two servers: the subject
// (kmipd) and the baseline (PyKMIP). Ratios are of successful requests per
// second, so a server answering every request with an error scores zero.
type Report struct {
	Generated time.Time `json:"generated"`
	CPUs      int       `json:"cpus"`
	LoadProcs int       `json:"load_procs"` // the load generator's GOMAXPROCS
	Subject   string    `json:"subject"`
	Baseline  string    `json:"baseline"`
	Rows      []Row     `json:"rows"`
	Targets   []Target  `json:"targets"`
	Notes     []string  `json:"notes"`
}

// Row is one scenario (mix, mode, workers). Subject, Baseline and Ratio are
// the round whose ratio is the median (the only round, if there is one).
type Row struct {
	Mix      string   `json:"mix"`
	Mode     string   `json:"mode"`
	Workers  int      `json:"workers"`
	Subject  *Result  `json:"subject,omitempty"`
	Baseline *Result  `json:"baseline,omitempty"`
	Ratio    *float64 `json:"ratio,omitempty"` // subject / baseline successful ops/s
	Rounds   []Round  `json:"rounds,omitempty"`
}

// Round is one back-to-back measurement of both servers on a scenario.
// Both share the machine's state at that moment, so a ratio is only ever
// taken within a round; repeating rounds and taking the median keeps one
// disturbed run from deciding a target.
type Round struct {
	Subject  *Result  `json:"subject,omitempty"`
	Baseline *Result  `json:"baseline,omitempty"`
	Ratio    *float64 `json:"ratio,omitempty"`
}

// Target is one of the goals set for kmipd (issue 6), checked on this run.
type Target struct {
	Name   string `json:"name"`
	Want   string `json:"want"`
	Got    string `json:"got"`
	Status string `json:"status"` // met, missed, n/a
}

func reportMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	md := fs.String("md", "", "write the markdown table here (default: stdout)")
	js := fs.String("json", "", "write the report as JSON here")
	subject := fs.String("subject", "kmipd", "label of the server being measured")
	baseline := fs.String("baseline", "pykmip", "label of the server it is compared with")
	var notes multiFlag
	fs.Var(&notes, "note", "a line added under the table (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kmipd bench report [-md FILE] [-json FILE] RESULT.json...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	var results []*Result
	for _, p := range fs.Args() {
		b, err := os.ReadFile(p)
		if err != nil {
			fmt.Fprintf(stderr, "kmipd bench report: %v\n", err)
			return 1
		}
		var r Result
		if err := json.Unmarshal(b, &r); err != nil {
			fmt.Fprintf(stderr, "kmipd bench report: %s: %v\n", p, err)
			return 1
		}
		results = append(results, &r)
	}
	rep := BuildReport(results, *subject, *baseline)
	rep.Notes = append(rep.Notes, notes...)
	var out strings.Builder
	rep.WriteMarkdown(&out)
	write := func(path string, data []byte) bool {
		if path == "" {
			_, _ = stdout.Write(data)
			return true
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			fmt.Fprintf(stderr, "kmipd bench report: %v\n", err)
			return false
		}
		return true
	}
	if !write(*md, []byte(out.String())) {
		return 1
	}
	if *js != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if !write(*js, append(b, '\n')) {
			return 1
		}
	}
	return 0
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, "; ") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// BuildReport groups the results by scenario, in the order first seen, and
// pairs them into rounds: the n-th subject result of a scenario with its
// n-th baseline result, as scripts/bench.sh runs them back to back (results
// must be given in the order they ran). Then it evaluates the targets.
func BuildReport(results []*Result, subject, baseline string) *Report {
	rep := &Report{Generated: time.Now().UTC(), CPUs: runtime.NumCPU(), Subject: subject, Baseline: baseline}
	index := map[string]int{}
	var subs, bases [][]*Result
	for _, r := range results {
		rep.LoadProcs = max(rep.LoadProcs, r.LoadProcs)
		key := fmt.Sprintf("%s/%s/%d", r.Mix, r.Mode, r.Workers)
		i, ok := index[key]
		if !ok {
			i = len(rep.Rows)
			index[key] = i
			rep.Rows = append(rep.Rows, Row{Mix: r.Mix, Mode: r.Mode, Workers: r.Workers})
			subs, bases = append(subs, nil), append(bases, nil)
		}
		switch r.Label {
		case subject:
			subs[i] = append(subs[i], r)
		case baseline:
			bases[i] = append(bases[i], r)
		}
	}
	for i := range rep.Rows {
		row := &rep.Rows[i]
		for k := range max(len(subs[i]), len(bases[i])) {
			var rd Round
			if k < len(subs[i]) {
				rd.Subject = subs[i][k]
			}
			if k < len(bases[i]) {
				rd.Baseline = bases[i][k]
			}
			// A side where every request failed has no meaningful ratio;
			// its errors column says why.
			if rd.Subject != nil && rd.Baseline != nil && rd.Baseline.OKPerSec > 0 && rd.Subject.OKPerSec > 0 {
				q := rd.Subject.OKPerSec / rd.Baseline.OKPerSec
				rd.Ratio = &q
			}
			row.Rounds = append(row.Rounds, rd)
		}
		m := row.Rounds[medianRound(row.Rounds)]
		row.Subject, row.Baseline, row.Ratio = m.Subject, m.Baseline, m.Ratio
		if len(row.Rounds) == 1 {
			row.Rounds = nil // the row is the round
		}
	}
	rep.Targets = rep.evaluate()
	return rep
}

// medianRound is the index of the round with the median ratio (the lower
// middle one for an even count); rounds without a ratio rank lowest. With
// no ratio at all it is the first round.
func medianRound(rs []Round) int {
	idx := make([]int, len(rs))
	for i := range idx {
		idx[i] = i
	}
	val := func(i int) float64 {
		if rs[i].Ratio == nil {
			return -1
		}
		return *rs[i].Ratio
	}
	sort.SliceStable(idx, func(a, b int) bool { return val(idx[a]) < val(idx[b]) })
	return idx[(len(idx)-1)/2]
}

// medianOf is the median of xs (the lower middle one for an even count).
func medianOf(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[(len(s)-1)/2]
}

// roundList renders per-round figures for a target's "got" column.
func roundList(xs []float64, format string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(parts, ", ")
}

func (rep *Report) find(mix, mode string, workers int) *Row {
	for i := range rep.Rows {
		r := &rep.Rows[i]
		if r.Mix == mix && r.Mode == mode && r.Workers == workers {
			return r
		}
	}
	return nil
}

func (rep *Report) evaluate() []Target {
	var ts []Target
	ratio := func(mix, mode string, workers int, want float64) {
		t := Target{Name: fmt.Sprintf("%s %s %d workers: %s / %s", mix, mode, workers, rep.Subject, rep.Baseline),
			Want: fmt.Sprintf("≥ %.0f×", want), Status: "n/a", Got: "not run"}
		if row := rep.find(mix, mode, workers); row != nil && row.Ratio != nil {
			t.Got = fmt.Sprintf("%.1f×", *row.Ratio)
			t.Status = met(*row.Ratio >= want)
			if len(row.Rounds) > 1 {
				var rs []float64
				for _, rd := range row.Rounds {
					if rd.Ratio != nil {
						rs = append(rs, *rd.Ratio)
					}
				}
				t.Got += fmt.Sprintf(" (median of %d rounds: %s)", len(row.Rounds), roundList(rs, "%.1f×"))
			}
		}
		ts = append(ts, t)
	}
	ratio(MixGet, Persistent, 32, 100)
	ratio(MixCreateGetDestroy, Reconnect, 16, 10)

	t := Target{Name: "p99 Get latency, get persistent 32 workers", Want: "< 5 ms", Status: "n/a", Got: "not run"}
	if row := rep.find(MixGet, Persistent, 32); row != nil && row.Subject != nil {
		p99 := row.Subject.Latency.P99
		t.Got = fmt.Sprintf("%.2f ms", p99)
		if len(row.Rounds) > 1 {
			var ps []float64
			for _, rd := range row.Rounds {
				if rd.Subject != nil {
					ps = append(ps, rd.Subject.Latency.P99)
				}
			}
			p99 = medianOf(ps)
			t.Got = fmt.Sprintf("%.2f ms (median of %d rounds: %s)", p99, len(ps), roundList(ps, "%.2f ms"))
		}
		t.Status = met(p99 > 0 && p99 < 5)
	}
	ts = append(ts, t)

	// HSM calls per op, for each mix whose steady state must not touch the
	// HSM, on every kmipd row where telemetry was scraped.
	for _, row := range rep.Rows {
		s := row.Subject
		if s == nil || s.HSM == nil || (row.Mix != MixGet && row.Mix != MixCreate && row.Mix != MixEncrypt) {
			continue
		}
		t := Target{Name: fmt.Sprintf("HSM calls per op, %s %s %d workers (cached owner)", row.Mix, row.Mode, row.Workers),
			Want: "0", Got: fmt.Sprintf("%.0f calls / %d ops", s.HSM.Calls, s.Ops)}
		switch {
		case s.Ops > 0 && s.Errors == s.Ops:
			t.Status = "n/a"
			t.Got += " (every request failed)"
		default:
			t.Status = met(s.HSM.Calls == 0)
		}
		ts = append(ts, t)
	}
	return ts
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

// writeStorage renders kmipd's synced write path for each row that wrote:
// where a write-heavy mix's latency goes.
func (rep *Report) writeStorage(w io.Writer) {
	head := false
	for _, row := range rep.Rows {
		r := row.Subject
		if r == nil || r.Storage == nil || r.Storage.Writes == 0 || r.Ops == 0 {
			continue
		}
		if !head {
			fmt.Fprintf(w, "\n## %s's synced writes\n\n| mix | mode | workers | writes per request | writes per commit | mean wait to durable | mean commit |\n|---|---|---:|---:|---:|---:|---:|\n", rep.Subject)
			head = true
		}
		st := r.Storage
		fmt.Fprintf(w, "| %s | %s | %d | %.2f | %.1f | %.2f ms | %.2f ms |\n",
			row.Mix, row.Mode, row.Workers, st.Writes/float64(r.Ops), st.WritesPerCommit, st.MeanWaitMS, st.MeanCommitMS)
	}
}

// WriteMarkdown renders the comparison table, the per-operation latencies
// and the targets.
func (rep *Report) WriteMarkdown(w io.Writer) {
	s, b := rep.Subject, rep.Baseline
	fmt.Fprintf(w, "# kmipd bench: %s vs %s\n\n", s, b)
	fmt.Fprintf(w, "Generated %s on %d CPUs; load generator and both servers share the machine", rep.Generated.Format(time.RFC3339), rep.CPUs)
	if rep.LoadProcs > 0 && rep.LoadProcs < rep.CPUs {
		fmt.Fprintf(w, ", the load generator running on at most %d of them at once (GOMAXPROCS)", rep.LoadProcs)
	}
	fmt.Fprint(w, ".\n\n")
	fmt.Fprintf(w, "| mix | mode | workers | %s ok/s | %s p50 | %s p99 | %s errors | %s ok/s | %s p50 | %s p99 | %s errors | %s / %s | HSM calls/op | peak HSM sessions |\n", s, s, s, s, b, b, b, b, s, b)
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, row := range rep.Rows {
		cells := []string{row.Mix, row.Mode, fmt.Sprint(row.Workers)}
		cells = append(cells, resultCells(row.Subject)...)
		cells = append(cells, resultCells(row.Baseline)...)
		ratio := "-"
		if row.Ratio != nil {
			ratio = fmt.Sprintf("**%.1f×**", *row.Ratio)
		}
		calls, peak := "-", "-"
		if row.Subject != nil && row.Subject.HSM != nil {
			calls = fmt.Sprintf("%.4g", row.Subject.HSM.CallsPerOp)
			peak = fmt.Sprintf("%.0f", row.Subject.HSM.PeakSessions)
		}
		cells = append(cells, ratio, calls, peak)
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}

	fmt.Fprintf(w, "\n## Per operation (p50 / p99)\n\n| mix | mode | workers | operation | %s | %s |\n|---|---|---:|---|---:|---:|\n", s, b)
	for _, row := range rep.Rows {
		for k := range numOpKinds {
			name := k.String()
			sub, base := opCell(row.Subject, name), opCell(row.Baseline, name)
			if sub == "" && base == "" {
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s |\n", row.Mix, row.Mode, row.Workers, name, or(sub, "-"), or(base, "-"))
		}
	}

	rep.writeStorage(w)

	if rep.hasRounds() {
		fmt.Fprintf(w, "\n## Rounds\n\nEvery round ran %s and then %s back to back; the tables above show the round with the median ratio.\n\n", s, b)
		fmt.Fprintf(w, "| mix | mode | workers | round | %s ok/s | %s p99 | %s ok/s | %s / %s |\n|---|---|---:|---:|---:|---:|---:|---:|\n", s, s, b, s, b)
		for _, row := range rep.Rows {
			for i, rd := range row.Rounds {
				sc, bc := resultCells(rd.Subject), resultCells(rd.Baseline)
				ratio := "-"
				if rd.Ratio != nil {
					ratio = fmt.Sprintf("%.1f×", *rd.Ratio)
				}
				fmt.Fprintf(w, "| %s | %s | %d | %d | %s | %s | %s | %s |\n", row.Mix, row.Mode, row.Workers, i+1, sc[0], sc[2], bc[0], ratio)
			}
		}
	}

	fmt.Fprintf(w, "\n## Targets\n\n| target | want | got | status |\n|---|---|---|---|\n")
	for _, t := range rep.Targets {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", t.Name, t.Want, t.Got, t.Status)
	}

	var errs []string
	for _, row := range rep.Rows {
		for _, r := range []*Result{row.Subject, row.Baseline} {
			if r != nil && len(r.ErrorSamples) > 0 {
				errs = append(errs, fmt.Sprintf("- %s %s/%s: %s", r.Label, r.Mix, r.Mode, strings.Join(r.ErrorSamples, "; ")))
			}
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "\n## Errors\n\n%s\n", strings.Join(errs, "\n"))
	}
	fmt.Fprintf(w, "\n## Notes\n\n")
	fmt.Fprintln(w, "- ok/s counts successful KMIP requests per second (a create-get-destroy cycle is three requests); latencies are of successful requests, measured by the client, and include the full TLS handshake in reconnect mode.")
	fmt.Fprintln(w, "- HSM calls/op come from kmipd's /metrics (kmipd_hsm_calls_total at the start and the end of the measured phase, after setup (a first Create per owner) and the warm-up); peak HSM sessions is kmipd's own high-water mark (kmipd_hsm_sessions_peak, the login session included) since it started, read at the end. Nothing is scraped during the measured phase.")
	fmt.Fprintln(w, "- Synced writes come from the same two scrapes (kmipd_storage_*): a write is one durable put, create or delete; the group committer carries concurrent writes in one transaction with one WAL sync; the wait runs from queueing the write to its answer, the commit is one transaction with its syncs.")
	// One line per distinct protocol setup, not per run.
	seen := map[string]bool{}
	for _, r := range rep.Rows {
		for _, x := range []*Result{r.Subject, r.Baseline} {
			if x == nil {
				continue
			}
			line := fmt.Sprintf("- %s: KMIP %s over %s, %d owner(s), %.0fs measured per run", x.Label, x.KMIPVersion, x.TLSVersion, x.Owners, x.Seconds)
			if x.WarmupSeconds > 0 {
				// The warm-up ran the same mix first, so connections, the
				// server's heap and its caches were in their steady state.
				line += fmt.Sprintf("; the figures exclude a %s warm-up", fmtSeconds(x.WarmupSeconds))
			}
			line += "."
			if !seen[line] {
				seen[line] = true
				fmt.Fprintln(w, line)
			}
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
}

func (rep *Report) hasRounds() bool {
	for _, row := range rep.Rows {
		if len(row.Rounds) > 1 {
			return true
		}
	}
	return false
}

func resultCells(r *Result) []string {
	if r == nil {
		return []string{"-", "-", "-", "-"}
	}
	return []string{fmt.Sprintf("%.0f", r.OKPerSec), fmtMS(r.Latency.P50), fmtMS(r.Latency.P99), fmt.Sprint(r.Errors)}
}

func opCell(r *Result, op string) string {
	if r == nil {
		return ""
	}
	s, ok := r.ByOp[op]
	if !ok {
		return ""
	}
	if s.Errors == s.Ops {
		return fmt.Sprintf("all %d failed", s.Ops)
	}
	return fmt.Sprintf("%s / %s", fmtMS(s.Latency.P50), fmtMS(s.Latency.P99))
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
