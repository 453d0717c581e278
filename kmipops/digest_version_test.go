package kmipops

import (
	"bytes"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// The Digest of a registered raw AES key (OASIS TC-181-11: SHA-256 of the
// Key Material, 6c064fe0…) carries its Key Format Type from KMIP 1.1 on; a
// KMIP 1.0 client, whose Digest has no such field, gets the value without
// it (OASIS SKLC-M-1-10 and the other 1.0 profile cases).
func TestDigestPerVersion(t *testing.T) {
	e := newEnv(t, Options{})
	key := mustHex(t, "0000111122223333444455556666777788889999aaaabbbbccccddddeeeeffff")
	want := mustHex(t, "6c064fe051add11edc07727b594eb48711df843e08445bba2cd786bc16bc58e8")
	uid := text(t, okPayload(t, e.do(alice, register(kmip14.ObjectTypeSymmetricKey,
		keyBody(kmip14.TagSymmetricKey, kmip14.KeyFormatTypeRaw, kmip14.CryptographicAlgorithmAES, 256, key))), 0), kmip14.TagUniqueIdentifier)
	for _, c := range []struct {
		v      version
		hasKFT bool
	}{{version{1, 0}, false}, {version{1, 1}, true}, {version{1, 4}, true}, {version{1, 0}, false}} {
		e.v = c.v
		for _, named := range []bool{true, false} {
			var d []*tree.Node
			if named {
				d = e.getAttrs(alice, uid, "Digest")["Digest"]
			} else {
				d = e.getAttrs(alice, uid)["Digest"]
			}
			if len(d) != 1 {
				t.Fatalf("%s: %d digests", c.v, len(d))
			}
			if v, _ := d[0].Child(kmip14.TagDigestValue).BytesValue(); !bytes.Equal(v, want) {
				t.Errorf("%s: Digest Value %x, want %x", c.v, v, want)
			}
			if h, _ := d[0].Child(kmip14.TagHashingAlgorithm).EnumValue(); kmip14.HashingAlgorithm(h) != kmip14.HashingAlgorithmSHA_256 {
				t.Errorf("%s: hashing algorithm %d", c.v, h)
			}
			kft := d[0].Child(kmip14.TagKeyFormatType)
			if (kft != nil) != c.hasKFT || (kft != nil && kmip14.KeyFormatType(kft.Int) != kmip14.KeyFormatTypeRaw) {
				t.Errorf("%s (named %v): Key Format Type %v", c.v, named, kft)
			}
		}
	}
}
