package conformance

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// responseAt is a Create response whose header Time Stamp is the literal ts.
func responseAt(ts string) string {
	r := opResponse("Create", `<ObjectType type="Enumeration" value="SymmetricKey"/>`+uidLit("k"))
	return strings.Replace(r, `value="$NOW"`, `value="`+ts+`"`, 1)
}

const createReq = `<ObjectType type="Enumeration" value="SymmetricKey"/>`

// A KMIP 1.0-1.2 style document: markers as the shared files write them,
// on their own line, on the <KMIP> line, after a closing tag, without a
// number, next to comment lines that are not markers.
func legacyDoc(ts ...string) string {
	return "<KMIP> # TIME 0 " + request("Create", createReq) + responseAt(ts[0]) +
		"\n# TIME 1\n# Successful Join with 3 of   the required 3-of-5 keys\n" + request("Create", createReq) + responseAt(ts[1]) +
		" # TIME \n" + request("Create", createReq) + responseAt(ts[2]) +
		request("Create", createReq) + responseAt(ts[3]) + "</KMIP>"
}

func TestClockMarkers(t *testing.T) {
	tc, err := Parse(strings.NewReader(legacyDoc("2012-04-27T08:12:27Z", "2012-04-27T08:14:27Z", "2012-04-27T08:14:28Z", "2012-04-27T08:14:29Z")))
	if err != nil {
		t.Fatal(err)
	}
	want := []int{0, 1, -1}
	for i, st := range tc.Steps {
		switch {
		case i < 3 && (st.Clock == nil || st.Clock.N != want[i]):
			t.Errorf("step %d: clock %+v, want TIME %d", i+1, st.Clock, want[i])
		case i == 3 && st.Clock != nil:
			t.Errorf("step 4: clock %+v, want none (no marker before it)", st.Clock)
		}
	}
	if got := tc.Steps[1].Recorded.Sub(tc.Steps[0].Recorded); got != 2*time.Minute {
		t.Errorf("recorded step = %v, want 2m", got)
	}
	// v1.4 documents have no markers and placeholder time stamps.
	if tc := threeSteps(t); tc.Steps[1].Clock != nil || !tc.Steps[1].Recorded.IsZero() {
		t.Errorf("1.4-style step: clock %+v, recorded %v", tc.Steps[1].Clock, tc.Steps[1].Recorded)
	}
}

func TestClockWait(t *testing.T) {
	tc, err := Parse(strings.NewReader(legacyDoc("2012-04-27T08:12:27Z", "2012-04-27T08:14:27Z", "2012-04-27T08:14:20Z", "2012-04-27T09:14:29Z")))
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Unix(1000, 0)
	now := sent.Add(10 * time.Second)
	if w := clockWait(tc.Steps, 1, sent, now, DefaultMaxClockStep); w != 110*time.Second {
		t.Errorf("two-minute clock step, 10 s gone: wait %v, want 1m50s", w)
	}
	if w := clockWait(tc.Steps, 1, sent, now, time.Minute); w != 0 {
		t.Errorf("step above the bound: wait %v, want 0", w)
	}
	if w := clockWait(tc.Steps, 1, sent, now, -1); w != 0 {
		t.Errorf("waiting disabled: wait %v", w)
	}
	if w := clockWait(tc.Steps, 2, sent, now, DefaultMaxClockStep); w != 0 {
		t.Errorf("clock went backwards: wait %v", w)
	}
	if w := clockWait(tc.Steps, 3, sent, now, 2*time.Hour); w != 0 {
		t.Errorf("no marker before step 4: wait %v", w)
	}
	if w := clockWait(tc.Steps, 0, sent, now, DefaultMaxClockStep); w != 0 {
		t.Errorf("first step: wait %v", w)
	}
}

// TestReplayWaitsOutClockSteps: the second request goes out no sooner than
// the recorded step after the first, and the wait is reported.
func TestReplayWaitsOutClockSteps(t *testing.T) {
	tc, err := Parse(strings.NewReader(legacyDoc("2012-04-27T08:12:27Z", "2012-04-27T08:12:28Z", "2012-04-27T08:12:28Z", "2012-04-27T08:12:28Z")))
	if err != nil {
		t.Fatal(err)
	}
	tc.Name = "TC_1_10"
	c := &timedConn{}
	for range tc.Steps {
		c.resp = append(c.resp, concrete(t, opResponse("Create", createReq+uidLit("k"))))
	}
	r := ReplayWith(context.Background(), c, tc, Options{})
	if !r.Passed {
		t.Fatalf("failed: %s", r.Reason())
	}
	if gap := c.at[1].Sub(c.at[0]); gap < time.Second {
		t.Errorf("second request %v after the first; the recorded clock step is 1 s", gap)
	}
	if r.Waited <= 0 || r.Waited > time.Second {
		t.Errorf("Waited = %v", r.Waited)
	}
	// With waiting off, nothing waits.
	c2 := &timedConn{fakeConn: fakeConn{resp: c.sent}}
	if r := ReplayWith(context.Background(), c2, tc, Options{MaxClockStep: -1}); r.Waited != 0 {
		t.Errorf("waiting disabled, yet Waited = %v", r.Waited)
	}
}

// TestReconnectAfterLongWait: after a clock step at least ReconnectIdle long
// the replayer reconnects (a server may have closed the idle connection);
// after a shorter one it keeps the connection.
func TestReconnectAfterLongWait(t *testing.T) {
	tc, err := Parse(strings.NewReader(legacyDoc("2012-04-27T08:12:27Z", "2012-04-27T08:12:28Z", "2012-04-27T08:12:28Z", "2012-04-27T08:12:28Z")))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		idle time.Duration
		want int
	}{{500 * time.Millisecond, 1}, {time.Hour, 0}} {
		rc := &countingReconnecter{}
		for range tc.Steps {
			rc.resp = append(rc.resp, concrete(t, opResponse("Create", createReq+uidLit("k"))))
		}
		if r := ReplayWith(context.Background(), rc, tc, Options{ReconnectIdle: c.idle}); !r.Passed {
			t.Fatalf("failed: %s", r.Reason())
		}
		if rc.n != c.want {
			t.Errorf("ReconnectIdle %v: %d reconnects, want %d", c.idle, rc.n, c.want)
		}
	}
}

type countingReconnecter struct {
	fakeConn
	n int
}

func (c *countingReconnecter) Reconnect(context.Context) error { c.n++; return nil }

type timedConn struct {
	fakeConn
	at   []time.Time
	sent []*tree.Node
}

func (c *timedConn) RoundTrip(ctx context.Context, req *tree.Node) (*tree.Node, error) {
	c.at = append(c.at, time.Now())
	r, err := c.fakeConn.RoundTrip(ctx, req)
	c.sent = append(c.sent, r)
	return r, err
}

func TestAttributeNameWrapping(t *testing.T) {
	for in, want := range map[string]string{
		"Cryptographic   Length":          "Cryptographic Length",
		"X.509   Certificate Identifier":  "X.509 Certificate Identifier",
		"Compromise   Occurrence Date":    "Compromise Occurrence Date",
		"Cryptographic Length":            "Cryptographic Length",
		"x-Custom   Name":                 "x-Custom   Name",
		"Not   A KMIP Attribute":          "Not   A KMIP Attribute",
		"Operation   Policy Name":         "Operation Policy Name",
		"Digital   Signature   Algorithm": "Digital Signature Algorithm",
	} {
		if got := attributeName(in); got != want {
			t.Errorf("attributeName(%q) = %q, want %q", in, got, want)
		}
	}
	// The rule applies to Attribute Name only: other text stays as written.
	tc, err := Parse(strings.NewReader("<KMIP>" + request("Create", `<TemplateAttribute><Attribute>
  <AttributeName type="TextString" value="Object   Group"/><AttributeValue type="TextString" value="third   party"/>
  </Attribute></TemplateAttribute>`) + opResponse("Create", uid0) + "</KMIP>"))
	if err != nil {
		t.Fatal(err)
	}
	a := tc.Steps[0].Request.Children[1].Children[1].Children[0].Children[0]
	if a.Children[0].Lit.Text != "Object Group" || a.Children[1].Lit.Text != "third   party" {
		t.Errorf("name %q, value %q", a.Children[0].Lit.Text, a.Children[1].Lit.Text)
	}
}

func TestLegacyProfiles(t *testing.T) {
	for name, want := range map[string]string{
		"AKLC_M_1_10_AsymmetricKey_1":          "AKLC",
		"SKLC_O_1_10-SymmetricKeysLifecycle_1": "SKLC",
		"TC_41_10_Revoke_Scenario":             "TC",
		"TC-311-10-CREATE-DESTROY":             "TC",
		"CS-BC-M-5-12_Decrypt_with_Known":      "CS-BC",
		"SUITEB_128-M-1-14":                    "SUITEB_128",
	} {
		if got := ProfileOf(name); got != want {
			t.Errorf("ProfileOf(%s) = %s, want %s", name, got, want)
		}
	}
}

// TestParseLegacySuites: every shared KMIP 1.0-1.2 file parses, its
// markers are read, and TC-92's two-minute step is where the case needs it.
func TestParseLegacySuites(t *testing.T) {
	root := filepath.Dir(suiteDir)
	for _, v := range []string{"v1.0", "v1.1", "v1.2"} {
		dir := filepath.Join(root, v)
		if _, err := os.Stat(dir); err != nil {
			t.Skipf("no shared cases at %s", dir)
		}
		files, err := CollectFiles([]string{dir})
		if err != nil {
			t.Fatal(err)
		}
		marks := 0
		for _, f := range files {
			tc, err := ParseFile(f)
			if err != nil {
				t.Errorf("%v", err)
				continue
			}
			for _, st := range tc.Steps {
				if st.Clock != nil {
					marks++
				}
			}
		}
		if marks < 5*len(files) {
			t.Errorf("%s: %d clock markers in %d files", v, marks, len(files))
		}
	}
	tc, err := ParseFile(filepath.Join(root, "v1.1", "TC_92_11_Existing_Key_Expired_Re_key_with_Same_Life_cycle.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if w := clockWait(tc.Steps, 3, time.Unix(0, 0), time.Unix(0, 0), DefaultMaxClockStep); w != 2*time.Minute || tc.Steps[3].Clock.N != 3 {
		t.Errorf("TC_92_11 TIME 3: wait %v, marker %+v", w, tc.Steps[3].Clock)
	}
}

// TestAllSteps: with AllSteps the steps after the first failure are still
// compared and listed; the verdict and the first failure do not change.
func TestAllSteps(t *testing.T) {
	run := func(all bool) Result {
		f := &fakeConn{resp: []*tree.Node{
			concrete(t, opResponse("Create", `<ObjectType type="Enumeration" value="SymmetricKey"/>`+uidLit("srv-42"))),
			concrete(t, opResponse("Activate", uidLit("srv-43"))),
			concrete(t, opResponse("Destroy", uidLit("srv-44"))),
		}}
		return ReplayWith(context.Background(), f, threeSteps(t), Options{AllSteps: all})
	}
	plain, all := run(false), run(true)
	if plain.Passed || all.Passed || plain.Failed != 2 || all.Failed != 2 || plain.Reason() != all.Reason() {
		t.Fatalf("verdicts differ: %q vs %q", plain.Reason(), all.Reason())
	}
	if len(plain.Later) != 0 {
		t.Errorf("without AllSteps: Later = %q", plain.Later)
	}
	if len(all.Later) != 1 || !strings.HasPrefix(all.Later[0], "step 3: ") || !strings.Contains(all.Later[0], "srv-44") {
		t.Errorf("Later = %q, want step 3's difference", all.Later)
	}
}
