package kmipops

import (
	"fmt"
	"io"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// Re-key (KMIP 1.4 §4.4) makes a replacement for an existing symmetric key:
// new key material, and the attributes of the existing key, except those
// the server sets anew (replacementAttrs). The replacement takes the
// existing key's names, and the two are linked: Replaced Object Link on the
// replacement, Replacement Object Link on the existing key. Re-key Key Pair
// (op_rekey_pair.go) does the same for both halves of a key pair.

// lifecycleDates are the dates an Offset moves (§4.4's table).
var lifecycleDates = []string{object.AttrActivationDate, object.AttrProcessStartDate,
	object.AttrProtectStopDate, object.AttrDeactivationDate}

// offsetArg reads the optional Offset of a Re-key request.
func offsetArg(payload *tree.Node) (*time.Duration, error) {
	n := payload.Child(kmip14.TagOffset)
	if n == nil {
		return nil, nil
	}
	d, ok := n.View().IntervalValue()
	if !ok {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Offset must be an Interval")
	}
	return &d, nil
}

// replaceable checks that old may be replaced: an object of type t whose
// key material still exists. Any other state is allowed: a key is
// typically re-keyed when it expires (Deactivated) or is Compromised.
func replaceable(old *object.Object, t kmip14.ObjectType) error {
	if old.Type() != t {
		return Errorf(kmip14.ResultReasonIllegalOperation, "a %s cannot be re-keyed by this operation", old.Type())
	}
	if old.Destroyed() {
		return denied("a destroyed key cannot be re-keyed")
	}
	return nil
}

// replacementAttrs are the client attributes of old's replacement, for
// object.New, which sets the server's own (Initial Date, State, Digest,
// Fresh, Lease Time, Random Number Generator, ...) as for any new object.
// They are old's attributes that a client may give, custom ones included,
// then the template's: a template value replaces a single-instance
// attribute and adds an instance to a multi-instance one (Name). Not
// copied: Link (the caller links the two keys), Key Value Location, Original
// Creation Date, Random Number Generator and the server-managed attributes,
// so neither Destroy Date nor the compromise and revocation attributes pass
// to the replacement. Usage Limits keeps its Total and Unit and starts again
// from the Total. The lifecycle dates are copied
// unless an Offset is given; then the Activation Date is now + Offset and
// the other dates keep their distance from it.
func replacementAttrs(old *object.Object, template []object.Attr, offset *time.Duration, now time.Time) ([]object.Attr, error) {
	if offset != nil {
		for _, d := range lifecycleDates {
			if hasAttr(template, d) {
				return nil, Errorf(kmip14.ResultReasonInvalidMessage, "Offset cannot be given together with %s", d)
			}
		}
	}
	var out []object.Attr
	for _, a := range old.Listing(4, false) {
		name := a.Name()
		if d, known := object.Lookup(name); known && !d.ClientSets() {
			continue
		}
		// Key Value Location says where material kept off the server is;
		// the replacement's is on the server. Original Creation Date and
		// Random Number Generator describe the old material's making. Fresh
		// is the replacement's own (not served yet), set by the server.
		if name == object.AttrLink || name == object.AttrUsageLimits || name == object.AttrKeyValueLocation ||
			name == object.AttrOriginalCreationDate || name == object.AttrRNG || name == object.AttrFresh ||
			(offset != nil && isLifecycleDate(name)) {
			continue
		}
		out = append(out, a)
	}
	ul := old.UsageLimits()
	if total, ok := ul.Child(kmip14.TagUsageLimitsTotal).LongValue(); ok {
		unit, _ := ul.Child(kmip14.TagUsageLimitsUnit).EnumValue()
		// object.New sets the Count to the Total.
		out = append(out, object.NewAttr(object.AttrUsageLimits, tree.Struct(0,
			tree.Long(kmip14.TagUsageLimitsTotal, total),
			tree.Enum(kmip14.TagUsageLimitsUnit, unit))))
	}
	if offset != nil {
		dates, err := offsetDates(old, now.Add(*offset))
		if err != nil {
			return nil, err
		}
		out = append(out, dates...)
	}
	return mergeTemplates(out, template), nil
}

func isLifecycleDate(name string) bool {
	for _, d := range lifecycleDates {
		if name == d {
			return true
		}
	}
	return false
}

// offsetDates applies §4.4's table: the replacement is activated at at2,
// and its Process Start, Protect Stop and Deactivation Dates are the
// existing key's, moved by as much as the Activation Date moved. Moving
// them needs the existing key's Activation Date.
func offsetDates(old *object.Object, at2 time.Time) ([]object.Attr, error) {
	out := []object.Attr{object.NewAttr(object.AttrActivationDate, tree.Time(0, at2))}
	at1, hasAT1 := old.Get(object.AttrActivationDate).TimeValue()
	for _, name := range lifecycleDates[1:] {
		t1, ok := old.Get(name).TimeValue()
		if !ok {
			continue
		}
		if !hasAT1 {
			return nil, Errorf(kmip14.ResultReasonIllegalOperation, "an Offset cannot move the %s: the existing key has no Activation Date", name)
		}
		out = append(out, object.NewAttr(name, tree.Time(0, t1.Add(at2.Sub(at1)))))
	}
	return out, nil
}

// retire gives up old's names to its replacement and links it to it. A key
// re-keyed again (§4.4 says it SHOULD NOT be) points to the newest one.
func retire(old *object.Object, replacement string, now time.Time) {
	for _, a := range old.All(object.AttrName) {
		old.Delete(object.AttrName, a.Index())
	}
	setLink(old, kmip14.LinkTypeReplacementObjectLink, replacement)
	old.Touch(now)
}

// setLink makes o's link of type t point to uid, replacing the link of
// that type it has, if any.
func setLink(o *object.Object, t kmip14.LinkType, uid string) {
	for _, a := range o.All(object.AttrLink) {
		if lt, _ := a.Value().Child(kmip14.TagLinkType).EnumValue(); kmip14.LinkType(lt) == t {
			o.Modify(object.AttrLink, a.Index(), linkValue(t, uid))
			return
		}
	}
	o.Add(object.AttrLink, linkValue(t, uid))
}

// dropNew removes a replacement stored before a later step failed.
func (p *Processor) dropNew(ic *itemCtx, objs ...*object.Object) {
	for _, o := range objs {
		if o == nil || o.UID() == "" {
			continue
		}
		if err := ic.objects.Remove(ic.ctx, o.UID()); err != nil {
			p.log.Error("could not remove the replacement of a failed re-key", "uid", o.UID(), "caller", ic.caller.CommonName, "err", err)
		}
	}
}

func opReKey(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	uid, err := uidArg(ic, payload)
	if err != nil {
		return nil, err
	}
	offset, err := offsetArg(payload)
	if err != nil {
		return nil, err
	}
	tmpl, err := ic.parseTemplate(payload.Child(kmip14.TagTemplateAttribute))
	if err != nil {
		return nil, err
	}
	// The replacement is stored first, under the existing key's lock, so
	// that no one sees the existing key retired without its replacement.
	var repl *object.Object
	_, err = ic.objects.Update(ic.ctx, uid, func(old *object.Object) (bool, error) {
		old.AdvanceState(ic.now)
		if err := replaceable(old, kmip14.ObjectTypeSymmetricKey); err != nil {
			return false, err
		}
		// Run again (another replica wrote the key meanwhile), fn keeps
		// the replacement it stored: only the key's own change is redone.
		if repl == nil {
			attrs, err := replacementAttrs(old, tmpl, offset, ic.now)
			if err != nil {
				return false, err
			}
			o, err := p.newSymmetric(ic, attrs, Errorf(kmip14.ResultReasonIllegalOperation, "the key has no Cryptographic Algorithm to generate a replacement for"))
			if err != nil {
				return false, err
			}
			if err := p.objects.AssignUID(o); err != nil {
				return false, err
			}
			o.Add(object.AttrLink, linkValue(kmip14.LinkTypeReplacedObjectLink, old.UID()))
			if err := ic.objects.Insert(ic.ctx, o); err != nil {
				return false, err
			}
			repl = o
		}
		retire(old, repl.UID(), ic.now)
		return true, nil
	})
	if err != nil {
		p.dropNew(ic, repl)
		return nil, err
	}
	ic.placeholder = repl.UID()
	return respUID(repl.UID()), nil
}

// newSymmetric generates a symmetric key (Create, ReKey) from the server's
// random source, with the algorithm and length attrs name; noAlg is the
// answer when they name no algorithm.
func (p *Processor) newSymmetric(ic *itemCtx, attrs []object.Attr, noAlg error) (*object.Object, error) {
	alg, length, hasAlg, hasLen := algLength(attrs)
	if !hasAlg {
		return nil, noAlg
	}
	length, n, mask, err := symmetricSpec(alg, length, hasLen)
	if err != nil {
		return nil, err
	}
	material := make([]byte, n)
	if _, err := io.ReadFull(p.opts.Rand, material); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	body := tree.Struct(kmip14.TagSymmetricKey, keyBlock(alg, length, kmip14.KeyFormatTypeRaw, material))
	return p.newObject(ic, kmip14.ObjectTypeSymmetricKey, body, withDefaults(attrs, alg, length, mask), true)
}
