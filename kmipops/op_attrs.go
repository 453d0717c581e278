package kmipops

import (
	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// Add/Modify/DeleteAttribute (KMIP 1.4 §4.13–4.15). Custom and unknown
// attributes are the client's to manage freely; standard ones follow the
// "modifiable/deletable by client" rules of §3, and the lifecycle dates
// only while the state still allows them.

func requestAttribute(payload *tree.Node) (object.Attr, error) {
	n := payload.Child(kmip14.TagAttribute)
	if n == nil {
		return object.Attr{}, Errorf(kmip14.ResultReasonInvalidMessage, "missing Attribute")
	}
	return object.ParseAttribute(n)
}

func denied(format string, args ...any) error {
	return Errorf(kmip14.ResultReasonPermissionDenied, format, args...)
}

// checkDateChange enforces when a client may set or change a lifecycle date.
func checkDateChange(o *object.Object, name string, old, v tree.View) error {
	if o.Type() == kmip14.ObjectTypeTemplate {
		return object.CheckTemplateOwn(name) // a Template has no State
	}
	s := o.State()
	switch name {
	case object.AttrActivationDate, object.AttrProcessStartDate:
		if s != kmip14.StatePreActive {
			return denied("%s can only change while Pre-Active", name)
		}
	case object.AttrProtectStopDate, object.AttrDeactivationDate:
		if s != kmip14.StatePreActive && s != kmip14.StateActive {
			return denied("%s can only change while Pre-Active or Active", name)
		}
	case object.AttrSensitive:
		// Sensitive may only be switched on, Extractable only off (§3.47/3.49).
		if was, _ := old.BoolValue(); was {
			if now, _ := v.BoolValue(); !now {
				return denied("Sensitive cannot be turned off")
			}
		}
	case object.AttrExtractable:
		if was, ok := old.BoolValue(); ok && !was {
			if now, _ := v.BoolValue(); now {
				return denied("Extractable cannot be turned back on")
			}
		}
	}
	return nil
}

func opAddAttribute(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	uid, err := uidArg(ic, payload)
	if err != nil {
		return nil, err
	}
	a, err := requestAttribute(payload)
	if err != nil {
		return nil, err
	}
	def, known := object.Lookup(a.Name())
	if known && !def.ClientAdds() {
		return nil, denied("attribute %q is managed by the server", a.Name())
	}
	var added object.Attr
	r, err := updateResp(ic, uid, func(o *object.Object) (bool, error) {
		o.AdvanceState(ic.now)
		if known && !def.Multi() && o.Has(a.Name()) {
			return false, Errorf(kmip14.ResultReasonIllegalOperation, "attribute %q already exists and has a single instance", a.Name())
		}
		if err := checkDateChange(o, a.Name(), tree.View{}, a.Value()); err != nil {
			return false, err
		}
		added = o.Add(a.Name(), a.Value().Clone())
		o.Touch(ic.now)
		o.AdvanceState(ic.now)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return r.Add(added.Attribute()), nil
}

func opModifyAttribute(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	uid, err := uidArg(ic, payload)
	if err != nil {
		return nil, err
	}
	a, err := requestAttribute(payload)
	if err != nil {
		return nil, err
	}
	def, known := object.Lookup(a.Name())
	if known && !def.ClientModifies() {
		return nil, denied("attribute %q cannot be modified by a client", a.Name())
	}
	var out object.Attr
	r, err := updateResp(ic, uid, func(o *object.Object) (bool, error) {
		o.AdvanceState(ic.now)
		cur, ok := o.Instance(a.Name(), a.Index())
		if !ok {
			return false, Errorf(kmip14.ResultReasonItemNotFound, "object has no attribute %q with index %d", a.Name(), a.Index())
		}
		if err := checkDateChange(o, a.Name(), cur.Value(), a.Value()); err != nil {
			return false, err
		}
		out, _ = o.Modify(a.Name(), a.Index(), a.Value().Clone())
		o.Touch(ic.now)
		o.AdvanceState(ic.now)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return r.Add(out.Attribute()), nil
}

func opDeleteAttribute(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	uid, err := uidArg(ic, payload)
	if err != nil {
		return nil, err
	}
	nn := payload.Child(kmip14.TagAttributeName)
	if nn == nil {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing Attribute Name")
	}
	name, ok := nn.TextValue()
	if !ok {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Attribute Name must be a text string")
	}
	var index int32
	if in := payload.Child(kmip14.TagAttributeIndex); in != nil {
		if index, ok = in.IntValue(); !ok || index < 0 {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Attribute Index must be a non-negative integer")
		}
	}
	if def, known := object.Lookup(name); known && !def.ClientDeletes() {
		return nil, denied("attribute %q cannot be deleted by a client", name)
	}
	var gone object.Attr
	r, err := updateResp(ic, uid, func(o *object.Object) (bool, error) {
		var ok bool
		if gone, ok = o.Delete(name, index); !ok {
			return false, Errorf(kmip14.ResultReasonItemNotFound, "object has no attribute %q with index %d", name, index)
		}
		o.Touch(ic.now)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return r.Add(gone.Attribute()), nil
}
