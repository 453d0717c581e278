package kmipops

import (
	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// Archive and Recover (KMIP 1.4 §4.22, §4.23). In kmipd an archived object
// stays where every object is, one record sealed under its owner's pKEK on
// the same store, with an Archive Date attribute (§3.33) as its mark: the
// store is already kmipd's durable copy, so moving the record to another
// tier would add a second store to keep consistent and secure for nothing
// a client can observe. What archiving changes is what the object can do:
// the object layer answers Object Archived for every use of it (Get, the
// cryptographic operations, lifecycle changes, attribute changes), Locate
// finds it only when the Storage Status Mask asks for archival storage,
// and only its attributes stay readable (Get Attributes, Get Attribute
// List) until Recover brings it back on-line. The mark is in the sealed
// record, so it cannot be read or changed without the owner's key, and it
// survives restarts and replicas sharing the store.

func opArchive(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	uid, err := uidArg(ic, payload)
	if err != nil {
		return nil, err
	}
	// An object already archived is refused by Load: Object Archived.
	return updateResp(ic, uid, func(o *object.Object) (bool, error) {
		o.AdvanceState(ic.now)
		o.Set(object.AttrArchiveDate, tree.Time(0, ic.now))
		o.Touch(ic.now)
		return true, nil
	})
}

// opRecover brings an archived object back on-line. Recovering an object
// that is on-line already changes nothing and succeeds: after it, the
// object is on-line, which is all the client asked.
func opRecover(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	uid, err := uidArg(ic, payload)
	if err != nil {
		return nil, err
	}
	all := ic.objects.WithArchived()
	if _, err := all.Update(ic.ctx, uid, func(o *object.Object) (bool, error) {
		changed := o.AdvanceState(ic.now)
		if !o.Archived() {
			return changed, nil
		}
		for _, a := range o.All(object.AttrArchiveDate) {
			o.Delete(object.AttrArchiveDate, a.Index())
		}
		o.Touch(ic.now)
		return true, nil
	}); err != nil {
		return nil, err
	}
	ic.placeholder = uid
	return respUID(uid), nil
}

// readsArchived are the operations dispatch lets see archived objects:
// those reading attributes, which stay on-line (the OASIS TC-101 case reads
// the Archive Date of an archived key). Recover asks for itself.
var readsArchived = map[kmip14.Operation]bool{
	kmip14.OperationGetAttributes:    true,
	kmip14.OperationGetAttributeList: true,
}
