package kmipops

import (
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

func undoMsg(e *env, items ...*tree.Node) *tree.Node {
	req := reqMsg(e.v, items...)
	req.Child(kmip14.TagRequestHeader).Add(tree.Enum(kmip14.TagBatchErrorContinuationOption, uint32(kmip14.BatchErrorContinuationOptionUndo)))
	return req
}

func TestBatchUndo(t *testing.T) {
	e := newEnv(t, Options{})
	keep := e.create(alice)
	doomed := e.create(alice)
	before := countObjects(t, e, alice)
	resp := e.send(alice, undoMsg(e,
		createAES(128),
		register(kmip14.ObjectTypeSecretData, tree.Struct(kmip14.TagSecretData,
			tree.Enum(kmip14.TagSecretDataType, uint32(kmip14.SecretDataTypePassword)),
			tree.Struct(kmip14.TagKeyBlock, tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeOpaque)),
				tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, []byte("pw")))))),
		item(kmip14.OperationAddAttribute, uidF(keep), attrNode("x-note", tree.Text(0, "v"))),
		item(kmip14.OperationGet, uidF(keep)), // turns Fresh false
		item(kmip14.OperationDestroy, uidF(doomed)),
		item(kmip14.OperationGet, uidF("no-such-object")),
		item(kmip14.OperationQuery)))
	items := batchItems(t, resp)
	if len(items) != 6 {
		t.Fatalf("%d items answered, want 6 (none after the failure)", len(items))
	}
	for i, it := range items[:5] {
		if s, _ := it.Child(kmip14.TagResultStatus).EnumValue(); s != uint32(kmip14.ResultStatusOperationUndone) || it.Child(kmip14.TagResponsePayload) != nil {
			t.Errorf("item %d: %s, want Operation Undone without payload", i, it)
		}
		if it.Child(kmip14.TagOperation) == nil {
			t.Errorf("item %d lost its Operation", i)
		}
	}
	wantFail(t, resp, 5, kmip14.ResultReasonItemNotFound)
	if n := countObjects(t, e, alice); n != before {
		t.Fatalf("%d objects after undo, %d before", n, before)
	}
	a := e.getAttrs(alice, keep)
	if a["x-note"] != nil {
		t.Error("AddAttribute not undone")
	}
	if f, _ := a["Fresh"][0].BoolValue(); !f {
		t.Error("Get's Fresh change not undone")
	}
	if s := e.state(alice, doomed); s != kmip14.StatePreActive {
		t.Errorf("Destroy not undone: %s", s)
	}
	okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(doomed))), 0) // key material is back
	// A batch that succeeds under Undo is answered normally (OASIS AX-M-2).
	resp = e.send(alice, undoMsg(e, createAES(128), item(kmip14.OperationGet)))
	okPayload(t, resp, 0)
	okPayload(t, resp, 1)
}
