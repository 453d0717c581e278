package object

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// Lookups in the blind index (index.go).

// stateSources are the stored states an object in state s may have: the
// time-driven transitions (AdvanceState) happen when the object is read,
// not written.
func stateSources(s kmip14.State) []kmip14.State {
	switch s {
	case kmip14.StateActive:
		return []kmip14.State{kmip14.StateActive, kmip14.StatePreActive}
	case kmip14.StateDeactivated:
		return []kmip14.State{kmip14.StateDeactivated, kmip14.StateActive, kmip14.StatePreActive}
	}
	return []kmip14.State{s}
}

// Lookup returns the uids of the owner's objects that may match every one
// of crit, exact criteria a matching object has an instance equal to (each
// a Locate criterion without its date ranges). ok is false when the index
// answers none of them (no indexed criterion, or no index on this store):
// the caller then scans (Each). The candidates are a superset of the
// matches, for the caller to check: it must Load each, and skip one that
// is gone.
func (s *Scope) Lookup(ctx context.Context, crit []Attr) (uids []string, ok bool, err error) {
	return s.lookup(ctx, crit, s.r.maxCandidates(), true)
}

// LookupUpTo is Lookup for a walk in order (Ordered), which passes over
// the uids it is not given without opening them: it answers whenever some
// criterion names at most limit objects, however many of the owner's
// objects that is.
func (s *Scope) LookupUpTo(ctx context.Context, crit []Attr, limit int) (uids []string, ok bool, err error) {
	return s.lookup(ctx, crit, min(limit, s.r.maxCandidates()), false)
}

func (s *Scope) lookup(ctx context.Context, crit []Attr, limit int, scanBroad bool) (uids []string, ok bool, err error) {
	if !s.r.indexed() {
		return nil, false, nil
	}
	var sets [][][]byte // per criterion, the tags any of which qualifies
	for i := range crit {
		c := &crit[i]
		v := c.value()
		if c.name == AttrState && v != nil && v.Type == ttlv.TypeEnumeration {
			var terms [][]byte
			for _, st := range stateSources(kmip14.State(v.Int)) {
				t, _ := indexTerm(AttrState, tree.Enum(kmip14.TagAttributeValue, uint32(st)))
				terms = append(terms, t)
			}
			sets = append(sets, terms)
			continue
		}
		if t, ok := indexTerm(c.name, v); ok {
			sets = append(sets, [][]byte{t})
		}
	}
	if len(sets) == 0 {
		return nil, false, nil
	}
	var all [][]byte
	for _, terms := range sets {
		all = append(all, terms...)
	}
	// Tags under a key another replica has rotated would find nothing in
	// the index rebuilt under the new one.
	if err := s.r.refresh(ctx, s.owner); err != nil {
		return nil, false, err
	}
	// One keyring call both computes the tags and says whether a rotation
	// holds the index (NoIndex: scan, and start no rebuild).
	tags, err := s.r.index.BlindIndex(ctx, s.owner, all)
	if noIndex(err) {
		return nil, false, nil
	}
	if err := s.r.ensureIndex(ctx, s.owner); err != nil {
		if noIndex(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("index lookup: %w", err)
	}
	if tags == nil {
		return nil, true, nil // no key, so no object
	}
	// Each criterion's tags, with how many entries they hold (up to
	// limit+1), smallest first: the candidates held in memory are never
	// more than the most selective criterion's, and a lookup whose every
	// criterion names more than limit objects is left to the scan, which
	// holds none.
	type byCrit struct {
		prefixes []string
		n        int
	}
	cs := make([]byCrit, len(sets))
	for i, terms := range sets {
		for range terms {
			cs[i].prefixes = append(cs[i].prefixes, tagPrefix(s.owner, tags[0]))
			tags = tags[1:]
		}
		n, err := s.r.countEntries(ctx, cs[i].prefixes, limit+1)
		if err != nil {
			return nil, false, fmt.Errorf("index lookup: %w", err)
		}
		cs[i].n = n
	}
	slices.SortStableFunc(cs, func(a, b byCrit) int { return a.n - b.n })
	if cs[0].n > limit {
		return nil, false, nil
	}
	var result map[string]bool
	for _, c := range cs {
		set := map[string]bool{}
		for _, p := range c.prefixes {
			err := s.r.st.List(ctx, p, func(key string, _ []byte) error {
				uid := key[len(p):]
				if result == nil || result[uid] {
					set[uid] = true
				}
				return nil
			})
			if err != nil {
				return nil, false, fmt.Errorf("index lookup: %w", err)
			}
		}
		result = set
		if len(result) == 0 {
			break
		}
	}
	if scanBroad && s.r.broad(ctx, s.owner, len(result)) {
		return nil, false, nil
	}
	uids = make([]string, 0, len(result))
	for u := range result {
		uids = append(uids, u)
	}
	slices.Sort(uids)
	return uids, true, nil
}

// maxCandidates bounds the candidates a Lookup holds in memory (about
// 100 bytes each): past it, the caller scans.
const maxCandidates = 1 << 16

func (r *Repo) maxCandidates() int {
	if r.candidateCap > 0 {
		return r.candidateCap // tests
	}
	return maxCandidates
}

// countEntries counts the entries under prefixes, stopping at limit; a
// store that cannot list keys alone counts 0 (its criteria keep their
// order and no bound applies).
func (r *Repo) countEntries(ctx context.Context, prefixes []string, limit int) (int, error) {
	kl, ok := r.st.(storage.KeyLister)
	if !ok {
		return 0, nil
	}
	n := 0
	for _, p := range prefixes {
		err := kl.ListKeys(ctx, p, func(string) error {
			if n++; n >= limit {
				return errStopList
			}
			return nil
		})
		if errors.Is(err, errStopList) {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

// minBroadCandidates is where broad starts looking: below it, fetching the
// candidates one by one costs little whatever the owner holds.
const minBroadCandidates = 256

// broad reports whether n candidates are at least half of owner's objects.
// Fetching each candidate by its key then costs more than reading every
// record in order (Each), about twice as much per object, so Lookup lets
// the caller scan. Counting stops at 2n keys, so a selective lookup pays
// for no more keys than it has candidates; a store that cannot list keys
// alone is never asked.
func (r *Repo) broad(ctx context.Context, owner string, n int) bool {
	kl, ok := r.st.(storage.KeyLister)
	if !ok || n < minBroadCandidates {
		return false
	}
	count := 0
	err := kl.ListKeys(ctx, ownerPrefix(owner), func(string) error {
		if count++; count >= 2*n {
			return errStopList
		}
		return nil
	})
	return err == nil && count < 2*n
}
