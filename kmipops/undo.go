package kmipops

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// Batch Error Continuation Option Undo (KMIP 1.4 §6.7): when an item fails,
// the items before it are undone and answered Operation Undone. Every change
// kmipops makes to an object is one write of its sealed record (save,
// insertWithUID, remove), so a batch under Undo logs each record's sealed
// content before its first write, and undoing puts those back. The sealed
// bytes are restored as they were, so no key is needed and nothing is
// re-encrypted. What lives outside the store (a crypto stream's state) is not
// undone; such an item is answered Operation Undone all the same, since its
// effect on managed objects is.

// undoLog is the before-image of every record a batch wrote.
type undoLog struct {
	entries []*undoEntry
	byUID   map[string]*undoEntry
}

type undoEntry struct {
	uid     string
	prior   []byte // sealed record before the batch; nil: it did not exist
	written []byte // what the batch last wrote; nil: it deleted the record
}

func newUndoLog() *undoLog { return &undoLog{byUID: map[string]*undoEntry{}} }

// before records uid's current record, once per batch, ahead of a write.
// fresh says the write creates the record, which therefore did not exist.
func (p *Processor) undoBefore(ic *itemCtx, uid string, fresh bool) error {
	if ic.undo == nil || ic.undo.byUID[uid] != nil {
		return nil
	}
	ent := &undoEntry{uid: uid}
	if !fresh {
		prior, err := p.st.Get(ic.ctx, objectKey(ic.caller.Identity, uid))
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("read object for undo: %w", err)
		}
		ent.prior = prior
	}
	ic.undo.byUID[uid] = ent
	ic.undo.entries = append(ic.undo.entries, ent)
	return nil
}

// undoAfter notes what a write left in uid's record.
func (ic *itemCtx) undoAfter(uid string, written []byte) {
	if ic.undo != nil {
		if ent := ic.undo.byUID[uid]; ent != nil {
			ent.written = written
		}
	}
}

// rollback restores every logged record. A record someone else changed
// since the batch wrote it (another connection of the same client) is left
// as it is and logged: undoing must not destroy a later, independent write.
// It runs even if the request was cancelled, so it has its own context.
func (p *Processor) rollback(ic *itemCtx) {
	ctx := context.WithoutCancel(ic.ctx)
	for i := len(ic.undo.entries) - 1; i >= 0; i-- {
		ent := ic.undo.entries[i]
		if err := p.restore(ctx, ic.caller.Identity, ent); err != nil {
			p.log.Error("could not undo a batch item's change", "uid", ent.uid, "caller", ic.caller.CommonName, "err", err)
		}
	}
}

func (p *Processor) restore(ctx context.Context, owner string, ent *undoEntry) error {
	defer p.locks.lock(owner, ent.uid)()
	key := objectKey(owner, ent.uid)
	cur, err := p.st.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		cur, err = nil, nil
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(cur, ent.written) {
		return fmt.Errorf("changed by another request since; left as it is")
	}
	defer p.objects.drop(key)
	switch {
	case ent.prior != nil:
		return p.st.Put(ctx, key, ent.prior)
	case cur != nil:
		return p.st.Delete(ctx, key)
	}
	return nil
}

// undoneItem turns a successful answer into Operation Undone: the payload
// described an effect that no longer exists.
func undoneItem(it *tree.Node) *tree.Node {
	n := tree.Struct(kmip14.TagBatchItem)
	for _, c := range it.Children {
		if c.Tag == kmip14.TagOperation || c.Tag == kmip14.TagUniqueBatchItemID {
			n.Add(c)
		}
	}
	return n.Add(tree.Enum(kmip14.TagResultStatus, uint32(kmip14.ResultStatusOperationUndone)))
}
