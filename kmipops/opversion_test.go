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
// ovh/kmip-go suite: Hash in a KMIP 1.0 message was performed. Discover
// Versions, the negotiation, is answered under every version.
func TestOperationVersions(t *testing.T) {
	e := newEnv(t, Options{})
	hash := item(kmip14.OperationHash, tree.Struct(kmip14.TagCryptographicParameters,
		tree.Enum(kmip14.TagHashingAlgorithm, uint32(kmip14.HashingAlgorithmSHA_256))), tree.Bytes(kmip14.TagData, []byte("x")))
	rng := item(kmip14.OperationRNGRetrieve, tree.Int(kmip14.TagDataLength, 8))
	dv := item(kmip14.OperationDiscoverVersions)
	for _, c := range []struct {
		it    *tree.Node
		since int32
	}{{hash, 2}, {rng, 2}, {dv, 0}} {
		for minor := int32(0); minor <= 4; minor++ {
			e.v = version{1, minor}
			resp := e.do(alice, c.it)
			if minor < c.since {
				if m := wantFail(t, resp, 0, kmip14.ResultReasonOperationNotSupported); !strings.Contains(m, "needs KMIP 1.") {
					t.Errorf("1.%d: refused for %q", minor, m)
				}
				continue
			}
			p := okPayload(t, resp, 0)
			if c.it == dv {
				// The whole list, newest first, whatever version asked.
				vs := p.All(kmip14.TagProtocolVersion)
				if len(vs) != len(supportedVersions) {
					t.Fatalf("1.%d: Discover Versions lists %d versions, want %d", minor, len(vs), len(supportedVersions))
				}
				if v, _ := vs[0].Child(kmip14.TagProtocolVersionMinor).IntValue(); v != 4 {
					t.Errorf("1.%d: Discover Versions lists 1.%d first", minor, v)
				}
			}
		}
	}
}
