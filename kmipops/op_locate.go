package kmipops

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// opLocate searches the caller's objects (KMIP 1.4 §4.9). Every object is
// sealed; the blind index (kmipops/object/index.go: keyed hashes, nothing
// in the clear) names the candidates when a criterion is indexed, else
// every record of the caller is opened. With Maximum Items, the objects
// are walked newest first along the index's ordering entries and only
// until Offset + Maximum Items match (locateOrdered). Any attribute may be
// a criterion, custom (x-, y-) ones of any type included; Object Group
// Member narrows the matches to Fresh objects, or to the group's default
// one (groups.go). Objects the request's credential identity may not use
// are not found.
func opLocate(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	intField := func(tag ttlv.Tag) (int32, bool, error) {
		n := payload.Child(tag)
		if n == nil {
			return 0, false, nil
		}
		v, ok := n.IntValue()
		if !ok || v < 0 {
			return 0, false, Errorf(kmip14.ResultReasonInvalidField, "%s must be a non-negative integer", tag)
		}
		return v, true, nil
	}
	maxItems, hasMax, err := intField(kmip14.TagMaximumItems)
	if err != nil {
		return nil, err
	}
	offset, hasOffset, err := intField(kmip14.TagOffsetItems)
	if err != nil {
		return nil, err
	}
	// Storage Status Mask (§4.9): on-line objects, unless it asks for
	// archived ones too (op_archive.go).
	storage := kmip14.StorageStatusMaskOnLineStorage
	if mask, ok, err := intField(kmip14.TagStorageStatusMask); err != nil {
		return nil, err
	} else if ok {
		storage = kmip14.StorageStatusMask(mask)
	}
	var member kmip14.ObjectGroupMember
	if n := payload.Child(kmip14.TagObjectGroupMember); n != nil {
		v, ok := n.EnumValue()
		member = kmip14.ObjectGroupMember(v)
		if !ok || (member != kmip14.ObjectGroupMemberGroupMemberFresh && member != kmip14.ObjectGroupMemberGroupMemberDefault) {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Object Group Member must be Group Member Fresh or Group Member Default")
		}
	}
	crit, err := parseAttributes(payload.All(kmip14.TagAttribute))
	if err != nil {
		return nil, err
	}
	m := newMatcher(crit)

	type hit struct {
		uid     string
		initial time.Time
		member  groupMember
	}
	var hits []hit
	check := func(o *object.Object) {
		if o.Archived() && storage&kmip14.StorageStatusMaskArchivalStorage == 0 ||
			!o.Archived() && storage&kmip14.StorageStatusMaskOnLineStorage == 0 {
			return
		}
		o.AdvanceState(ic.now)
		// Destroyed objects are found only when the search names a State
		// (OASIS SKFF-M-5: Locate after Destroy finds nothing).
		if o.Destroyed() && !m.byState {
			return
		}
		if member == kmip14.ObjectGroupMemberGroupMemberFresh && !o.Fresh() {
			return
		}
		if m.match(o) {
			t, _ := o.InitialDate()
			hits = append(hits, hit{o.UID(), t, groupMember{o.UID(), o.Order(), o.State() == kmip14.StateActive}})
		}
	}
	// With Maximum Items the matches are found newest first along the
	// ordering index, and the search stops once it has Offset + Maximum
	// Items of them; it then does not know how many there are. Maximum
	// Items 0 asks for that count alone: it is searched in full.
	need := int(offset) + int(maxItems)
	walked, stopped := false, false
	if hasMax && maxItems > 0 && member == 0 && !p.fullLocate {
		walked, stopped, err = locateOrdered(ic, m.exact, need, func() { hits = hits[:0] }, func(o *object.Object) bool {
			check(o)
			return len(hits) >= need
		})
		if err != nil {
			return nil, fmt.Errorf("locate: %w", err)
		}
		if !walked {
			hits = nil // no walk answered: search as without Maximum Items
		}
	}
	if !walked {
		if err := locateAll(ic, m.exact, check); err != nil {
			return nil, fmt.Errorf("locate: %w", err)
		}
	}
	// Newest first, so Maximum Items keeps the most recent matches (the
	// walk found them in this order already).
	sort.Slice(hits, func(i, j int) bool {
		if !hits[i].initial.Equal(hits[j].initial) {
			return hits[i].initial.After(hits[j].initial)
		}
		return hits[i].uid < hits[j].uid
	})
	// Object Group Member: kmipd's group policies (groups.go).
	switch group := locatedGroup(crit); {
	case member == kmip14.ObjectGroupMemberGroupMemberFresh && len(hits) == 0 && offset == 0:
		o, err := p.freshDefaultMember(ic, group, m)
		if err != nil {
			return nil, err
		}
		if o != nil {
			hits = []hit{{uid: o.UID()}}
		}
	case member == kmip14.ObjectGroupMemberGroupMemberFresh:
		sort.SliceStable(hits, func(i, j int) bool { return before(hits[i].member, hits[j].member) })
	case member == kmip14.ObjectGroupMemberGroupMemberDefault && len(hits) > 0:
		members := make([]groupMember, len(hits))
		for i, h := range hits {
			members[i] = h.member
		}
		d := p.groups.pick(ic, group, members)
		hits = []hit{{uid: d.uid}}
	}
	total := len(hits)
	if int(offset) >= len(hits) {
		hits = nil
	} else {
		hits = hits[offset:]
	}
	if hasMax && int(maxItems) < len(hits) {
		hits = hits[:maxItems]
	}
	uids := make([]string, len(hits))
	for i, h := range hits {
		uids[i] = h.uid
	}
	ic.placeholder = noneLocated
	if len(uids) > 0 {
		ic.placeholder = uids[0]
	}
	// Located Items is optional (§4.9: a server MAY omit it when it cannot
	// determine the count); it is sent when the client pages and the
	// search did not stop early.
	return locateResponse(ic, uids, total, (hasMax || hasOffset) && !stopped), nil
}

// locateAll calls check with every object that may match crit: the blind
// index's candidates when it covers a criterion, else every object.
func locateAll(ic *itemCtx, crit []object.Attr, check func(o *object.Object)) error {
	cands, indexed, err := ic.objects.Lookup(ic.ctx, crit)
	switch {
	case err != nil:
		return err
	case indexed:
		// Archived candidates too: check filters by the Storage Status Mask.
		all := ic.objects.WithArchived()
		for _, uid := range cands {
			o, err := all.Load(ic.ctx, uid)
			if errors.Is(err, object.ErrNotFound) || errors.Is(err, object.ErrDenied) {
				continue // removed since the lookup, or not the caller's to see
			}
			if err != nil {
				return err
			}
			check(o)
		}
		return nil
	}
	return ic.objects.Each(ic.ctx, func(o *object.Object) error {
		check(o)
		return nil
	})
}

// What a Locate walking the ordering index may spend, per item it keeps
// (Offset + Maximum Items), before it tries another way: a walk that
// gives up has cost about as much as the way it then takes. Counting an
// index entry costs a small fraction of opening a record.
const (
	// The candidates counted before a first walk: a criterion that names
	// more leaves the walk to open objects in order...
	streamCount = 16
	// ...until it has opened this many, when few of them match; it then
	// takes the candidates however many (up to the index's bound).
	streamOpens = 64
	// Entries a walk over candidates reads per candidate.
	walkPerCandidate = 16
)

// locateOrdered walks the caller's objects newest first (object.Ordered),
// each that may match crit, until check (called with each, after begin
// at the start of each walk) says it has enough. walked is false when no
// walk answered (no index, or each gave up) and the caller searches
// otherwise; stopped says check ended it, before the last object.
func locateOrdered(ic *itemCtx, crit []object.Attr, need int, begin func(), check func(o *object.Object) (enough bool)) (walked, stopped bool, err error) {
	all := ic.objects.WithArchived() // check filters by the Storage Status Mask
	walk := func(cands []string, limit int) (bool, error) {
		var only map[string]bool
		if cands != nil {
			only = make(map[string]bool, len(cands))
			for _, u := range cands {
				only[u] = true
			}
		}
		begin()
		stopped = false
		return all.Ordered(ic.ctx, only, limit, func(o *object.Object) (bool, error) {
			stopped = check(o)
			return stopped, nil
		})
	}
	cands, indexed, err := ic.objects.LookupUpTo(ic.ctx, crit, max(256, streamCount*need))
	if !indexed && err == nil {
		if walked, err = walk(nil, streamOpens*need); walked || err != nil {
			return walked, stopped && walked, err
		}
		// Few of the objects opened matched: their candidates, if the
		// index can name them, are passed over unread.
		cands, indexed, err = ic.objects.LookupUpTo(ic.ctx, crit, math.MaxInt)
	}
	if err != nil || !indexed || len(cands) <= need {
		return false, false, err // no walk; or opening every candidate costs no more
	}
	walked, err = walk(cands, walkPerCandidate*len(cands))
	return walked, stopped && walked, err
}

// noneLocated is the ID Placeholder after a Locate that found nothing: no
// valid uid, so the next item's use of it is Item Not Found, not Missing
// Data (OASIS TC-152: Locate of a group with no Fresh member, then Get).
const noneLocated = "\x00none-located"

func locateResponse(ic *itemCtx, uids []string, total int, count bool) *tree.Node {
	r := tree.Struct(kmip14.TagResponsePayload)
	if count && ic.v.minor >= 3 {
		r.Add(tree.Int(kmip14.TagLocatedItems, int32(total)))
	}
	for _, u := range uids {
		r.Add(tree.Text(kmip14.TagUniqueIdentifier, u))
	}
	return r
}

// matcher holds Locate's criteria: every one must match some instance of
// the object's attribute of that name. Two values of one date attribute
// give an inclusive range.
type matcher struct {
	exact   []object.Attr
	ranges  map[string][2]time.Time
	byState bool
}

func newMatcher(crit []object.Attr) *matcher {
	m := &matcher{ranges: map[string][2]time.Time{}}
	byName := map[string][]object.Attr{}
	for _, a := range crit {
		byName[a.Name()] = append(byName[a.Name()], a)
		m.byState = m.byState || a.Name() == object.AttrState
	}
	for _, a := range crit {
		l := byName[a.Name()]
		if len(l) == 2 && a.Value().Type() == ttlv.TypeDateTime && l[1].Value().Type() == ttlv.TypeDateTime {
			lo, _ := l[0].Value().TimeValue()
			hi, _ := l[1].Value().TimeValue()
			if hi.Before(lo) {
				lo, hi = hi, lo
			}
			m.ranges[a.Name()] = [2]time.Time{lo, hi}
			continue
		}
		m.exact = append(m.exact, a)
	}
	return m
}

func (m *matcher) match(o *object.Object) bool {
	for name, r := range m.ranges {
		ok := false
		for _, a := range o.All(name) {
			if t, isT := a.Value().TimeValue(); isT && !t.Before(r[0]) && !t.After(r[1]) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	for _, c := range m.exact {
		ok := false
		want := c.Value()
		for _, a := range o.All(c.Name()) {
			have := a.Value()
			if c.Name() == object.AttrUsageMask && have.Type() == ttlv.TypeInteger {
				// A mask matches objects allowing at least those usages.
				hm, _ := have.IntValue()
				wm, _ := want.IntValue()
				ok = ok || hm&wm == wm
				continue
			}
			ok = ok || have.Equal(want)
		}
		if !ok {
			return false
		}
	}
	return true
}
