package kmipops

import (
	"bytes"
	"crypto/aes"
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

func kwHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The vectors of RFC 3394 §4.1/§4.6 and RFC 5649 §6.
func TestKeyWrapVectors(t *testing.T) {
	for _, c := range []struct {
		name, kek, in, out string
		pad                bool
	}{
		{"3394 4.1", "000102030405060708090A0B0C0D0E0F", "00112233445566778899AABBCCDDEEFF", "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5", false},
		{"3394 4.6", "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
			"00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
			"28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21", false},
		{"5649 20 bytes", "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8", "c37b7e6492584340bed12207808941155068f738",
			"138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a", true},
		{"5649 7 bytes", "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8", "466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f", true},
	} {
		wrap := rfc3394Wrap
		if c.pad {
			wrap = rfc5649Wrap
		}
		got, err := wrap(kwHex(t, c.kek), kwHex(t, c.in))
		if err != nil || hex.EncodeToString(got) != c.out {
			t.Errorf("%s: %x, %v; want %s", c.name, got, err, c.out)
		}
	}
	if _, err := rfc3394Wrap(make([]byte, 16), make([]byte, 20)); ReasonOf(err) != kmip14.ResultReasonInvalidField {
		t.Errorf("KW of 20 bytes: %v", err)
	}
}

// kwUnwrap is RFC 3394's unwrap, for checking what Get served.
func kwUnwrap(t *testing.T, kek, c []byte) []byte {
	t.Helper()
	b, err := aes.NewCipher(kek)
	if err != nil {
		t.Fatal(err)
	}
	n := len(c)/8 - 1
	a := append([]byte(nil), c[:8]...)
	r := append([]byte(nil), c[8:]...)
	var buf [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			binary.BigEndian.PutUint64(buf[:8], binary.BigEndian.Uint64(a)^uint64(n*j+i))
			copy(buf[8:], r[8*(i-1):8*i])
			b.Decrypt(buf[:], buf[:])
			copy(a, buf[:8])
			copy(r[8*(i-1):8*i], buf[8:])
		}
	}
	if !bytes.Equal(a, rfc3394IV[:]) {
		t.Fatal("unwrap: integrity check failed")
	}
	return r
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
