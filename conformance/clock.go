package conformance

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"
)

// The KMIP 1.0-1.2 test-case files (from the OASIS documents by way of
// ovh/kmip-go) carry two things the 1.4 files do not: "# TIME n" lines
// between messages, and attribute names with runs of spaces where the
// documents' table cells wrapped. This file reads both.

// ClockMark is a "# TIME n" line: the requests after it are the test's
// clock step n. N is -1 when the line has no number (SKLC-M-3-10/11 have one
// such line).
type ClockMark struct {
	N    int
	Line int
}

var clockRE = regexp.MustCompile(`#[ \t]*TIME\b[ \t]*([0-9]*)`)

// clockMark finds the last "# TIME" marker in character data between
// messages; nil if there is none.
func clockMark(text []byte, line int) *ClockMark {
	all := clockRE.FindAllSubmatch(text, -1)
	if all == nil {
		return nil
	}
	m := all[len(all)-1]
	n := -1
	if len(m[1]) > 0 {
		n, _ = strconv.Atoi(string(m[1]))
	}
	return &ClockMark{N: n, Line: line}
}

// recordedTime is the literal Time Stamp of a response message's header:
// the reference server's clock when it answered.
func recordedTime(resp *Node) time.Time {
	for _, h := range resp.Children {
		if h.Tag != kmip14.TagResponseHeader {
			continue
		}
		for _, c := range h.Children {
			if c.Tag == kmip14.TagTimeStamp && c.Lit != nil {
				return c.Lit.Time
			}
		}
	}
	return time.Time{}
}

// DefaultMaxClockStep bounds the clock steps the replayer waits out: the
// longest real one in the corpus is TC-92's two minutes (a Deactivation Date
// of $NOW+120 that must have passed at TIME 3). Longer recorded jumps are
// editing artefacts, not steps: SASED-M-3-10's Time Stamps jump 507 s
// forward and 513 s back, TC-MDO-1-12's by months.
const DefaultMaxClockStep = 5 * time.Minute

// clockWait is how long to wait before sending step i so that its clock
// step is honoured: the recorded Time Stamps say the test's clock advanced
// by d between the previous step and this one; at least d must pass
// between sending the two. Zero when step i starts no clock step, when
// either Time Stamp is not a literal, when the clock went backwards, or when
// d exceeds max (max < 0 disables waiting).
func clockWait(steps []Step, i int, prevSent time.Time, now time.Time, max time.Duration) time.Duration {
	if i == 0 || max < 0 || steps[i].Clock == nil {
		return 0
	}
	prev, cur := steps[i-1].Recorded, steps[i].Recorded
	if prev.IsZero() || cur.IsZero() {
		return 0
	}
	d := cur.Sub(prev)
	if d <= 0 || d > max {
		return 0
	}
	return prevSent.Add(d).Sub(now)
}

// ReconnectIdle: after waiting out a clock step this long, the replayer
// opens a fresh connection before the next request, as a client idle that
// long would: a server may close idle connections (kmipd's default
// listener idle_timeout is two minutes, TC-92's step exactly that).
const ReconnectIdle = 30 * time.Second

// Reconnecter is a Conn that can replace its connection with a fresh one.
type Reconnecter interface {
	Reconnect(ctx context.Context) error
}

// redialConn is the Conn RunFiles hands ReplayWith: one connection, which
// Reconnect closes and replaces.
type redialConn struct {
	Conn
	dial func(context.Context) (Conn, error)
}

var _ Reconnecter = (*redialConn)(nil)

func (r *redialConn) Reconnect(ctx context.Context) error {
	r.Conn.Close()
	c, err := r.dial(ctx)
	if err != nil {
		return err
	}
	r.Conn = c
	return nil
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// attributeName undoes the 1.0-1.2 files' table-cell wrapping: an
// Attribute Name such as "Cryptographic   Length" is read as the standard
// name its words spell, "Cryptographic Length". Only a name that is not
// standard as written but is once its whitespace runs (spaces, tabs, line
// breaks) are single spaces is changed; custom (x-, y-) names and any other text are left exactly as
// they are.
func attributeName(s string) string {
	if strings.HasPrefix(s, "x-") || strings.HasPrefix(s, "y-") {
		return s
	}
	collapsed := strings.Join(strings.Fields(s), " ")
	if collapsed == s || strings.ContainsAny(collapsed, "-_") {
		return s
	}
	if tag, err := ttlv.DefaultRegistry.ParseTag(ttlv.NormalizeName(collapsed)); err != nil || tag == ttlv.TagNone {
		return s
	}
	return collapsed
}
