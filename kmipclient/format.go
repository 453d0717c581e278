package kmipclient

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Attribute values rendered for people and for scripts. An attribute's
// value is tagged Attribute Value, so the enumeration that names it is found
// from the attribute's name ("State" → the State enumeration); inside a
// structure each field's own tag names it. Names are the KMIP normalised
// ones ("PreActive", "SymmetricKey", "Encrypt|Decrypt"), as in KMIP's JSON
// and XML profiles; an unregistered value is hex. Byte strings are hex.

var registry = &ttlv.DefaultRegistry

// valueTag is the tag named like the attribute, or 0 for a custom one.
func valueTag(name string) ttlv.Tag {
	t, err := registry.ParseTag(ttlv.NormalizeName(name))
	if err != nil {
		return 0
	}
	return t
}

// TagName is a tag's normalised name ("NameValue"), or hex when unknown.
func TagName(t ttlv.Tag) string { return registry.FormatTag(t) }

// EnumName is the specification's name of an enumeration value ("Item Not
// Found", "Create Key Pair"), or hex when it has none: for messages, where
// the normalised names attributes use would read worse.
func EnumName(tag ttlv.Tag, v uint32) string {
	if e := registry.EnumForTag(tag); e != nil {
		if s, ok := e.CanonicalName(v); ok {
			return s
		}
	}
	return registry.FormatEnum(tag, v)
}

// FormatValue renders attribute name's value v on one line: a structure as
// {Field=value, ...}.
func FormatValue(name string, v *tree.Node) string {
	if v == nil {
		return ""
	}
	return formatNode(valueTag(name), v)
}

func formatNode(tag ttlv.Tag, v *tree.Node) string {
	switch v.Type {
	case ttlv.TypeStructure:
		parts := make([]string, 0, len(v.Children))
		for _, c := range v.Children {
			parts = append(parts, TagName(c.Tag)+"="+formatNode(c.Tag, c))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case ttlv.TypeTextString:
		return v.Text
	case ttlv.TypeInterval:
		return (time.Duration(v.Int) * time.Second).String()
	}
	return scalar(tag, v)
}

// scalar renders what reads the same for people and scripts as text.
func scalar(tag ttlv.Tag, v *tree.Node) string {
	switch v.Type {
	case ttlv.TypeEnumeration:
		return registry.FormatEnum(tag, uint32(v.Int))
	case ttlv.TypeInteger:
		if registry.IsBitmask(tag) {
			return registry.FormatInt(tag, int32(v.Int))
		}
		return strconv.FormatInt(v.Int, 10)
	case ttlv.TypeLongInteger:
		return strconv.FormatInt(v.Int, 10)
	case ttlv.TypeBigInteger:
		if v.Big == nil {
			return "0"
		}
		return v.Big.String()
	case ttlv.TypeBoolean:
		return strconv.FormatBool(v.Int != 0)
	case ttlv.TypeByteString:
		return hex.EncodeToString(v.Bytes)
	case ttlv.TypeDateTime, ttlv.TypeDateTimeExtended:
		return v.Time.UTC().Format(time.RFC3339)
	case ttlv.TypeTextString:
		return v.Text
	}
	return "?"
}

// JSONValue is attribute name's value v as JSON-encodable data: a structure
// is an object keyed by field name (a repeated field becomes an array),
// integers and booleans are JSON's, an Interval is seconds, and
// enumerations, masks, dates, big integers and byte strings are strings.
func JSONValue(name string, v *tree.Node) any {
	if v == nil {
		return nil
	}
	return jsonNode(valueTag(name), v)
}

func jsonNode(tag ttlv.Tag, v *tree.Node) any {
	switch v.Type {
	case ttlv.TypeStructure:
		m := make(map[string]any, len(v.Children))
		for _, c := range v.Children {
			k, val := TagName(c.Tag), jsonNode(c.Tag, c)
			switch prev := m[k].(type) {
			case nil:
				m[k] = val
			case []any:
				m[k] = append(prev, val)
			default:
				m[k] = []any{prev, val}
			}
		}
		return m
	case ttlv.TypeInteger:
		if registry.IsBitmask(tag) {
			return scalar(tag, v)
		}
		return v.Int
	case ttlv.TypeLongInteger, ttlv.TypeInterval:
		return v.Int
	case ttlv.TypeBoolean:
		return v.Int != 0
	}
	return scalar(tag, v)
}

// ParseEnum reads a value of tag's enumeration as a person types it: its
// KMIP name in any case, with or without spaces, dashes, dots and
// underscores ("p-256", "pkcs5", "key compromise"), or a number.
func ParseEnum(tag ttlv.Tag, s string) (uint32, error) {
	if v, err := registry.ParseEnum(tag, s); err == nil {
		return v, nil
	}
	e := registry.EnumForTag(tag)
	if e == nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	want := squash(s)
	var names []string
	for _, v := range e.Values() {
		n, _ := e.Name(v)
		if squash(n) == want {
			return v, nil
		}
		names = append(names, n)
	}
	return 0, fmt.Errorf("%q is not a %s (one of %s)", s, TagName(tag), strings.Join(names, ", "))
}

// ParseMask reads a Cryptographic Usage Mask: names (as ParseEnum takes
// them) separated by commas or |.
func ParseMask(s string) (kmip14.CryptographicUsageMask, error) {
	var m uint32
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '|' }) {
		v, err := ParseEnum(kmip14.TagCryptographicUsageMask, strings.TrimSpace(part))
		if err != nil {
			return 0, err
		}
		m |= v
	}
	return kmip14.CryptographicUsageMask(m), nil
}

func squash(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '_', '.':
			return -1
		}
		return unicode.ToLower(r)
	}, s)
}
