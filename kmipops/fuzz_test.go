package kmipops

import (
	"context"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// FuzzProcess feeds decoded request trees through Process with a real store
// and Keyring: whatever arrives, Process must answer with an encodable
// ResponseMessage and never panic.
func FuzzProcess(f *testing.F) {
	e := newEnv(f, Options{})
	uid := e.create(alice)
	dk := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16), crMask(kmip14.CryptographicUsageMaskDeriveKey))
	v := version{1, 4}
	seeds := []*tree.Node{
		reqMsg(v, item(kmip14.OperationQuery, tree.Enum(kmip14.TagQueryFunction, 1), tree.Enum(kmip14.TagQueryFunction, 3))),
		reqMsg(v, item(kmip14.OperationDiscoverVersions)),
		reqMsg(v, createAES(256, nameAttr("fuzz"), attrNode("x-a", tree.Int(0, 1)))),
		reqMsg(v, item(kmip14.OperationCreateKeyPair, template(kmip14.TagCommonTemplateAttribute,
			attrNode("Cryptographic Algorithm", tree.Enum(0, uint32(kmip14.CryptographicAlgorithmEC))),
			attrNode("Cryptographic Length", tree.Int(0, 256))))),
		reqMsg(v, register(kmip14.ObjectTypeOpaqueObject, tree.Struct(kmip14.TagOpaqueObject,
			tree.Enum(kmip14.TagOpaqueDataType, 0x80000001), tree.Bytes(kmip14.TagOpaqueDataValue, []byte("x"))))),
		reqMsg(v, item(kmip14.OperationGet, uidF(uid), tree.Enum(kmip14.TagKeyFormatType, 7))),
		reqMsg(v, item(kmip14.OperationGetAttributes, uidF(uid), tree.Text(kmip14.TagAttributeName, "State"))),
		reqMsg(v, item(kmip14.OperationGetAttributeList, uidF(uid))),
		reqMsg(v, item(kmip14.OperationAddAttribute, uidF(uid), attrNode("x-b", tree.Text(0, "v")))),
		reqMsg(v, item(kmip14.OperationModifyAttribute, uidF(uid), attrNode("x-b", tree.Text(0, "w")))),
		reqMsg(v, item(kmip14.OperationDeleteAttribute, uidF(uid), tree.Text(kmip14.TagAttributeName, "x-b"))),
		reqMsg(v, item(kmip14.OperationLocate, tree.Int(kmip14.TagMaximumItems, 2), nameAttr("fuzz"))),
		reqMsg(v, createAES(128), item(kmip14.OperationActivate), item(kmip14.OperationRevoke,
			tree.Struct(kmip14.TagRevocationReason, tree.Enum(kmip14.TagRevocationReasonCode, 2))), item(kmip14.OperationDestroy)),
		reqMsg(v, deriveItem(kmip14.ObjectTypeSecretData, []string{dk}, kmip14.DerivationMethodNIST800_108_C,
			dvParams(crParams(crHash(kmip14.HashingAlgorithmSHA_256)), dvData([]byte("ctx"))), dvLength(256))),
		reqMsg(v, splitItem(uid, 3, 2, kmip14.SplitKeyMethodPolynomialSharingGF2_8), item(kmip14.OperationGet),
			joinItem(kmip14.ObjectTypeSymmetricKey, nil)),
	}
	for _, s := range seeds {
		f.Add(tree.MustEncode(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := tree.Decode(b, tree.DefaultLimits)
		if err != nil {
			return
		}
		resp := e.p.Process(context.Background(), alice, req)
		if resp == nil || resp.Tag != kmip14.TagResponseMessage {
			t.Fatalf("no ResponseMessage")
		}
		if _, err := tree.Encode(resp); err != nil {
			t.Fatalf("response does not encode: %v", err)
		}
	})
}
