package conformance

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Mismatch is the first difference between an expected and an actual
// response. Path names the field, e.g.
// "ResponseMessage/BatchItem[0]/ResponsePayload/Attribute[2]/AttributeValue".
type Mismatch struct {
	Path     string `json:"path"`
	Expected string `json:"expected"`
	Got      string `json:"got"`
	Note     string `json:"note,omitempty"`
}

func (m *Mismatch) Error() string {
	s := fmt.Sprintf("%s: expected %s, got %s", m.Path, m.Expected, m.Got)
	if m.Note != "" {
		s += " (" + m.Note + ")"
	}
	return s
}

// comparer checks one response. Tolerances are only those the standard
// allows: server-chosen values (placeholders, bound on first sight), the
// response time stamp, $NOW-style times within [start, end] ± slack, the free
// text of ResultMessage, the order of attributes, and the server-described
// content of rules.go (Query answers, the Random Number Generator value,
// server-kept attributes in all-attribute listings, the length-checked random
// outputs of RNG Retrieve and of OAEP or server-IV Encrypt), the fresh
// correlation value of each pending operation (rules_legacy.go) and of each
// new stream (rules_stream.go), and the key-derived bytes of objects the
// server generated (`generates`, and a Group Member Fresh Locate's new
// object, rules_fresh.go). Everything else must be equal.
type comparer struct {
	b          *Bindings
	req        *tree.Node        // the request message answered; nil when unknown
	resp       *tree.Node        // the whole response message
	reqItem    *tree.Node        // its batch item matching the one being compared
	op         uint32            // operation of the batch item being compared
	generated  bool              // the batch item is about an object with server-made key material
	issued     bool              // the batch item is about a certificate the server issued (rules_certify.go)
	random     map[ttlv.Tag]bool // payload fields holding random server output (rules.go)
	allAttrs   bool              // the batch item lists every attribute of an object
	pending    bool              // the expected batch item is an Operation Pending answer (rules_legacy.go)
	newStream  bool              // the batch item answers a request that starts a stream (rules_stream.go)
	activated  bool              // the batch item is about an object an Activate dated (rules_legacy.go)
	splitPart  bool              // the batch item is about a part Create Split Key made (rules_split.go)
	version    *Node             // the Protocol Version the response must carry, if known
	start, end time.Time
	slack      time.Duration
}

// Compare checks got against exp, binding placeholders into b as it goes.
// start and end bound the instants $NOW may stand for. Without the request,
// the rules that depend on it (rules.go) are not applied.
func Compare(exp *Node, got *tree.Node, b *Bindings, start, end time.Time, slack time.Duration) *Mismatch {
	return CompareStep(nil, exp, got, b, start, end, slack)
}

// CompareStep is Compare for the response to req.
func CompareStep(req *tree.Node, exp *Node, got *tree.Node, b *Bindings, start, end time.Time, slack time.Duration) *Mismatch {
	c := &comparer{b: b, req: req, resp: got, start: start, end: end, slack: slack}
	if req != nil {
		c.version = answeredVersion(req, exp)
	}
	m := c.node(tree.TagName(exp.Tag), exp, got, exp.Tag)
	if m != nil && m.Note == "" {
		// A failed batch item usually explains a difference elsewhere, such as
		// a version 1.0 error header for a request the server could not parse.
		items := got.All(kmip14.TagBatchItem)
		for i, bi := range items {
			if m.Note = serverSaid(bi); m.Note != "" {
				if len(items) > 1 {
					m.Note = fmt.Sprintf("BatchItem[%d]: %s", i, m.Note)
				}
				break
			}
		}
	}
	return m
}

func (c *comparer) node(path string, e *Node, g *tree.Node, enumTag ttlv.Tag) *Mismatch {
	if e.Type != g.Type {
		return &Mismatch{Path: path, Expected: "type " + e.Type.String(), Got: "type " + g.Type.String() + " " + format(g, enumTag)}
	}
	if e.Type == ttlv.TypeStructure {
		return c.children(path, e, g)
	}
	if e.ServerClock {
		return c.within(path, "a server-clock literal of a KMIP 1.0–1.2 file, compared as $NOW", 0, g, enumTag)
	}
	if e.ActivationClock && c.activated {
		return c.within(path, "the Activation Date an Activate set, a literal of a KMIP 1.0–1.2 file compared as $NOW", 0, g, enumTag)
	}
	if c.splitPart && isSplitKeyMaterial(path, e) {
		return checkSplitKeyMaterial(path, e, g)
	}
	if e.Placeholder == "" {
		// The OASIS cases record what the reference server produced from key
		// material it generated at random; for such objects, byte values derived
		// from the key (key material, digests, ciphertexts, MACs, signatures)
		// can only be checked for presence, type and length.
		if c.generated && e.Type == ttlv.TypeByteString && (len(e.Lit.Bytes) == len(g.Bytes) || sameRSAPrivateKeySize(e, g)) {
			return nil
		}
		if c.generated && e.Type == ttlv.TypeBigInteger {
			return nil
		}
		if !leafEqual(e.Lit, g) {
			return &Mismatch{Path: path, Expected: format(e.Lit, enumTag), Got: format(g, enumTag)}
		}
		return nil
	}
	name, off := placeholder(e.Placeholder)
	if isTime(name) {
		return c.within(path, e.Placeholder, off, g, enumTag)
	}
	if c.pending && rebinds(e.Tag) {
		c.b.unbind(e.Placeholder)
	}
	made := c.freshlyMade(e.Tag, g) // before bind: whether the value is new to the case
	bound, ok := c.b.bind(e.Placeholder, g)
	if !ok {
		return &Mismatch{Path: path, Expected: fmt.Sprintf("%s (bound earlier to %s)", e.Placeholder, format(bound, enumTag)), Got: format(g, enumTag)}
	}
	if bound == nil && (generates(c.op) || made) && isIdentifier(e.Tag) {
		c.b.Generated[name] = true
	}
	if bound == nil && issues(c.op) && isIdentifier(e.Tag) {
		c.b.Issued[name] = true
	}
	if bound == nil && c.op == uint32(kmip14.OperationCreateSplitKey) && e.Tag == kmip14.TagUniqueIdentifier {
		c.b.SplitParts[name] = true
	}
	return nil
}

// generates reports whether an operation makes new key material on the server.
func generates(op uint32) bool {
	switch kmip14.Operation(op) {
	case kmip14.OperationCreate, kmip14.OperationCreateKeyPair, kmip14.OperationReKey,
		kmip14.OperationReKeyKeyPair, kmip14.OperationDeriveKey:
		return true
	}
	return false
}

func isIdentifier(t ttlv.Tag) bool {
	return t == kmip14.TagUniqueIdentifier || t == kmip14.TagPrivateKeyUniqueIdentifier || t == kmip14.TagPublicKeyUniqueIdentifier
}

// batchContext reads the operation of an expected batch item and whether the
// object it is about has server-generated key material.
func batchContext(exp *Node, b *Bindings) (op uint32, generated bool) {
	for _, c := range exp.Children {
		if c.Tag == kmip14.TagOperation && c.Lit != nil {
			op = uint32(c.Lit.Int)
		}
	}
	if name, ok := payloadPlaceholder(exp); ok {
		generated = b.Generated[name] || b.Run.generatedValue(b.Values[name])
	}
	return op, generated
}

// unordered says which runs of children are sets: attributes anywhere, the
// attribute names a GetAttributeList payload returns, and the operations and
// object types a Query payload lists. KMIP gives none of these an order.
func unordered(parent, tag ttlv.Tag) bool {
	if tag == kmip14.TagAttribute {
		return true
	}
	return parent == kmip14.TagResponsePayload &&
		(tag == kmip14.TagAttributeName || tag == kmip14.TagOperation || tag == kmip14.TagObjectType)
}

func (c *comparer) children(path string, exp *Node, got *tree.Node) *Mismatch {
	var ec []*Node
	var gc []*tree.Node
	if exp.Tag == kmip14.TagBatchItem {
		defer func(saved comparer) {
			c.op, c.generated, c.allAttrs, c.random, c.issued, c.pending = saved.op, saved.generated, saved.allAttrs, saved.random, saved.issued, saved.pending
			c.activated, c.splitPart, c.newStream = saved.activated, saved.splitPart, saved.newStream
		}(*c)
		c.pending = pendingItem(exp)
		c.newStream = startsStream(c.reqItem)
		c.op, c.generated = batchContext(exp, c.b)
		c.activated = c.b.serverActivated(got)
		c.splitPart = splitPartItem(exp, c.b)
		c.issued = issuedItem(exp, c.b)
		c.allAttrs = c.reqItem != nil && listsAllAttributes(c.op, c.reqItem)
		c.random = c.randomOutputs(exp)
	}
	for _, e := range exp.Children {
		if !c.ignored(exp.Tag, e.Tag) {
			ec = append(ec, e)
		}
	}
	for _, g := range got.Children {
		if !c.ignored(got.Tag, g.Tag) {
			gc = append(gc, g)
		} else if m := c.checkIgnored(path, got.Tag, g); m != nil {
			return m
		}
	}
	if exp.Tag == kmip14.TagAttribute {
		ec, gc = zeroIndexEither(ec, gc)
	}
	if exp.Tag == kmip14.TagResponsePayload && c.op == uint32(kmip14.OperationQuery) {
		if m := checkQueryAnswered(path, exp, got); m != nil {
			return m
		}
	}
	label := labeler(ec, gc)
	occ := map[ttlv.Tag]int{}
	attrTag := ttlv.TagNone
	i, j := 0, 0
	for i < len(ec) {
		e := ec[i]
		if unordered(exp.Tag, e.Tag) {
			i2, j2 := i, j
			for i2 < len(ec) && ec[i2].Tag == e.Tag {
				i2++
			}
			for j2 < len(gc) && gc[j2].Tag == e.Tag {
				j2++
			}
			if m := c.set(path, e.Tag, ec[i:i2], gc[j:j2], occ[e.Tag], label); m != nil {
				return m
			}
			occ[e.Tag] += i2 - i
			i, j = i2, j2
			continue
		}
		p := path + "/" + label(e.Tag, occ[e.Tag])
		occ[e.Tag]++
		if j >= len(gc) {
			return &Mismatch{Path: p, Expected: describe(e, enumFor(e.Tag, attrTag)), Got: "nothing (field missing)"}
		}
		g := gc[j]
		if g.Tag != e.Tag {
			return &Mismatch{Path: p, Expected: describe(e, enumFor(e.Tag, attrTag)), Got: tree.TagName(g.Tag) + " = " + format(g, g.Tag) + " in its place"}
		}
		if exp.Tag == kmip14.TagResponsePayload && c.newStream && rebindsStream(e.Tag) {
			c.b.unbind(e.Placeholder)
		}
		var m *Mismatch
		switch {
		case exp.Tag == kmip14.TagResponseHeader && e.Tag == kmip14.TagTimeStamp:
			// The server's clock is its own business: only the type matters.
			if g.Type != ttlv.TypeDateTime {
				m = &Mismatch{Path: p, Expected: "a DateTime", Got: "type " + g.Type.String()}
			}
		case exp.Tag == kmip14.TagResponseHeader && e.Tag == kmip14.TagProtocolVersion && c.version != nil:
			m = c.node(p, c.version, g, e.Tag)
			if m != nil && !failedItems(c.resp) {
				// A failed item explains itself (Compare quotes it); else say why.
				m.Note = "a response carries the request's protocol version"
			}
		case exp.Tag == kmip14.TagResponsePayload && c.random[e.Tag] && e.Placeholder == "" && e.Type == ttlv.TypeByteString:
			m = checkRandom(p, e, g)
		case exp.Tag == kmip14.TagAttribute && e.Tag == kmip14.TagAttributeValue && attrTag == kmip14.TagRandomNumberGenerator:
			m = checkRNG(p, g)
		case c.issued && exp.Tag == kmip14.TagCertificate && e.Tag == kmip14.TagCertificateValue && e.Placeholder == "" &&
			e.Type == ttlv.TypeByteString && g.Type == ttlv.TypeByteString:
			m = checkIssuedCertificate(p, e, g)
		case c.issued && exp.Tag == kmip14.TagAttribute && e.Tag == kmip14.TagAttributeValue && issuerChosen[attrTag]:
			m = sameShape(p, e, g)
		case exp.Tag == kmip14.TagResponseMessage && e.Tag == kmip14.TagBatchItem:
			c.reqItem = nil
			if c.req != nil {
				c.reqItem = nth(c.req, kmip14.TagBatchItem, occ[e.Tag]-1)
			}
			m = c.node(p, e, g, enumFor(e.Tag, attrTag))
		default:
			m = c.node(p, e, g, enumFor(e.Tag, attrTag))
		}
		if m != nil {
			if e.Tag == kmip14.TagBatchItem && m.Note == "" {
				m.Note = serverSaid(g)
			}
			return m
		}
		if e.Tag == kmip14.TagAttributeName && e.Lit != nil {
			attrTag, _ = ttlv.DefaultRegistry.ParseTag(ttlv.NormalizeName(e.Lit.Text))
		}
		i++
		j++
	}
	if j < len(gc) {
		g := gc[j]
		k := 0
		for _, x := range gc[:j] {
			if x.Tag == g.Tag {
				k++
			}
		}
		return &Mismatch{Path: path + "/" + label(g.Tag, k), Expected: "nothing (no such field)", Got: format(g, g.Tag)}
	}
	return nil
}

// set matches a run of unordered expected children against the actual run:
// each expected item must match a distinct actual item, and none may be left.
func (c *comparer) set(path string, tag ttlv.Tag, es []*Node, gs []*tree.Node, base int, label func(ttlv.Tag, int) string) *Mismatch {
	used := make([]bool, len(gs))
	for k, e := range es {
		p := path + "/" + label(tag, base+k)
		found := false
		for x, g := range gs {
			if used[x] {
				continue
			}
			// Try on a copy so a near-miss binds nothing.
			t := *c
			t.b = c.b.clone()
			if t.node(p, e, g, tag) == nil {
				c.b.merge(t.b)
				used[x], found = true, true
				break
			}
		}
		if found {
			continue
		}
		// Explain with the unused actual item of the same attribute name, if any,
		// so the path points at the differing field rather than the whole item.
		for x, g := range gs {
			if !used[x] && sameName(e, g) {
				t := *c
				t.b = c.b.clone()
				if m := t.node(p, e, g, tag); m != nil {
					if x != k {
						m.Note = fmt.Sprintf("compared with %s in the response", label(tag, base+x))
					}
					return m
				}
			}
		}
		got := fmt.Sprintf("no such item among the response's %d", len(gs))
		if tag == kmip14.TagAttribute {
			got = "no such attribute"
		}
		return &Mismatch{Path: p, Expected: describe(e, tag), Got: got}
	}
	for x, g := range gs {
		if !used[x] && !c.extraAllowed(g) {
			return &Mismatch{Path: path + "/" + label(tag, base+x), Expected: "nothing (no such field)", Got: format(g, tag)}
		}
	}
	return nil
}

// sameName reports whether two Attribute structures (or AttributeName leaves)
// name the same attribute.
func sameName(e *Node, g *tree.Node) bool {
	if e.Type != ttlv.TypeStructure {
		return false // a leaf's value is its identity: there is nothing finer to point at
	}
	for _, c := range e.Children {
		if c.Tag == kmip14.TagAttributeName && c.Lit != nil {
			n, _ := g.Child(kmip14.TagAttributeName).TextValue()
			return n == c.Lit.Text
		}
	}
	return false
}

// labeler names a child for a path: repeatable fields carry an index.
func labeler(ec []*Node, gc []*tree.Node) func(ttlv.Tag, int) string {
	counts := map[ttlv.Tag]int{}
	for _, e := range ec {
		counts[e.Tag]++
	}
	gcounts := map[ttlv.Tag]int{}
	for _, g := range gc {
		gcounts[g.Tag]++
	}
	return func(t ttlv.Tag, i int) string {
		if t == kmip14.TagBatchItem || t == kmip14.TagAttribute || counts[t] > 1 || gcounts[t] > 1 || i > 0 {
			return fmt.Sprintf("%s[%d]", tree.TagName(t), i)
		}
		return tree.TagName(t)
	}
}

func enumFor(tag, attrTag ttlv.Tag) ttlv.Tag {
	if tag == kmip14.TagAttributeValue && attrTag != ttlv.TagNone {
		return attrTag
	}
	return tag
}

// serverSaid summarises a failed batch item's result, which usually explains
// a mismatch better than the field that differs.
func serverSaid(bi *tree.Node) string {
	st, ok := bi.Child(kmip14.TagResultStatus).EnumValue()
	if !ok || st == uint32(kmip14.ResultStatusSuccess) {
		return ""
	}
	s := "server said " + ttlv.DefaultRegistry.FormatEnum(kmip14.TagResultStatus, st)
	if r, ok := bi.Child(kmip14.TagResultReason).EnumValue(); ok {
		s += "/" + ttlv.DefaultRegistry.FormatEnum(kmip14.TagResultReason, r)
	}
	if msg, ok := bi.Child(kmip14.TagResultMessage).TextValue(); ok {
		s += ": " + strconv.Quote(msg)
	}
	return s
}

func leafEqual(a, b *tree.Node) bool {
	if a.Type != b.Type {
		return false
	}
	switch a.Type {
	case ttlv.TypeTextString:
		return a.Text == b.Text
	case ttlv.TypeByteString:
		return bytes.Equal(a.Bytes, b.Bytes)
	case ttlv.TypeBigInteger:
		if a.Big == nil || b.Big == nil {
			return (a.Big == nil || a.Big.Sign() == 0) && (b.Big == nil || b.Big.Sign() == 0)
		}
		return a.Big.Cmp(b.Big) == 0
	case ttlv.TypeDateTime, ttlv.TypeDateTimeExtended:
		return a.Time.Equal(b.Time)
	default:
		return a.Int == b.Int
	}
}
