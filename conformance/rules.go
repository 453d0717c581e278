package conformance

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// The rules below refine literal comparison where KMIP 1.4 leaves a value to
// the server. Each is as narrow as the standard's allowance: the field's
// presence and type are still checked, and nothing outside the named fields
// is relaxed. README.md lists them with their reasons.

// Query (KMIP 1.4 §4.25) is how a server describes itself: the operations,
// object types, namespaces, extensions, RNGs, profiles... it lists are its
// own. The OASIS cases record the reference server's answer, and that server
// answered differently in every case (SASED-M-1 lists 8 operations, TL-M-1
// 14, SUITEB 40), so the recorded lists are a configuration, not a
// requirement: a profile's requirements are proven by the cases that run the
// operations. These fields are therefore type-checked, never compared.
var queryFields = map[ttlv.Tag]ttlv.Type{
	kmip14.TagOperation:                ttlv.TypeEnumeration,
	kmip14.TagObjectType:               ttlv.TypeEnumeration,
	kmip14.TagVendorIdentification:     ttlv.TypeTextString,
	kmip14.TagServerInformation:        ttlv.TypeStructure,
	kmip14.TagApplicationNamespace:     ttlv.TypeTextString,
	kmip14.TagExtensionInformation:     ttlv.TypeStructure,
	kmip14.TagAttestationType:          ttlv.TypeEnumeration,
	kmip14.TagRNGParameters:            ttlv.TypeStructure,
	kmip14.TagProfileInformation:       ttlv.TypeStructure,
	kmip14.TagValidationInformation:    ttlv.TypeStructure,
	kmip14.TagCapabilityInformation:    ttlv.TypeStructure,
	kmip14.TagClientRegistrationMethod: ttlv.TypeEnumeration,
}

// ignored says which children carry free or server-described content: they
// are neither required nor compared, only type-checked when present.
func (c *comparer) ignored(parent, tag ttlv.Tag) bool {
	switch {
	case parent == kmip14.TagBatchItem && tag == kmip14.TagResultMessage:
		return true
	case parent == kmip14.TagResponsePayload && c.op == uint32(kmip14.OperationQuery):
		_, ok := queryFields[tag]
		return ok
	}
	return false
}

// zeroIndexEither lets an Attribute name its index 0 or leave it out, on
// either side: KMIP 1.1–1.4 §2.1.1 define an Attribute with no index as the
// instance of index 0, and Add, Modify and Delete Attribute "MAY" omit an
// index of 0 (§4.14–4.16), so the two forms name the same instance; the
// OASIS cases record one of them. When exactly one side has an Integer index
// of 0, it is dropped; any other index, or one of another type, is still
// compared (and a missing or extra one fails).
func zeroIndexEither(ec []*Node, gc []*tree.Node) ([]*Node, []*tree.Node) {
	ei := slices.IndexFunc(ec, func(e *Node) bool { return e.Tag == kmip14.TagAttributeIndex })
	gi := slices.IndexFunc(gc, func(g *tree.Node) bool { return g.Tag == kmip14.TagAttributeIndex })
	switch {
	case ei < 0 && gi >= 0 && gc[gi].Type == ttlv.TypeInteger && gc[gi].Int == 0:
		gc = slices.Delete(slices.Clone(gc), gi, gi+1)
	case gi < 0 && ei >= 0 && ec[ei].Lit != nil && ec[ei].Type == ttlv.TypeInteger && ec[ei].Lit.Int == 0:
		ec = slices.Delete(slices.Clone(ec), ei, ei+1)
	}
	return ec, gc
}

// checkIgnored type-checks a child the comparison skips.
func (c *comparer) checkIgnored(path string, parent ttlv.Tag, g *tree.Node) *Mismatch {
	want := ttlv.Type(0)
	switch {
	case g.Tag == kmip14.TagResultMessage:
		want = ttlv.TypeTextString
	case parent == kmip14.TagResponsePayload:
		want = queryFields[g.Tag]
	}
	if want != 0 && g.Type != want {
		return &Mismatch{Path: path + "/" + tree.TagName(g.Tag), Expected: "a " + want.String(), Got: "type " + g.Type.String()}
	}
	return nil
}

// checkQueryAnswered: whatever else a server supports, a server that answers
// Query supports Query, so a response to Query Operations must list it. This
// keeps an empty answer from passing as a description.
func checkQueryAnswered(path string, exp *Node, got *tree.Node) *Mismatch {
	asked := false
	for _, e := range exp.Children {
		asked = asked || e.Tag == kmip14.TagOperation
	}
	if !asked {
		return nil
	}
	for _, g := range got.All(kmip14.TagOperation) {
		if v, ok := g.EnumValue(); ok && v == uint32(kmip14.OperationQuery) {
			return nil
		}
	}
	return &Mismatch{Path: path + "/Operation", Expected: "Query among the operations listed", Got: "no Query"}
}

// rngFields are the fields of RNG Parameters (KMIP 1.4 §2.1.18), the value
// of the Random Number Generator attribute (§3.44).
var rngFields = map[ttlv.Tag]ttlv.Type{
	kmip14.TagRNGAlgorithm:           ttlv.TypeEnumeration,
	kmip14.TagCryptographicAlgorithm: ttlv.TypeEnumeration,
	kmip14.TagCryptographicLength:    ttlv.TypeInteger,
	kmip14.TagHashingAlgorithm:       ttlv.TypeEnumeration,
	kmip14.TagDRBGAlgorithm:          ttlv.TypeEnumeration,
	kmip14.TagRecommendedCurve:       ttlv.TypeEnumeration,
	kmip14.TagFIPS186Variation:       ttlv.TypeEnumeration,
	kmip14.TagPredictionResistance:   ttlv.TypeBoolean,
}

// checkRNG checks a Random Number Generator attribute value. The attribute
// describes the generator that made the key, which each server chooses and
// must report truthfully: the OASIS reference server reported ANSI X9.31
// with AES-256, another server reports its own. So the value must be a
// well-formed RNG Parameters structure (RNG Algorithm required, every field
// one of RNG Parameters' with its type), whatever generator it names.
func checkRNG(path string, g *tree.Node) *Mismatch {
	if g.Type != ttlv.TypeStructure {
		return &Mismatch{Path: path, Expected: "RNG Parameters (a Structure)", Got: "type " + g.Type.String()}
	}
	if g.Child(kmip14.TagRNGAlgorithm) == nil {
		return &Mismatch{Path: path + "/RNGAlgorithm", Expected: "an RNG Algorithm (required in RNG Parameters)", Got: "nothing (field missing)"}
	}
	for _, c := range g.Children {
		want, ok := rngFields[c.Tag]
		if !ok {
			return &Mismatch{Path: path + "/" + tree.TagName(c.Tag), Expected: "only RNG Parameters fields", Got: format(c, c.Tag)}
		}
		if c.Type != want {
			return &Mismatch{Path: path + "/" + tree.TagName(c.Tag), Expected: "a " + want.String(), Got: "type " + c.Type.String()}
		}
	}
	return nil
}

// serverKept names the standard attributes a server sets on its own and a
// client can never delete (KMIP 1.4 §3: "Initially set by: Server",
// "Deletable by client: No"); which of the optional ones an object carries
// is server policy. Lifecycle dates and the Revocation Reason are left out on
// purpose: they record client operations, so an unexpected one is a fault.
var serverKept = map[string]bool{
	"Unique Identifier": true, "Object Type": true, "Cryptographic Algorithm": true,
	"Cryptographic Length": true, "Cryptographic Usage Mask": true, "Certificate Type": true,
	"Certificate Length": true, "X.509 Certificate Identifier": true, "X.509 Certificate Subject": true,
	"X.509 Certificate Issuer": true, "Certificate Identifier": true, "Certificate Subject": true,
	"Certificate Issuer": true, "Digital Signature Algorithm": true, "Digest": true,
	"Lease Time": true, "State": true, "Initial Date": true, "Last Change Date": true,
	"Fresh": true, "Original Creation Date": true, "Random Number Generator": true,
	"Key Value Present": true, "Sensitive": true, "Always Sensitive": true,
	"Extractable": true, "Never Extractable": true,
}

// extraAllowed says whether an attribute the expected listing lacks may be in
// the actual one. Only in a listing of all attributes (GetAttributeList, or
// GetAttributes naming none: "all attributes SHALL be returned", §4.11),
// only server-kept or server-defined ("y-", §3.39) attributes: a leftover
// client attribute (x-, Name, Link...) still fails, so a Delete that did
// nothing is caught. The OASIS cases need this because the reference server
// itself is not consistent: TL-M-3's GetAttributeList lists Sensitive,
// Always Sensitive, Extractable and Never Extractable, and its all-attributes
// GetAttributes of the same object omits them.
func (c *comparer) extraAllowed(g *tree.Node) bool {
	if !c.allAttrs {
		return false
	}
	name := g.Text
	if g.Tag == kmip14.TagAttribute {
		name, _ = g.Child(kmip14.TagAttributeName).TextValue()
	} else if g.Tag != kmip14.TagAttributeName {
		return false
	}
	return serverKept[name] || strings.HasPrefix(name, "y-") ||
		(name == "Operation Policy Name" && c.answeredMinor() <= 2)
}

// answeredMinor is the minor protocol version of the response compared.
// KMIP 1.0–1.2 §3.18: a server SHOULD give every new object an Operation
// Policy Name, the client's or its own default; the OASIS reference server
// did not, so its listings lack the server's default. (1.3 deprecated the
// attribute.)
func (c *comparer) answeredMinor() int64 {
	if v := c.resp.Path(kmip14.TagResponseHeader, kmip14.TagProtocolVersion, kmip14.TagProtocolVersionMinor); v != nil {
		return v.Int
	}
	return 4
}

// listsAllAttributes reports whether a request batch item asks for every
// attribute of an object.
func listsAllAttributes(op uint32, reqItem *tree.Node) bool {
	switch kmip14.Operation(op) {
	case kmip14.OperationGetAttributeList:
		return true
	case kmip14.OperationGetAttributes:
		p := reqItem.Child(kmip14.TagRequestPayload)
		return p != nil && p.Child(kmip14.TagAttributeName) == nil
	}
	return false
}

// answeredVersion is the Protocol Version a response must carry: the
// request's, whenever the expected response shows the server processed the
// request (a Success item). A server answers in the version it was asked in;
// only a message it cannot take in that version may be answered in another.
// OMOS-O-1 records 1.3 for its second 1.4 request (its first is answered in
// 1.4): an erratum this rule corrects rather than tolerates.
func answeredVersion(req *tree.Node, exp *Node) *Node {
	v := req.Path(kmip14.TagRequestHeader, kmip14.TagProtocolVersion)
	if v == nil {
		return nil
	}
	for _, bi := range exp.Children {
		if bi.Tag != kmip14.TagBatchItem {
			continue
		}
		for _, f := range bi.Children {
			if f.Tag == kmip14.TagResultStatus && f.Lit != nil && f.Lit.Int == int64(kmip14.ResultStatusSuccess) {
				return literal(v)
			}
		}
	}
	return nil
}

// literal turns a concrete tree into an expectation.
func literal(n *tree.Node) *Node {
	e := &Node{Tag: n.Tag, Type: n.Type}
	if n.Type != ttlv.TypeStructure {
		e.Lit = n.Clone()
		return e
	}
	for _, c := range n.Children {
		e.Children = append(e.Children, literal(c))
	}
	return e
}

// failedItems reports whether a response message has a failed batch item.
func failedItems(resp *tree.Node) bool {
	for _, bi := range resp.All(kmip14.TagBatchItem) {
		if s, ok := bi.Child(kmip14.TagResultStatus).EnumValue(); ok && s != uint32(kmip14.ResultStatusSuccess) {
			return true
		}
	}
	return false
}

// Random outputs. Some operations return bytes that are random by
// definition, so a recorded value can never be matched, only its shape:
//   - RNG Retrieve (§4.35) returns random bytes;
//   - RSA-OAEP encryption (PKCS#1 v2.2 §7.1) draws a fresh seed per call: the
//     ciphertext is as long as the modulus and different every time;
//   - an Encrypt that leaves the IV to the server (Random IV, §3.6;
//     or no IV in the request where the case recorded the one the server
//     returned) answers with the server's random IV and a ciphertext under it.
// In those responses the payload's output byte strings are checked for type
// and exact length (the recorded one: for OAEP the modulus size), not
// content. Nothing else is relaxed: the Unique Identifier, a Decrypt's
// plaintext, a deterministic Encrypt (a client IV, PKCS#1 v1.5 Decrypt...)
// stay exact. The bytes the server really returned are still what later
// steps send ($DATA_0, $IV_COUNTER_NONCE resolve from Bindings.Seen), so a
// case that decrypts them checks the round trip.

// randomOutputs names the payload fields of a response batch item that carry
// random server output: nil unless the request item is known.
func (c *comparer) randomOutputs(exp *Node) map[ttlv.Tag]bool {
	if c.reqItem == nil {
		return nil
	}
	switch kmip14.Operation(c.op) {
	case kmip14.OperationRNGRetrieve:
		return map[ttlv.Tag]bool{kmip14.TagData: true}
	case kmip14.OperationEncrypt:
	default:
		return nil
	}
	p := c.reqItem.Child(kmip14.TagRequestPayload)
	reqParams := p.Child(kmip14.TagCryptographicParameters)
	var keyParams *tree.Node
	if uid, ok := p.Child(kmip14.TagUniqueIdentifier).TextValue(); ok {
		keyParams = c.b.Params[uid]
	}
	// A field the request's Cryptographic Parameters leave out is taken from
	// the key's Cryptographic Parameters attribute (§4.29).
	param := func(tag ttlv.Tag) *tree.Node {
		if v := reqParams.Child(tag); v != nil {
			return v
		}
		return keyParams.Child(tag)
	}
	out := map[ttlv.Tag]bool{}
	if pm, ok := param(kmip14.TagPaddingMethod).EnumValue(); ok && pm == uint32(kmip14.PaddingMethodOAEP) {
		out[kmip14.TagData] = true
	}
	randomIV, _ := param(kmip14.TagRandomIV).BoolValue()
	if randomIV || (p.Child(kmip14.TagIVCounterNonce) == nil && expectsPayload(exp, kmip14.TagIVCounterNonce)) {
		out[kmip14.TagData] = true
		out[kmip14.TagIVCounterNonce] = true
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// expectsPayload reports whether an expected batch item's payload has tag.
func expectsPayload(bi *Node, tag ttlv.Tag) bool {
	for _, c := range bi.Children {
		if c.Tag != kmip14.TagResponsePayload {
			continue
		}
		for _, f := range c.Children {
			if f.Tag == tag {
				return true
			}
		}
	}
	return false
}

// checkRandom checks a random output against the recorded one: a byte string
// of exactly the recorded length.
func checkRandom(path string, e *Node, g *tree.Node) *Mismatch {
	if g.Type != ttlv.TypeByteString {
		return &Mismatch{Path: path, Expected: "a ByteString", Got: "type " + g.Type.String()}
	}
	if len(g.Bytes) != len(e.Lit.Bytes) {
		return &Mismatch{Path: path, Expected: fmt.Sprintf("%d random bytes (as recorded)", len(e.Lit.Bytes)),
			Got: fmt.Sprintf("%d bytes", len(g.Bytes)), Note: "a random output is checked for its length"}
	}
	return nil
}

// learnParams records the Cryptographic Parameters a request gave the objects
// it created, by the identifiers the response assigned: OASIS cases register
// an RSA key with OAEP padding, or an AES key with Random IV, and then
// Encrypt without naming them. Only successful Register, Create and
// CreateKeyPair items are read; parameters set later (Add/Modify Attribute)
// are not tracked, which can only leave a comparison strict.
func (b *Bindings) learnParams(req, resp *tree.Node) {
	succeeded(req, resp, func(ri, gi *tree.Node) {
		op, _ := ri.Child(kmip14.TagOperation).EnumValue()
		rp, gp := ri.Child(kmip14.TagRequestPayload), gi.Child(kmip14.TagResponsePayload)
		switch kmip14.Operation(op) {
		case kmip14.OperationRegister, kmip14.OperationCreate:
			b.setParams(gp.Child(kmip14.TagUniqueIdentifier), rp.Child(kmip14.TagTemplateAttribute))
		case kmip14.OperationCreateKeyPair:
			common := rp.Child(kmip14.TagCommonTemplateAttribute)
			b.setParams(gp.Child(kmip14.TagPublicKeyUniqueIdentifier), rp.Child(kmip14.TagPublicKeyTemplateAttribute), common)
			b.setParams(gp.Child(kmip14.TagPrivateKeyUniqueIdentifier), rp.Child(kmip14.TagPrivateKeyTemplateAttribute), common)
		}
	})
}

// succeeded calls fn with each request batch item and its response item, in
// item order, for the items that succeeded. Either message may be nil; a
// response with fewer items ends the walk.
func succeeded(req, resp *tree.Node, fn func(ri, gi *tree.Node)) {
	if req == nil || resp == nil {
		return
	}
	items := resp.All(kmip14.TagBatchItem)
	for i, ri := range req.All(kmip14.TagBatchItem) {
		if i >= len(items) {
			return
		}
		gi := items[i]
		if s, ok := gi.Child(kmip14.TagResultStatus).EnumValue(); !ok || s != uint32(kmip14.ResultStatusSuccess) {
			continue
		}
		fn(ri, gi)
	}
}

// setParams records the first Cryptographic Parameters attribute found in
// the templates (the specific one before the common one) for uid.
func (b *Bindings) setParams(uid *tree.Node, templates ...*tree.Node) {
	id, ok := uid.TextValue()
	if !ok {
		return
	}
	for _, t := range templates {
		for _, a := range t.All(kmip14.TagAttribute) {
			if n, _ := a.Child(kmip14.TagAttributeName).TextValue(); n == "Cryptographic Parameters" {
				if v := a.Child(kmip14.TagAttributeValue); v != nil && v.Type == ttlv.TypeStructure {
					b.Params[id] = v
					return
				}
			}
		}
	}
}
