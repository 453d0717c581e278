package conformance

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// Expected failures: the cases of the OASIS corpus kmipd is known not to
// pass, each with its reason (expected-failures.txt, README "Cases kmipd
// does not pass"). `make test` replays every case and is red when a case
// fails that the list does not name, and also when a listed case passes or
// is not there to run: the list says exactly which cases fail, no more.

// Expectation is one line of the list: a case of one corpus set that fails.
type Expectation struct {
	Set     string // the corpus folder: v1.0, v1.1, v1.2, v1.4
	Case    string // the file name without .xml (Result.Name)
	Reason  string // why it fails, one line
	Section string // the [section] the line is in, e.g. "open server work"
	Line    int
}

// ReadExpectedFile reads an expected-failures list from a file.
func ReadExpectedFile(path string) ([]Expectation, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	exp, err := ReadExpected(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return exp, nil
}

var expectedRE = regexp.MustCompile(`^(\S+)\s+(\S+)\s+(\S.*)$`)

// ReadExpected parses the list: "SET CASE REASON..." lines separated by
// whitespace, "[section name]" headers, blank lines and "#" comments. A
// line without a reason, or a case listed twice, is an error.
func ReadExpected(r io.Reader) ([]Expectation, error) {
	var out []Expectation
	seen := map[[2]string]int{}
	section := ""
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
			continue
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = strings.TrimSpace(l[1 : len(l)-1])
			continue
		}
		f := expectedRE.FindStringSubmatch(l)
		if f == nil {
			return nil, fmt.Errorf("line %d: want SET CASE REASON, got %q", n, l)
		}
		k := [2]string{f[1], f[2]}
		if prev, dup := seen[k]; dup {
			return nil, fmt.Errorf("line %d: %s %s already listed on line %d", n, f[1], f[2], prev)
		}
		seen[k] = n
		out = append(out, Expectation{Set: f[1], Case: f[2], Reason: f[3], Section: section, Line: n})
	}
	return out, sc.Err()
}

// Verdict is a run checked against the list.
type Verdict struct {
	Expected   []Result      // failed, as listed
	Unexpected []Result      // failed, not listed
	Passed     []Expectation // listed, but passed
	NotRun     []Expectation // listed for the set, but no such case ran
}

// OK reports whether the run matches the list exactly.
func (v Verdict) OK() bool {
	return len(v.Unexpected) == 0 && len(v.Passed) == 0 && len(v.NotRun) == 0
}

// CheckExpected checks the results of a run over one corpus set against
// the list's lines for that set.
func CheckExpected(results []Result, list []Expectation, set string) Verdict {
	listed := map[string]Expectation{}
	for _, e := range list {
		if e.Set == set {
			listed[e.Case] = e
		}
	}
	var v Verdict
	ran := map[string]bool{}
	for _, r := range results {
		ran[r.Name] = true
		e, isListed := listed[r.Name]
		switch {
		case !r.Passed && isListed:
			v.Expected = append(v.Expected, r)
		case !r.Passed:
			v.Unexpected = append(v.Unexpected, r)
		case isListed:
			v.Passed = append(v.Passed, e)
		}
	}
	for name, e := range listed {
		if !ran[name] {
			v.NotRun = append(v.NotRun, e)
		}
	}
	sort.Slice(v.NotRun, func(i, j int) bool { return v.NotRun[i].Line < v.NotRun[j].Line })
	return v
}

// Write prints the verdict: one line per problem, then a summary line.
func (v Verdict) Write(w io.Writer, file, set string) {
	for _, r := range v.Unexpected {
		fmt.Fprintf(w, "UNEXPECTED FAILURE %s %s: %s\n", set, r.Name, strings.ReplaceAll(r.Reason(), "\n", " "))
	}
	for _, e := range v.Passed {
		fmt.Fprintf(w, "LISTED BUT PASSED %s %s (%s line %d): remove it from the list\n", set, e.Case, file, e.Line)
	}
	for _, e := range v.NotRun {
		fmt.Fprintf(w, "LISTED BUT NOT RUN %s %s (%s line %d): no such case in this run\n", set, e.Case, file, e.Line)
	}
	status := "ok"
	if !v.OK() {
		status = "FAILED"
	}
	fmt.Fprintf(w, "%s: %d failed as listed in %s, %d unexpected failures, %d listed but passed, %d listed but not run: %s\n",
		set, len(v.Expected), file, len(v.Unexpected), len(v.Passed), len(v.NotRun), status)
}
