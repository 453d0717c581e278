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
// returns the objects as fn left them.
func (s *Scope) UpdatePair(ctx context.Context, a, b string, fn func(oa, ob *Object) (changedA, changedB bool, err error)) (*Object, *Object, error) {
	if !validUID(a) || !validUID(b) {
		return nil, nil, ErrNotFound
	}
	if a == b {
		return nil, nil, errorf(kmip14.ResultReasonIllegalOperation, "an object cannot be paired with itself")
	}
	defer s.r.locks.lockPair(s.owner, a, b)()
	oa, err := s.Load(ctx, a)
	if err != nil {
		return nil, nil, err
	}
	ob, err := s.Load(ctx, b)
	if err != nil {
		return nil, nil, err
	}
	beforeA, beforeB := oa.clone(), ob.clone() // values are never changed in place
	ca, cb, err := fn(oa, ob)
	if err != nil {
		return nil, nil, err
	}
	var prior []byte
	if ca && cb {
		if prior, err = s.r.st.Get(ctx, objectKey(s.owner, a)); err != nil {
			return nil, nil, fmt.Errorf("read object: %w", err)
		}
	}
	if ca {
		if err := s.save(ctx, beforeA, oa); err != nil {
			return nil, nil, err
		}
	}
	if cb {
		if err := s.save(ctx, beforeB, ob); err != nil {
			if prior != nil {
				err = errors.Join(err, s.putBack(context.WithoutCancel(ctx), a, prior, oa, beforeA))
			}
			return nil, nil, err
		}
	}
	return oa, ob, nil
}

// putBack restores, byte for byte, a record this scope wrote a moment ago
// (the caller holds its lock), moving its index entries from those of now
// back to those of was, and keeping the undo log's idea of it current.
func (s *Scope) putBack(ctx context.Context, uid string, prior []byte, now, was *Object) error {
	defer s.r.enter(s.owner)()
	key := objectKey(s.owner, uid)
	defer s.r.cache.drop(key)
	var cur, old []string
	var err error
	if s.r.indexed() {
		for try := 0; ; try++ {
			var fence string
			if cur, err = s.indexKeys(ctx, now); err == nil {
				old, err = s.indexKeys(ctx, was)
			}
			w := []storage.Write{{Kind: storage.WritePut, Key: key, Value: prior}}
			if err == nil {
				w, fence, err = s.r.fenced(s.owner, w, prior)
			}
			if err == nil {
				err = s.r.batch.Apply(ctx, indexWrites(w, cur, old))
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
