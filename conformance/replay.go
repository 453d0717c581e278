package conformance

import (
	"context"
	"fmt"
	"time"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Conn sends one request message and returns the server's response message.
type Conn interface {
	RoundTrip(ctx context.Context, req *tree.Node) (*tree.Node, error)
	Close() error
}

// Options tune a replay.
type Options struct {
	// TimeSlack widens the window a $NOW in a response may fall in, for
	// servers whose clock differs a little from ours. Default 2 minutes:
	// small against the hour-sized offsets the test cases use.
	TimeSlack time.Duration
	// Trace, when set, is told about each step as it completes.
	Trace func(step int, req, resp *tree.Node, m *Mismatch)
	// Memory is shared by the cases of one run; RunFiles makes one when nil.
	Memory *Memory
	// MaxClockStep is the longest recorded clock step ("# TIME n" in the
	// KMIP 1.0-1.2 files) the replayer waits out; 0 means
	// DefaultMaxClockStep, a negative value never waits (clock.go).
	MaxClockStep time.Duration
	// ReconnectIdle: after a clock-step wait at least this long, a
	// Reconnecter conn is reconnected first; 0 means ReconnectIdle.
	ReconnectIdle time.Duration
	// AllSteps keeps comparing after a case's first failure and lists each
	// later step's first difference in Result.Later. The verdict is the
	// same; it shows what else a failing case needs.
	AllSteps bool
}

// Result is the outcome of one test case.
type Result struct {
	Name     string        `json:"name"`
	Profile  string        `json:"profile"`
	Path     string        `json:"path"`
	Passed   bool          `json:"passed"`
	Steps    int           `json:"steps"`
	Failed   int           `json:"failed_step,omitempty"` // 1-based step of the first failure; 0 if none
	Mismatch *Mismatch     `json:"mismatch,omitempty"`
	Error    string        `json:"error,omitempty"` // transport, parse or binding failure
	Duration time.Duration `json:"duration_ns"`
	// Waited is the time spent waiting out the case's clock steps.
	Waited time.Duration `json:"waited_ns,omitempty"`
	// Later lists the first difference of each step after the first failed
	// one (Options.AllSteps); they may follow from the first.
	Later []string `json:"later,omitempty"`
}

// Reason is the one-line explanation for a failure ("" when passed).
func (r Result) Reason() string {
	switch {
	case r.Passed:
		return ""
	case r.Mismatch != nil:
		return fmt.Sprintf("step %d: %s", r.Failed, r.Mismatch.Error())
	case r.Failed > 0:
		return fmt.Sprintf("step %d: %s", r.Failed, r.Error)
	default:
		return r.Error
	}
}

// Replay runs every step of tc on conn with default options.
func Replay(ctx context.Context, conn Conn, tc *TestCase) Result {
	return ReplayWith(ctx, conn, tc, Options{})
}

// ReplayWith runs every step of tc on conn. After the first failure it keeps
// sending the remaining requests it can still build, ignoring their
// responses, so the test case's own Destroy steps still clean up.
func ReplayWith(ctx context.Context, conn Conn, tc *TestCase, o Options) Result {
	if o.TimeSlack == 0 {
		o.TimeSlack = 2 * time.Minute
	}
	if o.MaxClockStep == 0 {
		o.MaxClockStep = DefaultMaxClockStep
	}
	if o.ReconnectIdle == 0 {
		o.ReconnectIdle = ReconnectIdle
	}
	begin := time.Now()
	res := Result{Name: tc.Name, Profile: tc.Profile, Path: tc.Path, Steps: len(tc.Steps)}
	b := NewBindings()
	b.Run = o.Memory
	defer b.remember()
	fail := func(step int, m *Mismatch, err error) {
		if res.Failed != 0 {
			return
		}
		res.Failed, res.Mismatch = step, m
		if err != nil {
			res.Error = err.Error()
		}
	}
	var sent time.Time // when the previous request went out
	for i, st := range tc.Steps {
		if w := clockWait(tc.Steps, i, sent, time.Now(), o.MaxClockStep); w > 0 {
			if err := sleepCtx(ctx, w); err != nil {
				fail(i+1, nil, err)
				break
			}
			res.Waited += w
			if rc, ok := conn.(Reconnecter); ok && w >= o.ReconnectIdle {
				if err := rc.Reconnect(ctx); err != nil {
					fail(i+1, nil, fmt.Errorf("reconnecting after a %s clock step: %w", w.Round(time.Second), err))
					break
				}
			}
		}
		start := time.Now()
		sent = start
		req, err := b.Resolve(st.Request, start)
		if err != nil {
			if res.Failed != 0 && o.AllSteps {
				res.Later = append(res.Later, fmt.Sprintf("step %d: not sent: %v", i+1, err))
			}
			fail(i+1, nil, err)
			continue // a later step may not depend on the missing value
		}
		resp, err := conn.RoundTrip(ctx, req)
		if err != nil {
			fail(i+1, nil, err)
			break // the connection is unusable
		}
		b.Observe(resp)
		b.learnParams(req, resp)
		b.learnActivations(req, resp)
		if res.Failed != 0 {
			if o.AllSteps {
				if m := CompareStep(req, st.Response, resp, b, begin, time.Now(), o.TimeSlack); m != nil {
					res.Later = append(res.Later, fmt.Sprintf("step %d: %v", i+1, m))
				}
			}
			b.bindLoose(req, st.Response, resp)
			continue
		}
		// $NOW in a response may be any instant since the case began: an
		// Initial Date read back in step 5 was set during step 1.
		m := CompareStep(req, st.Response, resp, b, begin, time.Now(), o.TimeSlack)
		if o.Trace != nil {
			o.Trace(i+1, req, resp, m)
		}
		if m != nil {
			fail(i+1, m, nil)
			b.bindLoose(req, st.Response, resp)
		}
	}
	res.Passed = res.Failed == 0
	res.Duration = time.Since(begin)
	return res
}
