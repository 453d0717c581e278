package conformance

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Report is the outcome of a run over many test cases.
type Report struct {
	Results []Result `json:"results"`
	Passed  int      `json:"passed"`
	Failed  int      `json:"failed"`
}

// NewReport counts results.
func NewReport(rs []Result) Report {
	r := Report{Results: rs}
	for _, x := range rs {
		if x.Passed {
			r.Passed++
		} else {
			r.Failed++
		}
	}
	return r
}

// Profiles returns the profiles in order of first appearance, with their
// pass and fail counts.
func (r Report) Profiles() (names []string, passed, failed map[string]int) {
	passed, failed = map[string]int{}, map[string]int{}
	for _, x := range r.Results {
		if passed[x.Profile]+failed[x.Profile] == 0 {
			names = append(names, x.Profile)
		}
		if x.Passed {
			passed[x.Profile]++
		} else {
			failed[x.Profile]++
		}
	}
	return names, passed, failed
}

// maxReason keeps table rows readable; -v prints reasons whole.
const maxReason = 240

// WriteTable prints one table per profile and the closing
// "N passed, M failed" line.
func (r Report) WriteTable(w io.Writer, verbose bool) {
	names, passed, failed := r.Profiles()
	for _, p := range names {
		fmt.Fprintf(w, "%s (%d passed, %d failed)\n", p, passed[p], failed[p])
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		for _, x := range r.Results {
			if x.Profile != p {
				continue
			}
			status := "PASS"
			if !x.Passed {
				status = "FAIL"
			}
			reason := strings.ReplaceAll(x.Reason(), "\n", " ")
			if !verbose && len(reason) > maxReason {
				reason = reason[:maxReason] + "…"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", x.Name, status, reason)
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%d passed, %d failed\n", r.Passed, r.Failed)
}

// WriteJSON prints the machine-readable report.
func (r Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// WriteFailures prints one line per failed case: its file and the whole
// first difference (WriteTable shortens it), then, indented, the later
// steps' differences when the run collected them (Options.AllSteps).
func (r Report) WriteFailures(w io.Writer) {
	for _, x := range r.Results {
		if x.Passed {
			continue
		}
		fmt.Fprintf(w, "%s\t%s\n", x.Path, strings.ReplaceAll(x.Reason(), "\n", " "))
		for _, l := range x.Later {
			fmt.Fprintf(w, "\t\tthen %s\n", strings.ReplaceAll(l, "\n", " "))
		}
	}
}

// describe renders an expected item for a report.
func describe(e *Node, enumTag ttlv.Tag) string {
	switch {
	case e.Placeholder != "":
		return e.Placeholder
	case e.Lit != nil:
		return format(e.Lit, enumTag)
	}
	if e.Tag == kmip14.TagAttribute {
		for _, c := range e.Children {
			if c.Tag == kmip14.TagAttributeName && c.Lit != nil {
				return "attribute " + strconv.Quote(c.Lit.Text)
			}
		}
	}
	s := "structure {"
	for i, c := range e.Children {
		if i == 6 {
			s += " …"
			break
		}
		s += " " + tree.TagName(c.Tag)
	}
	return s + " }"
}

// format renders an actual value for a report; long byte strings are cut.
func format(n *tree.Node, enumTag ttlv.Tag) string {
	if n == nil {
		return "nothing"
	}
	switch n.Type {
	case ttlv.TypeStructure:
		if name, ok := n.Child(kmip14.TagAttributeName).TextValue(); ok && n.Tag == kmip14.TagAttribute {
			return "attribute " + strconv.Quote(name)
		}
		s := "structure {"
		for i, c := range n.Children {
			if i == 6 {
				s += " …"
				break
			}
			s += " " + tree.TagName(c.Tag)
		}
		return s + " }"
	case ttlv.TypeEnumeration:
		return ttlv.DefaultRegistry.FormatEnum(enumTag, uint32(n.Int))
	case ttlv.TypeInteger:
		if ttlv.DefaultRegistry.IsBitmask(enumTag) {
			return ttlv.DefaultRegistry.FormatInt(enumTag, int32(n.Int))
		}
		return strconv.FormatInt(n.Int, 10)
	case ttlv.TypeBoolean:
		return strconv.FormatBool(n.Int != 0)
	case ttlv.TypeTextString:
		return strconv.Quote(n.Text)
	case ttlv.TypeByteString:
		if len(n.Bytes) > 32 {
			return fmt.Sprintf("%s… (%d bytes)", hex.EncodeToString(n.Bytes[:32]), len(n.Bytes))
		}
		return hex.EncodeToString(n.Bytes)
	case ttlv.TypeBigInteger:
		if n.Big == nil {
			return "0"
		}
		return n.Big.String()
	case ttlv.TypeDateTime, ttlv.TypeDateTimeExtended:
		return n.Time.UTC().Format(time.RFC3339Nano)
	default:
		return strconv.FormatInt(n.Int, 10)
	}
}
