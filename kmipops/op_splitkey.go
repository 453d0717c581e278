package kmipops

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/internal/splitkey"
	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// Create Split Key (KMIP 1.4 §4.38, 1.2 and later): a key split into Split
// Key objects (§2.2.5), each registered as a new managed object, by the
// methods of package splitkey.
//
//   - With a Unique Identifier, that Symmetric Key or Secret Data object is
//     split; its Cryptographic Algorithm and Length take precedence over the
//     template's (§4.38). Without one, the server generates a key from the
//     template's algorithm and length, as Create would, and only its parts
//     are stored. The ID Placeholder is not used for it: the field says
//     which key to split "if applicable".
//   - Each part carries the secret's algorithm and length in its Key Block,
//     a Parent Link to the original and the original a Child Link to each
//     part (Link Types §3.35). The ID Placeholder becomes part 1's identifier.
//   - Splitting is key management, not a cryptographic use: any state but
//     Compromised and Destroyed, no usage mask bit. A part reveals what the
//     key does, so parts of a Sensitive key are Sensitive and parts of a
//     non-extractable key are not extractable (§3.47, §3.49).
//   - The response carries the parts' identifiers only: KMIP 1.2's table
//     also lists Object Type, which 1.3 dropped and which no OASIS case
//     (1.2 or 1.4) records.

// maxSplitKeyParts bounds Split Key Parts: every part is a managed object
// written by the one request, and GF(2^8) sharing has 255 points anyway.
const maxSplitKeyParts = 255

var splitMethods = map[kmip14.SplitKeyMethod]splitkey.Method{
	kmip14.SplitKeyMethodXOR:                         splitkey.XOR,
	kmip14.SplitKeyMethodPolynomialSharingGF2_16:     splitkey.PolynomialSharingGF216,
	kmip14.SplitKeyMethodPolynomialSharingPrimeField: splitkey.PolynomialSharingPrimeField,
	kmip14.SplitKeyMethodPolynomialSharingGF2_8:      splitkey.PolynomialSharingGF28,
}

// splitSource is the secret to split and what its parts inherit.
type splitSource struct {
	orig                   *object.Object // nil when the server generated the secret
	secret                 []byte
	format                 kmip14.KeyFormatType
	alg                    kmip14.CryptographicAlgorithm
	hasAlg                 bool
	bits                   int32
	mask                   uint32
	hasMask                bool
	sensitive, extractable bool
}

func opCreateSplitKey(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	ot, err := requireObjectType(payload)
	if err != nil {
		return nil, err
	}
	if ot != kmip14.ObjectTypeSplitKey {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Create Split Key makes Split Key objects, not %s", ot)
	}
	sp, err := readSplitParams(payload.View())
	if err != nil {
		return nil, err
	}
	attrs, err := ic.parseTemplate(payload.Child(kmip14.TagTemplateAttribute))
	if err != nil {
		return nil, err
	}
	src, err := p.splitSource(ic, payload, attrs)
	if err != nil {
		return nil, err
	}
	defer clear(src.secret)
	parts, err := splitkey.Split(p.opts.Rand, sp, src.secret)
	if err != nil {
		return nil, splitError(err)
	}
	// The key's algorithm and length are in each part's Key Block.
	attrs = removeAttrs(removeAttrs(attrs, object.AttrCryptoAlgorithm), object.AttrCryptoLength)
	if src.hasMask && !hasAttr(attrs, object.AttrUsageMask) {
		attrs = append(attrs, object.NewAttr(object.AttrUsageMask, tree.Int(0, int32(src.mask))))
	}
	if attrs, err = inheritProtection(attrs, src.sensitive, src.extractable); err != nil {
		return nil, err
	}
	objs := make([]*object.Object, len(parts))
	for i, part := range parts {
		o, err := p.newObject(ic, kmip14.ObjectTypeSplitKey, splitKeyBody(sp, part, src), attrs, true)
		if err != nil {
			return nil, err
		}
		if err := p.objects.AssignUID(o); err != nil {
			return nil, err
		}
		if src.orig != nil {
			o.Add(object.AttrLink, linkValue(kmip14.LinkTypeParentLink, src.orig.UID()))
		}
		objs[i] = o
	}
	if err := p.insertAll(ic, objs); err != nil {
		return nil, err
	}
	if src.orig != nil {
		if _, err := ic.objects.Update(ic.ctx, src.orig.UID(), func(o *object.Object) (bool, error) {
			for _, part := range objs {
				o.Add(object.AttrLink, linkValue(kmip14.LinkTypeChildLink, part.UID()))
			}
			o.Touch(ic.now)
			return true, nil
		}); err != nil {
			p.removeAll(ic, objs)
			return nil, err
		}
	}
	ic.placeholder = objs[0].UID()
	r := tree.Struct(kmip14.TagResponsePayload)
	for _, o := range objs {
		r.Add(tree.Text(kmip14.TagUniqueIdentifier, o.UID()))
	}
	return r, nil
}

// splitSource loads the key to split, or generates one from the template.
func (p *Processor) splitSource(ic *itemCtx, payload *tree.Node, attrs []object.Attr) (*splitSource, error) {
	n := payload.Child(kmip14.TagUniqueIdentifier)
	if n == nil {
		alg, length, hasAlg, hasLen := algLength(attrs)
		if !hasAlg {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Algorithm is required to generate the key to split")
		}
		bits, size, mask, err := symmetricSpec(alg, length, hasLen)
		if err != nil {
			return nil, err
		}
		secret := make([]byte, size)
		if _, err := io.ReadFull(p.opts.Rand, secret); err != nil {
			return nil, fmt.Errorf("generate key: %w", err)
		}
		return &splitSource{secret: secret, format: kmip14.KeyFormatTypeRaw, alg: alg, hasAlg: true, bits: bits,
			mask: mask, hasMask: true, extractable: true}, nil
	}
	uid, ok := n.TextValue()
	if !ok {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Unique Identifier must be a text string")
	}
	o, err := ic.objects.Load(ic.ctx, uid)
	if err != nil {
		return nil, err
	}
	if err := checkSplitObject(o); err != nil {
		return nil, err
	}
	s := &splitSource{orig: o, sensitive: o.Sensitive(), extractable: o.Extractable()}
	switch o.Type() {
	case kmip14.ObjectTypeSymmetricKey:
		s.format = kmip14.KeyFormatTypeRaw
	case kmip14.ObjectTypeSecretData:
		s.format = kmip14.KeyFormatTypeOpaque
	default:
		return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "splitting a %s is not supported (Symmetric Key, Secret Data)", o.Type())
	}
	if s.secret, err = derivationKey(o); err != nil {
		return nil, err
	}
	s.alg, s.hasAlg = o.CryptographicAlgorithm()
	s.bits = int32(8 * len(s.secret))
	if m, ok := o.UsageMask(); ok {
		s.mask, s.hasMask = uint32(m), true
	}
	return s, nil
}

// splitError answers splitkey's refusals: too few parts is Cryptographic
// Failure (the OASIS TC-SJ cases), other parameter errors Invalid Field;
// anything else (the random source) is the server's failure.
func splitError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "splitkey: ")
	switch {
	case errors.Is(err, splitkey.ErrThreshold):
		return Errorf(kmip14.ResultReasonCryptographicFailure, "%s", msg)
	case errors.Is(err, splitkey.ErrParameter):
		return Errorf(kmip14.ResultReasonInvalidField, "%s", msg)
	}
	return err
}

// checkSplitObject admits an object to Create or Join Split Key: its
// material must exist and not be known to be compromised.
func checkSplitObject(o *object.Object) error {
	if o.Destroyed() || !o.Body().Present() {
		return Errorf(kmip14.ResultReasonItemNotFound, "object has been destroyed")
	}
	if o.State() == kmip14.StateCompromised {
		return Errorf(kmip14.ResultReasonPermissionDenied, "object is Compromised")
	}
	return nil
}

// splitKeyBody is a part's Split Key structure (§2.2.5). The Key Block's
// Cryptographic Length is the secret's, which a prime-field join needs.
func splitKeyBody(sp splitkey.Params, part splitkey.Part, src *splitSource) *tree.Node {
	kb := tree.Struct(kmip14.TagKeyBlock,
		tree.Enum(kmip14.TagKeyFormatType, uint32(src.format)),
		tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, part.Key)))
	if src.hasAlg {
		kb.Add(tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(src.alg)))
	}
	kb.Add(tree.Int(kmip14.TagCryptographicLength, src.bits))
	var method kmip14.SplitKeyMethod
	for k, v := range splitMethods {
		if v == sp.Method {
			method = k
		}
	}
	b := tree.Struct(kmip14.TagSplitKey,
		tree.Int(kmip14.TagSplitKeyParts, int32(sp.Parts)),
		tree.Int(kmip14.TagKeyPartIdentifier, int32(part.ID)),
		tree.Int(kmip14.TagSplitKeyThreshold, int32(sp.Threshold)),
		tree.Enum(kmip14.TagSplitKeyMethod, uint32(method)))
	if sp.Prime != nil {
		b.Add(tree.Big(kmip14.TagPrimeFieldSize, sp.Prime))
	}
	return b.Add(kb)
}

// readSplitParams reads Split Key Parts, Split Key Threshold, Split Key
// Method and Prime Field Size from a Create Split Key request or a Split Key
// structure. What splitkey checks (the prime, the field's limits) it leaves
// to splitkey.
func readSplitParams(v tree.View) (splitkey.Params, error) {
	var sp splitkey.Params
	ints := []struct {
		tag ttlv.Tag
		dst *int
	}{{kmip14.TagSplitKeyParts, &sp.Parts}, {kmip14.TagSplitKeyThreshold, &sp.Threshold}}
	for _, f := range ints {
		n := v.Child(f.tag)
		if !n.Present() {
			return sp, Errorf(kmip14.ResultReasonInvalidMessage, "missing %s", tree.TagName(f.tag))
		}
		i, ok := n.IntValue()
		if !ok {
			return sp, Errorf(kmip14.ResultReasonInvalidField, "%s must be an integer", tree.TagName(f.tag))
		}
		*f.dst = int(i)
	}
	if sp.Parts < 1 || sp.Parts > maxSplitKeyParts {
		return sp, Errorf(kmip14.ResultReasonInvalidField, "Split Key Parts %d: 1 to %d allowed", sp.Parts, maxSplitKeyParts)
	}
	if sp.Threshold < 1 || sp.Threshold > sp.Parts {
		return sp, Errorf(kmip14.ResultReasonInvalidField, "Split Key Threshold %d with %d parts", sp.Threshold, sp.Parts)
	}
	mn := v.Child(kmip14.TagSplitKeyMethod)
	if !mn.Present() {
		return sp, Errorf(kmip14.ResultReasonInvalidMessage, "missing Split Key Method")
	}
	m, ok := mn.EnumValue()
	if !ok {
		return sp, Errorf(kmip14.ResultReasonInvalidField, "Split Key Method must be an enumeration")
	}
	if sp.Method, ok = splitMethods[kmip14.SplitKeyMethod(m)]; !ok {
		return sp, Errorf(kmip14.ResultReasonInvalidField, "unknown Split Key Method %#x", m)
	}
	if pn := v.Child(kmip14.TagPrimeFieldSize); pn.Present() {
		q, ok := pn.BigValue()
		if !ok {
			return sp, Errorf(kmip14.ResultReasonInvalidField, "Prime Field Size must be a big integer")
		}
		sp.Prime = q
	}
	if (sp.Prime != nil) != (sp.Method == splitkey.PolynomialSharingPrimeField) {
		return sp, Errorf(kmip14.ResultReasonInvalidField, "Prime Field Size goes with Polynomial Sharing Prime Field, and only with it")
	}
	return sp, nil
}

// checkSplitKeyFields validates a registered Split Key structure's own
// fields, so that Join can rely on them.
func checkSplitKeyFields(body *tree.Node) error {
	sp, err := readSplitParams(body.View())
	if err != nil {
		return err
	}
	id, ok := body.Child(kmip14.TagKeyPartIdentifier).IntValue()
	if !ok {
		return Errorf(kmip14.ResultReasonInvalidField, "Split Key needs an integer Key Part Identifier")
	}
	if id < 1 || int(id) > sp.Parts {
		return Errorf(kmip14.ResultReasonInvalidField, "Key Part Identifier %d outside 1…%d", id, sp.Parts)
	}
	return nil
}

// inheritProtection gives new objects that reveal a source's material the
// source's protection: Sensitive if it is, not Extractable if it is not. A
// template asking for less is refused.
func inheritProtection(attrs []object.Attr, sensitive, extractable bool) ([]object.Attr, error) {
	for i := range attrs {
		v, _ := attrs[i].Value().BoolValue()
		switch attrs[i].Name() {
		case object.AttrSensitive:
			if sensitive && !v {
				return nil, Errorf(kmip14.ResultReasonPermissionDenied, "made from a Sensitive key, the object must be Sensitive")
			}
		case object.AttrExtractable:
			if !extractable && v {
				return nil, Errorf(kmip14.ResultReasonPermissionDenied, "made from a non-extractable key, the object cannot be Extractable")
			}
		}
	}
	out := append([]object.Attr(nil), attrs...)
	if sensitive && !hasAttr(out, object.AttrSensitive) {
		out = append(out, object.NewAttr(object.AttrSensitive, tree.Bool(0, true)))
	}
	if !extractable && !hasAttr(out, object.AttrExtractable) {
		out = append(out, object.NewAttr(object.AttrExtractable, tree.Bool(0, false)))
	}
	return out, nil
}

// insertAll stores new objects, removing those already stored if one fails.
func (p *Processor) insertAll(ic *itemCtx, objs []*object.Object) error {
	for i, o := range objs {
		if err := ic.objects.Insert(ic.ctx, o); err != nil {
			p.removeAll(ic, objs[:i])
			return err
		}
	}
	return nil
}

func (p *Processor) removeAll(ic *itemCtx, objs []*object.Object) {
	for _, o := range objs {
		if err := ic.objects.Remove(ic.ctx, o.UID()); err != nil {
			p.log.Error("could not roll back a new object", "uid", o.UID(), "err", err)
		}
	}
}
