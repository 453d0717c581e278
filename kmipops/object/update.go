package object

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/kmipd/kmipd/storage"
)

// Read-modify-writes of object records.
//
// Within one process the object's lock orders them. Replicas sharing a
// store (Repo.shared: a storage.Batcher that is not storage.Exclusive) are
// not ordered by it: each could read the record, change it and write it
// back, and one acknowledged change would be lost. There every such write
// is a compare-and-set against the exact record read
// (storage.WriteIfUnchanged, WriteDeleteIfUnchanged), in the same batch
// as the record's index entries and its fence (fence.go). A compare that
// fails (storage.ErrConflict) wrote nothing: the record is read again and
// the change made again on what another replica left, at most
// conflictRetries more times. A fence that fails (storage.ErrExists) is
// handled apart, by sealing the same change again under the current key.
// On an Exclusive store the lock alone orders writers, so writes stay
// plain.

// conflictRetries bounds how often one change is made again after another
// replica's write of the same record came first.
const conflictRetries = 8

// conflictWait waits before try's next attempt: a random while, doubling
// up to 32 ms, so that two replicas whose writes keep meeting fall out of
// step instead of one of them losing every time to the other's next
// request. ctx's error if it ends first.
func conflictWait(ctx context.Context, try int) error {
	d := time.Duration(rand.Int64N(int64(time.Millisecond << min(try+1, 5))))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryConflict reports whether err, from attempt try, is a conflict to
// make the change again for (after conflictWait).
func retryConflict(ctx context.Context, err error, try int) bool {
	return errors.Is(err, storage.ErrConflict) && try < conflictRetries && conflictWait(ctx, try) == nil
}

// contended answers a change that still met another replica's write after
// conflictRetries tries (ErrContended, with err's chain kept); other errors
// are returned as they are.
func contended(err error) error {
	if errors.Is(err, storage.ErrConflict) {
		return fmt.Errorf("%w: %w", ErrContended, err)
	}
	return err
}

// Update runs fn on object uid under its lock and saves the result when fn
// reports a change. It returns the object as fn left it. On a store
// replicas share, fn may run again, on the record as another replica left
// it, if that replica wrote between the read and the write: fn must change
// nothing but the object, or undo what a previous run did elsewhere.
func (s *Scope) Update(ctx context.Context, uid string, fn func(o *Object) (changed bool, err error)) (*Object, error) {
	if !validUID(uid) {
		return nil, ErrNotFound
	}
	defer s.r.locks.lock(s.owner, uid)()
	for try := 0; ; try++ {
		o, raw, err := s.loadRaw(ctx, uid, s.r.shared != nil)
		if err != nil {
			return nil, err
		}
		// fn's first change keeps o as it was (willChange), the image save
		// needs: most calls change nothing and copy nothing.
		o.tracking = true
		changed, err := fn(o)
		before := o.before
		o.before, o.tracking = nil, false
		if err != nil || !changed {
			if err != nil {
				return nil, err
			}
			return o, nil
		}
		if before == nil { // nothing changed through o's methods
			before = o.clone()
		}
		_, err = s.save(ctx, before, o, raw)
		if retryConflict(ctx, err, try) {
			continue
		}
		if err != nil {
			return nil, contended(err)
		}
		return o, nil
	}
}

// save overwrites an existing object, which was before (the caller holds
// its lock), and moves its index entries; it returns the record written.
// With expect (the record before was read from) the write is a
// compare-and-set: storage.ErrConflict, wrapped, and nothing written, if
// the record is no longer that.
func (s *Scope) save(ctx context.Context, before, o *Object, expect []byte) ([]byte, error) {
	defer s.r.enter(s.owner)()
	key := objectKey(s.owner, o.uid)
	defer s.r.cache.drop(key) // also after a failed write, whose outcome is unknown
	for try := 0; ; try++ {
		logged := s.undoLogged(o.uid)
		sealed, newKeys, fence, err := s.saveOnce(ctx, before, o, expect)
		retry := s.r.stale(ctx, s.owner, fence, err) && try < staleRetries
		if (retry || errors.Is(err, storage.ErrConflict)) && !logged {
			s.undoForget(o.uid) // its index keys were the stale key's, or the record is another
		}
		if retry {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.undoAfter(o.uid, sealed, newKeys)
		return sealed, nil
	}
}

// saveOnce seals o and writes it with its index entries, once.
func (s *Scope) saveOnce(ctx context.Context, before, o *Object, expect []byte) (sealed []byte, newKeys []string, fence string, err error) {
	if sealed, err = s.sealObject(ctx, o); err != nil {
		return nil, nil, "", err
	}
	var oldKeys []string
	if s.r.indexed() && (s.undo != nil || !sameTerms(indexTerms(before), indexTerms(o)) || !sameOrder(before, o)) {
		// Most writes (a Get's Fresh, a usage count) touch no indexed
		// value: those need no index key unless Undo must know them.
		if oldKeys, err = s.indexKeys(ctx, before); err != nil {
			return nil, nil, "", err
		}
		if newKeys, err = s.indexKeys(ctx, o); err != nil {
			return nil, nil, "", err
		}
	}
	if err := s.undoBefore(ctx, o.uid, false, oldKeys); err != nil {
		return nil, nil, "", err
	}
	key := objectKey(s.owner, o.uid)
	rec := storage.Write{Kind: storage.WritePut, Key: key, Value: sealed}
	if expect != nil && s.r.shared != nil {
		rec.Kind, rec.Expect = storage.WriteIfUnchanged, expect
	}
	switch {
	case s.r.indexed():
		w := append(make([]storage.Write, 0, 10), rec)
		if w, fence, err = s.r.fenced(s.owner, w, sealed); err != nil {
			return nil, nil, "", err
		}
		err = s.r.batch.Apply(ctx, indexWrites(w, oldKeys, newKeys))
	case rec.Kind == storage.WriteIfUnchanged:
		err = s.r.shared.Apply(ctx, []storage.Write{rec})
	default:
		err = s.r.st.Put(ctx, key, sealed)
	}
	if err != nil {
		return nil, nil, fence, fmt.Errorf("write object: %w", err)
	}
	return sealed, newKeys, "", nil
}

// Remove deletes a stored object (used to roll back half a key pair, and
// by Discard) and its index entries, under the object's lock: an Update
// racing it either saves first, and its entries are the ones deleted, or
// finds no object, rather than bring the record back without the entries
// both versions share. On a store replicas share the delete is a
// compare-and-set too, so that the entries of another replica's later
// write go with it. storage.ErrNotFound if it is gone or uid invalid.
func (s *Scope) Remove(ctx context.Context, uid string) error {
	if !validUID(uid) {
		return storage.ErrNotFound
	}
	defer s.r.locks.lock(s.owner, uid)()
	for try := 0; ; try++ {
		err := s.removeOnce(ctx, uid)
		if retryConflict(ctx, err, try) {
			continue
		}
		return contended(err)
	}
}

func (s *Scope) removeOnce(ctx context.Context, uid string) error {
	var o *Object // the record as the lock holds it, whose entries go
	var raw []byte
	if s.r.indexed() || s.r.shared != nil {
		var err error
		o, raw, err = s.loadRaw(ctx, uid, s.r.shared != nil)
		if errors.Is(err, ErrNotFound) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
	}
	// Tags computed and written under the gate, as save does, so that a
	// rotation cannot come between them (lock first, then gate).
	defer s.r.enter(s.owner)()
	keys, err := s.indexKeys(ctx, o) // nil without an index
	if err != nil {
		return err
	}
	logged := s.undoLogged(uid)
	if err := s.undoBefore(ctx, uid, false, keys); err != nil {
		return err
	}
	key := objectKey(s.owner, uid)
	defer s.r.cache.drop(key)
	del := storage.Write{Kind: storage.WriteDelete, Key: key}
	if raw != nil && s.r.shared != nil {
		del.Kind, del.Expect = storage.WriteDeleteIfUnchanged, raw
	}
	switch {
	case s.r.indexed():
		w := append(make([]storage.Write, 0, 8), del)
		err = s.r.batch.Apply(ctx, indexWrites(w, keys, nil))
	case del.Kind == storage.WriteDeleteIfUnchanged:
		err = s.r.shared.Apply(ctx, []storage.Write{del})
	default:
		err = s.r.st.Delete(ctx, key)
	}
	if err != nil {
		if errors.Is(err, storage.ErrConflict) && !logged {
			s.undoForget(uid)
		}
		return err
	}
	s.undoAfter(uid, nil, nil)
	return nil
}
