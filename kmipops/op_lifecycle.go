package kmipops

import (
	"errors"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// The key state machine of KMIP 1.4 §3.22. Transitions are made by Activate,
// Revoke and Destroy here, and by the Activation and Deactivation Dates
// (object.AdvanceState). A refused transition answers Permission Denied, as
// the OASIS SKLC/AKLC test cases show.

func opActivate(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	uid, err := uidArg(ic, payload)
	if err != nil {
		return nil, err
	}
	return updateResp(ic, uid, func(o *object.Object) (bool, error) {
		if err := refuseTemplate(o, "activated"); err != nil {
			return false, err
		}
		o.AdvanceState(ic.now)
		if o.State() != kmip14.StatePreActive {
			return false, Errorf(kmip14.ResultReasonPermissionDenied, "object is %s, not Pre-Active", o.State())
		}
		o.SetState(kmip14.StateActive)
		o.Set(object.AttrActivationDate, tree.Time(0, ic.now))
		o.Touch(ic.now)
		return true, nil
	})
}

func opRevoke(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	uid, err := uidArg(ic, payload)
	if err != nil {
		return nil, err
	}
	rr := payload.Child(kmip14.TagRevocationReason)
	if rr == nil {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing Revocation Reason")
	}
	code, ok := rr.Child(kmip14.TagRevocationReasonCode).EnumValue()
	if !ok {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Revocation Reason needs a Revocation Reason Code enumeration")
	}
	if m := rr.Child(kmip14.TagRevocationMessage); m != nil {
		if _, ok := m.TextValue(); !ok {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Revocation Message must be a text string")
		}
	}
	occurred := ic.now
	if n := payload.Child(kmip14.TagCompromiseOccurrenceDate); n != nil {
		t, ok := n.TimeValue()
		if !ok {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Compromise Occurrence Date must be a date-time")
		}
		occurred = t
	}
	compromise := kmip14.RevocationReasonCode(code) == kmip14.RevocationReasonCodeKeyCompromise ||
		kmip14.RevocationReasonCode(code) == kmip14.RevocationReasonCodeCACompromise
	return updateResp(ic, uid, func(o *object.Object) (bool, error) {
		if err := refuseTemplate(o, "revoked"); err != nil {
			return false, err
		}
		o.AdvanceState(ic.now)
		s := o.State()
		if compromise {
			switch s {
			case kmip14.StatePreActive, kmip14.StateActive, kmip14.StateDeactivated:
				o.SetState(kmip14.StateCompromised)
			case kmip14.StateDestroyed:
				o.SetState(kmip14.StateDestroyedCompromised)
			default:
				return false, Errorf(kmip14.ResultReasonPermissionDenied, "object is already %s", s)
			}
			o.Set(object.AttrCompromiseOccurrence, tree.Time(0, occurred))
			o.Set(object.AttrCompromiseDate, tree.Time(0, ic.now))
		} else {
			if s != kmip14.StateActive && s != kmip14.StatePreActive {
				return false, Errorf(kmip14.ResultReasonPermissionDenied, "object is %s and cannot be revoked", s)
			}
			o.SetState(kmip14.StateDeactivated)
			o.Set(object.AttrDeactivationDate, tree.Time(0, ic.now))
		}
		o.Set(object.AttrRevocationReason, rr.Clone())
		o.Touch(ic.now)
		return true, nil
	})
}

// opDestroy removes the key material and keeps the attributes, with State
// Destroyed and a Destroy Date, as the OASIS SKLC-O-1 case reads them back.
// A Template, which has neither, is removed whole (op_template.go).
func opDestroy(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	uid, err := uidArg(ic, payload)
	if err != nil {
		return nil, err
	}
	r, err := updateResp(ic, uid, func(o *object.Object) (bool, error) {
		if o.Type() == kmip14.ObjectTypeTemplate {
			return false, errDiscardTemplate
		}
		o.AdvanceState(ic.now)
		switch o.State() {
		case kmip14.StateDestroyed, kmip14.StateDestroyedCompromised:
			return false, Errorf(kmip14.ResultReasonItemNotFound, "object has already been destroyed")
		case kmip14.StateActive:
			return false, Errorf(kmip14.ResultReasonPermissionDenied, "an Active object cannot be destroyed; revoke it first")
		case kmip14.StateCompromised:
			o.SetState(kmip14.StateDestroyedCompromised)
		default:
			o.SetState(kmip14.StateDestroyed)
		}
		o.ClearBody()
		o.Set(object.AttrDestroyDate, tree.Time(0, ic.now))
		o.Touch(ic.now)
		return true, nil
	})
	if errors.Is(err, errDiscardTemplate) {
		return discardTemplate(ic, uid)
	}
	return r, err
}
