package conformance

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestReadExpected(t *testing.T) {
	list, err := ReadExpected(strings.NewReader(`# comment
v1.4 CS-RNG-O-2-14   RNG Seed: 16 of 32 bytes
[open server work]

v1.2	TC_MDO_1_12_Register_MDO_Key	meta-data-only keys
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Expectation{
		{Set: "v1.4", Case: "CS-RNG-O-2-14", Reason: "RNG Seed: 16 of 32 bytes", Line: 2},
		{Set: "v1.2", Case: "TC_MDO_1_12_Register_MDO_Key", Reason: "meta-data-only keys", Section: "open server work", Line: 5},
	}
	if len(list) != len(want) {
		t.Fatalf("got %+v", list)
	}
	for i := range want {
		if list[i] != want[i] {
			t.Errorf("line %d: got %+v, want %+v", i, list[i], want[i])
		}
	}
	for _, bad := range []string{
		"v1.4 CS-RNG-O-2-14\n",                         // no reason
		"v1.4 CS-RNG-O-2-14 a\nv1.4 CS-RNG-O-2-14 b\n", // listed twice
	} {
		if _, err := ReadExpected(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// The verdict is red for an unlisted failure, a listed case that passes and
// a listed case that did not run; only the set's own lines count.
func TestCheckExpected(t *testing.T) {
	pass := func(n string) Result { return Result{Name: n, Passed: true} }
	fail := func(n string) Result { return Result{Name: n, Failed: 1, Error: "boom"} }
	list := []Expectation{
		{Set: "v1.4", Case: "A", Reason: "r"},
		{Set: "v1.4", Case: "B", Reason: "r"},
		{Set: "v1.2", Case: "C", Reason: "r"}, // another set's
	}
	for _, c := range []struct {
		name    string
		results []Result
		ok      bool
		what    string
	}{
		{"exactly the listed fail", []Result{fail("A"), fail("B"), pass("C"), pass("D")}, true, ""},
		{"unlisted failure", []Result{fail("A"), fail("B"), fail("D")}, false, "UNEXPECTED FAILURE v1.4 D: step 1: boom"},
		{"listed case passes", []Result{fail("A"), pass("B")}, false, "LISTED BUT PASSED v1.4 B"},
		{"listed case missing", []Result{fail("A")}, false, "LISTED BUT NOT RUN v1.4 B"},
		{"another set's line", []Result{fail("A"), fail("B"), fail("C")}, false, "UNEXPECTED FAILURE v1.4 C"},
	} {
		v := CheckExpected(c.results, list, "v1.4")
		var out bytes.Buffer
		v.Write(&out, "list.txt", "v1.4")
		if v.OK() != c.ok || !strings.Contains(out.String(), c.what) {
			t.Errorf("%s: ok %v, want %v; output:\n%s", c.name, v.OK(), c.ok, out.String())
		}
		if !strings.HasSuffix(out.String(), map[bool]string{true: ": ok\n", false: ": FAILED\n"}[c.ok]) {
			t.Errorf("%s: summary line: %s", c.name, out.String())
		}
	}
}

// corpusRoot is the shared OASIS corpus, when present.
const corpusRoot = "/work/shared/kmip-testcases"

// The project's list: well-formed, each line in a known set naming a case
// of the corpus, and the same cases in README's tables, both ways.
func TestExpectedFailuresFile(t *testing.T) {
	list, err := ReadExpectedFile("expected-failures.txt")
	if err != nil {
		t.Fatal(err)
	}
	sets := map[string]bool{"v1.0": true, "v1.1": true, "v1.2": true, "v1.4": true}
	listed := map[string]bool{}
	for _, e := range list {
		if !sets[e.Set] {
			t.Errorf("line %d: unknown set %q", e.Line, e.Set)
		}
		listed[e.Set+" "+e.Case] = true
	}
	if _, err := os.Stat(corpusRoot); err == nil {
		for _, e := range list {
			m, _ := filepath.Glob(filepath.Join(corpusRoot, e.Set, "*", e.Case+".xml"))
			m2, _ := filepath.Glob(filepath.Join(corpusRoot, e.Set, e.Case+".xml"))
			if len(m)+len(m2) != 1 {
				t.Errorf("line %d: %s %s is not one file of the corpus", e.Line, e.Set, e.Case)
			}
		}
	} else {
		t.Logf("corpus not at %s: case files not checked", corpusRoot)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := readmeExceptions(t, string(readme))
	for k := range listed {
		if !rows[k] {
			t.Errorf("%s: in expected-failures.txt, not in README.md's table", k)
		}
	}
	for k := range rows {
		if !listed[k] {
			t.Errorf("%s: in README.md's table, not in expected-failures.txt", k)
		}
	}
}

var readmeRow = regexp.MustCompile(`^\|\s*(v1\.[0-9])\s*\|\s*` + "`?" + `([^|` + "`" + `\s]+)` + "`?" + `\s*\|`)

// readmeExceptions reads the "SET | CASE | reason" rows between README's
// expected-failures markers.
func readmeExceptions(t *testing.T, s string) map[string]bool {
	t.Helper()
	const begin, end = "<!-- expected-failures -->", "<!-- /expected-failures -->"
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README.md has no %s ... %s section", begin, end)
	}
	rows := map[string]bool{}
	for _, l := range strings.Split(s[i:j], "\n") {
		if m := readmeRow.FindStringSubmatch(l); m != nil {
			if rows[m[1]+" "+m[2]] {
				t.Errorf("README.md lists %s %s twice", m[1], m[2])
			}
			rows[m[1]+" "+m[2]] = true
		}
	}
	return rows
}
