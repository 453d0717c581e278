package kmipops

import (
	"crypto/aes"
	"crypto/sha1"
	"errors"
	"hash"
	"strings"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/internal/aesmodes"
	"github.com/kmipd/kmipd/internal/derive"
	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// Derive Key (KMIP 1.4 §4.6, in every 1.x): a Symmetric Key or Secret Data
// object derived from a base object with the Derive Key usage bit, by the
// Derivation Method with its Derivation Parameters (package derive holds
// the methods and their published vectors).
//
// The first Unique Identifier is the derivation key (a Symmetric Key, or a
// Secret Data object such as PBKDF2's password); a second one, a Secret
// Data object, stands for the Derivation Data ("Yes, unless the Unique
// Identifier of a Secret Data object is provided"). The ID Placeholder is
// never used for them (§4.6).
//
// Policy where KMIP leaves the choice to the server:
//   - HMAC is the specification's: HMAC(base key, Derivation Data) with the
//     Hashing Algorithm, at most one hash output. PyKMIP's server answers
//     HKDF instead, which KMIP 1.x does not define (2.0 added it as its own
//     method); a longer request is refused, as §4.6 says ("If the specified
//     length exceeds the output of the derivation method, then the server
//     SHALL return an error").
//   - Deriving applies cryptographic protection (§3.22 lists it with
//     encryption and signing), so every base object must be Active and
//     before its Protect Stop Date.
//   - Work is bounded: Options.MaxDeriveIterations (PBKDF2's iterations ×
//     output blocks) and Options.MaxDeriveBytes (derived length).
//   - ENCRYPT uses the ciphers Encrypt has (AES, Triple DES); others are
//     Feature Not Supported.
//   - The derived length is the client's (§4.6): a Symmetric Key derived
//     with a length its algorithm cannot use is stored as asked, and refused
//     when used, as Register would store it.

// DefaultMaxDeriveIterations is Options.MaxDeriveIterations' default: two
// million PRF iterations, about a second of one core, above OWASP's 2023
// PBKDF2 recommendations (600 000 for HMAC-SHA-256, 1 300 000 for SHA-1).
const DefaultMaxDeriveIterations = derive.DefaultMaxIterations

// DefaultMaxDeriveBytes is Options.MaxDeriveBytes' default: 4096 bytes,
// room for many keys and IVs in one Secret Data object (§4.6).
const DefaultMaxDeriveBytes = 4096

// maxDeriveBases: a derivation key and one Secret Data object for the
// Derivation Data.
const maxDeriveBases = 2

var deriveMethods = map[kmip14.DerivationMethod]derive.Method{
	kmip14.DerivationMethodPBKDF2:          derive.PBKDF2,
	kmip14.DerivationMethodHASH:            derive.HASH,
	kmip14.DerivationMethodHMAC:            derive.HMAC,
	kmip14.DerivationMethodENCRYPT:         derive.ENCRYPT,
	kmip14.DerivationMethodNIST800_108_C:   derive.NIST800108C,
	kmip14.DerivationMethodNIST800_108_F:   derive.NIST800108F,
	kmip14.DerivationMethodNIST800_108_DPI: derive.NIST800108DPI,
}

// deriveRequest is a parsed Derive Key request payload.
type deriveRequest struct {
	ot     kmip14.ObjectType
	uids   []string
	method derive.Method
	dp     *tree.Node // Derivation Parameters
	iv     []byte     // nil: absent
	data   []byte     // nil: absent
	salt   []byte     // nil: absent
	iter   int
	attrs  []object.Attr
	alg    kmip14.CryptographicAlgorithm
	bits   int32
}

func opDeriveKey(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	r, err := parseDeriveRequest(ic, payload, p.opts.MaxDeriveBytes)
	if err != nil {
		return nil, err
	}
	bases := make([]*object.Object, len(r.uids))
	for i, uid := range r.uids {
		o, err := ic.objects.Load(ic.ctx, uid)
		if err != nil {
			return nil, err
		}
		if err := checkDeriveBase(o, ic.now); err != nil {
			return nil, err
		}
		bases[i] = o
	}
	key, err := derivationKey(bases[0])
	if err != nil {
		return nil, err
	}
	defer clear(key)
	if len(bases) > 1 {
		if bases[1].Type() != kmip14.ObjectTypeSecretData {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "a second base object must be Secret Data (the Derivation Data), not %s", bases[1].Type())
		}
		if r.data != nil {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Derivation Data given both in the parameters and as a Secret Data object")
		}
		if r.data, err = derivationKey(bases[1]); err != nil {
			return nil, err
		}
		defer clear(r.data)
	}
	dp, err := p.deriveParams(ic, r, bases[0], key)
	if err != nil {
		return nil, err
	}
	out, err := derive.Derive(dp)
	if err != nil {
		return nil, deriveError(err)
	}
	defer clear(out)
	for _, b := range bases {
		if err := p.consumeUsage(ic, &opKey{o: b}, int64(len(out)), true); err != nil {
			return nil, err
		}
	}
	o, err := p.newDerivedObject(ic, r, out)
	if err != nil {
		return nil, err
	}
	if err := p.objects.AssignUID(o); err != nil {
		return nil, err
	}
	for _, b := range bases {
		o.Add(object.AttrLink, linkValue(kmip14.LinkTypeDerivationBaseObjectLink, b.UID()))
	}
	if err := ic.objects.Insert(ic.ctx, o); err != nil {
		return nil, err
	}
	// Each base object links to what was derived from it.
	for _, b := range bases {
		if _, err := ic.objects.Update(ic.ctx, b.UID(), func(bo *object.Object) (bool, error) {
			bo.Add(object.AttrLink, linkValue(kmip14.LinkTypeDerivedKeyLink, o.UID()))
			bo.Touch(ic.now)
			return true, nil
		}); err != nil {
			if rerr := ic.objects.Remove(ic.ctx, o.UID()); rerr != nil {
				p.log.Error("could not roll back a derived object", "uid", o.UID(), "err", rerr)
			}
			return nil, err
		}
	}
	ic.placeholder = o.UID()
	return respUID(o.UID()), nil
}

// parseDeriveRequest reads and checks the request payload.
func parseDeriveRequest(ic *itemCtx, payload *tree.Node, maxBytes int) (*deriveRequest, error) {
	ot, err := requireObjectType(payload)
	if err != nil {
		return nil, err
	}
	if ot != kmip14.ObjectTypeSymmetricKey && ot != kmip14.ObjectTypeSecretData {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Derive Key makes a Symmetric Key or Secret Data, not %s", ot)
	}
	r := &deriveRequest{ot: ot}
	ids := payload.All(kmip14.TagUniqueIdentifier)
	if len(ids) == 0 {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "Derive Key needs the Unique Identifier of its base object")
	}
	if len(ids) > maxDeriveBases {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "at most %d Unique Identifiers: the derivation key and a Secret Data object", maxDeriveBases)
	}
	for _, n := range ids {
		s, ok := n.TextValue()
		if !ok {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Unique Identifier must be a text string")
		}
		r.uids = append(r.uids, s)
	}
	mn := payload.Child(kmip14.TagDerivationMethod)
	if mn == nil {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing Derivation Method")
	}
	mv, ok := mn.EnumValue()
	if !ok {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Derivation Method must be an enumeration")
	}
	m, ok := deriveMethods[kmip14.DerivationMethod(mv)]
	switch {
	case kmip14.DerivationMethod(mv) == kmip14.DerivationMethodAsymmetricKey:
		return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "Derivation Method %s not supported", kmip14.DerivationMethod(mv))
	case !ok:
		return nil, Errorf(kmip14.ResultReasonInvalidField, "unknown Derivation Method %#x", mv)
	}
	r.method = m
	r.dp = payload.Child(kmip14.TagDerivationParameters)
	if r.dp == nil {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing Derivation Parameters")
	}
	if r.dp.Type != ttlv.TypeStructure {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Derivation Parameters must be a structure")
	}
	if len(r.dp.All(kmip14.TagDerivationData)) > 1 {
		// KMIP says it "MAY be repeated" but not how the pieces combine;
		// guessing would derive a key the client did not describe.
		return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "repeated Derivation Data is not supported")
	}
	for _, f := range []struct {
		tag ttlv.Tag
		dst *[]byte
	}{{kmip14.TagInitializationVector, &r.iv}, {kmip14.TagDerivationData, &r.data}, {kmip14.TagSalt, &r.salt}} {
		b, present, err := payloadBytes(r.dp, f.tag)
		if err != nil {
			return nil, err
		}
		if present && b == nil {
			b = []byte{} // present but empty: not the same as absent
		}
		*f.dst = b
	}
	if n := r.dp.Child(kmip14.TagIterationCount); n != nil {
		v, ok := n.IntValue()
		if !ok || v < 1 {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Iteration Count must be a positive integer")
		}
		r.iter = int(v)
	}
	tn := payload.Child(kmip14.TagTemplateAttribute)
	if tn == nil {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing Template-Attribute")
	}
	if r.attrs, err = ic.parseTemplate(tn); err != nil {
		return nil, err
	}
	alg, bits, hasAlg, hasLen := algLength(r.attrs)
	if !hasLen {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Length is required: it is the length to derive")
	}
	if bits <= 0 || bits%8 != 0 || int(bits/8) > maxBytes {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Length %d: a multiple of 8 up to %d bits", bits, 8*maxBytes)
	}
	if ot == kmip14.ObjectTypeSymmetricKey && !hasAlg {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Algorithm is required to derive a Symmetric Key")
	}
	r.alg, r.bits = alg, bits
	return r, nil
}

// checkDeriveBase applies §4.6's usage mask rule and §3.22's state rules to
// a base object: deriving applies protection, like Encrypt or Sign.
func checkDeriveBase(o *object.Object, now time.Time) error {
	o.AdvanceState(now) // in memory only, as for the cryptographic operations
	if o.Destroyed() || !o.Body().Present() {
		return Errorf(kmip14.ResultReasonItemNotFound, "object has been destroyed")
	}
	switch o.Type() {
	case kmip14.ObjectTypeSymmetricKey, kmip14.ObjectTypeSecretData:
	default:
		return Errorf(kmip14.ResultReasonInvalidField, "a %s cannot be a derivation base (Symmetric Key or Secret Data)", o.Type())
	}
	if s := o.State(); s != kmip14.StateActive {
		return Errorf(kmip14.ResultReasonPermissionDenied, "base object is %s", s)
	}
	if d, ok := o.ProtectStopDate(); ok && !now.Before(d) {
		return Errorf(kmip14.ResultReasonPermissionDenied, "base object is past its Protect Stop Date")
	}
	if m, ok := o.UsageMask(); !ok || m&kmip14.CryptographicUsageMaskDeriveKey == 0 {
		return Errorf(kmip14.ResultReasonPermissionDenied, "Cryptographic Usage Mask does not allow Derive Key")
	}
	return nil
}

// derivationKey is a base object's secret bytes (a copy the caller wipes):
// a symmetric key's material, or a Secret Data object's.
func derivationKey(o *object.Object) ([]byte, error) {
	if o.Type() == kmip14.ObjectTypeSymmetricKey {
		k, err := keyMaterial(o)
		if err != nil {
			return nil, err
		}
		return k.sym, nil
	}
	kb := o.Body().Child(kmip14.TagKeyBlock)
	if kb.Child(kmip14.TagKeyWrappingData).Present() {
		return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "object is stored wrapped and cannot be used")
	}
	if err := requireKeyValue(kb); err != nil {
		return nil, err
	}
	f, _ := kb.Child(kmip14.TagKeyFormatType).EnumValue()
	if kf := kmip14.KeyFormatType(f); kf != kmip14.KeyFormatTypeOpaque && kf != kmip14.KeyFormatTypeRaw {
		return nil, Errorf(kmip14.ResultReasonKeyFormatTypeNotSupported, "Secret Data in %s format cannot be used for derivation", kf)
	}
	b, ok := kb.Path(kmip14.TagKeyValue, kmip14.TagKeyMaterial).BytesValue()
	if !ok {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Secret Data has no key material")
	}
	return b, nil
}

// deriveParams maps the request onto package derive. Cryptographic
// Parameters come from the Derivation Parameters, else from the base
// object's attribute, as for Encrypt (§4.29).
func (p *Processor) deriveParams(ic *itemCtx, r *deriveRequest, base *object.Object, key []byte) (derive.Params, error) {
	cp, err := effectiveParams(r.dp, base)
	if err != nil {
		return derive.Params{}, err
	}
	baseAlg, _ := base.CryptographicAlgorithm()
	dp := derive.Params{Method: r.method, Key: key, Data: r.data, Salt: r.salt, Iterations: r.iter, IV: r.iv,
		Length: int(r.bits / 8), MaxLength: p.opts.MaxDeriveBytes, MaxIterations: p.opts.MaxDeriveIterations}
	switch r.method {
	case derive.PBKDF2, derive.HASH, derive.HMAC:
		dp.Hash, err = deriveHash(cp, baseAlg, r.method)
	case derive.ENCRYPT:
		dp.Encrypt, err = p.deriveEncrypter(ic, base, baseAlg, cp)
	default:
		dp.PRF, err = derivePRF(cp, baseAlg)
	}
	return dp, err
}

// deriveHash is the hash of HASH, HMAC and PBKDF2's PRF: the Hashing
// Algorithm, else an HMAC key's own hash (§4.6: Cryptographic Parameters
// "Yes, except for HMAC derivation keys"), else for PBKDF2 PKCS#5's
// default PRF, HMAC-SHA-1.
func deriveHash(cp cryptoParams, baseAlg kmip14.CryptographicAlgorithm, m derive.Method) (func() hash.Hash, error) {
	if cp.hash == 0 {
		if h, ok := macHashes[baseAlg]; ok {
			return h.New, nil
		}
		if m == derive.PBKDF2 {
			return sha1.New, nil
		}
	}
	h, err := goHash(cp.hash, "Hashing Algorithm in the Derivation Parameters' Cryptographic Parameters")
	if err != nil {
		return nil, err
	}
	return h.New, nil
}

// derivePRF is the PRF of the NIST SP 800-108 methods: HMAC with the
// Hashing Algorithm (or an HMAC algorithm, named in the parameters or being
// the base key's), or CMAC with AES.
func derivePRF(cp cryptoParams, baseAlg kmip14.CryptographicAlgorithm) (derive.PRF, error) {
	switch {
	case cp.hash != 0:
		h, err := goHash(cp.hash, "Hashing Algorithm")
		if err != nil {
			return nil, err
		}
		return derive.HMACPRF(h.New), nil
	case cp.alg == kmip14.CryptographicAlgorithmAES:
		if cp.mode != 0 && cp.mode != kmip14.BlockCipherModeCMAC {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "an AES PRF is CMAC, not %s", cp.mode)
		}
		return cmacPRF, nil
	case cp.alg != 0:
		if h, ok := macHashes[cp.alg]; ok {
			return derive.HMACPRF(h.New), nil
		}
		return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "PRF %s not supported", cp.alg)
	}
	if h, ok := macHashes[baseAlg]; ok {
		return derive.HMACPRF(h.New), nil
	}
	return nil, Errorf(kmip14.ResultReasonInvalidMessage, "the NIST SP 800-108 methods need a PRF: a Hashing Algorithm (HMAC) or Cryptographic Algorithm AES (CMAC)")
}

func cmacPRF(key []byte) (hash.Hash, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "a CMAC-AES PRF needs a 16, 24 or 32-byte key")
	}
	return aesmodes.NewCMAC(b)
}

// deriveEncrypter is ENCRYPT's cipher: Encrypt's own symmetric code with
// the base key, the Derivation Parameters' mode and padding, and their IV.
// A derived key must be reproducible, so the server never draws the IV.
func (p *Processor) deriveEncrypter(ic *itemCtx, base *object.Object, alg kmip14.CryptographicAlgorithm, cp cryptoParams) (derive.Encrypter, error) {
	if cp.alg != 0 && cp.alg != alg {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Algorithm %s in the parameters does not match the base key's %s", cp.alg, alg)
	}
	if alg != kmip14.CryptographicAlgorithmAES && alg != kmip14.CryptographicAlgorithmDES3 {
		return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "ENCRYPT derivation with %s is not supported (AES and Triple DES are)", alg)
	}
	if cp.randomIV {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Random IV would make the derived key irreproducible")
	}
	return func(key, iv, data []byte) ([]byte, error) {
		if len(iv) == 0 && cp.mode != 0 && cp.mode != kmip14.BlockCipherModeECB {
			return nil, Errorf(kmip14.ResultReasonInvalidMessage, "ENCRYPT in %s needs an Initialization Vector", cp.mode)
		}
		req := tree.Struct(kmip14.TagRequestPayload)
		if len(iv) > 0 {
			req.Add(tree.Bytes(kmip14.TagIVCounterNonce, iv))
		}
		s, _, err := startSymmetric(p, ic, &opKey{o: base, alg: alg, sym: key}, cp, req, false)
		if err != nil {
			return nil, err
		}
		out, err := s.update(data)
		if err != nil {
			return nil, err
		}
		rest, _, err := s.final(req)
		if err != nil {
			return nil, err
		}
		return append(out, rest...), nil
	}, nil
}

// deriveError turns package derive's refusals into KMIP answers: a
// kmipops refusal from the cipher as it is, the rest Invalid Field. Both are
// the client's mistakes (logged at debug), and their messages name
// parameters, never values.
func deriveError(err error) error {
	var ke *Error
	if errors.As(err, &ke) {
		return ke
	}
	return Errorf(kmip14.ResultReasonInvalidField, "%s", strings.TrimPrefix(err.Error(), "derive: "))
}

// newDerivedObject builds the derived object from out: made by the server
// (Fresh) but not by its random number generator.
func (p *Processor) newDerivedObject(ic *itemCtx, r *deriveRequest, out []byte) (*object.Object, error) {
	material := append([]byte(nil), out...)
	attrs := r.attrs
	var body *tree.Node
	if r.ot == kmip14.ObjectTypeSymmetricKey {
		body = tree.Struct(kmip14.TagSymmetricKey, keyBlock(r.alg, r.bits, kmip14.KeyFormatTypeRaw, material))
		if _, _, mask, err := symmetricSpec(r.alg, r.bits, true); err == nil && !hasAttr(attrs, object.AttrUsageMask) {
			attrs = withDefaults(attrs, r.alg, r.bits, mask)
		}
	} else {
		body = secretDataBody(kmip14.SecretDataTypeSeed, kmip14.KeyFormatTypeOpaque, material)
	}
	return p.newServerObject(ic, r.ot, body, attrs)
}

func secretDataBody(t kmip14.SecretDataType, f kmip14.KeyFormatType, material []byte) *tree.Node {
	return tree.Struct(kmip14.TagSecretData,
		tree.Enum(kmip14.TagSecretDataType, uint32(t)),
		tree.Struct(kmip14.TagKeyBlock,
			tree.Enum(kmip14.TagKeyFormatType, uint32(f)),
			tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, material))))
}

// newServerObject is newObject for material the server computed from other
// objects (derived, joined): Fresh, without a Random Number Generator.
func (p *Processor) newServerObject(ic *itemCtx, typ kmip14.ObjectType, body *tree.Node, attrs []object.Attr) (*object.Object, error) {
	s := object.Spec{Type: typ, Body: body, Attrs: attrs, Now: ic.now, Generated: true, Group: p.assignedGroup()}
	if leasable(typ) {
		s.LeaseTime = p.opts.LeaseTime
	}
	return object.New(s)
}
