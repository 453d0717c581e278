package object

import (
	"context"
	"errors"
	"fmt"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/storage"
)

// UpdatePair is Update for two objects that change together (Re-key Key
// Pair changes a private key and its public key as one). Both locks are
// held while fn runs: taken in stripe order, so that two pair updates
// cannot deadlock, and once when the two share a stripe. Each object fn
// reports changed is saved, a first; if b's write fails, a's record is
// put back as it was, so that the pair changes whole or not at all. It
// returns the objects as fn left them. On a store replicas share, fn runs
// again on what another replica's write of either left (as in Update).
func (s *Scope) UpdatePair(ctx context.Context, a, b string, fn func(oa, ob *Object) (changedA, changedB bool, err error)) (*Object, *Object, error) {
	if !validUID(a) || !validUID(b) {
		return nil, nil, ErrNotFound
	}
	if a == b {
		return nil, nil, errorf(kmip14.ResultReasonIllegalOperation, "an object cannot be paired with itself")
	}
	defer s.r.locks.lockPair(s.owner, a, b)()
	for try := 0; ; try++ {
		oa, ob, err := s.updatePairOnce(ctx, a, b, fn)
		if retryConflict(ctx, err, try) {
			continue
		}
		if err != nil {
			return nil, nil, contended(err)
		}
		return oa, ob, nil
	}
}

// updatePairOnce is one try of UpdatePair: storage.ErrConflict, wrapped,
// when another replica wrote either record since it was read, and then
// neither record holds fn's change.
func (s *Scope) updatePairOnce(ctx context.Context, a, b string, fn func(oa, ob *Object) (changedA, changedB bool, err error)) (*Object, *Object, error) {
	shared := s.r.shared != nil
	oa, rawA, err := s.loadRaw(ctx, a, shared)
	if err != nil {
		return nil, nil, err
	}
	ob, rawB, err := s.loadRaw(ctx, b, shared)
	if err != nil {
		return nil, nil, err
	}
	beforeA, beforeB := oa.clone(), ob.clone() // values are never changed in place
	ca, cb, err := fn(oa, ob)
	if err != nil {
		return nil, nil, err
	}
	prior := rawA // compared by a's write: what it held until then
	if ca && cb && prior == nil {
		if prior, err = s.r.st.Get(ctx, objectKey(s.owner, a)); err != nil {
			return nil, nil, fmt.Errorf("read object: %w", err)
		}
	}
	var wroteA []byte
	if ca {
		if wroteA, err = s.save(ctx, beforeA, oa, rawA); err != nil {
			return nil, nil, err
		}
	}
	if cb {
		if _, err := s.save(ctx, beforeB, ob, rawB); err != nil {
			if ca {
				if perr := s.putBack(context.WithoutCancel(ctx), a, prior, wroteA, oa, beforeA); perr != nil {
					// a keeps the change: no try may make it again.
					return nil, nil, errors.Join(unconflicted(err), perr)
				}
			}
			return nil, nil, err
		}
	}
	return oa, ob, nil
}

// unconflicted hides err's storage.ErrConflict from errors.Is, so that it
// is not taken for a conflict that left nothing written.
func unconflicted(err error) error {
	if errors.Is(err, storage.ErrConflict) {
		return errors.New(err.Error())
	}
	return err
}

// putBack restores, byte for byte, a record this scope wrote a moment ago
// (the caller holds its lock), moving its index entries from those of now
// back to those of was, and keeping the undo log's idea of it current. On
// a store replicas share it does so only if the record is still wrote,
// what this scope wrote: another replica's later write is left as it is
// (errChangedSince).
func (s *Scope) putBack(ctx context.Context, uid string, prior, wrote []byte, now, was *Object) error {
	defer s.r.enter(s.owner)()
	key := objectKey(s.owner, uid)
	defer s.r.cache.drop(key)
	var cur, old []string
	var err error
	if s.r.indexed() || s.r.shared != nil {
		for try := 0; ; try++ {
			var fence string
			if cur, err = s.indexKeys(ctx, now); err == nil {
				old, err = s.indexKeys(ctx, was)
			}
			rec := storage.Write{Kind: storage.WritePut, Key: key, Value: prior}
			if s.r.shared != nil && wrote != nil {
				rec.Kind, rec.Expect = storage.WriteIfUnchanged, wrote
			}
			w := []storage.Write{rec}
			if err == nil {
				w, fence, err = s.r.fenced(s.owner, w, prior)
			}
			if err == nil {
				b := s.r.batch
				if b == nil {
					b = s.r.shared
				}
				err = b.Apply(ctx, indexWrites(w, cur, old))
			}
			if errors.Is(err, storage.ErrConflict) {
				err = errChangedSince
			}
			if !s.r.stale(ctx, s.owner, fence, err) || try >= staleRetries {
				break
			}
			// Sealed a moment ago under a key another replica has
			// retired since: under the current one now.
			if g, ok := s.r.seal.(Gate); ok {
				if prior, err = g.Reseal(ctx, s.owner, []byte(uid), prior); err != nil {
					break
				}
			}
		}
	} else {
		err = s.r.st.Put(ctx, key, prior)
	}
	if err != nil {
		return fmt.Errorf("put back %s: %w", uid, err)
	}
	s.undoAfter(uid, prior, old)
	return nil
}

// lockPair locks the stripes of two objects in index order, each once.
func (l *lockMap) lockPair(owner, a, b string) func() {
	i, j := l.stripe(owner, a), l.stripe(owner, b)
	if i == j {
		l.stripes[i].Lock()
		return l.stripes[i].Unlock
	}
	if j < i {
		i, j = j, i
	}
	l.stripes[i].Lock()
	l.stripes[j].Lock()
	return func() {
		l.stripes[j].Unlock()
		l.stripes[i].Unlock()
	}
}
