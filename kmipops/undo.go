package kmipops

import (
	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Batch Error Continuation Option Undo (KMIP 1.4 §6.7): when an item fails,
// the items before it are undone and answered Operation Undone. The batch's
// object.Scope logs every record it writes (object.UndoLog) and puts them
// back on Rollback. What lives outside the store (a crypto stream's state)
// is not undone; such an item is answered Operation Undone all the same,
// since its effect on managed objects is.

// rollback undoes what the batch wrote to its objects.
func (p *Processor) rollback(ic *itemCtx) {
	p.dropQueued(ic)
	ic.objects.Rollback(ic.ctx, func(uid string, err error) {
		p.log.Error("could not undo a batch item's change", "uid", uid, "caller", ic.caller.CommonName, "err", err)
	})
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
