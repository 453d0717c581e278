package kmipops

import (
	"context"
	"os"
	"path/filepath"
	"sort"
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

// TestOASISCases replays the OASIS 1.4 cases in-process. The ones in
// mustPass must pass; the others are run and logged (-v) to show progress.
func TestOASISCases(t *testing.T) {
	if _, err := os.Stat(testCases); err != nil {
		t.Skip("OASIS test cases not present")
	}
	mustPass := map[string]bool{
		"SKLC-M-1-14.xml": true, "SKLC-M-2-14.xml": true, "SKLC-M-3-14.xml": true,
		"OMOS-M-1-14.xml": true, "SKFF-M-5-14.xml": true, "SKFF-M-6-14.xml": true, "SKFF-M-7-14.xml": true, "SKFF-M-8-14.xml": true,
	}
	e := newEnv(t, Options{})
	files, _ := filepath.Glob(filepath.Join(testCases, "*", "*.xml"))
	sort.Strings(files)
	passed := 0
	for _, f := range files {
		name := filepath.Base(f)
		tc, err := conformance.ParseFile(f)
		if err != nil {
			if mustPass[name] {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		res := conformance.Replay(context.Background(), procConn{e.p, alice}, tc)
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
