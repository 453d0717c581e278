package kmipops

import (
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// TestGetAttributesNameTwice: from KMIP 1.1 on, an Attribute Name may be
// named once per GetAttributes (§4.11; OASIS TC-171-11/12: Invalid
// Message); a 1.0 request's repeat counts once.
func TestGetAttributesNameTwice(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.create(alice)
	twice := item(kmip14.OperationGetAttributes, uidF(uid),
		tree.Text(kmip14.TagAttributeName, "Object Type"), tree.Text(kmip14.TagAttributeName, "Object Type"))
	for _, v := range []version{{1, 1}, {1, 2}, {1, 4}} {
		e.v = v
		wantFail(t, e.do(alice, twice), 0, kmip14.ResultReasonInvalidMessage)
	}
	e.v = version{1, 0}
	if got := okPayload(t, e.do(alice, twice), 0).All(kmip14.TagAttribute); len(got) != 1 {
		t.Fatalf("1.0: %d attributes, want the one named", len(got))
	}
}
