package kmipops

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kmipd/kmipd/conformance"
	"github.com/kmipd/kmipd/kmipops/tree"
)

const testCases = "/work/shared/kmip-testcases/v1.4"

// procConn is a conformance.Conn straight into a Processor, through the
// TTLV encoding both ways as on the wire.
type procConn struct {
	p *Processor
	c Caller
}

func (pc procConn) RoundTrip(ctx context.Context, req *tree.Node) (*tree.Node, error) {
	b, err := tree.Encode(req)
	if err != nil {
		return nil, err
	}
	in, err := tree.Decode(b, tree.DefaultLimits)
	if err != nil {
		return nil, err
	}
	out, err := tree.Encode(pc.p.Process(ctx, pc.c, in))
	if err != nil {
		return nil, err
	}
	return tree.Decode(out, tree.DefaultLimits)
}

func (procConn) Close() error { return nil }

// readMustPass reads conformance/must-pass.txt, the cases `make test` also
// replays over TLS (scripts/conformance.sh): one list for both runs.
func readMustPass(t *testing.T) map[string]bool {
	b, err := os.ReadFile("../conformance/must-pass.txt")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out[l] = true
		}
	}
	return out
}

// TestOASISCases replays the OASIS 1.4 cases in-process. The ones in
// conformance/must-pass.txt must pass; the others are run and logged (-v)
// to show progress.
func TestOASISCases(t *testing.T) {
	if _, err := os.Stat(testCases); err != nil {
		t.Skip("OASIS test cases not present")
	}
	mustPass := readMustPass(t)
	e := newEnv(t, Options{})
	files, _ := filepath.Glob(filepath.Join(testCases, "*", "*.xml"))
	sort.Strings(files)
	passed := 0
	// One memory for the run, as `kmipd conformance` has: TL-M-3 continues
	// with the key TL-M-2 created.
	opts := conformance.Options{Memory: conformance.NewMemory()}
	for _, f := range files {
		name := filepath.Base(f)
		tc, err := conformance.ParseFile(f)
		if err != nil {
			if mustPass[name] {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		res := conformance.ReplayWith(context.Background(), procConn{e.p, alice}, tc, opts)
		switch {
		case res.Passed:
			passed++
			t.Logf("%s: pass", name)
		case mustPass[name]:
			t.Errorf("%s: %s", name, res.Reason())
		default:
			t.Logf("%s: %s", name, res.Reason())
		}
	}
	t.Logf("%d of %d OASIS cases pass", passed, len(files))
}
