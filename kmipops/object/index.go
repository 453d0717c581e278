package object

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// The blind index.
//
// Locate would otherwise open every record of the caller. Each indexed
// attribute value of an object is an empty entry
//
//	idx/<owner>/<hex(tag)>/<uid>,  tag = BlindIndex(owner, name NUL value)
//
// where the tag is a keyed hash under a key derived from the owner's pKEK
// (kek.Keyring.BlindIndex), so the disk shows no value, only which of one
// owner's objects share one (and the uid, which obj/<owner>/<uid> shows
// already). Entries are written in the same storage transaction as the
// record (storage.Batcher) by Insert, Update, Remove and Undo's restore; a
// store that is no Batcher has no index and Locate scans. The marker
// idx/<owner>/built says the owner's index is complete, its value which
// version of the index (indexVersion): when it is missing or older (records
// written before the index, or before the entries of the current version,
// existed), Lookup and Ordered start a rebuild in the background and
// answer "scan" until it is done (index_rebuild.go).
//
// Indexed: Name, Object Type, State, Cryptographic Algorithm and Length,
// Object Group, Link and custom (x-, y-) attributes, by exact value (the
// value's canonical TTLV encoding, as tree.View.Equal compares). Dates and
// big integers are not indexed: Locate checks them on the candidates.
//
// Each object also has one ordering entry, idx/<owner>/order/<hex>/<uid>,
// whose key sorts newest first (index_order.go): its Initial Date plus a
// per-owner secret offset, bit-inverted. It shows the order in which one
// owner's objects were created and the intervals between them (to the
// second), never a date; one creation time learnt elsewhere gives the
// others. Badger's versions and PostgreSQL's xmin show the order already.

// Indexer is what the repository needs for its blind index
// (*kek.Keyring satisfies it): one tag per term under owner's index key;
// nil, nil when owner has no key yet (and so no object). BlindIndex,
// for lookups and rebuilds, fails NoIndex while the owner's key rotates;
// WriteTags, for the entries a write makes or deletes, answers under the
// new key meanwhile (the rotation drops the index when it ends).
type Indexer interface {
	BlindIndex(ctx context.Context, owner string, terms [][]byte) ([][]byte, error)
	WriteTags(ctx context.Context, owner string, terms [][]byte) ([][]byte, error)
}

// noIndex reports whether err says the index cannot be used now (the
// owner's pKEK is rotating, or the index is being rebuilt): lookups scan.
func noIndex(err error) bool {
	var n interface{ NoIndex() bool }
	return errors.As(err, &n) && n.NoIndex()
}

// IndexPrefix is where owner's index entries live: a pKEK rotation drops
// them (they are derived from the old key) and they are rebuilt.
func IndexPrefix(owner string) string { return indexPrefix(owner) }

func indexPrefix(owner string) string { return "idx/" + owner + "/" }
func indexMarker(owner string) string { return "idx/" + owner + "/built" }

// indexVersion is the value of the built marker: an index marked with
// another (or none: version 1 had no ordering entries) is rebuilt.
const indexVersion = "2"

// builtMarker reports whether v, the built marker's value, is this
// version's.
func builtMarker(v []byte) bool { return string(v) == indexVersion }

// buildingMarker names a rebuild in progress. A pKEK rotation that ends
// meanwhile deletes it with the rest of idx/<owner>/ (the entries written
// so far were under the old key), and the rebuild then does not mark the
// index built.
func buildingMarker(owner string) string { return "idx/" + owner + "/building" }
func tagPrefix(owner string, tag []byte) string {
	return indexPrefix(owner) + hex.EncodeToString(tag) + "/"
}

// indexedName reports whether attribute name is indexed.
func indexedName(name string) bool {
	switch name {
	case AttrName, AttrObjectType, AttrState, AttrCryptoAlgorithm, AttrCryptoLength, AttrObjectGroup, AttrLink:
		return true
	}
	return strings.HasPrefix(name, "x-") || strings.HasPrefix(name, "y-")
}

// indexTerm is the term of one attribute value, or false if it is not
// indexed.
func indexTerm(name string, v *tree.Node) ([]byte, bool) {
	if v == nil || !indexedName(name) {
		return nil, false
	}
	switch v.Type {
	case ttlv.TypeDateTime, ttlv.TypeDateTimeExtended, ttlv.TypeBigInteger:
		return nil, false
	}
	enc, err := tree.Encode(v)
	if err != nil {
		return nil, false
	}
	// The value's own tag is not part of it (Equal ignores it).
	term := make([]byte, 0, len(name)+1+len(enc))
	term = append(term, name...)
	term = append(term, 0)
	term = append(term, enc[3:]...)
	return term, true
}

// indexTerms are o's terms, each once.
func indexTerms(o *Object) [][]byte {
	var terms [][]byte
	for i := range o.attrs {
		a := &o.attrs[i]
		if !indexedName(a.name) {
			continue
		}
		if t, ok := indexTerm(a.name, a.value()); ok && !slices.ContainsFunc(terms, func(b []byte) bool { return string(b) == string(t) }) {
			terms = append(terms, t)
		}
	}
	return terms
}

func sameTerms(a, b [][]byte) bool {
	return slices.EqualFunc(a, b, func(x, y []byte) bool { return string(x) == string(y) })
}

// indexed reports whether the repository keeps an index.
func (r *Repo) indexed() bool { return r.batch != nil && r.index != nil }

// indexKeys are the index entries of o, its ordering entry last (nil
// without an index or object).
func (s *Scope) indexKeys(ctx context.Context, o *Object) ([]string, error) {
	if !s.r.indexed() || o == nil {
		return nil, nil
	}
	terms := append(indexTerms(o), orderTerm)
	tags, err := s.r.index.WriteTags(ctx, s.owner, terms)
	if err != nil {
		return nil, fmt.Errorf("index object: %w", err)
	}
	if len(tags) != len(terms) {
		return nil, fmt.Errorf("index object: no index key for the owner")
	}
	keys := make([]string, len(tags))
	for i, t := range tags[:len(tags)-1] {
		keys[i] = tagPrefix(s.owner, t) + o.uid
	}
	keys[len(keys)-1] = orderKey(s.owner, tags[len(tags)-1], o)
	return keys, nil
}

// indexWrites appends what turns the entries old into new.
func indexWrites(w []storage.Write, old, new []string) []storage.Write {
	for _, k := range old {
		if !slices.Contains(new, k) {
			w = append(w, storage.Write{Kind: storage.WriteDelete, Key: k})
		}
	}
	for _, k := range new {
		if !slices.Contains(old, k) {
			w = append(w, storage.Write{Kind: storage.WritePut, Key: k})
		}
	}
	return w
}

// builtOwners remembers owners whose index marker was seen, so that an
// Insert looks for it once; it forgets them all when it is full, which
// costs each owner one more look.
type builtOwners struct {
	mu sync.Mutex
	m  map[string]struct{}
}

const maxBuiltOwners = 4096

func (b *builtOwners) has(owner string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.m[owner]
	return ok
}

func (b *builtOwners) add(owner string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil || len(b.m) >= maxBuiltOwners {
		b.m = map[string]struct{}{}
	}
	b.m[owner] = struct{}{}
}

var errStopList = errors.New("stop")

// markFirst adds the built marker to the writes of an indexed Insert when
// the owner has no object yet: an owner whose every object was written
// with its entries has a complete index, so its first Locate need not
// rebuild it (which opens every record). Every write is indexed (during a
// rotation too: WriteTags), and a rotation drops the marker when it ends.
func (s *Scope) markFirst(ctx context.Context, w []storage.Write) ([]storage.Write, error) {
	if s.r.built.has(s.owner) {
		return w, nil
	}
	v, err := s.r.st.Get(ctx, indexMarker(s.owner))
	if err == nil && builtMarker(v) {
		s.r.built.add(s.owner)
		return w, nil
	}
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("index marker: %w", err)
	}
	empty := true
	err = s.r.st.List(ctx, ownerPrefix(s.owner), func(string, []byte) error {
		empty = false
		return errStopList
	})
	if err != nil && !errors.Is(err, errStopList) {
		return nil, fmt.Errorf("index marker: %w", err)
	}
	if !empty {
		return w, nil // written before the index: the first Locate rebuilds it
	}
	return append(w, storage.Write{Kind: storage.WritePut, Key: indexMarker(s.owner), Value: []byte(indexVersion)}), nil
}
