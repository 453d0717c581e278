package conformance

import (
	"fmt"
	"strings"

	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Split Key parts a server made. Create Split Key (§4.38) splits a key into
// parts with a secret-sharing method: every share but the one that
// completes an XOR split is random, and the polynomial shares are values
// of a random polynomial. The OASIS cases record one draw of the reference
// server (TC-SJ-2/4-12 Get each part), so a part's Key Material compares
// by its length only. Narrower than the rule for generated keys (compare.go
// `generates`): nothing but a part's Key Material is relaxed (its Split Key
// Parts, Key Part Identifier, Threshold, Method, Prime Field Size,
// algorithm and length stay exact), and the key Join Split Key rebuilds from
// the parts is compared byte for byte, which checks the split.

// splitPartItem reports whether an expected batch item is about an object
// a Create Split Key of the case returned: its payload's Unique Identifier
// is a placeholder bound by that operation.
func splitPartItem(exp *Node, b *Bindings) bool {
	name, ok := payloadPlaceholder(exp)
	return ok && b.SplitParts[name]
}

// splitKeyMaterial is the path of a Split Key object's key material in a
// Get response: the one field the rule relaxes.
const splitKeyMaterial = "/ResponsePayload/SplitKey/KeyBlock/KeyValue/KeyMaterial"

// isSplitKeyMaterial: a literal Byte String at that path.
func isSplitKeyMaterial(path string, e *Node) bool {
	return e.Type == ttlv.TypeByteString && e.Lit != nil && strings.HasSuffix(path, splitKeyMaterial)
}

// checkSplitKeyMaterial: a Byte String of the recorded length.
func checkSplitKeyMaterial(path string, e *Node, g *tree.Node) *Mismatch {
	if g.Type != ttlv.TypeByteString || len(g.Bytes) != len(e.Lit.Bytes) {
		return &Mismatch{Path: path, Expected: fmt.Sprintf("%d bytes of a random key part (as recorded)", len(e.Lit.Bytes)),
			Got: format(g, e.Tag), Note: "a Create Split Key part is checked for its length"}
	}
	return nil
}
