package kmipops

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/internal/secp256k1"
	"github.com/kmipd/kmipd/kmipops/object"
)

// keyUse is what an operation does with a key, for the checks of KMIP 1.4
// §3.19 (Cryptographic Usage Mask), §3.22 (State), §3.25–3.26 (Process
// Start and Protect Stop Dates) and §3.21 (Usage Limits).
type keyUse struct {
	mask kmip14.CryptographicUsageMask
	// protect marks operations that apply protection (Encrypt, Sign, MAC):
	// refused once the key is Deactivated or Compromised or past its Protect
	// Stop Date, and counted against Usage Limits. The others process
	// protected data (Decrypt, verify) and are refused before the Process
	// Start Date instead.
	protect bool
}

var (
	useEncrypt   = keyUse{kmip14.CryptographicUsageMaskEncrypt, true}
	useDecrypt   = keyUse{kmip14.CryptographicUsageMaskDecrypt, false}
	useSign      = keyUse{kmip14.CryptographicUsageMaskSign, true}
	useVerify    = keyUse{kmip14.CryptographicUsageMaskVerify, false}
	useMAC       = keyUse{kmip14.CryptographicUsageMaskMACGenerate, true}
	useMACVerify = keyUse{kmip14.CryptographicUsageMaskMACVerify, false}
)

// opKey is a managed key opened for one cryptographic operation. It lives
// for one batch item (or one stream part): the object is loaded from the
// store and opened with the owner's cached pKEK, so no HSM call is made.
type opKey struct {
	o   *object.Object
	alg kmip14.CryptographicAlgorithm
	sym []byte // symmetric key material
	// priv is *rsa.PrivateKey, *ecdsa.PrivateKey or *secp256k1.PrivateKey;
	// pub is the public half (*rsa.PublicKey, *ecdsa.PublicKey or
	// *secp256k1.PublicKey), set for both key types.
	priv any
	pub  any
}

// wipe clears the symmetric key bytes: keyMaterial's own copy (the object's
// body is read-only, and hands out copies). Best effort, as Go may have
// copied them elsewhere.
func (k *opKey) wipe() {
	if k != nil {
		clear(k.sym)
	}
}

// useKey loads the caller's key uid and checks that it may be used as u now.
func (p *Processor) useKey(ic *itemCtx, uid string, u keyUse) (*opKey, error) {
	o, err := ic.objects.Load(ic.ctx, uid)
	if err != nil {
		return nil, err
	}
	if err := checkUsable(o, u, ic.now); err != nil {
		return nil, err
	}
	return keyMaterial(o)
}

// checkUsable applies the state, date and usage-mask rules. A refusal is
// Permission Denied, as the OASIS CS-BC-M-14 and CS-AC-M-8 cases show (KMIP
// 1.4 has no Incompatible Cryptographic Usage Mask reason; 2.0 added it).
func checkUsable(o *object.Object, u keyUse, now time.Time) error {
	// The time-driven transition is applied in memory only: the hot path
	// writes nothing, and the next Get or attribute read persists it.
	o.AdvanceState(now)
	if o.Destroyed() || !o.Body().Present() {
		return Errorf(kmip14.ResultReasonItemNotFound, "object has been destroyed")
	}
	switch o.Type() {
	case kmip14.ObjectTypeSymmetricKey, kmip14.ObjectTypePrivateKey, kmip14.ObjectTypePublicKey:
	default:
		return Errorf(kmip14.ResultReasonInvalidField, "a %s is not a key for cryptographic operations", o.Type())
	}
	s := o.State()
	switch {
	case s == kmip14.StateActive:
	case !u.protect && (s == kmip14.StateDeactivated || s == kmip14.StateCompromised):
		// §3.22: such a key may still process protected data.
	default:
		return Errorf(kmip14.ResultReasonPermissionDenied, "key is %s", s)
	}
	if u.protect {
		if d, ok := o.ProtectStopDate(); ok && !now.Before(d) {
			return Errorf(kmip14.ResultReasonPermissionDenied, "key is past its Protect Stop Date")
		}
	} else if d, ok := o.ProcessStartDate(); ok && now.Before(d) {
		return Errorf(kmip14.ResultReasonPermissionDenied, "key is before its Process Start Date")
	}
	if m, ok := o.UsageMask(); !ok || m&u.mask == 0 {
		return Errorf(kmip14.ResultReasonPermissionDenied, "Cryptographic Usage Mask does not allow %s", u.mask)
	}
	return nil
}

// keyMaterial extracts the usable key from the object's key block. The key
// bytes are copies (tree.View), so wipe clears nothing the object holds.
func keyMaterial(o *object.Object) (*opKey, error) {
	kb := o.Body().Child(kmip14.TagKeyBlock)
	if !kb.Present() {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "object has no Key Block")
	}
	if kb.Child(kmip14.TagKeyWrappingData).Present() {
		return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "key is stored wrapped and cannot be used")
	}
	if err := requireKeyValue(kb); err != nil {
		return nil, err
	}
	k := &opKey{o: o}
	if a, ok := o.CryptographicAlgorithm(); ok {
		k.alg = a
	} else if a, ok := kb.Child(kmip14.TagCryptographicAlgorithm).EnumValue(); ok {
		k.alg = kmip14.CryptographicAlgorithm(a)
	}
	f, _ := kb.Child(kmip14.TagKeyFormatType).EnumValue()
	format := kmip14.KeyFormatType(f)
	km := kb.Path(kmip14.TagKeyValue, kmip14.TagKeyMaterial)
	unsupported := Errorf(kmip14.ResultReasonKeyFormatTypeNotSupported, "keys in %s format cannot be used for cryptographic operations", format)
	if o.Type() == kmip14.ObjectTypeSymmetricKey {
		var ok bool
		switch format {
		case kmip14.KeyFormatTypeRaw:
			k.sym, ok = km.BytesValue()
		case kmip14.KeyFormatTypeTransparentSymmetricKey:
			k.sym, ok = km.Child(kmip14.TagKey).BytesValue()
		default:
			return nil, unsupported
		}
		if !ok || len(k.sym) == 0 {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "key has no key material")
		}
		return k, nil
	}
	key, err := readAsymmetric(o.Type(), format, km)
	if errors.Is(err, errUnknownFormat) {
		return nil, unsupported
	}
	if err != nil {
		// Register stores material as given, so a client may have
		// registered bytes that are not what their format says; the parse
		// error never quotes key bytes, but stays in the log anyway.
		return nil, &Error{Reason: kmip14.ResultReasonCryptographicFailure, Msg: "key material does not parse", Err: err}
	}
	switch kk := key.(type) {
	case *rsa.PrivateKey:
		k.priv, k.pub = kk, &kk.PublicKey
	case *ecdsa.PrivateKey:
		k.priv, k.pub = kk, &kk.PublicKey
	case *secp256k1.PrivateKey:
		k.priv, k.pub = kk, kk.PublicKey()
	case *rsa.PublicKey, *ecdsa.PublicKey, *secp256k1.PublicKey:
		k.pub = kk
	default:
		return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "%T keys are not supported for cryptographic operations", key)
	}
	return k, nil
}

// isRSA and isEC tell the key family, whatever the algorithm attribute says
// (EC keys are recorded as EC or ECDSA).
func (k *opKey) isRSA() bool { _, ok := k.pub.(*rsa.PublicKey); return ok }
func (k *opKey) isEC() bool {
	switch k.pub.(type) {
	case *ecdsa.PublicKey, *secp256k1.PublicKey:
		return true
	}
	return false
}

// consumeUsage counts one use against the key's Usage Limits (KMIP 1.4
// §3.21), if it has any: n bytes for the Byte unit, one use per operation
// (first part of a stream) for the Object unit. The count lives in the
// sealed object, so this is a locked read-modify-write; keys without limits
// (the usual case) skip it and the hot path stays read-only.
func (p *Processor) consumeUsage(ic *itemCtx, k *opKey, n int64, first bool) error {
	if !k.o.UsageLimits().Present() {
		return nil
	}
	_, err := ic.objects.Update(ic.ctx, k.o.UID(), func(o *object.Object) (bool, error) {
		_, unit, ok := o.UsageRemaining()
		if !ok {
			return false, Errorf(kmip14.ResultReasonPermissionDenied, "Usage Limits without a Usage Limits Total")
		}
		if unit == kmip14.UsageLimitsUnitObject {
			n = 0
			if first {
				n = 1
			}
		}
		if !o.ConsumeUsage(n) {
			return false, Errorf(kmip14.ResultReasonPermissionDenied, "key Usage Limits exhausted")
		}
		return true, nil
	})
	return err
}
