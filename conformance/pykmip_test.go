package conformance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kmipd/kmipd/conformance"
	"github.com/kmipd/kmipd/conformance/pykmip"
)

const suiteDir = "/work/shared/kmip-testcases/v1.4"

// TestPyKMIP replays against a real PyKMIP 0.10 server. PyKMIP implements
// only part of KMIP 1.4, so most OASIS cases fail there; the test checks the
// replayer, not PyKMIP: every file yields a result, cases PyKMIP handles pass,
// and a corrupted expectation fails at the right field.
func TestPyKMIP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts pykmip-server")
	}
	addr, ca, cert, key := pykmip.StartPyKMIP(t)
	cfg, err := conformance.TLSConfig(ca, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(ctx context.Context) (conformance.Conn, error) { return conformance.DialTLS(ctx, addr, cfg) }
	run := func(files ...string) []conformance.Result {
		return conformance.RunFiles(context.Background(), files, dial, time.Minute, conformance.Options{}, nil)
	}

	t.Run("own cases pass", func(t *testing.T) {
		files, err := conformance.CollectFiles([]string{"testdata"})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range run(files...) {
			if !r.Passed {
				t.Errorf("%s: %s", r.Name, r.Reason())
			}
		}
	})

	t.Run("corrupted expectation fails", func(t *testing.T) {
		src, err := os.ReadFile("testdata/KMIPD-M-1-create-get-destroy.xml")
		if err != nil {
			t.Fatal(err)
		}
		bad := strings.Replace(string(src), `value="PreActive"`, `value="Active"`, 1)
		f := filepath.Join(t.TempDir(), "KMIPD-M-1-corrupted.xml")
		if err := os.WriteFile(f, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		r := run(f)[0]
		const path = "ResponseMessage/BatchItem[0]/ResponsePayload/Attribute[1]/AttributeValue"
		if r.Passed || r.Failed != 2 || r.Mismatch == nil || r.Mismatch.Path != path ||
			r.Mismatch.Expected != "Active" || r.Mismatch.Got != "PreActive" {
			t.Fatalf("result %+v, mismatch %v; want step 2 failing at %s", r, r.Mismatch, path)
		}
	})

	t.Run("OASIS v1.4 suite", func(t *testing.T) {
		if _, err := os.Stat(suiteDir); err != nil {
			t.Skipf("OASIS test cases missing: %v", err)
		}
		files, err := conformance.CollectFiles([]string{suiteDir})
		if err != nil {
			t.Fatal(err)
		}
		rs := run(files...)
		if len(rs) != len(files) {
			t.Fatalf("%d results for %d files", len(rs), len(files))
		}
		for _, r := range rs {
			if !r.Passed && r.Reason() == "" {
				t.Errorf("%s failed without a reason", r.Name)
			}
			if strings.HasPrefix(r.Error, "parse:") || strings.HasPrefix(r.Error, "connect:") {
				t.Errorf("%s: %s", r.Name, r.Error)
			}
		}
		// SKFF-M-1 (create a key, query its state, destroy it) is within
		// PyKMIP's abilities: it proves a whole OASIS case can pass.
		for _, r := range rs {
			if r.Name == "SKFF-M-1-14" && !r.Passed {
				t.Errorf("SKFF-M-1-14: %s", r.Reason())
			}
		}
		rep := conformance.NewReport(rs)
		names, passed, failed := rep.Profiles()
		var sum strings.Builder
		for _, p := range names {
			sum.WriteString(p + " " + itoa(passed[p]) + "/" + itoa(passed[p]+failed[p]) + "  ")
		}
		t.Logf("PyKMIP 0.10 per profile (passed/total): %s", sum.String())
		var buf bytes.Buffer
		rep.WriteTable(&buf, false)
		t.Logf("\n%s", buf.String())
	})

	t.Run("Main", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := conformance.Main([]string{"-addr", addr, "-ca", ca, "-cert", cert, "-key", key, "testdata"}, &out, &errb)
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if code != 0 || lines[len(lines)-1] != "5 passed, 0 failed" {
			t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
		}
		out.Reset()
		code = conformance.Main([]string{"-addr", addr, "-ca", ca, "-cert", cert, "-key", key, "-json",
			"testdata/KMIPD-M-3-discover-versions.xml", filepath.Join(suiteDir, "mandatory", "CS-RNG-M-1-14.xml")}, &out, &errb)
		var rep conformance.Report
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("-json output: %v\n%s", err, out.String())
		}
		if _, err := os.Stat(suiteDir); err == nil && (code != 1 || rep.Passed != 1 || rep.Failed != 1 || len(rep.Results) != 2) {
			t.Fatalf("exit %d, report %+v", code, rep)
		}
	})
}

func itoa(i int) string { return strconv.Itoa(i) }
