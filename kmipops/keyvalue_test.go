package kmipops

import (
	"testing"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// mdoBody is a Symmetric Key whose Key Block has no Key Value (KMIP 1.2
// §2.1.3): a meta-data only key.
func mdoBody() *tree.Node {
	return tree.Struct(kmip14.TagSymmetricKey, tree.Struct(kmip14.TagKeyBlock,
		tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)),
		tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmAES)),
		tree.Int(kmip14.TagCryptographicLength, 128)))
}

func mdoLocation(s string) *tree.Node {
	return attrNode("Key Value Location", tree.Struct(0,
		tree.Text(kmip14.TagKeyValueLocationValue, s),
		tree.Enum(kmip14.TagKeyValueLocationType, uint32(kmip14.KeyValueLocationTypeUninterpretedTextString))))
}

// regMDO registers an Active meta-data only AES key with every usage the
// refusal tests need.
func (e *env) regMDO(c Caller) string {
	e.t.Helper()
	return text(e.t, okPayload(e.t, e.do(c, register(kmip14.ObjectTypeSymmetricKey, mdoBody(), mdoLocation("HSM-1"), crActive(),
		crMask(kmip14.CryptographicUsageMaskEncrypt, kmip14.CryptographicUsageMaskDecrypt, kmip14.CryptographicUsageMaskMACGenerate,
			kmip14.CryptographicUsageMaskDeriveKey, kmip14.CryptographicUsageMaskWrapKey))), 0), kmip14.TagUniqueIdentifier)
}

func TestMetaDataOnlyKey(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.regMDO(alice)
	normal := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16))

	// Get serves the Key Block as registered: no Key Value.
	p := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0)
	kb := p.Path(kmip14.TagSymmetricKey, kmip14.TagKeyBlock)
	if kb == nil || kb.Child(kmip14.TagKeyValue) != nil || kb.Child(kmip14.TagCryptographicLength).Int != 128 {
		t.Fatalf("Get of a meta-data only key: %s", p)
	}

	a := e.getAttrs(alice, uid)
	if v := a["Key Value Present"]; len(v) != 1 || v[0].Int != 0 || v[0].Type != ttlv.TypeBoolean {
		t.Fatalf("Key Value Present %v, want one false", v)
	}
	if v := a["Key Value Location"]; len(v) != 1 || v[0].Child(kmip14.TagKeyValueLocationValue).Text != "HSM-1" {
		t.Fatalf("Key Value Location %v", v)
	}
	// No value, no digest of it; a registered key was not made now.
	for _, name := range []string{"Digest", "Original Creation Date"} {
		if a[name] != nil {
			t.Fatalf("meta-data only key has %s", name)
		}
	}
	// A key with its value says nothing (Key Value Present is set only when
	// the value is absent).
	if v := e.getAttrs(alice, normal)["Key Value Present"]; v != nil {
		t.Fatalf("key with a value has Key Value Present %v", v)
	}

	// Locate by Key Value Present finds the meta-data only key alone.
	loc := okPayload(t, e.do(alice, item(kmip14.OperationLocate, attrNode("Key Value Present", tree.Bool(0, false)))), 0)
	if ids := loc.All(kmip14.TagUniqueIdentifier); len(ids) != 1 || ids[0].Text != uid {
		t.Fatalf("Locate Key Value Present=false: %s", loc)
	}
	// Another owner does not see it.
	wantFail(t, e.do(bob, item(kmip14.OperationGet, uidF(uid))), 0, kmip14.ResultReasonItemNotFound)
}

// TestMetaDataOnlyKeyRefusals: every operation that needs the value says it
// is not present (KMIP 1.2+ Result Reason Key Value Not Present), whether the
// meta-data only key is the operand, the base key or the wrapping key.
func TestMetaDataOnlyKeyRefusals(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.regMDO(alice)
	other := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16),
		crMask(kmip14.CryptographicUsageMaskEncrypt, kmip14.CryptographicUsageMaskWrapKey))
	ecb := crParams(crMode(kmip14.BlockCipherModeECB))
	for name, req := range map[string]*tree.Node{
		"encrypt":         item(kmip14.OperationEncrypt, uidF(uid), ecb, crData(make([]byte, 16))),
		"decrypt":         item(kmip14.OperationDecrypt, uidF(uid), ecb, crData(make([]byte, 16))),
		"mac":             item(kmip14.OperationMAC, uidF(uid), crParams(crAlg(kmip14.CryptographicAlgorithmHMAC_SHA256)), crData([]byte("x"))),
		"get transparent": item(kmip14.OperationGet, uidF(uid), tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeTransparentSymmetricKey))),
		"get wrapped":     item(kmip14.OperationGet, uidF(uid), wrapSpecNode(other)),
		"wrapping key":    item(kmip14.OperationGet, uidF(other), wrapSpecNode(uid)),
		"derive":          deriveItem(kmip14.ObjectTypeSymmetricKey, []string{uid}, kmip14.DerivationMethodHMAC, dvParams(crHash(kmip14.HashingAlgorithmSHA_256), dvData([]byte("d"))), dvAlg(kmip14.CryptographicAlgorithmAES), dvLength(128)),
		"split":           splitItem(uid, 2, 2, kmip14.SplitKeyMethodXOR),
	} {
		t.Run(name, func(t *testing.T) { wantFail(t, e.do(alice, req), 0, kmip14.ResultReasonKeyValueNotPresent) })
	}
	// Get in the format it has is the Key Block as it is.
	okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid), tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)))), 0)
}

func TestMetaDataOnlyKeyRegister(t *testing.T) {
	e := newEnv(t, Options{})
	wrapped := mdoBody()
	wrapped.Child(kmip14.TagKeyBlock).Add(tree.Struct(kmip14.TagKeyWrappingData,
		tree.Enum(kmip14.TagWrappingMethod, uint32(kmip14.WrappingMethodEncrypt))))
	opaque := tree.Struct(kmip14.TagSecretData, tree.Enum(kmip14.TagSecretDataType, uint32(kmip14.SecretDataTypePassword)),
		tree.Struct(kmip14.TagKeyBlock, tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeOpaque))))
	for _, c := range []struct {
		name   string
		v      version
		req    *tree.Node
		reason kmip14.ResultReason // 0: success
	}{
		{"KMIP 1.2", version{1, 2}, register(kmip14.ObjectTypeSymmetricKey, mdoBody()), 0},
		{"Secret Data", version{1, 4}, register(kmip14.ObjectTypeSecretData, opaque), 0},
		// KMIP 1.0 and 1.1 require the Key Value.
		{"KMIP 1.1", version{1, 1}, register(kmip14.ObjectTypeSymmetricKey, mdoBody()), kmip14.ResultReasonInvalidMessage},
		{"KMIP 1.0", version{1, 0}, register(kmip14.ObjectTypeSymmetricKey, mdoBody()), kmip14.ResultReasonInvalidMessage},
		// Nothing can have been wrapped.
		{"wrapping data", version{1, 4}, register(kmip14.ObjectTypeSymmetricKey, wrapped), kmip14.ResultReasonInvalidMessage},
		// Key Value Present is the server's to set.
		{"client's Key Value Present", version{1, 4}, register(kmip14.ObjectTypeSymmetricKey, mdoBody(), attrNode("Key Value Present", tree.Bool(0, false))), kmip14.ResultReasonInvalidField},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := e.send(alice, reqMsg(c.v, c.req))
			if c.reason != 0 {
				wantFail(t, resp, 0, c.reason)
				return
			}
			uid := text(t, okPayload(t, resp, 0), kmip14.TagUniqueIdentifier)
			if v := e.getAttrs(alice, uid, "Key Value Present")["Key Value Present"]; len(v) != 1 || v[0].Int != 0 || v[0].Type != ttlv.TypeBoolean {
				t.Fatalf("Key Value Present %v", v)
			}
		})
	}
}
