package object

import (
	"context"
	"errors"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// Templates (KMIP 1.2 §2.2.6; deprecated, still defined, in 1.3 and 1.4): a
// named, stored list of attributes that Create, Register and the other
// operations taking a Template-Attribute apply to the objects they make. A
// Template holds no key material. "None of the client-settable attributes
// specified in a Template except the Name attribute apply to the template
// object itself": those it carries are its body, a Template structure served
// by Get as registered, and not its attributes. Its own attributes are its
// Names, custom ones, and what the server sets on every object (Unique
// Identifier, Object Type, Initial and Last Change Date; Archive Date).

// templateCarries are the standard attributes a Template carries for the
// objects made with it: §2.2.6's list, which each of them repeats in its
// "Applies to Object Types" row (1.2 §3: "..., Templates"). Custom
// attributes (x-, y-) are carried too. Everything else is either set by the
// server on each object (State, dates, Digest, Lease Time, ...), names one
// object in particular (Link, certificate fields), or is the Template's own
// (Name).
var templateCarries = map[string]bool{
	AttrCryptoAlgorithm: true, AttrCryptoLength: true, AttrCryptoDomainParameters: true,
	AttrCryptoParameters: true, AttrOperationPolicyName: true, AttrUsageMask: true,
	AttrUsageLimits: true, AttrActivationDate: true, AttrProcessStartDate: true,
	AttrProtectStopDate: true, AttrDeactivationDate: true, AttrObjectGroup: true,
	"Application Specific Information": true, "Contact Information": true,
}

func custom(name string) bool { _, known := defs[name]; return !known }

// CheckTemplateOwn reports whether a client may give attribute name to a
// Template object itself (Register's Template-Attribute, Add and Modify
// Attribute): its Names and custom attributes. Invalid Field otherwise.
func CheckTemplateOwn(name string) error {
	if name == AttrName || custom(name) {
		return nil
	}
	if templateCarries[name] {
		return errorf(kmip14.ResultReasonInvalidField, "attribute %q applies to the objects made with a Template, not to the Template: it belongs in the Template structure", name)
	}
	return errorf(kmip14.ResultReasonInvalidField, "attribute %q does not apply to a Template", name)
}

// NewTemplate builds a Template object, without a uid until the repository
// inserts it, from own, the attributes of the Template itself (Names and
// custom ones), and carried, those it passes on (templateCarries and custom
// ones), which become its body. The server sets Object Type, Initial Date
// and Last Change Date; a Template has no State, Digest or lease.
func NewTemplate(own, carried []Attr, now time.Time) (*Object, error) {
	o := &Object{typ: kmip14.ObjectTypeTemplate}
	for _, a := range own {
		if err := CheckTemplateOwn(a.name); err != nil {
			return nil, err
		}
		o.attrs = append(o.attrs, Attr{name: a.name, index: o.nextIndex(a.name), node: a.value()})
	}
	// The body is checked as an object of its own would be, which gives
	// each instance its index.
	body := &Object{}
	for _, a := range carried {
		if _, known := defs[a.name]; known && !templateCarries[a.name] {
			return nil, errorf(kmip14.ResultReasonInvalidField, "attribute %q does not apply to a Template", a.name)
		}
		if d, known := defs[a.name]; known && !d.multi && body.Has(a.name) {
			return nil, errorf(kmip14.ResultReasonInvalidField, "attribute %q given more than once", a.name)
		}
		// Usage Limits keep no Count here: each new object starts its own.
		body.attrs = append(body.attrs, Attr{name: a.name, index: body.nextIndex(a.name), node: a.value()})
	}
	o.body = tree.Struct(kmip14.TagTemplate)
	for i := range body.attrs {
		o.body.Add(body.attrs[i].CompactAttribute())
	}
	o.Set(AttrObjectType, tree.Enum(0, uint32(o.typ)))
	o.Set(AttrInitialDate, tree.Time(0, now))
	o.Set(AttrLastChangeDate, tree.Time(0, now))
	return o, nil
}

// TemplateAttrs are the attributes a Template passes on to the objects
// made with it: its body's, in its order, each checked again.
func (o *Object) TemplateAttrs() ([]Attr, error) {
	var out []Attr
	for c := range o.body.View().Children() {
		a, err := ParseAttribute(c.Clone())
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Discard removes object uid whole, under its lock, with its index entries
// (and, under Undo, its before-image): Destroy of a Template, which has no
// key material to clear and no State to keep. ErrNotFound if it is gone.
func (s *Scope) Discard(ctx context.Context, uid string) error {
	err := s.Remove(ctx, uid) // storage.ErrNotFound for an invalid uid too
	if errors.Is(err, storage.ErrNotFound) {
		return ErrNotFound
	}
	return err
}
