package kmipops

import (
	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Add/Modify/DeleteAttribute (KMIP 1.4 §4.13–4.15). Custom and unknown
// attributes are the client's to manage freely; standard ones follow the
// "modifiable/deletable by client" rules of §3, and the lifecycle dates
// only while the state still allows them.

func requestAttribute(payload *tree.Node) (attr, error) {
	n := payload.Child(kmip14.TagAttribute)
	if n == nil {
		return attr{}, Errorf(kmip14.ResultReasonInvalidMessage, "missing Attribute")
	}
	return parseAttribute(n)
}

func denied(format string, args ...any) error {
	return Errorf(kmip14.ResultReasonPermissionDenied, format, args...)
}

// checkDateChange enforces when a client may set or change a lifecycle date.
func checkDateChange(o *object, name string, old, v *tree.Node) error {
	s := o.state()
	switch name {
	case attrActivationDate, attrProcessStartDate:
		if s != kmip14.StatePreActive {
			return denied("%s can only change while Pre-Active", name)
		}
	case attrProtectStopDate, attrDeactivationDate:
		if s != kmip14.StatePreActive && s != kmip14.StateActive {
			return denied("%s can only change while Pre-Active or Active", name)
		}
	case attrSensitive:
		// Sensitive may only be switched on, Extractable only off (§3.47/3.49).
		if was, _ := old.BoolValue(); was && v.Int == 0 {
			return denied("Sensitive cannot be turned off")
		}
	case attrExtractable:
		if was, ok := old.BoolValue(); ok && !was && v.Int != 0 {
			return denied("Extractable cannot be turned back on")
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
	def, known := attrDefs[a.name]
	if known && def.rules&setClient == 0 {
		return nil, denied("attribute %q is managed by the server", a.name)
	}
	var added attr
	r, err := p.updateResp(ic, uid, func(o *object) (bool, error) {
		o.advanceState(ic.now)
		if known && !def.multi && o.get(a.name) != nil {
			return false, Errorf(kmip14.ResultReasonIllegalOperation, "attribute %q already exists and has a single instance", a.name)
		}
		if err := checkDateChange(o, a.name, nil, a.value()); err != nil {
			return false, err
		}
		added = o.add(a.name, a.value())
		o.touch(ic.now)
		o.advanceState(ic.now)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return r.Add(added.attribute()), nil
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
	def, known := attrDefs[a.name]
	if known && def.rules&modClient == 0 {
		return nil, denied("attribute %q cannot be modified by a client", a.name)
	}
	var out attr
	r, err := p.updateResp(ic, uid, func(o *object) (bool, error) {
		o.advanceState(ic.now)
		for i, cur := range o.attrs {
			if cur.name != a.name || cur.index != a.index {
				continue
			}
			if err := checkDateChange(o, a.name, cur.value(), a.value()); err != nil {
				return false, err
			}
			a.value().Tag = kmip14.TagAttributeValue
			o.attrs[i].setValue(a.value())
			out = o.attrs[i]
			o.touch(ic.now)
			o.advanceState(ic.now)
			return true, nil
		}
		return false, Errorf(kmip14.ResultReasonItemNotFound, "object has no attribute %q with index %d", a.name, a.index)
	})
	if err != nil {
		return nil, err
	}
	return r.Add(out.attribute()), nil
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
	if def, known := attrDefs[name]; known && def.rules&delClient == 0 {
		return nil, denied("attribute %q cannot be deleted by a client", name)
	}
	var gone attr
	r, err := p.updateResp(ic, uid, func(o *object) (bool, error) {
		for i, cur := range o.attrs {
			if cur.name == name && cur.index == index {
				gone = cur
				o.attrs = append(o.attrs[:i:i], o.attrs[i+1:]...)
				o.touch(ic.now)
				return true, nil
			}
		}
		return false, Errorf(kmip14.ResultReasonItemNotFound, "object has no attribute %q with index %d", name, index)
	})
	if err != nil {
		return nil, err
	}
	return r.Add(gone.attribute()), nil
}
