package object

import (
	"sort"
	"strings"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Typed accessors for the attributes operations decide on, so an operation
// reads o.Sensitive() rather than decoding the attribute itself.

// State is the object's State (0 if it has none).
func (o *Object) State() kmip14.State {
	s, _ := o.Get(AttrState).EnumValue()
	return kmip14.State(s)
}

// SetState sets the State attribute.
func (o *Object) SetState(s kmip14.State) {
	o.Set(AttrState, tree.Enum(0, uint32(s)))
}

// Destroyed reports whether the object's key material is gone.
func (o *Object) Destroyed() bool {
	s := o.State()
	return s == kmip14.StateDestroyed || s == kmip14.StateDestroyedCompromised
}

// AdvanceState applies the time-driven transitions of KMIP 1.4 §3.22:
// Activation Date reached makes a Pre-Active object Active, Deactivation
// Date reached makes it Deactivated. It reports whether the state changed.
func (o *Object) AdvanceState(now time.Time) bool {
	s := o.State()
	ns := s
	if ad, ok := o.Get(AttrActivationDate).TimeValue(); ok && ns == kmip14.StatePreActive && !ad.After(now) {
		ns = kmip14.StateActive
	}
	if dd, ok := o.Get(AttrDeactivationDate).TimeValue(); ok && (ns == kmip14.StatePreActive || ns == kmip14.StateActive) && !dd.After(now) {
		ns = kmip14.StateDeactivated
	}
	if ns == s || s == 0 {
		return false
	}
	o.SetState(ns)
	return true
}

// Touch records a change made by a client (Last Change Date).
func (o *Object) Touch(now time.Time) {
	o.Set(AttrLastChangeDate, tree.Time(0, now))
}

// Archived reports whether the object is archived (KMIP 1.4 §4.22): the
// Archive Date that Archive sets and Recover deletes (§3.33) is the mark,
// kept in the sealed record like every attribute.
func (o *Object) Archived() bool { return o.Has(AttrArchiveDate) }

// Sensitive reports the Sensitive attribute (false when absent): a
// sensitive object is served only wrapped.
func (o *Object) Sensitive() bool {
	s, _ := o.Get(AttrSensitive).BoolValue()
	return s
}

// Extractable reports the Extractable attribute (true when absent, KMIP
// 1.4 §3.49's default).
func (o *Object) Extractable() bool {
	e, ok := o.Get(AttrExtractable).BoolValue()
	return e || !ok
}

// Fresh reports the Fresh attribute: the material has not been served to a
// client yet.
func (o *Object) Fresh() bool {
	f, _ := o.Get(AttrFresh).BoolValue()
	return f
}

// CryptographicAlgorithm is the Cryptographic Algorithm attribute.
func (o *Object) CryptographicAlgorithm() (kmip14.CryptographicAlgorithm, bool) {
	a, ok := o.Get(AttrCryptoAlgorithm).EnumValue()
	return kmip14.CryptographicAlgorithm(a), ok
}

// UsageMask is the Cryptographic Usage Mask attribute.
func (o *Object) UsageMask() (kmip14.CryptographicUsageMask, bool) {
	m, ok := o.Get(AttrUsageMask).IntValue()
	return kmip14.CryptographicUsageMask(uint32(m)), ok
}

// LeaseTime is the Lease Time attribute.
func (o *Object) LeaseTime() (time.Duration, bool) { return o.Get(AttrLeaseTime).IntervalValue() }

// UsageLimits is the Usage Limits attribute's value.
func (o *Object) UsageLimits() tree.View { return o.Get(AttrUsageLimits) }

// CryptographicParameters is the value of the Cryptographic Parameters
// instance of lowest Attribute Index: the parameters associated with the
// key (not Present when it has none).
func (o *Object) CryptographicParameters() tree.View {
	var best *Attr
	for i := range o.attrs {
		if a := &o.attrs[i]; a.name == AttrCryptoParameters && (best == nil || a.index < best.index) {
			best = a
		}
	}
	if best == nil {
		return tree.View{}
	}
	return best.Value()
}

func (o *Object) InitialDate() (time.Time, bool) { return o.Get(AttrInitialDate).TimeValue() }

func (o *Object) LastChangeDate() (time.Time, bool) { return o.Get(AttrLastChangeDate).TimeValue() }

func (o *Object) ProcessStartDate() (time.Time, bool) {
	return o.Get(AttrProcessStartDate).TimeValue()
}

func (o *Object) ProtectStopDate() (time.Time, bool) {
	return o.Get(AttrProtectStopDate).TimeValue()
}

// leadingAttrs open an all-attributes listing after the custom ones, in the
// order the OASIS test cases show; the rest follow by name.
var leadingAttrs = map[string]int{AttrUniqueIdentifier: 1, AttrObjectType: 2, AttrCryptoAlgorithm: 3, AttrCryptoLength: 4}

// Listing returns the attribute instances visible at protocol version
// 1.minor, in listing order: custom and unknown ones as stored, then the
// leading standard attributes, then the others by name.
//
// values is set for GetAttributes (values returned), clear for
// GetAttributeList (names only). With values, a 1.2 client is not sent the
// attributes 1.2 introduced: PyKMIP 0.10, which speaks 1.2 by default, cannot
// decode them (Original Creation Date above all, which every generated object
// has) and fails the whole response. They remain readable by name.
func (o *Object) Listing(minor int32, values bool) []Attr {
	var cust, std []Attr
	for _, a := range o.attrs {
		d, known := defs[a.name]
		switch {
		case !known:
			cust = append(cust, a)
		case values && minor == 2 && d.since == 2:
		case d.since <= minor:
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
