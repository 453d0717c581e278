package conformance

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Bindings holds the values placeholders took during one test case, keyed by
// placeholder name without offset ("UNIQUE_IDENTIFIER_0").
type Bindings struct {
	Values map[string]*tree.Node
	// Generated marks identifiers bound by an operation that made the object's
	// key material on the server (Create, CreateKeyPair, ReKey…, and a Group
	// Member Fresh Locate answering with an identifier new to the run,
	// rules_fresh.go): its Digest is as random as the key, so the expected
	// digest value cannot be compared.
	Generated map[string]bool
	// Issued marks identifiers bound by Certify or ReCertify: certificates
	// the server's own CA signed (rules_certify.go).
	Issued map[string]bool
	// Seen lists, per tag, the values earlier responses carried in their
	// payloads, in order. Some cases record a server output as a literal and
	// refer to it later as a placeholder ($DATA_0, $MAC_DATA,
	// $IV_COUNTER_NONCE): such a placeholder means "the n-th value of this
	// field the server returned".
	Seen map[ttlv.Tag][]*tree.Node
	// Params holds, by identifier value, the Cryptographic Parameters the
	// case's Register/Create/CreateKeyPair requests gave an object; the
	// random-output rule (rules.go) reads the padding and Random IV from it.
	Params map[string]*tree.Node
	// Activated holds, by identifier value, the objects whose Activation
	// Date an Activate set from the server's clock (rules_legacy.go).
	Activated map[string]bool
	// SplitParts marks identifiers bound by Create Split Key: key parts the
	// server split at random (rules_split.go).
	SplitParts map[string]bool
	// Run, when set, is shared by the test cases of one run (see Memory).
	Run *Memory
}

// Memory is what one run over many test cases remembers between them. Some
// OASIS cases continue where an earlier one stopped: TL-M-3 locates, reads
// and destroys the key TL-M-2 created. The server made that key's material,
// so TL-M-3 can check its bytes (key material, digest) for length only, as
// TL-M-2 did; Memory carries that knowledge, keyed by the identifier's value.
// It also keeps every text value a placeholder took, so that an object an
// earlier case knew is not taken for one a Group Member Fresh Locate made
// (rules_fresh.go).
type Memory struct {
	mu        sync.Mutex
	generated map[string]bool
	bound     map[string]bool
}

// NewMemory returns an empty run memory.
func NewMemory() *Memory { return &Memory{generated: map[string]bool{}, bound: map[string]bool{}} }

func (m *Memory) markBound(v string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bound[v] = true
}

// boundValue reports whether a placeholder of an earlier case took the
// text v.
func (m *Memory) boundValue(v *tree.Node) bool {
	if m == nil || v == nil || v.Type != ttlv.TypeTextString {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bound[v.Text]
}

func (m *Memory) markGenerated(uid string) {
	if m == nil || uid == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.generated[uid] = true
}

// generatedValue reports whether v is the identifier of an object whose key
// material an earlier case saw the server generate.
func (m *Memory) generatedValue(v *tree.Node) bool {
	if m == nil || v == nil || v.Type != ttlv.TypeTextString {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.generated[v.Text]
}

// remember copies this case's generated identifiers, and every text value
// its placeholders took, into the run memory.
func (b *Bindings) remember() {
	for name := range b.Generated {
		if v := b.Values[name]; v != nil && v.Type == ttlv.TypeTextString {
			b.Run.markGenerated(v.Text)
		}
	}
	for _, v := range b.Values {
		if v.Type == ttlv.TypeTextString {
			b.Run.markBound(v.Text)
		}
	}
}

// NewBindings returns empty bindings.
func NewBindings() *Bindings {
	return &Bindings{Values: map[string]*tree.Node{}, Generated: map[string]bool{}, Issued: map[string]bool{}, Seen: map[ttlv.Tag][]*tree.Node{},
		Params: map[string]*tree.Node{}, Activated: map[string]bool{}, SplitParts: map[string]bool{}}
}

// placeholder splits "$NOW-3600" into name "NOW" and offset -3600s.
func placeholder(s string) (name string, off time.Duration) {
	m := placeholderRE.FindStringSubmatch(s)
	if m == nil {
		return "", 0
	}
	if m[2] != "" {
		v, _ := strconv.ParseInt(m[2], 10, 64)
		off = time.Duration(v) * time.Second
	}
	return m[1], off
}

// isTime reports whether the placeholder stands for "the current time": such
// placeholders are generated in requests and checked against a time window in
// responses, never bound, because every occurrence is a different instant.
func isTime(name string) bool { return name == "NOW" }

// payloadPlaceholder is the name of the placeholder an expected batch item's
// payload gives as its Unique Identifier: the object the item is about, as
// an earlier operation of the case bound it.
func payloadPlaceholder(exp *Node) (name string, ok bool) {
	for _, c := range exp.Children {
		if c.Tag != kmip14.TagResponsePayload {
			continue
		}
		for _, p := range c.Children {
			if p.Tag == kmip14.TagUniqueIdentifier && p.Placeholder != "" {
				name, _ := placeholder(p.Placeholder)
				return name, true
			}
		}
	}
	return "", false
}

// Resolve builds the concrete request tree, substituting bound values and
// generating the current time for $NOW. An unbound placeholder is an error:
// the response that should have carried it did not.
func (b *Bindings) Resolve(n *Node, now time.Time) (*tree.Node, error) {
	if n.Type == ttlv.TypeStructure {
		out := &tree.Node{Tag: n.Tag, Type: n.Type, Children: make([]*tree.Node, 0, len(n.Children))}
		for _, c := range n.Children {
			rc, err := b.Resolve(c, now)
			if err != nil {
				return nil, err
			}
			out.Children = append(out.Children, rc)
		}
		return out, nil
	}
	if n.Placeholder == "" {
		return n.Lit.Clone(), nil
	}
	name, off := placeholder(n.Placeholder)
	if isTime(name) {
		if n.Type != ttlv.TypeDateTime && n.Type != ttlv.TypeDateTimeExtended {
			return nil, fmt.Errorf("line %d: %s used as %s", n.Line, n.Placeholder, n.Type)
		}
		return &tree.Node{Tag: n.Tag, Type: n.Type, Time: now.Add(off).UTC().Truncate(time.Second)}, nil
	}
	v, ok := b.Values[name]
	if !ok {
		v, ok = b.fromSeen(n.Tag, name)
	}
	if !ok {
		return nil, fmt.Errorf("line %d: placeholder %s in %s is not bound by any earlier response", n.Line, n.Placeholder, n.Tag)
	}
	if v.Type != n.Type {
		return nil, fmt.Errorf("line %d: %s is bound to a %s, used as %s", n.Line, n.Placeholder, v.Type, n.Type)
	}
	if off != 0 {
		return nil, fmt.Errorf("line %d: offset on non-time placeholder %s", n.Line, n.Placeholder)
	}
	c := v.Clone()
	c.Tag = n.Tag
	return c, nil
}

// bind records got as the value of an unbound placeholder, or checks it
// against the bound value. ok is false on a conflict.
func (b *Bindings) bind(ph string, got *tree.Node) (bound *tree.Node, ok bool) {
	name, _ := placeholder(ph)
	if v, seen := b.Values[name]; seen {
		return v, v.Type == got.Type && leafEqual(v, got)
	}
	b.Values[name] = got.Clone()
	return nil, true
}

// fromSeen binds name to the n-th value of tag seen in responses, n being the
// placeholder's numeric suffix (0 when it has none).
func (b *Bindings) fromSeen(tag ttlv.Tag, name string) (*tree.Node, bool) {
	idx := 0
	if i := strings.LastIndexByte(name, '_'); i >= 0 {
		if v, err := strconv.Atoi(name[i+1:]); err == nil {
			idx = v
		}
	}
	vs := b.Seen[tag]
	if idx >= len(vs) {
		return nil, false
	}
	b.Values[name] = vs[idx]
	return vs[idx], true
}

// Observe records the payload fields of a response for fromSeen.
func (b *Bindings) Observe(resp *tree.Node) {
	var walk func(n *tree.Node)
	walk = func(n *tree.Node) {
		if n.Type != ttlv.TypeStructure {
			b.Seen[n.Tag] = append(b.Seen[n.Tag], n.Clone())
			return
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	for _, bi := range resp.All(kmip14.TagBatchItem) {
		if p := bi.Child(kmip14.TagResponsePayload); p != nil {
			walk(p)
		}
	}
}

func (b *Bindings) clone() *Bindings {
	return &Bindings{Values: maps.Clone(b.Values), Generated: maps.Clone(b.Generated), Issued: maps.Clone(b.Issued), SplitParts: maps.Clone(b.SplitParts),
		Seen: b.Seen, Params: b.Params, Activated: b.Activated, Run: b.Run}
}

// merge adopts what a successful trial comparison bound.
func (b *Bindings) merge(t *Bindings) {
	maps.Copy(b.Values, t.Values)
	maps.Copy(b.Generated, t.Generated)
	maps.Copy(b.Issued, t.Issued)
	maps.Copy(b.SplitParts, t.SplitParts)
}

// bindLoose walks a response that failed comparison and binds whatever
// placeholders it can, pairing children by tag and occurrence. It lets the
// rest of a failed test case (notably its Destroy steps) still run. req is
// the request answered (nil when unknown): the answer to an item that starts
// a stream binds its Correlation Value afresh (rules_stream.go), as an
// Operation Pending answer does its Asynchronous Correlation Value.
func (b *Bindings) bindLoose(req *tree.Node, exp *Node, got *tree.Node) {
	if exp == nil || got == nil || exp.Tag != got.Tag || exp.Type != got.Type {
		return
	}
	if exp.Tag == kmip14.TagBatchItem && pendingItem(exp) {
		b.unbindPending(exp)
	}
	if exp.Type != ttlv.TypeStructure {
		if name, _ := placeholder(exp.Placeholder); name != "" && !isTime(name) {
			if _, seen := b.Values[name]; !seen {
				b.Values[name] = got.Clone()
			}
		}
		return
	}
	seen := map[ttlv.Tag]int{}
	for _, c := range exp.Children {
		k := seen[c.Tag]
		seen[c.Tag]++
		g := nth(got, c.Tag, k)
		if g == nil {
			continue
		}
		if exp.Tag == kmip14.TagResponseMessage && c.Tag == kmip14.TagBatchItem && req != nil &&
			startsStream(nth(req, kmip14.TagBatchItem, k)) {
			b.unbindStream(c)
		}
		b.bindLoose(req, c, g)
	}
}

// nth returns the k-th direct child of n with the tag, or nil.
func nth(n *tree.Node, tag ttlv.Tag, k int) *tree.Node {
	for _, c := range n.Children {
		if c.Tag == tag {
			if k == 0 {
				return c
			}
			k--
		}
	}
	return nil
}
