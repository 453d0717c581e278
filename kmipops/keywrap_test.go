package kmipops

import (
	"bytes"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/internal/aesmodes"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// wrapKey answers the reasons KMIP clients see; the modes themselves are
// tested against their RFCs in aesmodes.
func TestWrapKeyReasons(t *testing.T) {
	kek := bytes.Repeat([]byte{0x42}, 32)
	for _, c := range []struct {
		mode   kmip14.BlockCipherMode
		kek    []byte
		n      int
		reason kmip14.ResultReason // 0: wraps
	}{
		{kmip14.BlockCipherModeNISTKeyWrap, kek, 32, 0},
		{kmip14.BlockCipherModeNISTKeyWrap, kek, 20, kmip14.ResultReasonInvalidField},
		{kmip14.BlockCipherModeNISTKeyWrap, kek, 8, kmip14.ResultReasonInvalidField},
		{kmip14.BlockCipherModeNISTKeyWrap, kek[:20], 32, kmip14.ResultReasonCryptographicFailure},
		{kmip14.BlockCipherModeAESKeyWrapPadding, kek, 20, 0},
		{kmip14.BlockCipherModeAESKeyWrapPadding, kek, 0, kmip14.ResultReasonInvalidField},
		{kmip14.BlockCipherModeAESKeyWrapPadding, kek[:7], 20, kmip14.ResultReasonCryptographicFailure},
	} {
		plain := bytes.Repeat([]byte{1}, c.n)
		w, err := wrapKey(c.mode, c.kek, plain)
		if c.reason == 0 {
			unwrap := aesmodes.Unwrap
			if c.mode == kmip14.BlockCipherModeAESKeyWrapPadding {
				unwrap = aesmodes.UnwrapPad
			}
			if back, uerr := unwrap(c.kek, w); err != nil || uerr != nil || !bytes.Equal(back, plain) {
				t.Errorf("%s, %d bytes: %v, %v", c.mode, c.n, err, uerr)
			}
		} else if ReasonOf(err) != c.reason || w != nil {
			t.Errorf("%s, %d-byte key, %d bytes: %v, want %s", c.mode, len(c.kek), c.n, err, c.reason)
		}
	}
}

// kwUnwrap is RFC 3394's unwrap, for checking what Get served.
func kwUnwrap(t *testing.T, kek, c []byte) []byte {
	t.Helper()
	p, err := aesmodes.Unwrap(kek, c)
	if err != nil {
		t.Fatalf("unwrap: %v", err)
	}
	return p
}

func wrapSpecNode(uid string, fields ...*tree.Node) *tree.Node {
	eki := tree.Struct(kmip14.TagEncryptionKeyInformation, uidF(uid))
	spec := tree.Struct(kmip14.TagKeyWrappingSpecification,
		tree.Enum(kmip14.TagWrappingMethod, uint32(kmip14.WrappingMethodEncrypt)), eki)
	for _, f := range fields {
		if f.Tag == kmip14.TagCryptographicParameters {
			eki.Add(f)
		} else {
			spec.Add(f)
		}
	}
	return spec
}

func TestGetWrapped(t *testing.T) {
	e := newEnv(t, Options{})
	kekMat := bytes.Repeat([]byte{0x42}, 32)
	wrapMask := attrNode("Cryptographic Usage Mask", tree.Int(0, int32(kmip14.CryptographicUsageMaskWrapKey)))
	reg := register(kmip14.ObjectTypeSymmetricKey, keyBody(kmip14.TagSymmetricKey, kmip14.KeyFormatTypeRaw, kmip14.CryptographicAlgorithmAES, 256, kekMat))
	reg.Child(kmip14.TagRequestPayload).Child(kmip14.TagTemplateAttribute).Add(wrapMask)
	kek := text(t, okPayload(t, e.do(alice, reg), 0), kmip14.TagUniqueIdentifier)
	// A Sensitive key: never served in the clear, served wrapped.
	uid := e.create(alice, attrNode("Sensitive", tree.Bool(0, true)))
	get := func(c Caller, fields ...*tree.Node) *tree.Node {
		return e.do(c, item(kmip14.OperationGet, append([]*tree.Node{uidF(uid)}, fields...)...))
	}
	// The wrapping key must be Active first.
	wantFail(t, get(alice, wrapSpecNode(kek)), 0, kmip14.ResultReasonPermissionDenied)
	if f, _ := e.getAttrs(alice, uid, "Fresh")["Fresh"][0].BoolValue(); !f {
		t.Fatal("a refused Get made the key not Fresh")
	}
	okPayload(t, e.do(alice, item(kmip14.OperationActivate, uidF(kek))), 0)

	p := okPayload(t, get(alice, wrapSpecNode(kek)), 0)
	kb := p.Path(kmip14.TagSymmetricKey, kmip14.TagKeyBlock)
	kwd := kb.Child(kmip14.TagKeyWrappingData)
	if m, _ := kwd.Child(kmip14.TagWrappingMethod).EnumValue(); m != uint32(kmip14.WrappingMethodEncrypt) ||
		text(t, kwd.Child(kmip14.TagEncryptionKeyInformation), kmip14.TagUniqueIdentifier) != kek ||
		kwd.Path(kmip14.TagEncryptionKeyInformation, kmip14.TagCryptographicParameters, kmip14.TagBlockCipherMode).Int != int64(kmip14.BlockCipherModeNISTKeyWrap) {
		t.Fatalf("Key Wrapping Data %s", kwd)
	}
	// Default encoding: the TTLV Key Value structure, wrapped.
	wrapped, ok := kb.Child(kmip14.TagKeyValue).BytesValue()
	if !ok {
		t.Fatalf("Key Value not a byte string: %s", kb)
	}
	kv, err := tree.Decode(kwUnwrap(t, kekMat, wrapped), tree.DefaultLimits)
	if err != nil || kv.Tag != kmip14.TagKeyValue || len(kv.Child(kmip14.TagKeyMaterial).Bytes) != 32 {
		t.Fatalf("unwrapped %v, %v", kv, err)
	}
	if f, _ := e.getAttrs(alice, uid, "Fresh")["Fresh"][0].BoolValue(); f {
		t.Fatal("served key still Fresh")
	}
	// No Encoding: the key material alone; and the same key each time.
	p = okPayload(t, get(alice, wrapSpecNode(kek, tree.Enum(kmip14.TagEncodingOption, uint32(kmip14.EncodingOptionNoEncoding)))), 0)
	raw := kwUnwrap(t, kekMat, p.Path(kmip14.TagSymmetricKey, kmip14.TagKeyBlock, kmip14.TagKeyValue).Bytes)
	if !bytes.Equal(raw, kv.Child(kmip14.TagKeyMaterial).Bytes) {
		t.Fatal("No Encoding wrapped other bytes")
	}
	// Refusals.
	cp := func(m kmip14.BlockCipherMode) *tree.Node {
		return tree.Struct(kmip14.TagCryptographicParameters, tree.Enum(kmip14.TagBlockCipherMode, uint32(m)))
	}
	wantFail(t, get(alice, wrapSpecNode(kek, cp(kmip14.BlockCipherModeCBC))), 0, kmip14.ResultReasonFeatureNotSupported)
	wantFail(t, get(alice, wrapSpecNode(uid)), 0, kmip14.ResultReasonInvalidField)           // itself
	wantFail(t, get(alice, wrapSpecNode("no-such-key")), 0, kmip14.ResultReasonItemNotFound) // unknown
	bobKek := text(t, okPayload(t, e.do(bob, reg), 0), kmip14.TagUniqueIdentifier)
	okPayload(t, e.do(bob, item(kmip14.OperationActivate, uidF(bobKek))), 0)
	wantFail(t, get(alice, wrapSpecNode(bobKek)), 0, kmip14.ResultReasonItemNotFound)             // another owner's key
	other := e.create(alice, attrNode("Activation Date", tree.Time(0, e.p.opts.Now().Add(-1e9)))) // Active, Encrypt|Decrypt only
	wantFail(t, get(alice, wrapSpecNode(other)), 0, kmip14.ResultReasonPermissionDenied)          // no Wrap Key usage
	macSpec := tree.Struct(kmip14.TagKeyWrappingSpecification, tree.Enum(kmip14.TagWrappingMethod, uint32(kmip14.WrappingMethodMACSign)))
	wantFail(t, get(alice, macSpec), 0, kmip14.ResultReasonFeatureNotSupported)
}
