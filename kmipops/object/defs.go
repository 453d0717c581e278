package object

import (
	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Names of the standard attributes kmipd's code refers to.
const (
	AttrUniqueIdentifier       = "Unique Identifier"
	AttrName                   = "Name"
	AttrObjectType             = "Object Type"
	AttrCryptoAlgorithm        = "Cryptographic Algorithm"
	AttrCryptoLength           = "Cryptographic Length"
	AttrCryptoParameters       = "Cryptographic Parameters"
	AttrCryptoDomainParameters = "Cryptographic Domain Parameters"
	AttrCertificateType        = "Certificate Type"
	AttrCertificateLength      = "Certificate Length"
	AttrDigest                 = "Digest"
	AttrUsageMask              = "Cryptographic Usage Mask"
	AttrLeaseTime              = "Lease Time"
	AttrUsageLimits            = "Usage Limits"
	AttrState                  = "State"
	AttrInitialDate            = "Initial Date"
	AttrActivationDate         = "Activation Date"
	AttrProcessStartDate       = "Process Start Date"
	AttrProtectStopDate        = "Protect Stop Date"
	AttrDeactivationDate       = "Deactivation Date"
	AttrDestroyDate            = "Destroy Date"
	AttrCompromiseOccurrence   = "Compromise Occurrence Date"
	AttrCompromiseDate         = "Compromise Date"
	AttrRevocationReason       = "Revocation Reason"
	AttrArchiveDate            = "Archive Date"
	AttrObjectGroup            = "Object Group"
	AttrFresh                  = "Fresh"
	AttrLink                   = "Link"
	AttrLastChangeDate         = "Last Change Date"
	AttrOriginalCreationDate   = "Original Creation Date"
	AttrRNG                    = "Random Number Generator"
	AttrSensitive              = "Sensitive"
	AttrAlwaysSensitive        = "Always Sensitive"
	AttrExtractable            = "Extractable"
	AttrNeverExtractable       = "Never Extractable"
	AttrOperationPolicyName    = "Operation Policy Name"
	AttrKeyValuePresent        = "Key Value Present"
	AttrKeyValueLocation       = "Key Value Location"
)

// Who may do what with an attribute, per KMIP 1.4 §3 ("Initially set by",
// "Modifiable by client", "Deletable by client").
const (
	setClient = 1 << iota // a client may give it in Create/Register templates or Add it
	modClient             // a client may Modify it
	delClient             // a client may Delete it
	initOnly              // with setClient: only in the template of the operation making the object
)

// Def is a standard attribute's definition.
type Def struct {
	typ   ttlv.Type
	multi bool
	since int32 // KMIP 1.x minor version that introduced it
	rules int
	// fields are the children a structure value must carry, with their types.
	fields map[ttlv.Tag]ttlv.Type
}

// Multi reports whether an object may hold several instances.
func (d Def) Multi() bool { return d.multi }

// ClientSets reports whether a client may give the attribute when an
// object is made, or add it.
func (d Def) ClientSets() bool { return d.rules&setClient != 0 }

// ClientAdds reports whether a client may add the attribute to an existing
// object (Add Attribute).
func (d Def) ClientAdds() bool { return d.rules&setClient != 0 && d.rules&initOnly == 0 }

// ClientModifies reports whether a client may modify the attribute.
func (d Def) ClientModifies() bool { return d.rules&modClient != 0 }

// ClientDeletes reports whether a client may delete the attribute.
func (d Def) ClientDeletes() bool { return d.rules&delClient != 0 }

// Lookup returns the definition of a standard attribute. Names it does not
// know are custom (x-, y-) or unknown, and are kept verbatim with any type.
func Lookup(name string) (Def, bool) {
	d, ok := defs[name]
	return d, ok
}

const clientAll = setClient | modClient | delClient

// defs lists every standard KMIP 1.0–1.4 attribute.
var defs = map[string]Def{
	AttrUniqueIdentifier:               {typ: ttlv.TypeTextString},
	AttrName:                           {typ: ttlv.TypeStructure, multi: true, rules: clientAll, fields: map[ttlv.Tag]ttlv.Type{kmip14.TagNameValue: ttlv.TypeTextString, kmip14.TagNameType: ttlv.TypeEnumeration}},
	AttrObjectType:                     {typ: ttlv.TypeEnumeration},
	AttrCryptoAlgorithm:                {typ: ttlv.TypeEnumeration, rules: setClient},
	AttrCryptoLength:                   {typ: ttlv.TypeInteger, rules: setClient},
	AttrCryptoParameters:               {typ: ttlv.TypeStructure, multi: true, rules: clientAll},
	AttrCryptoDomainParameters:         {typ: ttlv.TypeStructure, rules: setClient},
	AttrCertificateType:                {typ: ttlv.TypeEnumeration},
	AttrCertificateLength:              {typ: ttlv.TypeInteger, since: 1},
	"X.509 Certificate Identifier":     {typ: ttlv.TypeStructure, since: 1},
	"X.509 Certificate Subject":        {typ: ttlv.TypeStructure, since: 1},
	"X.509 Certificate Issuer":         {typ: ttlv.TypeStructure, since: 1},
	"Certificate Identifier":           {typ: ttlv.TypeStructure},
	"Certificate Subject":              {typ: ttlv.TypeStructure},
	"Certificate Issuer":               {typ: ttlv.TypeStructure},
	"Digital Signature Algorithm":      {typ: ttlv.TypeEnumeration, multi: true, since: 1},
	AttrDigest:                         {typ: ttlv.TypeStructure, multi: true},
	AttrOperationPolicyName:            {typ: ttlv.TypeTextString, rules: clientAll},
	AttrUsageMask:                      {typ: ttlv.TypeInteger, rules: setClient},
	AttrLeaseTime:                      {typ: ttlv.TypeInterval},
	AttrUsageLimits:                    {typ: ttlv.TypeStructure, rules: clientAll, fields: map[ttlv.Tag]ttlv.Type{kmip14.TagUsageLimitsTotal: ttlv.TypeLongInteger, kmip14.TagUsageLimitsUnit: ttlv.TypeEnumeration}},
	AttrState:                          {typ: ttlv.TypeEnumeration},
	AttrInitialDate:                    {typ: ttlv.TypeDateTime},
	AttrActivationDate:                 {typ: ttlv.TypeDateTime, rules: setClient | modClient},
	AttrProcessStartDate:               {typ: ttlv.TypeDateTime, rules: setClient | modClient},
	AttrProtectStopDate:                {typ: ttlv.TypeDateTime, rules: setClient | modClient},
	AttrDeactivationDate:               {typ: ttlv.TypeDateTime, rules: setClient | modClient},
	AttrDestroyDate:                    {typ: ttlv.TypeDateTime},
	AttrCompromiseOccurrence:           {typ: ttlv.TypeDateTime},
	AttrCompromiseDate:                 {typ: ttlv.TypeDateTime},
	AttrRevocationReason:               {typ: ttlv.TypeStructure},
	AttrArchiveDate:                    {typ: ttlv.TypeDateTime},
	AttrObjectGroup:                    {typ: ttlv.TypeTextString, multi: true, rules: clientAll},
	AttrFresh:                          {typ: ttlv.TypeBoolean, since: 1, rules: setClient | initOnly}, // §3.34: initially set by server or client
	AttrLink:                           {typ: ttlv.TypeStructure, multi: true, rules: clientAll, fields: map[ttlv.Tag]ttlv.Type{kmip14.TagLinkType: ttlv.TypeEnumeration, kmip14.TagLinkedObjectIdentifier: ttlv.TypeTextString}},
	"Application Specific Information": {typ: ttlv.TypeStructure, multi: true, rules: clientAll, fields: map[ttlv.Tag]ttlv.Type{kmip14.TagApplicationNamespace: ttlv.TypeTextString}},
	"Contact Information":              {typ: ttlv.TypeTextString, rules: clientAll},
	AttrLastChangeDate:                 {typ: ttlv.TypeDateTime},
	"Alternative Name":                 {typ: ttlv.TypeStructure, multi: true, since: 2, rules: clientAll, fields: map[ttlv.Tag]ttlv.Type{kmip14.TagAlternativeNameValue: ttlv.TypeTextString, kmip14.TagAlternativeNameType: ttlv.TypeEnumeration}},
	AttrKeyValuePresent:                {typ: ttlv.TypeBoolean, since: 2},
	AttrKeyValueLocation:               {typ: ttlv.TypeStructure, multi: true, since: 2, rules: clientAll},
	AttrOriginalCreationDate:           {typ: ttlv.TypeDateTime, since: 2, rules: setClient},
	AttrRNG:                            {typ: ttlv.TypeStructure, since: 3, rules: setClient, fields: map[ttlv.Tag]ttlv.Type{kmip14.TagRNGAlgorithm: ttlv.TypeEnumeration}},
	"PKCS#12 Friendly Name":            {typ: ttlv.TypeTextString, since: 4, rules: clientAll},
	"Description":                      {typ: ttlv.TypeTextString, since: 4, rules: clientAll},
	"Comment":                          {typ: ttlv.TypeTextString, since: 4, rules: clientAll},
	AttrSensitive:                      {typ: ttlv.TypeBoolean, since: 4, rules: setClient | modClient},
	AttrAlwaysSensitive:                {typ: ttlv.TypeBoolean, since: 4},
	AttrExtractable:                    {typ: ttlv.TypeBoolean, since: 4, rules: setClient | modClient},
	AttrNeverExtractable:               {typ: ttlv.TypeBoolean, since: 4},
}

// standardNames maps each standard name to itself, so internName can return
// the one shared string instead of allocating per attribute per record read.
var standardNames = func() map[string]string {
	m := make(map[string]string, len(defs))
	for n := range defs {
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
		return errorf(kmip14.ResultReasonInvalidField, "attribute %q has no Attribute Value", name)
	}
	d, ok := defs[name]
	if !ok {
		return nil
	}
	if v.Type != d.typ && !(d.typ == ttlv.TypeDateTime && v.Type == ttlv.TypeDateTimeExtended) {
		return errorf(kmip14.ResultReasonInvalidField, "attribute %q must be of type %s", name, d.typ)
	}
	for tag, typ := range d.fields {
		c := v.Child(tag)
		if c == nil || c.Type != typ {
			return errorf(kmip14.ResultReasonInvalidField, "attribute %q needs %s of type %s", name, tag, typ)
		}
	}
	if name == AttrUsageLimits {
		return checkUsageLimits(v)
	}
	return nil
}
