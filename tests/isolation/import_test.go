package isolation_test

import (
	"bytes"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/tests/hostile"
)

// importSecret is Bob's Import of a secret under uid, in KMIP 1.4's
// shape (§4.41, Table 253: bare Attributes, the object's tag its type).
func importSecret(uid string, replace bool) *tree.Node {
	return hostile.Item(kmip14.OperationImport, hostile.UID(uid),
		tree.Bool(kmip14.TagReplaceExisting, replace),
		hostile.Attr("Object Type", tree.Enum(0, uint32(kmip14.ObjectTypeSecretData))),
		hostile.Name("bob's import"),
		tree.Struct(kmip14.TagSecretData,
			tree.Enum(kmip14.TagSecretDataType, uint32(kmip14.SecretDataTypePassword)),
			tree.Struct(kmip14.TagKeyBlock, tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeOpaque)),
				tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, []byte("bob's secret"))))))
}

// TestImportIsolated: Import's uid is the client's choice, in its own
// namespace. Bob importing under each of Alice's uids, and spellings of
// them that try to leave his namespace, with and without Replace
// Existing, is answered exactly as the same Import of a uid nobody has
// (uid aside), and Alice's records stay byte for byte as they were.
func TestImportIsolated(t *testing.T) {
	e := hostile.StartServer(t, hostile.Options{})
	a, b := e.Dial(alice), e.Dial(bob)
	victim := makeObjects(t, a, "alice")
	before := snapshot(t, e, e.Owners[alice])
	spellings := func(uid string) []string { return append([]string{uid}, traversals(e.Owners[alice], uid)...) }
	for _, replace := range []bool{false, true} {
		for kind, uid := range victim {
			nobody := randomUID()
			theirs, nobodys := spellings(uid), spellings(nobody)
			for i := range theirs {
				got := roundTrip(t, b, hostile.Request(importSecret(theirs[i], replace)))
				ref := roundTrip(t, b, hostile.Request(importSecret(nobodys[i], replace)))
				// Same answer once each names its own uid alike.
				gb := bytes.ReplaceAll(normalized(got), []byte(theirs[i]), []byte("UID"))
				rb := bytes.ReplaceAll(normalized(ref), []byte(nobodys[i]), []byte("UID"))
				if !bytes.Equal(gb, rb) {
					t.Fatalf("Import of Alice's %s as %q (replace %v) answered %v; of a uid nobody has, %v",
						kind, theirs[i], replace, hostile.Results(got), hostile.Results(ref))
				}
			}
			// Bob's object under her uid is his; hers is untouched.
			g := hostile.WantOK(t, b.One(t, hostile.Item(kmip14.OperationGet, hostile.UID(uid))))
			if !bytes.Contains(tree.MustEncode(g), []byte("bob's secret")) {
				t.Fatalf("Bob's Get of his import under %s: %s", uid, g)
			}
		}
	}
	sameSnapshot(t, before, snapshot(t, e, e.Owners[alice]))
	for _, kind := range []string{kindKey, kindActive, kindSecret} { // the named ones
		uid := victim[kind]
		g := hostile.WantOK(t, a.One(t, hostile.Item(kmip14.OperationGetAttributes, hostile.UID(uid), tree.Text(kmip14.TagAttributeName, "Name"))))
		if !bytes.Contains(tree.MustEncode(g), []byte("alice "+kind)) {
			t.Fatalf("Alice's %s lost its name: %s", kind, g)
		}
	}
}
