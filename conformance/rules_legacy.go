package conformance

import (
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Rules for what the KMIP 1.0-1.2 files record differently from the 1.4
// ones (README "How a response is compared"): the reference server's clock
// written as literals, a second asynchronous operation's correlation value
// under the first one's placeholder, and the length of a generated RSA
// private key's DER encoding.

// within checks a DateTime against the window $NOW+off stands for: any
// instant since the case began, within the slack.
func (c *comparer) within(path, what string, off time.Duration, g *tree.Node, enumTag ttlv.Tag) *Mismatch {
	lo := c.start.Add(off - c.slack).Truncate(time.Second)
	hi := c.end.Add(off + c.slack)
	if (g.Type != ttlv.TypeDateTime && g.Type != ttlv.TypeDateTimeExtended) || g.Time.Before(lo) || g.Time.After(hi) {
		return &Mismatch{Path: path,
			Expected: fmt.Sprintf("%s (a time in [%s, %s])", what, lo.UTC().Format(time.RFC3339), hi.UTC().Format(time.RFC3339)),
			Got:      format(g, enumTag)}
	}
	return nil
}

// serverClockAttrs are the attributes a server sets from its own clock and
// a client can never set: Initial Date (§3.23), Destroy Date (§3.28),
// Archive Date (§3.32), Last Change Date (§3.38). The 1.0-1.2 files record
// the reference server's 2012/2013 values of them as literals where the 1.4
// files of the same cases write $NOW. Client-settable dates (Activation,
// Deactivation, Protect Stop...) are not here: they stay exact.
var serverClockAttrs = map[string]bool{
	"Initial Date": true, "Destroy Date": true, "Archive Date": true, "Last Change Date": true,
}

// markServerClock marks, in a file with "# TIME" markers (the 1.0-1.2
// corpus; no 1.4 file has one), the literal DateTime values of the
// server-clock attributes in the expected responses, so that they compare as
// $NOW would, and the literal Activation Dates, which compare so only for an
// object an Activate dated (serverActivated). Requests and every other
// literal are left as they are.
func markServerClock(tc *TestCase) {
	legacy := false
	for _, st := range tc.Steps {
		legacy = legacy || st.Clock != nil
	}
	if !legacy {
		return
	}
	var walk func(n *Node)
	walk = func(n *Node) {
		if n.Tag == kmip14.TagAttribute {
			var name string
			for _, c := range n.Children {
				if c.Tag == kmip14.TagAttributeName && c.Lit != nil {
					name = c.Lit.Text
				}
				if c.Tag == kmip14.TagAttributeValue && c.Lit != nil && c.Type == ttlv.TypeDateTime {
					c.ServerClock = serverClockAttrs[name]
					c.ActivationClock = name == "Activation Date"
				}
			}
			return
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	for _, st := range tc.Steps {
		walk(st.Response)
	}
}

// pendingItem reports whether an expected batch item is an Operation
// Pending answer (§6.7).
func pendingItem(bi *Node) bool {
	for _, f := range bi.Children {
		if f.Tag == kmip14.TagResultStatus && f.Lit != nil && f.Lit.Int == int64(kmip14.ResultStatusOperationPending) {
			return true
		}
	}
	return false
}

// rebinds names the placeholders an Operation Pending answer binds afresh:
// each pending operation has its own Asynchronous Correlation Value (§6.7),
// but TC-32 and TC-101 write every one of them as
// $ASYNCHRONOUS_CORRELATION_VALUE. Within one pending operation (its Polls,
// its final answer) the value must still repeat, and so must every other
// placeholder everywhere.
func rebinds(tag ttlv.Tag) bool { return tag == kmip14.TagAsynchronousCorrelationValue }

// unbindPending forgets the correlation placeholders of a pending batch
// item before bindLoose binds them again.
func (b *Bindings) unbindPending(bi *Node) { b.unbindFields(bi.Children, rebinds) }

// unbindFields forgets the placeholders of the fields whose tag fresh names
// (rebinds, rebindsStream): values the server issues afresh for each new
// operation, so that the next comparison or bindLoose binds them again.
func (b *Bindings) unbindFields(fields []*Node, fresh func(ttlv.Tag) bool) {
	for _, f := range fields {
		if fresh(f.Tag) {
			b.unbind(f.Placeholder)
		}
	}
}

// unbind forgets what the placeholder ph ("" for none) was bound to.
func (b *Bindings) unbind(ph string) {
	if ph == "" {
		return
	}
	name, _ := placeholder(ph)
	delete(b.Values, name)
}

// sameRSAPrivateKeySize: the key material of a generated RSA private key,
// recorded and actual, both PKCS#1 or both PKCS#8, with moduli of the same
// bit length. The DER encoding of such a key is not of fixed length (its
// CRT integers vary by a byte or so; TC-133 recorded 1191 bytes, kmipd's
// keys of the same size encode in 1190 to 1193), so the length-only rule for
// generated material would fail by chance.
func sameRSAPrivateKeySize(e *Node, g *tree.Node) bool {
	if e.Tag != kmip14.TagKeyMaterial || e.Lit == nil || g.Type != ttlv.TypeByteString {
		return false
	}
	ek, ef := rsaPrivateKey(e.Lit.Bytes)
	gk, gf := rsaPrivateKey(g.Bytes)
	return ek != nil && gk != nil && ef == gf && ek.N.BitLen() == gk.N.BitLen()
}

// rsaPrivateKey parses PKCS#1 or PKCS#8 RSA private key DER; format is 1
// or 8.
func rsaPrivateKey(der []byte) (k *rsa.PrivateKey, format int) {
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, 1
	}
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if rk, ok := k.(*rsa.PrivateKey); ok {
			return rk, 8
		}
	}
	return nil, 0
}

// Activation Date set by the server's clock. Activate (§4.19) carries no
// date: it sets the object's Activation Date to the current date and time,
// so after an Activate the value is the server's clock, as much as an
// Initial Date is. The 1.0-1.2 files record the reference server's 2013
// instant as a literal where the 1.4 files of the same cases (AKLC-M-2/3,
// SKLC-M-2/3) write $NOW. A date a client set (Register, Create, Modify or
// Add Attribute naming Activation Date) stays exact: Bindings.Activated
// holds, per identifier value, only objects whose last Activation Date came
// from an Activate.

// learnActivations reads a request and its response in item order: a
// successful Activate marks the identifier its response names; a
// successful Add or Modify Attribute of Activation Date unmarks it. It runs
// before the response is compared, so an Add or Modify Attribute answer
// echoing the client's date is exact.
func (b *Bindings) learnActivations(req, resp *tree.Node) {
	succeeded(req, resp, func(ri, gi *tree.Node) {
		uid, ok := gi.Path(kmip14.TagResponsePayload, kmip14.TagUniqueIdentifier).TextValue()
		if !ok {
			return
		}
		op, _ := ri.Child(kmip14.TagOperation).EnumValue()
		switch kmip14.Operation(op) {
		case kmip14.OperationActivate:
			b.Activated[uid] = true
		case kmip14.OperationAddAttribute, kmip14.OperationModifyAttribute:
			name, _ := ri.Path(kmip14.TagRequestPayload, kmip14.TagAttribute, kmip14.TagAttributeName).TextValue()
			if name == "Activation Date" {
				delete(b.Activated, uid)
			}
		}
	})
}

// serverActivated reports whether the object a response batch item is
// about (its payload's Unique Identifier) got its Activation Date from an
// Activate.
func (b *Bindings) serverActivated(got *tree.Node) bool {
	uid, ok := got.Path(kmip14.TagResponsePayload, kmip14.TagUniqueIdentifier).TextValue()
	return ok && b.Activated[uid]
}
