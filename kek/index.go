package kek

import (
	"context"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
)

// Blind index keys.
//
// kmipops/object indexes attribute values so that Locate need not open every
// record, without putting a value on disk: an index entry is named by a
// keyed hash of (attribute name, value) under a key only this owner's pKEK
// yields. The index key is derived in software from the pKEK when it is
// unwrapped (HMAC-SHA256 under the pKEK with a label of its own, so it is
// independent of the sealing key) and cached beside the AEAD: a cached owner
// costs no HSM call, and the pKEK itself is never handed out.

const (
	indexLabel = "kmipd/blind-index/v1"
	// IndexTagLen is the length of a blind index tag. 128 bits: a
	// collision could only add a candidate, which Locate checks anyway.
	IndexTagLen = 16
)

// ownerKey is what the cache holds for an owner: the pKEK's AEAD, and the
// index key derived from it.
type ownerKey struct {
	cipher.AEAD
	index []byte
}

// errRotating is BlindIndex's answer while the owner's pKEK rotates; it says
// NoIndex, which kmipops/object reads as "scan instead".
var errRotating = &noIndexError{}

type noIndexError struct{}

func (*noIndexError) Error() string {
	return "kek: no blind index while the owner's pKEK rotates"
}

// NoIndex marks an error that means "no index now", not a failure.
func (*noIndexError) NoIndex() bool { return true }

func deriveIndexKey(pkek []byte) []byte {
	m := hmac.New(sha256.New, pkek)
	m.Write([]byte(indexLabel))
	return m.Sum(nil)
}

// BlindIndex returns, for each of terms, its blind index tag under owner's
// index key: HMAC-SHA256(indexKey, term) cut to IndexTagLen bytes. It
// never creates a pKEK: an owner without one has no objects, and BlindIndex
// returns nil, nil. Like Open, it calls the HSM only when owner's pKEK is
// not cached.
func (k *Keyring) BlindIndex(ctx context.Context, owner string, terms [][]byte) ([][]byte, error) {
	return k.tags(ctx, owner, terms, false)
}

// WriteTags is BlindIndex for the entries a write adds or deletes: while
// the owner's pKEK rotates it answers under the new generation rather than
// NoIndex. The rotation drops the owner's index when it ends, so entries
// written before then go with the rest, and those written after are the
// new key's, as the rebuild makes them; a replica whose cache still shows
// a rotation that another replica has finished (shared.go) thus indexes
// what it writes.
func (k *Keyring) WriteTags(ctx context.Context, owner string, terms [][]byte) ([][]byte, error) {
	return k.tags(ctx, owner, terms, true)
}

// tags is BlindIndex (rotating false: refused while a rotation runs) and
// WriteTags (rotating true: the newest generation's tags).
func (k *Keyring) tags(ctx context.Context, owner string, terms [][]byte, rotating bool) ([][]byte, error) {
	if err := checkOwner(owner); err != nil {
		return nil, err
	}
	ks, err := k.aead(ctx, owner, false)
	if isNoPKEK(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(ks.gens) != 1 && !rotating {
		// A pKEK rotation is moving the owner's objects: tags under either
		// generation would be wrong for part of them. The index is dropped
		// when the rotation ends (Sealed.Derived) and rebuilt under the new
		// key; until then callers scan.
		return nil, errRotating
	}
	return indexTags(ks, terms)
}

// indexTags computes terms' tags under ks's current generation.
func indexTags(ks *keyset, terms [][]byte) ([][]byte, error) {
	ok, isOwnerKey := ks.aeads[0].(*ownerKey)
	if !isOwnerKey {
		return nil, passThrough("index key", errors.New("pKEK cached without an index key"))
	}
	m := hmac.New(sha256.New, ok.index)
	out := make([][]byte, len(terms))
	buf := make([]byte, 0, sha256.Size)
	for i, t := range terms {
		m.Reset()
		m.Write(t)
		buf = m.Sum(buf[:0])
		out[i] = append([]byte(nil), buf[:IndexTagLen]...)
	}
	return out, nil
}
