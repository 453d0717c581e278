package object

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"strings"
)

// The ordering index.
//
// Locate returns its matches newest first: Initial Date descending, ties
// by uid ascending. With Maximum Items it need only find the first few in
// that order, so each object also has one entry
//
//	idx/<owner>/order/<hex(^(date + offset))>/<uid>
//
// whose key sorts in exactly that order. date is the Initial Date (seconds
// and nanoseconds; the zero time when absent, as Locate sorts it); offset
// is a per-owner secret, a blind index tag of a fixed term (orderTerm), so
// it changes with the owner's pKEK like every other entry. The sum is
// carried to 72 bits (no wrap) and bit-inverted, big-endian, so that
// ascending key order is newest first.
//
// What it shows someone holding the disk: the order in which one owner's
// objects were created and the intervals between their creation times, to
// the second (the sub-second part is zero for KMIP 1.x DateTime), never a
// date; learning one object's creation time from elsewhere (a file's
// mtime, a log) gives the others. Badger's versions and PostgreSQL's xmin
// already show the order of writes. An order-preserving encryption would
// hide the intervals better but not the order, at the cost of a scheme of
// its own; the offset keeps the entries a pure function of the record and
// the pKEK, which is what rebuilds and rotations rely on.

// orderTerm is the term whose tag is the owner's offset: it starts with
// NUL, which no attribute term does (those start with a non-empty name).
var orderTerm = []byte("\x00kmipd/order-offset/v1")

// orderDir holds the ordering entries, apart from the tags (hex) and the
// markers (no '/').
const orderDir = "order/"

func orderPrefix(owner string) string { return indexPrefix(owner) + orderDir }

// orderKey is o's ordering entry under the offset tag.
func orderKey(owner string, offsetTag []byte, o *Object) string {
	t, _ := o.InitialDate()
	var b [13]byte
	u := uint64(t.Unix()) ^ 1<<63 // int64 order as uint64 order
	lo, carry := bits.Add64(u, binary.BigEndian.Uint64(offsetTag), 0)
	b[0] = ^byte(carry)
	binary.BigEndian.PutUint64(b[1:], ^lo)
	binary.BigEndian.PutUint32(b[9:], ^uint32(t.Nanosecond()))
	return orderPrefix(owner) + hex.EncodeToString(b[:]) + "/" + o.uid
}

// sameOrder reports whether a and b have the same ordering entry.
func sameOrder(a, b *Object) bool {
	ta, oka := a.InitialDate()
	tb, okb := b.InitialDate()
	return oka == okb && ta.Equal(tb)
}

// Ordered calls fn with the owner's objects that the scope may use,
// newest first (Initial Date descending, uid ascending), each opened when
// its turn comes, until fn says stop. only, when not nil, names the uids
// to consider (a Lookup's candidates): the others are passed over without
// being opened. limit, when positive, bounds the entries the walk reads
// (with only nil: the objects it opens) before it gives up. ok is false
// when it did not answer (no index on this store, the owner's pKEK
// rotating, or it gave up), and the caller then searches another way: fn
// may have been called before a give-up.
func (s *Scope) Ordered(ctx context.Context, only map[string]bool, limit int, fn func(o *Object) (stop bool, err error)) (ok bool, err error) {
	if !s.r.indexed() {
		return false, nil
	}
	if err := s.r.refresh(ctx, s.owner); err != nil {
		return false, err
	}
	if _, err := s.r.index.BlindIndex(ctx, s.owner, nil); noIndex(err) {
		return false, nil
	}
	if err := s.r.ensureIndex(ctx, s.owner); err != nil {
		if noIndex(err) {
			return false, nil
		}
		return false, err
	}
	budget := -1
	if limit > 0 {
		budget = limit
	}
	p := orderPrefix(s.owner)
	gaveUp := false
	visit := func(key string) error {
		if budget == 0 {
			gaveUp = true
			return errStopList
		}
		budget--
		uid := key[strings.LastIndexByte(key, '/')+1:]
		if only != nil && !only[uid] {
			return nil
		}
		o, err := s.Load(ctx, uid)
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrDenied) || errors.Is(err, ErrArchived) {
			return nil // removed since, or not the scope's to see
		}
		if err != nil {
			return err
		}
		stop, err := fn(o)
		if err == nil && stop {
			err = errStopList
		}
		return err
	}
	if err := s.r.listKeys(ctx, p, visit); err != nil && !errors.Is(err, errStopList) {
		return false, fmt.Errorf("ordered walk: %w", err)
	}
	return !gaveUp, nil
}
