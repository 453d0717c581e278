package kmipops

import (
	"sort"
	"strings"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Attribute names used in code.
const (
	attrUniqueIdentifier       = "Unique Identifier"
	attrName                   = "Name"
	attrObjectType             = "Object Type"
	attrCryptoAlgorithm        = "Cryptographic Algorithm"
	attrCryptoLength           = "Cryptographic Length"
	attrCryptoParameters       = "Cryptographic Parameters"
	attrCryptoDomainParameters = "Cryptographic Domain Parameters"
	attrCertificateType        = "Certificate Type"
	attrCertificateLength      = "Certificate Length"
	attrDigest                 = "Digest"
	attrUsageMask              = "Cryptographic Usage Mask"
	attrLeaseTime              = "Lease Time"
	attrState                  = "State"
	attrInitialDate            = "Initial Date"
	attrActivationDate         = "Activation Date"
	attrProcessStartDate       = "Process Start Date"
	attrProtectStopDate        = "Protect Stop Date"
	attrDeactivationDate       = "Deactivation Date"
	attrDestroyDate            = "Destroy Date"
	attrCompromiseOccurrence   = "Compromise Occurrence Date"
	attrCompromiseDate         = "Compromise Date"
	attrRevocationReason       = "Revocation Reason"
	attrObjectGroup            = "Object Group"
	attrFresh                  = "Fresh"
	attrLink                   = "Link"
	attrLastChangeDate         = "Last Change Date"
	attrOriginalCreationDate   = "Original Creation Date"
	attrRNG                    = "Random Number Generator"
	attrSensitive              = "Sensitive"
	attrAlwaysSensitive        = "Always Sensitive"
	attrExtractable            = "Extractable"
	attrNeverExtractable       = "Never Extractable"
)

// Who may do what with an attribute, per KMIP 1.4 §3 ("Initially set by",
// "Modifiable by client", "Deletable by client").
const (
	setClient = 1 << iota // a client may give it in Create/Register templates or Add it
	modClient             // a client may Modify it
	delClient             // a client may Delete it
)

type attrDef struct {
	typ   ttlv.Type
	multi bool
	since int32 // KMIP 1.x minor version that introduced it
	rules int
	// fields are the children a structure value must carry, with their types.
	fields map[ttlv.Tag]ttlv.Type
}

const clientAll = setClient | modClient | delClient

// attrDefs lists every standard KMIP 1.0–1.4 attribute. Names not in it are
// custom (x-, y-) or unknown, and are kept verbatim with any type.
var attrDefs = map[string]attrDef{
	attrUniqueIdentifier:               {typ: ttlv.TypeTextString},
	attrName:                           {typ: ttlv.TypeStructure, multi: true, rules: clientAll, fields: map[ttlv.Tag]ttlv.Type{kmip14.TagNameValue: ttlv.TypeTextString, kmip14.TagNameType: ttlv.TypeEnumeration}},
	attrObjectType:                     {typ: ttlv.TypeEnumeration},
	attrCryptoAlgorithm:                {typ: ttlv.TypeEnumeration, rules: setClient},
	attrCryptoLength:                   {typ: ttlv.TypeInteger, rules: setClient},
	attrCryptoParameters:               {typ: ttlv.TypeStructure, multi: true, rules: clientAll},
	attrCryptoDomainParameters:         {typ: ttlv.TypeStructure, rules: setClient},
	attrCertificateType:                {typ: ttlv.TypeEnumeration},
	attrCertificateLength:              {typ: ttlv.TypeInteger, since: 1},
	"X.509 Certificate Identifier":     {typ: ttlv.TypeStructure, since: 1},
	"X.509 Certificate Subject":        {typ: ttlv.TypeStructure, since: 1},
	"X.509 Certificate Issuer":         {typ: ttlv.TypeStructure, since: 1},
	"Certificate Identifier":           {typ: ttlv.TypeStructure},
	"Certificate Subject":              {typ: ttlv.TypeStructure},
	"Certificate Issuer":               {typ: ttlv.TypeStructure},
	"Digital Signature Algorithm":      {typ: ttlv.TypeEnumeration, multi: true, since: 1},
	attrDigest:                         {typ: ttlv.TypeStructure, multi: true},
	"Operation Policy Name":            {typ: ttlv.TypeTextString, rules: clientAll},
	attrUsageMask:                      {typ: ttlv.TypeInteger, rules: setClient},
	attrLeaseTime:                      {typ: ttlv.TypeInterval},
	"Usage Limits":                     {typ: ttlv.TypeStructure, rules: clientAll},
	attrState:                          {typ: ttlv.TypeEnumeration},
	attrInitialDate:                    {typ: ttlv.TypeDateTime},
	attrActivationDate:                 {typ: ttlv.TypeDateTime, rules: setClient | modClient},
	attrProcessStartDate:               {typ: ttlv.TypeDateTime, rules: setClient | modClient},
	attrProtectStopDate:                {typ: ttlv.TypeDateTime, rules: setClient | modClient},
	attrDeactivationDate:               {typ: ttlv.TypeDateTime, rules: setClient | modClient},
	attrDestroyDate:                    {typ: ttlv.TypeDateTime},
	attrCompromiseOccurrence:           {typ: ttlv.TypeDateTime},
	attrCompromiseDate:                 {typ: ttlv.TypeDateTime},
	attrRevocationReason:               {typ: ttlv.TypeStructure},
	"Archive Date":                     {typ: ttlv.TypeDateTime},
	attrObjectGroup:                    {typ: ttlv.TypeTextString, multi: true, rules: clientAll},
	attrFresh:                          {typ: ttlv.TypeBoolean, since: 1},
	attrLink:                           {typ: ttlv.TypeStructure, multi: true, rules: clientAll, fields: map[ttlv.Tag]ttlv.Type{kmip14.TagLinkType: ttlv.TypeEnumeration, kmip14.TagLinkedObjectIdentifier: ttlv.TypeTextString}},
	"Application Specific Information": {typ: ttlv.TypeStructure, multi: true, rules: clientAll, fields: map[ttlv.Tag]ttlv.Type{kmip14.TagApplicationNamespace: ttlv.TypeTextString}},
	"Contact Information":              {typ: ttlv.TypeTextString, rules: clientAll},
	attrLastChangeDate:                 {typ: ttlv.TypeDateTime},
	"Alternative Name":                 {typ: ttlv.TypeStructure, multi: true, since: 2, rules: clientAll, fields: map[ttlv.Tag]ttlv.Type{kmip14.TagAlternativeNameValue: ttlv.TypeTextString, kmip14.TagAlternativeNameType: ttlv.TypeEnumeration}},
	"Key Value Present":                {typ: ttlv.TypeBoolean, since: 2},
	"Key Value Location":               {typ: ttlv.TypeStructure, multi: true, since: 2, rules: clientAll},
	attrOriginalCreationDate:           {typ: ttlv.TypeDateTime, since: 2},
	attrRNG:                            {typ: ttlv.TypeStructure, since: 3, fields: map[ttlv.Tag]ttlv.Type{kmip14.TagRNGAlgorithm: ttlv.TypeEnumeration}},
	"PKCS#12 Friendly Name":            {typ: ttlv.TypeTextString, since: 4, rules: clientAll},
	"Description":                      {typ: ttlv.TypeTextString, since: 4, rules: clientAll},
	"Comment":                          {typ: ttlv.TypeTextString, since: 4, rules: clientAll},
	attrSensitive:                      {typ: ttlv.TypeBoolean, since: 4, rules: setClient | modClient},
	attrAlwaysSensitive:                {typ: ttlv.TypeBoolean, since: 4},
	attrExtractable:                    {typ: ttlv.TypeBoolean, since: 4, rules: setClient | modClient},
	attrNeverExtractable:               {typ: ttlv.TypeBoolean, since: 4},
}

// custom reports names outside the standard set: x-/y- custom attributes and
// anything unknown, which are kept as given.
func custom(name string) bool { _, ok := attrDefs[name]; return !ok }

// standardNames maps each standard name to itself, so internName can return
// the one shared string instead of allocating per attribute per record read.
var standardNames = func() map[string]string {
	m := make(map[string]string, len(attrDefs))
	for n := range attrDefs {
		m[n] = n
	}
	return m
}()

// internName is name as a string, shared for standard names (the lookup
// with string(b) does not allocate).
func internName(b []byte) string {
	if s, ok := standardNames[string(b)]; ok {
		return s
	}
	return string(b)
}

// checkValue validates an attribute value against its definition.
func checkValue(name string, v *tree.Node) error {
	if v == nil || v.Tag != kmip14.TagAttributeValue {
		return Errorf(kmip14.ResultReasonInvalidField, "attribute %q has no Attribute Value", name)
	}
	d, ok := attrDefs[name]
	if !ok {
		return nil
	}
	if v.Type != d.typ && !(d.typ == ttlv.TypeDateTime && v.Type == ttlv.TypeDateTimeExtended) {
		return Errorf(kmip14.ResultReasonInvalidField, "attribute %q must be of type %s", name, d.typ)
	}
	for tag, typ := range d.fields {
		c := v.Child(tag)
		if c == nil || c.Type != typ {
			return Errorf(kmip14.ResultReasonInvalidField, "attribute %q needs %s of type %s", name, tag, typ)
		}
	}
	return nil
}

// parseAttributes reads and checks every Attribute structure in ns.
func parseAttributes(ns []*tree.Node) ([]attr, error) {
	var out []attr
	for _, n := range ns {
		a, err := parseAttribute(n)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// parseAttribute reads one Attribute structure of a request and checks its
// value against the attribute's definition.
func parseAttribute(n *tree.Node) (attr, error) {
	if n.Type != ttlv.TypeStructure {
		return attr{}, Errorf(kmip14.ResultReasonInvalidField, "Attribute must be a structure")
	}
	name, ok := n.Child(kmip14.TagAttributeName).TextValue()
	if !ok || name == "" {
		return attr{}, Errorf(kmip14.ResultReasonInvalidField, "Attribute needs an Attribute Name")
	}
	a := attr{name: name, node: n.Child(kmip14.TagAttributeValue)}
	if in := n.Child(kmip14.TagAttributeIndex); in != nil {
		i, ok := in.IntValue()
		if !ok || i < 0 {
			return attr{}, Errorf(kmip14.ResultReasonInvalidField, "Attribute Index must be a non-negative integer")
		}
		a.index = i
	}
	if a.value() != nil {
		a.node = a.node.Clone()
	}
	if err := checkValue(a.name, a.value()); err != nil {
		return attr{}, err
	}
	return a, nil
}

// parseTemplate reads a Template-Attribute structure (nil allowed) into
// client attributes, refusing server-managed ones. Indices are reassigned in
// order of appearance per name.
func parseTemplate(n *tree.Node) ([]attr, error) {
	if n == nil {
		return nil, nil
	}
	if n.Type != ttlv.TypeStructure {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "%s must be a structure", n.Tag)
	}
	if len(n.All(kmip14.TagName)) > 0 {
		// Named templates are a deprecated feature we do not store.
		return nil, Errorf(kmip14.ResultReasonItemNotFound, "template not found")
	}
	return parseAttributes(n.All(kmip14.TagAttribute))
}

// mergeTemplates applies the attributes of later templates over earlier ones:
// a single-valued attribute is replaced, a multi-valued one accumulates.
func mergeTemplates(lists ...[]attr) []attr {
	var out []attr
	for _, l := range lists {
		seen := map[string]bool{}
		for _, a := range l {
			// Common attributes land in both keys of a pair: no sharing.
			a.node = a.node.Clone()
			if d, ok := attrDefs[a.name]; ok && !d.multi && !seen[a.name] {
				out = removeAttr(out, a.name)
			}
			seen[a.name] = true
			out = append(out, a)
		}
	}
	return out
}

func removeAttr(l []attr, name string) []attr {
	kept := l[:0:0]
	for _, a := range l {
		if a.name != name {
			kept = append(kept, a)
		}
	}
	return kept
}

// applyClientAttrs adds template attributes to a new object. Server-managed
// attributes are refused, except an Object Type equal to the real one.
func (o *object) applyClientAttrs(l []attr) error {
	for _, a := range l {
		d, known := attrDefs[a.name]
		if known && d.rules&setClient == 0 {
			if a.name == attrObjectType && a.value().Type == ttlv.TypeEnumeration && kmip14.ObjectType(a.value().Int) == o.typ {
				continue
			}
			return Errorf(kmip14.ResultReasonInvalidField, "attribute %q is set by the server", a.name)
		}
		if known && !d.multi && o.get(a.name) != nil {
			return Errorf(kmip14.ResultReasonInvalidField, "attribute %q given more than once", a.name)
		}
		o.add(a.name, a.value())
	}
	return nil
}

// Accessors on an object's attributes.

// get returns the first instance's value. It is the object's own node, decoded
// in place, so a change to it is a change to the object.
func (o *object) get(name string) *tree.Node {
	for i := range o.attrs {
		if o.attrs[i].name == name {
			return o.attrs[i].value()
		}
	}
	return nil
}

// all returns copies of every instance of name, decoded first so that each
// copy shares its value node with the object, as get's result does.
func (o *object) all(name string) []attr {
	var out []attr
	for i := range o.attrs {
		if o.attrs[i].name == name {
			o.attrs[i].value()
			out = append(out, o.attrs[i])
		}
	}
	return out
}

// set replaces every instance of name with one value (index 0).
func (o *object) set(name string, v *tree.Node) {
	v.Tag = kmip14.TagAttributeValue
	for i, a := range o.attrs {
		if a.name == name {
			o.attrs[i].setValue(v)
			o.attrs = append(o.attrs[:i+1], removeAttr(o.attrs[i+1:], name)...)
			o.attrs[i].index = 0
			return
		}
	}
	o.attrs = append(o.attrs, attr{name: name, node: v})
}

// add appends an instance with the next free index and returns it.
func (o *object) add(name string, v *tree.Node) attr {
	v.Tag = kmip14.TagAttributeValue
	next := int32(0)
	for _, a := range o.attrs {
		if a.name == name && a.index >= next {
			next = a.index + 1
		}
	}
	a := attr{name: name, index: next, node: v}
	o.attrs = append(o.attrs, a)
	return a
}

func (o *object) del(name string) { o.attrs = removeAttr(o.attrs, name) }

func (o *object) enumAttr(name string) (uint32, bool) { return o.get(name).EnumValue() }
func (o *object) intAttr(name string) (int32, bool)   { return o.get(name).IntValue() }
func (o *object) timeAttr(name string) (time.Time, bool) {
	return o.get(name).TimeValue()
}

func (o *object) state() kmip14.State {
	s, _ := o.enumAttr(attrState)
	return kmip14.State(s)
}

// advanceState applies the time-driven transitions of KMIP 1.4 §3.22:
// Activation Date reached makes a Pre-Active object Active, Deactivation
// Date reached makes it Deactivated. It reports whether the state changed.
func (o *object) advanceState(now time.Time) bool {
	s := o.state()
	ns := s
	if ad, ok := o.timeAttr(attrActivationDate); ok && ns == kmip14.StatePreActive && !ad.After(now) {
		ns = kmip14.StateActive
	}
	if dd, ok := o.timeAttr(attrDeactivationDate); ok && (ns == kmip14.StatePreActive || ns == kmip14.StateActive) && !dd.After(now) {
		ns = kmip14.StateDeactivated
	}
	if ns == s || s == 0 {
		return false
	}
	o.set(attrState, tree.Enum(kmip14.TagAttributeValue, uint32(ns)))
	return true
}

func (o *object) touch(now time.Time) {
	o.set(attrLastChangeDate, tree.Time(kmip14.TagAttributeValue, now))
}

// destroyed reports whether the object's key material is gone.
func (o *object) destroyed() bool {
	s := o.state()
	return s == kmip14.StateDestroyed || s == kmip14.StateDestroyedCompromised
}

// leadingAttrs open an all-attributes listing after the custom ones, in the
// order the OASIS test cases show; the rest follow by name.
var leadingAttrs = map[string]int{attrUniqueIdentifier: 1, attrObjectType: 2, attrCryptoAlgorithm: 3, attrCryptoLength: 4}

// listing returns the attribute instances visible at protocol version v, in
// listing order: custom and unknown ones as stored, then the leading
// standard attributes, then the others by name.
//
// values is set for GetAttributes (values returned), clear for
// GetAttributeList (names only). With values, a 1.2 client is not sent the
// attributes 1.2 introduced: PyKMIP 0.10, which speaks 1.2 by default, cannot
// decode them (Original Creation Date above all, which every object has) and
// fails the whole response. They remain readable by name.
func (o *object) listing(v version, values bool) []attr {
	var cust, std []attr
	for _, a := range o.attrs {
		d, known := attrDefs[a.name]
		switch {
		case !known:
			cust = append(cust, a)
		case values && v.minor == 2 && d.since == 2:
		case d.since <= v.minor:
			std = append(std, a)
		}
	}
	rank := func(n string) int {
		if r, ok := leadingAttrs[n]; ok {
			return r
		}
		return 100
	}
	sort.SliceStable(std, func(i, j int) bool {
		ri, rj := rank(std[i].name), rank(std[j].name)
		if ri != rj {
			return ri < rj
		}
		if std[i].name != std[j].name {
			return strings.Compare(std[i].name, std[j].name) < 0
		}
		return std[i].index < std[j].index
	})
	return append(cust, std...)
}
