// Package conformance replays the OASIS KMIP XML test cases against a KMIP
// server over binary TTLV and mutual TLS, and reports the first difference
// between each expected and actual response.
package conformance

import (
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Node is one item of a test-case message. A leaf either carries a literal
// value (Lit, a complete tree.Node) or a symbolic Placeholder such as
// "$UNIQUE_IDENTIFIER_0" or "$NOW-3600" that only gets a value at replay time;
// keeping placeholders symbolic is why this is not a tree.Node itself.
type Node struct {
	Tag         ttlv.Tag
	Type        ttlv.Type
	Placeholder string     // "" for literals and structures
	Lit         *tree.Node // literal leaf value; nil for structures and placeholders
	Children    []*Node    // structures only
	Line        int        // line in the XML file, for error messages
	// ServerClock marks a literal DateTime that a KMIP 1.0-1.2 file records
	// for an attribute the server sets from its own clock: compared as $NOW
	// (rules_legacy.go).
	ServerClock bool
	// ActivationClock marks a literal Activation Date of a KMIP 1.0-1.2
	// file: compared as $NOW when the object's Activation Date came from an
	// Activate, which takes it from the server's clock (rules_legacy.go).
	ActivationClock bool
}

// Step is one request and the response the test case expects for it.
type Step struct {
	Request  *Node
	Response *Node
	// Clock is the "# TIME n" marker that precedes the request in the KMIP
	// 1.0-1.2 files, if any (clock.go).
	Clock *ClockMark
	// Recorded is the Time Stamp of the expected response's header when it
	// is a literal: the reference server's clock at this step.
	Recorded time.Time
}

// TestCase is one parsed XML file.
type TestCase struct {
	Path    string
	Name    string // file name without .xml
	Profile string // file-name prefix before -M- / -O-
	Steps   []Step
}

// placeholderRE is the shape of every OASIS placeholder: upper-case name and
// an optional signed offset in seconds. Text that merely starts with "$" but
// has another shape stays literal text.
var placeholderRE = regexp.MustCompile(`^\$([A-Z][A-Z0-9_]*)([+-][0-9]+)?$`)

// ParseFile parses one OASIS KMIP XML test-case file.
func ParseFile(path string) (*TestCase, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tc, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	tc.Path = path
	tc.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	tc.Profile = ProfileOf(tc.Name)
	return tc, nil
}

// ProfileOf derives the profile from a test-case name: "CS-BC-M-GCM-1-14" is
// CS-BC; the KMIP 1.0-1.2 files' "AKLC_M_1_10_AsymmetricKey_1" is AKLC.
// Other names fall back to the text before the first '-' or '_'
// ("TC_41_10_Revoke_Scenario" is TC).
func ProfileOf(name string) string {
	for _, sep := range []string{"-", "_"} {
		i := strings.Index(name, sep+"M"+sep)
		if j := strings.Index(name, sep+"O"+sep); j >= 0 && (i < 0 || j < i) {
			i = j
		}
		if i > 0 {
			return name[:i]
		}
	}
	if j := strings.IndexAny(name, "-_"); j > 0 {
		return name[:j]
	}
	return name
}

// Parse reads a <KMIP> document of alternating RequestMessage and
// ResponseMessage elements.
func Parse(r io.Reader) (*TestCase, error) {
	d := xml.NewDecoder(r)
	p := &parser{d: d}
	tc := &TestCase{}
	inRoot := false
	var mark *ClockMark // a "# TIME n" marker waiting for its request
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			switch t := tok.(type) {
			case xml.EndElement:
				if t.Name.Local == "KMIP" {
					inRoot = false
				}
			case xml.CharData:
				if m := clockMark(t, p.line()); inRoot && m != nil {
					mark = m
				}
			}
			continue
		}
		if !inRoot {
			if se.Name.Local != "KMIP" {
				return nil, p.errf("root element is <%s>, want <KMIP>", se.Name.Local)
			}
			inRoot = true
			continue
		}
		n, err := p.element(se, ttlv.TagNone)
		if err != nil {
			return nil, err
		}
		switch n.Tag {
		case kmip14.TagRequestMessage:
			tc.Steps = append(tc.Steps, Step{Request: n, Clock: mark})
			mark = nil
		case kmip14.TagResponseMessage:
			if len(tc.Steps) == 0 || tc.Steps[len(tc.Steps)-1].Response != nil {
				return nil, p.errf("ResponseMessage without a preceding RequestMessage")
			}
			tc.Steps[len(tc.Steps)-1].Response = n
			tc.Steps[len(tc.Steps)-1].Recorded = recordedTime(n)
		default:
			return nil, p.errf("unexpected <%s> under <KMIP>", se.Name.Local)
		}
	}
	if len(tc.Steps) == 0 {
		return nil, errors.New("no RequestMessage")
	}
	if tc.Steps[len(tc.Steps)-1].Response == nil {
		return nil, errors.New("last RequestMessage has no ResponseMessage")
	}
	markServerClock(tc)
	return tc, nil
}

type parser struct{ d *xml.Decoder }

func (p *parser) line() int { l, _ := p.d.InputPos(); return l }

func (p *parser) errf(format string, args ...any) error {
	return fmt.Errorf("line %d: %s", p.line(), fmt.Sprintf(format, args...))
}

// element parses se and everything inside it. attrTag is the tag named by a
// preceding sibling AttributeName, which gives an AttributeValue's enum names
// their meaning (as in kmip-go's own XML decoder).
func (p *parser) element(se xml.StartElement, attrTag ttlv.Tag) (*Node, error) {
	line := p.line()
	var tagS, typeS, valS string
	hasVal := false
	for _, a := range se.Attr {
		switch a.Name.Local {
		case "tag":
			tagS = a.Value
		case "type":
			typeS = a.Value
		case "value":
			valS, hasVal = a.Value, true
		}
	}
	// Unknown tags are written <TTLV tag="0x540001" .../>; known ones by name.
	if se.Name.Local != "TTLV" || tagS == "" {
		tagS = se.Name.Local
	}
	tag, err := ttlv.DefaultRegistry.ParseTag(tagS)
	if err != nil || tag == ttlv.TagNone {
		return nil, p.errf("unknown tag %q", tagS)
	}
	typ := ttlv.TypeStructure
	if typeS != "" {
		if typ, err = ttlv.DefaultRegistry.ParseType(typeS); err != nil {
			return nil, p.errf("%s: unknown type %q", tagS, typeS)
		}
	}
	n := &Node{Tag: tag, Type: typ, Line: line}
	if typ != ttlv.TypeStructure {
		if !hasVal {
			return nil, p.errf("%s: %s without value", tagS, typeS)
		}
		if m := placeholderRE.FindStringSubmatch(valS); m != nil {
			n.Placeholder = valS
		} else {
			enumTag := tag
			if tag == kmip14.TagAttributeValue && attrTag != ttlv.TagNone {
				enumTag = attrTag
			}
			if tag == kmip14.TagAttributeName {
				valS = attributeName(valS)
			}
			if n.Lit, err = parseValue(tag, typ, enumTag, valS); err != nil {
				return nil, p.errf("%s: %v", tagS, err)
			}
		}
	}
	// Read children (structures) or skip to the end element (leaves).
	var childAttr ttlv.Tag
	for {
		tok, err := p.d.Token()
		if err != nil {
			return nil, p.errf("inside <%s>: %v", se.Name.Local, err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return n, nil
		case xml.StartElement:
			if typ != ttlv.TypeStructure {
				return nil, p.errf("%s of type %s has child elements", tagS, typeS)
			}
			c, err := p.element(t, childAttr)
			if err != nil {
				return nil, err
			}
			if c.Tag == kmip14.TagAttributeName && c.Lit != nil {
				childAttr, _ = ttlv.DefaultRegistry.ParseTag(ttlv.NormalizeName(c.Lit.Text))
			}
			n.Children = append(n.Children, c)
		}
	}
}

// parseValue converts a value= attribute to a tree.Node of the given type.
func parseValue(tag ttlv.Tag, typ ttlv.Type, enumTag ttlv.Tag, s string) (*tree.Node, error) {
	n := &tree.Node{Tag: tag, Type: typ}
	var err error
	switch typ {
	case ttlv.TypeTextString:
		n.Text = s
	case ttlv.TypeByteString:
		n.Bytes, err = hex.DecodeString(s)
		if n.Bytes == nil {
			n.Bytes = []byte{}
		}
	case ttlv.TypeBigInteger:
		var b []byte
		if b, err = hex.DecodeString(strings.TrimPrefix(s, "0x")); err == nil {
			n.Big = bigFromTwos(b)
		}
	case ttlv.TypeInteger:
		var v int32
		v, err = ttlv.DefaultRegistry.ParseInt(enumTag, strings.ReplaceAll(strings.TrimSpace(s), " ", "|"))
		n.Int = int64(v)
	case ttlv.TypeEnumeration:
		var v uint32
		v, err = ttlv.DefaultRegistry.ParseEnum(enumTag, s)
		n.Int = int64(v)
	case ttlv.TypeLongInteger:
		n.Int, err = strconv.ParseInt(s, 0, 64)
	case ttlv.TypeInterval:
		var u uint64
		u, err = strconv.ParseUint(s, 0, 32)
		n.Int = int64(u)
	case ttlv.TypeBoolean:
		var b bool
		switch s {
		case "0x0000000000000001":
			b = true
		case "0x0000000000000000":
		default:
			b, err = strconv.ParseBool(s)
		}
		if b {
			n.Int = 1
		}
	case ttlv.TypeDateTime, ttlv.TypeDateTimeExtended:
		if strings.HasPrefix(s, "0x") {
			var u uint64
			if u, err = strconv.ParseUint(s[2:], 16, 64); err == nil {
				if typ == ttlv.TypeDateTime {
					n.Time = time.Unix(int64(u), 0).UTC()
				} else {
					n.Time = time.UnixMicro(int64(u)).UTC()
				}
			}
		} else if n.Time, err = time.Parse(time.RFC3339Nano, s); err == nil {
			n.Time = n.Time.UTC()
			if typ == ttlv.TypeDateTime {
				n.Time = n.Time.Truncate(time.Second)
			}
		}
	default:
		return nil, fmt.Errorf("unsupported type %s", typ)
	}
	if err != nil {
		return nil, fmt.Errorf("bad %s value %q: %v", typ, s, err)
	}
	return n, nil
}

// bigFromTwos reads a big-endian two's-complement integer, as TTLV encodes it.
func bigFromTwos(b []byte) *big.Int {
	i := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		i.Sub(i, new(big.Int).Lsh(big.NewInt(1), uint(len(b)*8)))
	}
	return i
}
