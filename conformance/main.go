package conformance

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Main implements `kmipd conformance -addr HOST:PORT -ca CA -cert CERT -key KEY
// [-json] [-v] [-failures FILE] [-all-steps] [-max-clock-step D]
// [-expected-failures FILE -set NAME] PATH...`. It returns the process exit
// code: 0 when every test case passed (with -expected-failures: when
// exactly the cases listed for the set failed), 1 otherwise, 2 on a usage
// error.
func Main(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("conformance", flag.ContinueOnError)
	fl.SetOutput(stderr)
	addr := fl.String("addr", "127.0.0.1:5696", "KMIP server `HOST:PORT`")
	ca := fl.String("ca", "", "CA certificate (PEM) that signed the server certificate")
	cert := fl.String("cert", "", "client certificate (PEM)")
	key := fl.String("key", "", "client private key (PEM)")
	asJSON := fl.Bool("json", false, "print a JSON report instead of tables")
	verbose := fl.Bool("v", false, "report each test case as it finishes and print reasons in full")
	timeout := fl.Duration("timeout", 5*time.Minute, "time limit per test case")
	maxClock := fl.Duration("max-clock-step", DefaultMaxClockStep, "longest recorded clock step (\"# TIME n\" in the KMIP 1.0-1.2 files) to wait out; 0 never waits")
	failures := fl.String("failures", "", "also write each failing case and its whole first difference to `FILE`")
	allSteps := fl.Bool("all-steps", false, "after a case's first failure, keep comparing and list each later step's difference (with -failures)")
	expected := fl.String("expected-failures", "", "the cases expected to fail (`FILE`, lines \"SET CASE REASON\"): exit 0 only if exactly the listed cases of -set fail")
	set := fl.String("set", "", "the corpus set (`NAME`, e.g. v1.4) whose lines of -expected-failures apply to this run")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: kmipd conformance -addr HOST:PORT -ca CA -cert CERT -key KEY [-json] [-v] [-failures FILE] [-expected-failures FILE -set NAME] PATH...")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() == 0 || *ca == "" || *cert == "" || *key == "" || (*expected != "") != (*set != "") {
		fl.Usage()
		return 2
	}
	var list []Expectation
	if *expected != "" {
		var err error
		if list, err = ReadExpectedFile(*expected); err != nil {
			fmt.Fprintln(stderr, "conformance:", err)
			return 2
		}
	}
	files, err := CollectFiles(fl.Args())
	if err != nil {
		fmt.Fprintln(stderr, "conformance:", err)
		return 2
	}
	cfg, err := TLSConfig(*ca, *cert, *key)
	if err != nil {
		fmt.Fprintln(stderr, "conformance:", err)
		return 2
	}
	dial := func(ctx context.Context) (Conn, error) { return DialTLS(ctx, *addr, cfg) }
	var progress func(Result)
	opts := Options{MaxClockStep: *maxClock, AllSteps: *allSteps}
	if *maxClock == 0 {
		opts.MaxClockStep = -1
	}
	if *verbose {
		progress = func(r Result) {
			status := "PASS"
			if !r.Passed {
				status = "FAIL " + r.Reason()
			}
			waited := ""
			if r.Waited > 0 {
				waited = fmt.Sprintf(", %s of it waiting out clock steps", r.Waited.Round(time.Second))
			}
			fmt.Fprintf(stderr, "%s: %s (%s%s)\n", r.Name, status, r.Duration.Round(time.Millisecond), waited)
		}
		opts.Trace = func(step int, req, _ *tree.Node, m *Mismatch) {
			if m != nil {
				fmt.Fprintf(stderr, "  step %d: %v\n", step, m)
			}
		}
	}
	rep := NewReport(RunFiles(context.Background(), files, dial, *timeout, opts, progress))
	if *failures != "" {
		if err := writeFailures(*failures, rep); err != nil {
			fmt.Fprintln(stderr, "conformance:", err)
			return 2
		}
	}
	if *asJSON {
		if err := rep.WriteJSON(stdout); err != nil {
			fmt.Fprintln(stderr, "conformance:", err)
			return 2
		}
	} else {
		rep.WriteTable(stdout, *verbose)
	}
	if *expected != "" {
		v := CheckExpected(rep.Results, list, *set)
		w := stdout
		if *asJSON {
			w = stderr // keep stdout one JSON document
		}
		v.Write(w, *expected, *set)
		if !v.OK() {
			return 1
		}
		return 0
	}
	if rep.Failed > 0 {
		return 1
	}
	return 0
}

func writeFailures(path string, rep Report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	rep.WriteFailures(f)
	return f.Close()
}

// RunFiles parses and replays each file on a fresh connection. A file that
// does not parse, or a server that cannot be reached, is a failed result:
// every file yields exactly one result.
func RunFiles(ctx context.Context, files []string, dial func(context.Context) (Conn, error), timeout time.Duration, o Options, progress func(Result)) []Result {
	out := make([]Result, 0, len(files))
	if o.Memory == nil {
		o.Memory = NewMemory()
	}
	for _, f := range files {
		r := runFile(ctx, f, dial, timeout, o)
		if progress != nil {
			progress(r)
		}
		out = append(out, r)
	}
	return out
}

func runFile(ctx context.Context, f string, dial func(context.Context) (Conn, error), timeout time.Duration, o Options) Result {
	name := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
	tc, err := ParseFile(f)
	if err != nil {
		return Result{Name: name, Profile: ProfileOf(name), Path: f, Error: "parse: " + err.Error()}
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	c, err := dial(ctx)
	if err != nil {
		return Result{Name: tc.Name, Profile: tc.Profile, Path: f, Steps: len(tc.Steps), Error: "connect: " + err.Error()}
	}
	rc := &redialConn{Conn: c, dial: dial}
	defer rc.Close()
	return ReplayWith(ctx, rc, tc, o)
}

// CollectFiles expands each path: a file as is, a folder into every *.xml
// below it. The result is sorted and free of duplicates.
func CollectFiles(paths []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			add(p)
			continue
		}
		err = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.EqualFold(filepath.Ext(q), ".xml") {
				add(q)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("no .xml test cases under %s", strings.Join(paths, ", "))
	}
	return out, nil
}
