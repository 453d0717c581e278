package kmipops

import (
	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// Get Usage Allocation (KMIP 1.4 §4.12) reserves part of a key's Usage
// Limits for protection the client applies itself, with a key it holds
// (Get): the server assumes the whole allocation is used, so it comes off
// the Usage Limits Count at once, as the server's own Encrypt, Sign and
// MAC take theirs (consumeUsage). Only a key that applies protection has
// an allocation to give, and only while it may: Active and before its
// Protect Stop Date.

// allocatable are the object types whose use Usage Limits count (§3.21).
func allocatable(t kmip14.ObjectType) bool {
	switch t {
	case kmip14.ObjectTypeSymmetricKey, kmip14.ObjectTypePrivateKey, kmip14.ObjectTypePublicKey,
		kmip14.ObjectTypeSplitKey, kmip14.ObjectTypePGPKey:
		return true
	}
	return false
}

func opGetUsageAllocation(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	uid, err := uidArg(ic, payload)
	if err != nil {
		return nil, err
	}
	n := payload.Child(kmip14.TagUsageLimitsCount)
	if n == nil {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing Usage Limits Count")
	}
	want, ok := n.LongValue()
	if !ok || want <= 0 {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Usage Limits Count must be a positive Long Integer")
	}
	return updateResp(ic, uid, func(o *object.Object) (bool, error) {
		o.AdvanceState(ic.now)
		mask, _ := o.UsageMask()
		if !allocatable(o.Type()) || o.Destroyed() || mask&^processUsages == 0 {
			return false, Errorf(kmip14.ResultReasonIllegalOperation, "the object does not apply cryptographic protection, so it has no usage to allocate")
		}
		if _, _, limited := o.UsageRemaining(); !limited {
			return false, Errorf(kmip14.ResultReasonIllegalOperation, "the object has no Usage Limits to allocate from")
		}
		if !protectsNow(o, ic.now) {
			return false, denied("a %s object cannot apply protection now, so no usage is allocated", o.State())
		}
		if !o.ConsumeUsage(want) {
			return false, denied("unable to allocate the requested amount")
		}
		return true, nil
	})
}
