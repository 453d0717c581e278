package kmipops

import (
	"fmt"
	"strings"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// Check (KMIP 1.4 §4.10) asks whether the caller may use an object as it
// intends to: for up to Usage Limits Count units of protection, for the
// usages of a Cryptographic Usage Mask, under a lease of Lease Time. It
// changes nothing. Allowed, it answers the Unique Identifier and leaves it
// in the ID Placeholder, so that the batch goes on (typically to a Get).
// Refused, it answers Operation Failed / Permission Denied (§11.10), which
// stops a batch under Stop or Undo, the only options §4.10 allows around a
// Check, and empties the placeholder; and, as §4.10 says, "the operation
// returns the set of attributes specified in the request that caused the
// server policy denial": the failed item carries a Response Payload with
// those fields as the request gave them, and no Unique Identifier. The
// Result Message says why each was refused.

// processUsages are the usages that process protected data; every other
// usage applies protection or makes keys, which only an Active key may
// do (§3.22: a Deactivated or Compromised key may still process).
const processUsages = kmip14.CryptographicUsageMaskVerify | kmip14.CryptographicUsageMaskDecrypt |
	kmip14.CryptographicUsageMaskUnwrapKey | kmip14.CryptographicUsageMaskMACVerify |
	kmip14.CryptographicUsageMaskValidateCryptogram | kmip14.CryptographicUsageMaskTranslateDecrypt |
	kmip14.CryptographicUsageMaskTranslateUnwrap

// checkRequest is what a Check asks for; nil fields were not asked.
type checkRequest struct {
	count *int64
	mask  *kmip14.CryptographicUsageMask
	lease *time.Duration
}

func parseCheck(payload *tree.Node) (checkRequest, error) {
	var r checkRequest
	if n := payload.Child(kmip14.TagUsageLimitsCount); n != nil {
		v, ok := n.LongValue()
		if !ok || v < 0 {
			return r, Errorf(kmip14.ResultReasonInvalidField, "Usage Limits Count must be a non-negative Long Integer")
		}
		r.count = &v
	}
	if n := payload.Child(kmip14.TagCryptographicUsageMask); n != nil {
		v, ok := n.IntValue()
		if !ok {
			return r, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Usage Mask must be an Integer")
		}
		m := kmip14.CryptographicUsageMask(uint32(v))
		r.mask = &m
	}
	if n := payload.Child(kmip14.TagLeaseTime); n != nil {
		if n.Type != ttlv.TypeInterval {
			return r, Errorf(kmip14.ResultReasonInvalidField, "Lease Time must be an Interval")
		}
		d, _ := n.View().IntervalValue()
		r.lease = &d
	}
	return r, nil
}

func opCheck(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	uid, err := uidArg(ic, payload)
	if err != nil {
		return nil, err
	}
	req, err := parseCheck(payload)
	if err != nil {
		return nil, err
	}
	o, err := ic.objects.Load(ic.ctx, uid)
	if err != nil {
		return nil, err
	}
	// A date reached since the last write counts, but Check writes nothing.
	o.AdvanceState(ic.now)
	if !leasable(o.Type()) {
		return nil, Errorf(kmip14.ResultReasonIllegalOperation, "a %s is not a cryptographic object and cannot be checked", o.Type())
	}
	if refused, fields := p.checkUse(o, req, ic.now); len(refused) > 0 {
		return nil, &checkRefusal{denied("not allowed: %s", strings.Join(refused, "; ")),
			tree.Struct(kmip14.TagResponsePayload, fields...)}
	}
	ic.placeholder = uid
	return respUID(uid), nil
}

// checkRefusal is Check's refusal: Permission Denied (err), with the
// refused fields as the failed item's payload.
type checkRefusal struct {
	err     error
	payload *tree.Node
}

var _ failurePayload = (*checkRefusal)(nil)

func (e *checkRefusal) Error() string              { return e.err.Error() }
func (e *checkRefusal) Unwrap() error              { return e.err }
func (e *checkRefusal) FailurePayload() *tree.Node { return e.payload }

// checkUse returns, for each field of req that o's state, attributes or
// the server's lease policy refuse, why, and the field as asked. A
// destroyed object refuses every field.
func (p *Processor) checkUse(o *object.Object, req checkRequest, now time.Time) (refused []string, fields []*tree.Node) {
	if o.Destroyed() {
		return []string{"the object has been destroyed"}, req.fields(true, true, true)
	}
	s := o.State()
	var badCount, badMask, badLease bool
	if req.count != nil {
		switch left, _, limited := o.UsageRemaining(); {
		case !protectsNow(o, now):
			refused, badCount = append(refused, fmt.Sprintf("Usage Limits Count: a %s object applies no protection", s)), true
		case limited && *req.count > left:
			refused, badCount = append(refused, fmt.Sprintf("Usage Limits Count %d exceeds the %d left", *req.count, left)), true
		}
	}
	if req.mask != nil {
		have, _ := o.UsageMask()
		protect, process := *req.mask&^processUsages, *req.mask&processUsages
		badMask = true
		switch {
		case *req.mask&^have != 0:
			refused = append(refused, fmt.Sprintf("Cryptographic Usage Mask: the object does not allow %s", *req.mask&^have))
		case protect != 0 && !protectsNow(o, now):
			refused = append(refused, fmt.Sprintf("Cryptographic Usage Mask: a %s object cannot be used for %s", s, protect))
		case process != 0 && !processesNow(o, now):
			refused = append(refused, fmt.Sprintf("Cryptographic Usage Mask: a %s object cannot be used for %s", s, process))
		default:
			badMask = false
		}
	}
	if req.lease != nil {
		if grant := p.grantableLease(o); *req.lease > grant {
			refused, badLease = append(refused, fmt.Sprintf("Lease Time %s exceeds the %s the server grants", *req.lease, grant)), true
		}
	}
	return refused, req.fields(badCount, badMask, badLease)
}

// fields renders the asked fields that are picked, as the request gave
// them, in the order of Check's payload.
func (r checkRequest) fields(count, mask, lease bool) []*tree.Node {
	var out []*tree.Node
	if count && r.count != nil {
		out = append(out, tree.Long(kmip14.TagUsageLimitsCount, *r.count))
	}
	if mask && r.mask != nil {
		out = append(out, tree.Int(kmip14.TagCryptographicUsageMask, int32(*r.mask)))
	}
	if lease && r.lease != nil {
		out = append(out, tree.Interval(kmip14.TagLeaseTime, *r.lease))
	}
	return out
}

// protectsNow reports whether o may apply protection now: Active and
// before its Protect Stop Date (§3.22, §3.26).
func protectsNow(o *object.Object, now time.Time) bool {
	if o.State() != kmip14.StateActive {
		return false
	}
	d, ok := o.ProtectStopDate()
	return !ok || now.Before(d)
}

// processesNow reports whether o may process protected data now: Active,
// Deactivated or Compromised, and past its Process Start Date (§3.25).
func processesNow(o *object.Object, now time.Time) bool {
	switch o.State() {
	case kmip14.StateActive, kmip14.StateDeactivated, kmip14.StateCompromised:
	default:
		return false
	}
	d, ok := o.ProcessStartDate()
	return !ok || !now.Before(d)
}

// grantableLease is the lease Obtain Lease would grant on o now: none
// unless it is Active, else its Lease Time within the current policy.
func (p *Processor) grantableLease(o *object.Object) time.Duration {
	if o.State() != kmip14.StateActive {
		return 0
	}
	lease := p.opts.LeaseTime
	if v, ok := o.LeaseTime(); ok {
		lease = min(lease, v)
	}
	return lease
}
