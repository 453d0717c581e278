package kmipops

import (
	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// parseAttributes reads and checks every Attribute structure in ns.
func parseAttributes(ns []*tree.Node) ([]object.Attr, error) {
	var out []object.Attr
	for _, n := range ns {
		a, err := object.ParseAttribute(n)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// parseTemplate reads a Template-Attribute structure (nil allowed) into
// client attributes: those of the Templates it names, under its own
// (op_template.go). Which of them a client may give is checked, and their
// indices are reassigned in order of appearance, when the object is made
// (object.New).
func (ic *itemCtx) parseTemplate(n *tree.Node) ([]object.Attr, error) {
	if n == nil {
		return nil, nil
	}
	if n.Type != ttlv.TypeStructure {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "%s must be a structure", n.Tag)
	}
	attrs, err := parseAttributes(n.All(kmip14.TagAttribute))
	if err != nil {
		return nil, err
	}
	if names := n.All(kmip14.TagName); len(names) > 0 {
		return ic.withTemplates(names, attrs)
	}
	return attrs, nil
}

// mergeTemplates applies the attributes of later templates over earlier ones:
// a single-valued attribute is replaced, a multi-valued one accumulates.
// The result shares values with the templates, which is safe: attribute
// values never change in place.
func mergeTemplates(lists ...[]object.Attr) []object.Attr {
	var out []object.Attr
	for _, l := range lists {
		seen := map[string]bool{}
		for _, a := range l {
			if d, ok := object.Lookup(a.Name()); ok && !d.Multi() && !seen[a.Name()] {
				out = removeAttrs(out, a.Name())
			}
			seen[a.Name()] = true
			out = append(out, a)
		}
	}
	return out
}

func removeAttrs(l []object.Attr, name string) []object.Attr {
	kept := l[:0:0]
	for _, a := range l {
		if a.Name() != name {
			kept = append(kept, a)
		}
	}
	return kept
}

// hasAttr reports whether l holds an instance of name.
func hasAttr(l []object.Attr, name string) bool {
	for _, a := range l {
		if a.Name() == name {
			return true
		}
	}
	return false
}
