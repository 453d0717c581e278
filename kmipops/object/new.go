package object

import (
	"crypto/sha256"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Spec is what a new object is made from.
type Spec struct {
	Type kmip14.ObjectType
	// Body is the object structure. New takes it over: the caller must not
	// change it afterwards.
	Body *tree.Node
	// Attrs are the client's attributes (Create and Register templates).
	Attrs []Attr
	Now   time.Time
	// Generated says the server made the material: the object is Fresh
	// (not served to a client yet), and RNG describes the generator. A
	// registered object came from a client, so it is not Fresh unless
	// the client says so.
	Generated bool
	RNG       *tree.Node
	// LeaseTime, when positive, is recorded as the object's Lease Time.
	LeaseTime time.Duration
	// PolicyName, when not empty, is recorded as the Operation Policy Name
	// of an object whose client named none.
	PolicyName string
	// Group, when not empty, is recorded as the Object Group of an object
	// whose client named none: the server's default group (§3.33).
	Group string
}

// New builds a new object, without a uid until the repository inserts it:
// the client attributes, then what the server sets (KMIP 1.4 §3: Object
// Type, State, dates, Digest, Fresh, ...). Server-managed attributes among
// the client's are refused, except an Object Type equal to the real one.
func New(s Spec) (*Object, error) {
	o := &Object{typ: s.Type, body: s.Body}
	if err := o.applyClientAttrs(s.Attrs); err != nil {
		return nil, err
	}
	now := s.Now
	o.Set(AttrObjectType, tree.Enum(0, uint32(s.Type)))
	o.SetState(kmip14.StatePreActive)
	o.Set(AttrInitialDate, tree.Time(0, now))
	o.Set(AttrLastChangeDate, tree.Time(0, now))
	// Original Creation Date and Random Number Generator (KMIP 1.2 §3.43,
	// 1.3 §3.44) say when and how the material was made: the server's own
	// for material it generates, the client's (if it gives them) for
	// material it registers, which was not necessarily made at registration.
	if s.Generated {
		for _, name := range []string{AttrOriginalCreationDate, AttrRNG} {
			if o.Has(name) {
				return nil, errorf(kmip14.ResultReasonInvalidField, "attribute %q is set by the server for material it generates", name)
			}
		}
		o.Set(AttrOriginalCreationDate, tree.Time(0, now))
	}
	kb := s.Body.Child(kmip14.TagKeyBlock)
	if kb != nil && kb.Child(kmip14.TagKeyValue) == nil && kb.Child(kmip14.TagKeyWrappingData) == nil {
		// A meta-data only key (KMIP 1.2 §2.1.3, §3.41): its value is kept
		// elsewhere (Key Value Location), and the server says so.
		o.Set(AttrKeyValuePresent, tree.Bool(0, false))
	}
	if a := kb.Child(kmip14.TagCryptographicAlgorithm); a != nil && !o.Has(AttrCryptoAlgorithm) {
		o.Set(AttrCryptoAlgorithm, tree.Enum(0, uint32(a.Int)))
	}
	if l := kb.Child(kmip14.TagCryptographicLength); l != nil && !o.Has(AttrCryptoLength) {
		o.Set(AttrCryptoLength, tree.Int(0, int32(l.Int)))
	}
	if s.Type == kmip14.ObjectTypeCertificate {
		ct := s.Body.Child(kmip14.TagCertificateType).Int
		o.Set(AttrCertificateType, tree.Enum(0, uint32(ct)))
		o.Set(AttrCertificateLength, tree.Int(0, int32(len(s.Body.Child(kmip14.TagCertificateValue).Bytes))))
		if kmip14.CertificateType(ct) == kmip14.CertificateTypeX_509 {
			if err := o.setCertificateAttrs(s.Body.Child(kmip14.TagCertificateValue).Bytes); err != nil {
				return nil, err
			}
		}
	}
	if d := digestOf(s.Body); d != nil {
		o.Add(AttrDigest, d)
	}
	sensitive, ok := o.Get(AttrSensitive).BoolValue()
	if !ok {
		o.Set(AttrSensitive, tree.Bool(0, false))
	}
	extractable, ok := o.Get(AttrExtractable).BoolValue()
	if !ok {
		extractable = true
		o.Set(AttrExtractable, tree.Bool(0, true))
	}
	o.Set(AttrAlwaysSensitive, tree.Bool(0, sensitive))
	o.Set(AttrNeverExtractable, tree.Bool(0, !extractable))
	if !o.Has(AttrFresh) {
		// A client may set Fresh itself when it makes the object (KMIP
		// 1.1 §3.34: initially set by server or client; OASIS TC-152
		// registers keys as Fresh for a group of its own).
		o.Set(AttrFresh, tree.Bool(0, s.Generated))
	}
	if s.Generated && s.RNG != nil {
		o.Set(AttrRNG, s.RNG)
	}
	if s.LeaseTime > 0 {
		o.Set(AttrLeaseTime, tree.Interval(0, s.LeaseTime))
	}
	if s.Group != "" && !o.Has(AttrObjectGroup) {
		o.Set(AttrObjectGroup, tree.Text(0, s.Group))
	}
	if s.PolicyName != "" && !o.Has(AttrOperationPolicyName) {
		o.Set(AttrOperationPolicyName, tree.Text(0, s.PolicyName))
	}
	o.AdvanceState(now)
	return o, nil
}

// applyClientAttrs adds template attributes to a new object. Server-managed
// attributes are refused, except an Object Type equal to the real one.
func (o *Object) applyClientAttrs(l []Attr) error {
	o.willChange()
	for _, a := range l {
		d, known := defs[a.name]
		if known && d.rules&setClient == 0 {
			if o.serverWouldSet(a) {
				continue
			}
			return errorf(kmip14.ResultReasonInvalidField, "attribute %q is set by the server", a.name)
		}
		if known && !d.multi && o.Has(a.name) {
			return errorf(kmip14.ResultReasonInvalidField, "attribute %q given more than once", a.name)
		}
		// The value is shared with the client's list, which may serve
		// another object too (a key pair's common template): values never
		// change in place, so that is safe.
		o.attrs = append(o.attrs, Attr{name: a.name, index: o.nextIndex(a.name), node: withUsageCount(a.name, a.value())})
	}
	return nil
}

// serverWouldSet reports whether a is a server-set attribute whose value
// is the one the server sets from the object itself: the Object Type, and a
// certificate's Certificate Type (KMIP 1.4 §3.8, taken from the Certificate
// structure). Repeating it contradicts nothing, so it is not refused; the
// server's own instance is the one kept.
func (o *Object) serverWouldSet(a Attr) bool {
	v := a.value()
	if v.Type != ttlv.TypeEnumeration {
		return false
	}
	switch a.name {
	case AttrObjectType:
		return kmip14.ObjectType(v.Int) == o.typ
	case AttrCertificateType:
		ct := o.body.Child(kmip14.TagCertificateType)
		return o.typ == kmip14.ObjectTypeCertificate && ct != nil && ct.Type == ttlv.TypeEnumeration && ct.Int == v.Int
	}
	return false
}

// digestOf is the Digest attribute (KMIP 1.4 §3.17): SHA-256 of the key
// material as held (with its Key Format Type; for a transparent format, of
// the TTLV encoding of its Key Material structure), of the certificate or of
// the opaque data. Wrapped keys get none.
func digestOf(body *tree.Node) *tree.Node {
	var data []byte
	var format *tree.Node
	switch body.Tag {
	case kmip14.TagCertificate:
		data, _ = body.Child(kmip14.TagCertificateValue).BytesValue()
	case kmip14.TagOpaqueObject:
		data, _ = body.Child(kmip14.TagOpaqueDataValue).BytesValue()
	default:
		kb := body.Child(kmip14.TagKeyBlock)
		if kb.Child(kmip14.TagKeyWrappingData) != nil {
			return nil
		}
		km := kb.Path(kmip14.TagKeyValue, kmip14.TagKeyMaterial)
		data, _ = km.BytesValue()
		if km != nil && km.Type == ttlv.TypeStructure {
			// The OASIS TC-181/182 cases' transparent keys show it: the
			// digest of the Key Material structure's TTLV encoding.
			data, _ = tree.Encode(km)
		}
		if f := kb.Child(kmip14.TagKeyFormatType); f != nil {
			format = tree.Enum(kmip14.TagKeyFormatType, uint32(f.Int))
		}
	}
	if data == nil {
		return nil
	}
	sum := sha256.Sum256(data)
	return tree.Struct(kmip14.TagAttributeValue,
		tree.Enum(kmip14.TagHashingAlgorithm, uint32(kmip14.HashingAlgorithmSHA_256)),
		tree.Bytes(kmip14.TagDigestValue, sum[:]),
		format)
}
