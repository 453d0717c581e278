package kmipops

import (
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

func pgpKey(version *tree.Node, material []byte) *tree.Node {
	return tree.Struct(kmip14.TagPGPKey, version,
		keyBlock(kmip14.CryptographicAlgorithmRSA, 2048, kmip14.KeyFormatTypeRaw, material))
}

// PGP Key objects (KMIP 1.2 §2.2.9): a PGP Key Version and a Key Block of
// the key as the client has it (an armored key block in the OASIS
// TC-PGP-1-12 case), stored and served as registered.
func TestRegisterPGPKey(t *testing.T) {
	e := newEnv(t, Options{})
	armored := []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQENBFHA/dQBCADged9e6tib8klFhPpwSni1JseU\n-----END PGP PUBLIC KEY BLOCK-----\n")
	body := pgpKey(tree.Int(kmip14.TagPGPKeyVersion, 4), armored)
	uid := text(t, okPayload(t, e.do(alice, register(kmip14.ObjectTypePGPKey, body,
		attrNode("Alternative Name", tree.Struct(0, tree.Text(kmip14.TagAlternativeNameValue, "kmip3@kmip.com"),
			tree.Enum(kmip14.TagAlternativeNameType, uint32(kmip14.AlternativeNameTypeUninterpretedTextString)))))), 0), kmip14.TagUniqueIdentifier)
	g := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid), tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)))), 0)
	if ot, _ := g.Child(kmip14.TagObjectType).EnumValue(); kmip14.ObjectType(ot) != kmip14.ObjectTypePGPKey || !g.Child(kmip14.TagPGPKey).View().Equal(body.View()) {
		t.Fatalf("Get: %s", g)
	}
	a := e.getAttrs(alice, uid)
	if a["Cryptographic Algorithm"] == nil || a["Cryptographic Length"][0].Int != 2048 || a["Digest"] == nil || a["Alternative Name"] == nil {
		t.Errorf("attributes %v", a)
	}
	for name, c := range map[string]struct {
		body   *tree.Node
		v      version
		reason kmip14.ResultReason
	}{
		"no version":      {pgpKey(nil, armored), version{1, 2}, kmip14.ResultReasonInvalidMessage},
		"version as text": {pgpKey(tree.Text(kmip14.TagPGPKeyVersion, "4"), armored), version{1, 2}, kmip14.ResultReasonInvalidField},
		"before KMIP 1.2": {body, version{1, 1}, kmip14.ResultReasonInvalidField},
	} {
		t.Run(name, func(t *testing.T) {
			e.v = c.v
			defer func() { e.v = version{1, 4} }()
			wantFail(t, e.do(alice, register(kmip14.ObjectTypePGPKey, c.body)), 0, c.reason)
		})
	}
}
