package kmipops

import (
	"strings"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// TestOperationVersions: an operation a request's protocol version does not
// define is Operation Not Supported (what Query at that version says), and
// the same request at the version that added it is served. Found by the
// ovh/kmip-go suite: Hash in a KMIP 1.0 message was performed.
func TestOperationVersions(t *testing.T) {
	e := newEnv(t, Options{})
	hash := item(kmip14.OperationHash, tree.Struct(kmip14.TagCryptographicParameters,
		tree.Enum(kmip14.TagHashingAlgorithm, uint32(kmip14.HashingAlgorithmSHA_256))), tree.Bytes(kmip14.TagData, []byte("x")))
	rng := item(kmip14.OperationRNGRetrieve, tree.Int(kmip14.TagDataLength, 8))
	dv := item(kmip14.OperationDiscoverVersions)
	for _, c := range []struct {
		it    *tree.Node
		since int32
	}{{hash, 2}, {rng, 2}, {dv, 1}} {
		for minor := int32(0); minor <= 4; minor++ {
			e.v = version{1, minor}
			resp := e.do(alice, c.it)
			if minor < c.since {
				if m := wantFail(t, resp, 0, kmip14.ResultReasonOperationNotSupported); !strings.Contains(m, "needs KMIP 1.") {
					t.Errorf("1.%d: refused for %q", minor, m)
				}
				continue
			}
			okPayload(t, resp, 0)
		}
	}
}
