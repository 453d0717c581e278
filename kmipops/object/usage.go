package object

import (
	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Usage Limits (KMIP 1.4 §3.21): Usage Limits Total is what the object may
// protect over its whole life, Usage Limits Count what is left of it, in
// the Usage Limits Unit (bytes or objects). A client gives the Total; "when
// the attribute is initially set ... the Usage Limits Count is set to the
// Usage Limits Total value", so the server fills in the Count a client
// leaves out (withUsageCount), wherever a value enters an object.

// checkUsageLimits validates a Usage Limits value: counts are never
// negative and the Count never exceeds the Total.
func checkUsageLimits(v *tree.Node) error {
	total := v.Child(kmip14.TagUsageLimitsTotal).Int
	if total < 0 {
		return errorf(kmip14.ResultReasonInvalidField, "Usage Limits Total must not be negative")
	}
	if c := v.Child(kmip14.TagUsageLimitsCount); c != nil {
		if c.Type != ttlv.TypeLongInteger || c.Int < 0 || c.Int > total {
			return errorf(kmip14.ResultReasonInvalidField, "Usage Limits Count must be a Long Integer between 0 and the Total")
		}
	}
	switch kmip14.UsageLimitsUnit(v.Child(kmip14.TagUsageLimitsUnit).Int) {
	case kmip14.UsageLimitsUnitByte, kmip14.UsageLimitsUnitObject:
		return nil
	}
	return errorf(kmip14.ResultReasonInvalidField, "Usage Limits Unit must be Byte or Object")
}

// withUsageCount returns v, a value being given to attribute name, with
// the Usage Limits Count the server sets when a Usage Limits value has
// none, in the structure's field order (Total, Count, Unit). Other values
// are returned as they are. v is taken over, as by Set.
func withUsageCount(name string, v *tree.Node) *tree.Node {
	if name != AttrUsageLimits || v == nil || v.Child(kmip14.TagUsageLimitsCount) != nil {
		return v
	}
	total := v.Child(kmip14.TagUsageLimitsTotal)
	if total == nil {
		return v
	}
	out := &tree.Node{Tag: v.Tag, Type: v.Type}
	for _, c := range v.Children {
		out.Children = append(out.Children, c)
		if c == total {
			out.Children = append(out.Children, tree.Long(kmip14.TagUsageLimitsCount, total.Int))
		}
	}
	return out
}

// UsageRemaining reads the Usage Limits attribute: the Count left (the
// Total if the server has not set a Count yet) and the unit. ok is false
// when the object has no Usage Limits, that is, no limit.
func (o *Object) UsageRemaining() (count int64, unit kmip14.UsageLimitsUnit, ok bool) {
	ul := o.UsageLimits()
	total, ok := ul.Child(kmip14.TagUsageLimitsTotal).LongValue()
	if !ok {
		return 0, 0, false
	}
	count, hasCount := ul.Child(kmip14.TagUsageLimitsCount).LongValue()
	if !hasCount {
		count = total
	}
	u, _ := ul.Child(kmip14.TagUsageLimitsUnit).EnumValue()
	return count, kmip14.UsageLimitsUnit(u), true
}

// ConsumeUsage takes n units off the Usage Limits Count, refusing (false,
// nothing changed) when fewer than n are left. The object must have Usage
// Limits (UsageRemaining).
func (o *Object) ConsumeUsage(n int64) bool {
	ul := o.UsageLimits()
	total, _ := ul.Child(kmip14.TagUsageLimitsTotal).LongValue()
	count, unit, ok := o.UsageRemaining()
	if !ok || n < 0 || n > count {
		return false
	}
	o.Set(AttrUsageLimits, tree.Struct(kmip14.TagAttributeValue,
		tree.Long(kmip14.TagUsageLimitsTotal, total),
		tree.Long(kmip14.TagUsageLimitsCount, count-n),
		tree.Enum(kmip14.TagUsageLimitsUnit, uint32(unit))))
	return true
}
