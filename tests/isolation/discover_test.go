package isolation_test

import (
	"bytes"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/tests/hostile"
)

// TestLocateDiscoversNothingOfOthers: whatever Bob searches for — Alice's
// names, her uids as attribute values, her custom attributes, her key's
// digest, object types only she has — he finds only his own objects, and
// Located Items counts only his. Alice's identical searches find hers,
// which shows the criteria would match.
func TestLocateDiscoversNothingOfOthers(t *testing.T) {
	e := hostile.StartServer(t, hostile.Options{})
	a, b := e.Dial(alice), e.Dial(bob)
	victim := makeObjects(t, a, "alice")
	bobKey := b.MustUID(t, hostile.CreateAES(128, hostile.Name("bob only")))
	digest := hostile.WantOK(t, a.One(t, hostile.Item(kmip14.OperationGetAttributes,
		hostile.UID(victim[kindKey]), tree.Text(kmip14.TagAttributeName, "Digest"))))
	digestValue := digest.Child(kmip14.TagAttribute).Child(kmip14.TagAttributeValue)
	before := snapshot(t, e, e.Owners[alice])

	objType := func(t kmip14.ObjectType) *tree.Node { return hostile.Attr("Object Type", tree.Enum(0, uint32(t))) }
	searches := map[string]struct {
		criteria []*tree.Node
		aliceHas bool // Alice's own search must find something
	}{
		"everything":                {nil, true},
		"her name":                  {[]*tree.Node{hostile.Name("alice " + kindKey)}, true},
		"her uid as an attribute":   {[]*tree.Node{hostile.Attr("Unique Identifier", tree.Text(0, victim[kindSecret]))}, true},
		"her custom attribute":      {[]*tree.Node{hostile.Attr("x-owner", tree.Text(0, "alice"))}, true},
		"her key's digest":          {[]*tree.Node{hostile.Attr("Digest", digestValue.Clone())}, true},
		"private keys":              {[]*tree.Node{objType(kmip14.ObjectTypePrivateKey)}, true},
		"secret data":               {[]*tree.Node{objType(kmip14.ObjectTypeSecretData)}, true},
		"active objects":            {[]*tree.Node{hostile.Attr("State", tree.Enum(0, uint32(kmip14.StateActive)))}, true},
		"paged, with Located Items": {[]*tree.Node{tree.Int(kmip14.TagMaximumItems, 1000), tree.Int(kmip14.TagOffsetItems, 0)}, true},
		"offset past his objects":   {[]*tree.Node{tree.Int(kmip14.TagMaximumItems, 1), tree.Int(kmip14.TagOffsetItems, 1)}, true},
	}
	for name, s := range searches {
		t.Run(name, func(t *testing.T) {
			req := func() *tree.Node { return hostile.Item(kmip14.OperationLocate, cloneAll(s.criteria)...) }
			p := hostile.WantOK(t, b.One(t, req()))
			for _, n := range p.All(kmip14.TagUniqueIdentifier) {
				if n.Text != bobKey {
					t.Fatalf("Bob's Locate returned %s, which is not his", n.Text)
				}
			}
			if li, ok := p.Child(kmip14.TagLocatedItems).IntValue(); ok && li > 1 {
				t.Fatalf("Located Items = %d; Bob has one object", li)
			}
			leaks(t, p, victim)
			if s.aliceHas {
				if len(hostile.WantOK(t, a.One(t, req())).All(kmip14.TagUniqueIdentifier)) == 0 {
					t.Fatalf("Alice's own search finds nothing: the criteria are not meaningful")
				}
			}
		})
	}
	sameSnapshot(t, before, snapshot(t, e, e.Owners[alice]))
}

// TestStreamsAreOwned: a multi-part operation's Correlation Value is as
// private as a uid. Bob presenting Alice's gets the answer an unknown value
// gets, and her stream survives his attempt.
func TestStreamsAreOwned(t *testing.T) {
	e := hostile.StartServer(t, hostile.Options{})
	a, b := e.Dial(alice), e.Dial(bob)
	uid := makeObjects(t, a, "alice")[kindActive]
	if !offers(t, a, kmip14.OperationEncrypt) {
		t.Skip("the server does not implement Encrypt")
	}
	first := hostile.WantOK(t, a.One(t, hostile.Item(kmip14.OperationEncrypt, hostile.UID(uid), ecb.Clone(), block.Clone(),
		tree.Bool(kmip14.TagInitIndicator, true))))
	cv, ok := first.Child(kmip14.TagCorrelationValue).BytesValue()
	if !ok {
		t.Fatalf("no Correlation Value for a stream: %v", first)
	}
	next := func(cv []byte) *tree.Node {
		return hostile.Request(hostile.Item(kmip14.OperationEncrypt, block.Clone(),
			tree.Bytes(kmip14.TagCorrelationValue, cv), tree.Bool(kmip14.TagFinalIndicator, true)))
	}
	got := roundTrip(t, b, next(cv))
	unknown := roundTrip(t, b, next(bytes.Repeat([]byte{0x5a}, len(cv))))
	if !bytes.Equal(normalized(got), normalized(unknown)) {
		t.Fatalf("Alice's stream is answered differently from an unknown one:\n%v\n%v", hostile.Results(got), hostile.Results(unknown))
	}
	hostile.WantFailure(t, hostile.Only(t, got), kmip14.ResultReasonItemNotFound)
	// Bob's attempt did not end (or touch) Alice's stream.
	fin := hostile.WantOK(t, hostile.Only(t, roundTrip(t, a, next(cv))))
	if d, _ := fin.Child(kmip14.TagData).BytesValue(); len(d) != 16 {
		t.Fatalf("Alice's stream finished with %d bytes, want 16", len(d))
	}
}

func offers(t *testing.T, c *hostile.Conn, op kmip14.Operation) bool {
	for _, o := range supported(t, c) {
		if o == op {
			return true
		}
	}
	return false
}
