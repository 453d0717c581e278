package object

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/kmipd/kmipd/storage"
)

// Undo, for the Batch Error Continuation Option Undo (KMIP 1.4 §6.7). Every
// change to an object is one write of its sealed record (save, Insert,
// Remove), so a batch under Undo logs each record's sealed content before
// its first write, and undoing puts those back. The sealed bytes are
// restored as they were, so no key is needed and nothing is re-encrypted.

// UndoLog is the before-image of every record a batch wrote.
type UndoLog struct {
	entries []*undoEntry
	byUID   map[string]*undoEntry
}

type undoEntry struct {
	uid     string
	prior   []byte // sealed record before the batch; nil: it did not exist
	written []byte // what the batch last wrote; nil: it deleted the record
	// The record's index entries (index.go) before the batch and after
	// its last write, which restoring swaps back.
	priorIdx, writtenIdx []string
}

// NewUndoLog returns an empty log, for a Scope whose writes may be undone.
func NewUndoLog() *UndoLog { return &UndoLog{byUID: map[string]*undoEntry{}} }

// Undoing reports whether the scope logs its writes for Rollback.
func (s *Scope) Undoing() bool { return s.undo != nil }

// undoBefore records uid's current record, once per batch, ahead of a
// write. fresh says the write creates the record, which therefore did not
// exist; idx are its index entries now.
func (s *Scope) undoBefore(ctx context.Context, uid string, fresh bool, idx []string) error {
	if s.undo == nil || s.undo.byUID[uid] != nil {
		return nil
	}
	ent := &undoEntry{uid: uid, priorIdx: idx}
	if !fresh {
		prior, err := s.r.st.Get(ctx, objectKey(s.owner, uid))
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("read object for undo: %w", err)
		}
		ent.prior = prior
	}
	s.undo.byUID[uid] = ent
	s.undo.entries = append(s.undo.entries, ent)
	return nil
}

// undoLogged reports whether the undo log holds uid already.
func (s *Scope) undoLogged(uid string) bool {
	return s.undo != nil && s.undo.byUID[uid] != nil
}

// undoForget drops uid's entry, the log's newest, which undoBefore made
// for a write that failed and is made again (fence.go).
func (s *Scope) undoForget(uid string) {
	if s.undo == nil || s.undo.byUID[uid] == nil {
		return
	}
	delete(s.undo.byUID, uid)
	if n := len(s.undo.entries); n > 0 && s.undo.entries[n-1].uid == uid {
		s.undo.entries = s.undo.entries[:n-1]
	}
}

// undoAfter notes what a write left in uid's record and index entries.
func (s *Scope) undoAfter(uid string, written []byte, idx []string) {
	if s.undo != nil {
		if ent := s.undo.byUID[uid]; ent != nil {
			ent.written, ent.writtenIdx = written, idx
		}
	}
}

// Rollback restores every logged record, newest first, and reports each it
// could not restore. A record someone else changed since the batch wrote it
// (another connection of the same client) is left as it is and reported:
// undoing must not destroy a later, independent write. It runs even if ctx
// is cancelled (the request's time may be what ran out).
func (s *Scope) Rollback(ctx context.Context, report func(uid string, err error)) {
	if s.undo == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for i := len(s.undo.entries) - 1; i >= 0; i-- {
		ent := s.undo.entries[i]
		if err := s.r.restore(ctx, s.owner, ent); err != nil {
			report(ent.uid, err)
		}
	}
}

// errChangedSince: a record someone else wrote after the batch did, which
// Rollback leaves as it is.
var errChangedSince = errors.New("changed by another request since; left as it is")

// restore puts ent's record back as it was before the batch, if it still
// holds what the batch wrote. The lock orders this process's writers; the
// write itself compares too (restoreWrite), so that a replica sharing the
// store that changed the record after the check is not overwritten either.
// The caller holds no Gate.
func (r *Repo) restore(ctx context.Context, owner string, ent *undoEntry) error {
	defer r.locks.lock(owner, ent.uid)()
	// As save does: this process's pKEK rotation neither reseals the
	// record between the check and the write (which would fail the
	// compare) nor overwrites what the write puts back.
	defer r.enter(owner)()
	key := objectKey(owner, ent.uid)
	cur, err := r.st.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		cur, err = nil, nil
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(cur, ent.written) {
		return errChangedSince
	}
	defer r.cache.drop(key)
	if r.indexed() {
		w, fence, err := r.fenced(owner, restoreWrite(make([]storage.Write, 0, 8), key, cur, ent.prior), ent.prior)
		if err != nil {
			return err
		}
		err = r.batch.Apply(ctx, indexWrites(w, ent.writtenIdx, ent.priorIdx))
		switch {
		case r.stale(ctx, owner, fence, err):
			// Another replica's rotation retired the key that sealed the
			// prior record, and its index entries with it.
			return fmt.Errorf("its key was rotated since; left as it is")
		case errors.Is(err, storage.ErrConflict), errors.Is(err, storage.ErrExists):
			// The record's compare (or, for one the batch deleted, its
			// Create) found another replica's write.
			return errChangedSince
		}
		return err
	}
	prior := ent.prior
	if prior != nil {
		if g, ok := r.seal.(Gate); ok {
			// A pKEK rotation may have retired the key that sealed it.
			if prior, err = g.Reseal(ctx, owner, []byte(ent.uid), prior); err != nil {
				return err
			}
		}
	}
	if b, ok := r.st.(storage.Batcher); ok {
		w := restoreWrite(nil, key, cur, prior)
		if len(w) == 0 {
			return nil
		}
		err := b.Apply(ctx, w)
		if errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrExists) {
			return errChangedSince
		}
		return err
	}
	switch {
	case prior != nil:
		return r.st.Put(ctx, key, prior)
	case cur != nil:
		return r.st.Delete(ctx, key)
	}
	return nil
}

// restoreWrite appends to w the write that puts prior (nil: absent) at key
// only if key still holds cur (nil: absent), else fails the batch.
func restoreWrite(w []storage.Write, key string, cur, prior []byte) []storage.Write {
	switch {
	case prior != nil && cur != nil:
		return append(w, storage.Write{Kind: storage.WriteIfUnchanged, Key: key, Expect: cur, Value: prior})
	case prior != nil:
		return append(w, storage.Write{Kind: storage.WriteCreate, Key: key, Value: prior})
	case cur != nil:
		return append(w, storage.Write{Kind: storage.WriteDeleteIfUnchanged, Key: key, Expect: cur})
	}
	return w
}
