package conformance

import (
	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// An object a Group Member Fresh Locate returned. KMIP 1.1-1.4 §4.9: a
// Locate whose Object Group Member is Group Member Fresh asks for a member
// of the group no client has retrieved yet, and when the group has none the
// server MAY generate a new object on the fly, by server policy. That is the
// one Locate that may answer with an object the server just made, key
// material included; TC-151-11/12 then Get it and record the reference
// server's random key. So an identifier such a Locate binds counts as
// generated (compare.go `generates`: key material and digests by length),
// but only when neither this case nor an earlier case of the run has bound
// that identifier before: an object the client registered, or one any
// earlier step returned, existed already and stays exact. Every other
// Locate, Group Member Default included, returns existing objects, and its
// identifiers are compared as bound.

// locatesFresh reports whether a request batch item is a Locate with
// Object Group Member = Group Member Fresh.
func locatesFresh(reqItem *tree.Node) bool {
	if reqItem == nil {
		return false
	}
	op, _ := reqItem.Child(kmip14.TagOperation).EnumValue()
	member, ok := reqItem.Path(kmip14.TagRequestPayload, kmip14.TagObjectGroupMember).EnumValue()
	return ok && op == uint32(kmip14.OperationLocate) && member == uint32(kmip14.ObjectGroupMemberGroupMemberFresh)
}

// freshlyMade reports whether got, a Unique Identifier about to be bound in
// the answer to the batch item being compared, may name an object a Group
// Member Fresh Locate made: the item answers such a Locate, and no
// placeholder of the case or of an earlier case of the run took that value.
func (c *comparer) freshlyMade(tag ttlv.Tag, got *tree.Node) bool {
	if tag != kmip14.TagUniqueIdentifier || got.Type != ttlv.TypeTextString || c.op != uint32(kmip14.OperationLocate) || !locatesFresh(c.reqItem) {
		return false
	}
	return !c.b.boundText(got) && !c.b.Run.boundValue(got)
}

// boundText reports whether a placeholder of the case is bound to the text v.
func (b *Bindings) boundText(v *tree.Node) bool {
	for _, x := range b.Values {
		if x.Type == ttlv.TypeTextString && x.Text == v.Text {
			return true
		}
	}
	return false
}
