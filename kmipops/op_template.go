package kmipops

import (
	"errors"
	"fmt"
	"slices"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// Template objects and the Names of Template-Attribute structures (KMIP
// 1.2 §2.2.6, §2.1.8). Templates are deprecated by KMIP 1.3 and 1.4, which
// still define them: kmipd serves them at every version, so a client that
// registered a template over 1.2 keeps using it over 1.4.
//
//   - Register with Object Type Template: the Template structure's
//     attributes are what it carries for the objects made with it (§2.2.6's
//     list and custom ones; any other standard attribute is Invalid Field),
//     except its Names, which apply to the Template itself. The request's
//     Template-Attribute gives the Template's own attributes: Names and
//     custom ones (the OASIS TC-312-12 case's x-ID). A Template is "a named
//     Managed Object": one without a Name is Invalid Field, and so is a Name
//     another of the owner's Templates holds (§4.3's "same Name attribute
//     value as an existing object"), so a Name names one Template.
//   - A Template-Attribute's Names are resolved among the caller's own
//     Templates: another owner's, like a missing or destroyed one, is Item
//     Not Found, and an archived one Object Archived (§11, Create and
//     Register: "Templates that do not exist are given in request",
//     "Template object is archived"). The named Templates apply in the
//     order given, then the structure's own attributes: a later
//     single-instance value replaces an earlier one, so explicit attributes
//     take precedence. Instances of a multi-instance attribute (Object Group,
//     Application Specific Information, Cryptographic Parameters, custom
//     attributes ...) accumulate, as TC-312-12 shows for x-ID; an instance
//     equal to one already given counts once.
//   - Create Key Pair and Re-key Key Pair resolve each of their three
//     structures this way, then apply Private or Public over Common.
//   - Get serves the Template structure as registered (less its Names). Get
//     Attributes, Get Attribute List, Locate, Add, Modify and Delete
//     Attribute, Archive and Recover work on the Template's own attributes;
//     what it carries is fixed at Register. Destroy removes it whole (it has
//     no key material to clear and no State), so it is Item Not Found
//     afterwards; Activate and Revoke are Illegal Operation. Being no
//     cryptographic object, it has no State, Digest or Lease Time.

// withTemplates resolves the Templates names refers to and returns their
// attributes with explicit applied over them.
func (ic *itemCtx) withTemplates(names []*tree.Node, explicit []object.Attr) ([]object.Attr, error) {
	lists := make([][]object.Attr, 0, len(names)+1)
	for i, n := range names {
		// Each Name is a search: stop when the request's time is up, and
		// look a repeated one up once (applying it again changes nothing).
		if err := ic.ctx.Err(); err != nil {
			return nil, fmt.Errorf("resolve template names: %w", err)
		}
		if slices.ContainsFunc(names[:i], func(m *tree.Node) bool { return m.View().Equal(n.View()) }) {
			continue
		}
		t, err := ic.namedTemplate(n)
		if err != nil {
			return nil, err
		}
		l, err := t.TemplateAttrs()
		if err != nil {
			return nil, err
		}
		lists = append(lists, l)
	}
	merged := mergeTemplates(append(lists, explicit)...)
	// Equal instances of a multi-instance attribute count once.
	out := merged[:0:0]
	for i := range merged {
		dup := false
		for j := range out {
			if out[j].Name() == merged[i].Name() && out[j].Value().Equal(merged[i].Value()) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, merged[i])
		}
	}
	return out, nil
}

// templateName checks a Name structure (Template-Attribute's Name, or a
// Template's Name attribute value) and returns it as a Name attribute.
func templateName(n *tree.Node) (object.Attr, error) {
	a, err := object.ParseAttribute(tree.Struct(kmip14.TagAttribute,
		tree.Text(kmip14.TagAttributeName, object.AttrName),
		n.Clone()))
	if err != nil || n.Type != ttlv.TypeStructure {
		return object.Attr{}, Errorf(kmip14.ResultReasonInvalidField, "a template Name needs a Name Value text string and a Name Type")
	}
	return a, nil
}

// namedTemplate is the caller's Template named by n.
func (ic *itemCtx) namedTemplate(n *tree.Node) (*object.Object, error) {
	n = n.Clone()
	n.Tag = kmip14.TagAttributeValue
	name, err := templateName(n)
	if err != nil {
		return nil, err
	}
	found, err := ic.templatesNamed(name)
	if err != nil {
		return nil, err
	}
	label, _ := name.Value().Child(kmip14.TagNameValue).TextValue()
	switch {
	case len(found) == 0:
		return nil, Errorf(kmip14.ResultReasonItemNotFound, "no template named %q", label)
	case len(found) > 1:
		// Only Add or Modify Attribute can make a second one.
		return nil, Errorf(kmip14.ResultReasonInvalidField, "%d templates are named %q", len(found), label)
	case found[0].Archived():
		return nil, Errorf(kmip14.ResultReasonObjectArchived, "template %q is archived", label)
	}
	return found[0], nil
}

// templatesNamed returns the caller's Templates, archived ones included,
// that hold Name instance name. The blind index names the candidates when
// the store keeps one; otherwise every record is opened, as Locate does.
func (ic *itemCtx) templatesNamed(name object.Attr) ([]*object.Object, error) {
	crit := []object.Attr{name, object.NewAttr(object.AttrObjectType, tree.Enum(0, uint32(kmip14.ObjectTypeTemplate)))}
	var found []*object.Object
	check := func(o *object.Object) {
		if o.Type() != kmip14.ObjectTypeTemplate {
			return
		}
		for _, a := range o.All(object.AttrName) {
			if a.Value().Equal(name.Value()) {
				found = append(found, o)
				return
			}
		}
	}
	all := ic.objects.WithArchived()
	cands, indexed, err := all.Lookup(ic.ctx, crit)
	switch {
	case err != nil:
	case indexed:
		for _, uid := range cands {
			o, lerr := all.Load(ic.ctx, uid)
			if errors.Is(lerr, object.ErrNotFound) {
				continue // removed since the lookup
			}
			if lerr != nil {
				err = lerr
				break
			}
			check(o)
		}
	default:
		err = all.Each(ic.ctx, func(o *object.Object) error {
			check(o)
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("find template: %w", err)
	}
	return found, nil
}

// registerTemplate is Register with Object Type Template.
func registerTemplate(ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	body := payload.Child(kmip14.TagTemplate)
	if body == nil {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing Template object for Object Type Template")
	}
	if body.Type != ttlv.TypeStructure {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Template must be a structure")
	}
	content, err := parseAttributes(body.All(kmip14.TagAttribute))
	if err != nil {
		return nil, err
	}
	own, err := ic.parseTemplate(payload.Child(kmip14.TagTemplateAttribute))
	if err != nil {
		return nil, err
	}
	var carried []object.Attr
	for _, a := range content {
		if a.Name() == object.AttrName {
			own = append(own, a)
		} else {
			carried = append(carried, a)
		}
	}
	if !hasAttr(own, object.AttrName) {
		// §2.2.6: "a named Managed Object"; Names are how it is used.
		return nil, Errorf(kmip14.ResultReasonInvalidField, "a Template needs a Name")
	}
	for _, a := range own {
		if a.Name() != object.AttrName {
			continue
		}
		taken, err := ic.templatesNamed(a)
		if err != nil {
			return nil, err
		}
		if len(taken) > 0 {
			label, _ := a.Value().Child(kmip14.TagNameValue).TextValue()
			return nil, Errorf(kmip14.ResultReasonInvalidField, "a template named %q exists", label)
		}
	}
	o, err := object.NewTemplate(own, carried, ic.now)
	if err != nil {
		return nil, err
	}
	if err := ic.objects.Insert(ic.ctx, o); err != nil {
		return nil, err
	}
	ic.placeholder = o.UID()
	return respUID(o.UID()), nil
}

// templateBody is the Template structure Get serves. A Template has no key
// to convert or wrap.
func templateBody(o *object.Object, format bool, wrap bool) (*tree.Node, error) {
	if format || wrap {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "a Template has no key to format or wrap")
	}
	return o.CloneBody(), nil
}

// errDiscardTemplate tells opDestroy, from inside the object's update, that
// the object is a Template, which Destroy removes whole.
var errDiscardTemplate = errors.New("destroy removes a template")

func discardTemplate(ic *itemCtx, uid string) (*tree.Node, error) {
	if err := ic.objects.Discard(ic.ctx, uid); err != nil {
		return nil, err
	}
	ic.placeholder = uid
	return respUID(uid), nil
}

// refuseTemplate answers the state-machine operations a Template is not
// subject to (§2.2.6 lists those it is).
func refuseTemplate(o *object.Object, op string) error {
	if o.Type() == kmip14.ObjectTypeTemplate {
		return Errorf(kmip14.ResultReasonIllegalOperation, "a Template cannot be %s", op)
	}
	return nil
}
