package kmipops

import (
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// asyncMsg is a request whose client accepts asynchronous answers.
func asyncMsg(e *env, items ...*tree.Node) *tree.Node {
	req := reqMsg(e.v, items...)
	req.Child(kmip14.TagRequestHeader).Add(tree.Bool(kmip14.TagAsynchronousIndicator, true))
	return req
}

// pendingCorr asserts item i is Operation Pending and returns its
// correlation value.
func pendingCorr(t *testing.T, resp *tree.Node, i int) []byte {
	t.Helper()
	it := batchItems(t, resp)[i]
	if s, _ := it.Child(kmip14.TagResultStatus).EnumValue(); s != uint32(kmip14.ResultStatusOperationPending) || it.Child(kmip14.TagResponsePayload) != nil {
		t.Fatalf("item %d: %s, want Operation Pending without payload", i, it)
	}
	return crBytes(t, it, kmip14.TagAsynchronousCorrelationValue)
}

func poll(corr []byte) *tree.Node {
	return item(kmip14.OperationPoll, tree.Bytes(kmip14.TagAsynchronousCorrelationValue, corr))
}

func cancel(corr []byte) *tree.Node {
	return item(kmip14.OperationCancel, tree.Bytes(kmip14.TagAsynchronousCorrelationValue, corr))
}

// TestAsyncArchive: accepted asynchronously, an Archive is pending, is
// performed when polled (the Archive Date is the poll's time), and the
// Poll answers as the Archive (OASIS TC-101).
func TestAsyncArchive(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1700000000, 0).UTC()}
	e := newEnv(t, Options{Now: clock.Now})
	uid := e.create(alice)
	corr := pendingCorr(t, e.send(alice, asyncMsg(e, item(kmip14.OperationArchive, uidF(uid)))), 0)
	okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0) // not archived yet
	wantFail(t, e.do(bob, poll(corr)), 0, kmip14.ResultReasonItemNotFound)
	clock.Add(2 * time.Second)
	resp := e.do(alice, poll(corr), item(kmip14.OperationGetAttributes, tree.Text(kmip14.TagAttributeName, "Archive Date")))
	it := batchItems(t, resp)[0]
	if op, _ := it.Child(kmip14.TagOperation).EnumValue(); kmip14.Operation(op) != kmip14.OperationArchive {
		t.Errorf("Poll answered as %s", kmip14.Operation(op))
	}
	if text(t, okPayload(t, resp, 0), kmip14.TagUniqueIdentifier) != uid {
		t.Error("Poll's payload is not the Archive's")
	}
	if d := okPayload(t, resp, 1).Child(kmip14.TagAttribute).Child(kmip14.TagAttributeValue).Time; !d.Equal(clock.Now()) {
		t.Errorf("Archive Date %v, want the poll's time", d)
	}
	// Polled once, it is gone; a failed operation answers its own failure.
	wantFail(t, e.do(alice, poll(corr)), 0, kmip14.ResultReasonItemNotFound)
	corr = pendingCorr(t, e.send(alice, asyncMsg(e, item(kmip14.OperationArchive, uidF(uid)))), 0)
	resp = e.do(alice, poll(corr))
	wantFail(t, resp, 0, kmip14.ResultReasonObjectArchived)
	if op, _ := batchItems(t, resp)[0].Child(kmip14.TagOperation).EnumValue(); kmip14.Operation(op) != kmip14.OperationArchive {
		t.Errorf("failed Poll answered as %s", kmip14.Operation(op))
	}
}

// TestAsyncCancel: a cancelled operation never happens; the placeholder a
// pending Locate would set is not set, and one the batch had is kept for
// the polled operation (OASIS TC-32).
func TestAsyncCancel(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.create(alice, nameAttr("async"))
	corr := pendingCorr(t, e.send(alice, asyncMsg(e, item(kmip14.OperationArchive, uidF(uid)))), 0)
	p := okPayload(t, e.do(alice, cancel(corr)), 0)
	if r, _ := p.Child(kmip14.TagCancellationResult).EnumValue(); kmip14.CancellationResult(r) != kmip14.CancellationResultCanceled ||
		string(crBytes(t, p, kmip14.TagAsynchronousCorrelationValue)) != string(corr) {
		t.Errorf("Cancel answered %s", p)
	}
	okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0) // never archived
	wantFail(t, e.do(alice, poll(corr)), 0, kmip14.ResultReasonItemNotFound)
	wantFail(t, e.do(alice, cancel(corr)), 0, kmip14.ResultReasonItemNotFound)

	// [Locate (pending), Get]: the Get has no placeholder to use.
	resp := e.send(alice, asyncMsg(e, locateByName("async"), item(kmip14.OperationGet)))
	corr = pendingCorr(t, resp, 0)
	wantFail(t, resp, 1, kmip14.ResultReasonMissingData)
	if got := located(t, e.do(alice, poll(corr))); len(got) != 1 || got[0] != uid {
		t.Errorf("polled Locate found %v", got)
	}
	// [Get, Archive without uid (pending)]: the Archive keeps the Get's uid.
	other := e.create(alice)
	corr = pendingCorr(t, e.send(alice, asyncMsg(e, item(kmip14.OperationGet, uidF(other)), item(kmip14.OperationArchive))), 1)
	if u := text(t, okPayload(t, e.do(alice, poll(corr)), 0), kmip14.TagUniqueIdentifier); u != other {
		t.Errorf("polled Archive acted on %s, want %s", u, other)
	}
}

// Only a client that accepts it gets an asynchronous answer, only for the
// configured operations, and an undone batch's pending items never run.
func TestAsyncPolicy(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.create(alice, nameAttr("sync"))
	okPayload(t, e.do(alice, locateByName("sync")), 0) // no Asynchronous Indicator
	req := reqMsg(e.v, locateByName("sync"))
	req.Child(kmip14.TagRequestHeader).Add(tree.Bool(kmip14.TagAsynchronousIndicator, false))
	okPayload(t, e.send(alice, req), 0)
	okPayload(t, e.send(alice, asyncMsg(e, item(kmip14.OperationGet, uidF(uid)))), 0) // not an asynchronous operation
	off := newEnv(t, Options{AsyncOperations: []kmip14.Operation{}})
	okPayload(t, off.send(alice, asyncMsg(off, locateByName("sync"))), 0)
	// A Poll is never itself answered asynchronously, whatever the list.
	odd := newEnv(t, Options{AsyncOperations: []kmip14.Operation{kmip14.OperationPoll, kmip14.OperationCancel, kmip14.OperationLocate}})
	corr := pendingCorr(t, odd.send(alice, asyncMsg(odd, item(kmip14.OperationLocate))), 0)
	okPayload(t, odd.send(alice, asyncMsg(odd, poll(corr))), 0)

	undo := undoMsg(e, item(kmip14.OperationArchive, uidF(uid)), item(kmip14.OperationGet, uidF("no-such-object")))
	undo.Child(kmip14.TagRequestHeader).Add(tree.Bool(kmip14.TagAsynchronousIndicator, true))
	resp := e.send(alice, undo)
	if s, _ := batchItems(t, resp)[0].Child(kmip14.TagResultStatus).EnumValue(); s != uint32(kmip14.ResultStatusOperationUndone) {
		t.Fatalf("pending item under an undone batch: %s", batchItems(t, resp)[0])
	}
	if n := len(e.p.pending.ops); n != 0 {
		t.Errorf("an undone batch left %d pending operations", n)
	}
	okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0)
	// Malformed Poll and Cancel requests.
	for _, op := range []kmip14.Operation{kmip14.OperationPoll, kmip14.OperationCancel} {
		wantFail(t, e.do(alice, item(op)), 0, kmip14.ResultReasonInvalidMessage)
		wantFail(t, e.do(alice, item(op, tree.Text(kmip14.TagAsynchronousCorrelationValue, "x"))), 0, kmip14.ResultReasonInvalidField)
	}
}

// The table of pending operations is bounded: past its bounds an operation
// is performed at once, and unpolled ones are forgotten after pendingTTL.
func TestAsyncBounds(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1700000000, 0).UTC()}
	e := newEnv(t, Options{Now: clock.Now})
	var items []*tree.Node
	for range maxPendingPerOwner + 1 {
		items = append(items, item(kmip14.OperationLocate))
	}
	resp := e.send(alice, asyncMsg(e, items...))
	first := pendingCorr(t, resp, 0)
	pendingCorr(t, resp, maxPendingPerOwner-1)
	okPayload(t, resp, maxPendingPerOwner) // the owner's bound: done at once
	pendingCorr(t, e.send(bob, asyncMsg(e, item(kmip14.OperationLocate))), 0)
	clock.Add(pendingTTL)
	wantFail(t, e.do(alice, poll(first)), 0, kmip14.ResultReasonItemNotFound)
	if n := len(e.p.pending.ops); n != 0 {
		t.Errorf("%d pending operations outlived their time", n)
	}
	pendingCorr(t, e.send(alice, asyncMsg(e, item(kmip14.OperationLocate))), 0)
}
