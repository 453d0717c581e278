package kmipops

import (
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Asynchronous operations (KMIP 1.4 §6.8, §6.9, §4.26 Cancel, §4.27 Poll).
// The server decides which operations it answers asynchronously, and only
// for a request whose Asynchronous Indicator says the client can take such
// an answer. kmipd does so for Options.AsyncOperations, by default Locate,
// whose cost grows with the caller's objects (every sealed record is
// opened, since nothing is indexed in the clear), and Archive and Recover,
// which KMIP presents as waiting on archival storage (§4.23: Recover "MAY
// need asynchronous polling"). The item is answered Operation Pending with
// an Asynchronous Correlation Value and is performed when the client polls
// for it, so a Cancel before the Poll really cancels it: nothing was done.
// The Poll answers the operation's own batch item (its Operation, status
// and payload), with the ID Placeholder the original item would have seen.
//
// Pending operations live in this process's memory, bounded in number and
// bytes and forgotten after pendingTTL: a client must poll the server it
// asked, so with replicas behind a load balancer an operator turns this off
// (kmip { async_operations = [] }); past a bound, or when the request says
// nothing of asynchrony, the operation is simply performed at once.

// DefaultAsyncOperations are answered asynchronously when a client accepts
// it and Options.AsyncOperations is nil.
var DefaultAsyncOperations = []kmip14.Operation{kmip14.OperationLocate, kmip14.OperationArchive, kmip14.OperationRecover}

// Bounds of the pending operations.
const (
	pendingTTL         = 10 * time.Minute
	maxPending         = 4096
	maxPendingPerOwner = 256
	maxPendingBytes    = 16 << 20
)

// pendingOp is an operation accepted but not yet performed.
type pendingOp struct {
	owner       string
	principal   string // the credential identity that asked: only it may poll or cancel
	op          kmip14.Operation
	payload     *tree.Node // the request payload, the table's own copy
	placeholder string
	v           version
	size        int
	expires     time.Time
}

// asyncTable holds the pending operations of every owner, by owner and
// correlation value: another owner's value is simply not found.
type asyncTable struct {
	mu      sync.Mutex
	ops     map[string]*pendingOp
	byOwner map[string]int
	bytes   int
}

func newAsyncTable() *asyncTable {
	return &asyncTable{ops: map[string]*pendingOp{}, byOwner: map[string]int{}}
}

func pendingKey(owner string, corr []byte) string { return owner + "/" + hex.EncodeToString(corr) }

// queue stores op for later and returns its correlation value; ok is false
// when a bound is reached, and the caller performs the operation at once.
func (t *asyncTable) queue(rand io.Reader, now time.Time, po *pendingOp) (corr []byte, ok bool, err error) {
	size, err := tree.EncodedLen(po.payload)
	if err != nil {
		return nil, false, err
	}
	corr = make([]byte, 16)
	if _, err := io.ReadFull(rand, corr); err != nil {
		return nil, false, fmt.Errorf("correlation value: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expire(now)
	if len(t.ops) >= maxPending || t.byOwner[po.owner] >= maxPendingPerOwner || t.bytes+size > maxPendingBytes {
		return nil, false, nil
	}
	po.size, po.expires = size, now.Add(pendingTTL)
	t.ops[pendingKey(po.owner, corr)] = po
	t.byOwner[po.owner]++
	t.bytes += size
	return corr, true, nil
}

// take removes and returns owner's pending operation corr, if principal
// asked for it.
func (t *asyncTable) take(owner, principal string, corr []byte, now time.Time) (*pendingOp, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expire(now)
	k := pendingKey(owner, corr)
	po, ok := t.ops[k]
	if !ok || po.principal != principal {
		return nil, false
	}
	t.remove(k, po)
	return po, true
}

func (t *asyncTable) remove(k string, po *pendingOp) {
	delete(t.ops, k)
	t.bytes -= po.size
	if t.byOwner[po.owner]--; t.byOwner[po.owner] == 0 {
		delete(t.byOwner, po.owner)
	}
}

// expire forgets operations nobody polled in time (the caller holds mu).
// The scan is bounded by maxPending.
func (t *asyncTable) expire(now time.Time) {
	for k, po := range t.ops {
		if !now.Before(po.expires) {
			t.remove(k, po)
		}
	}
}

// goAsync queues the item instead of performing it, if the client accepts
// an asynchronous answer and op is one the server answers so. It reports
// whether it did; ic.pending is then the correlation value.
func (p *Processor) goAsync(ic *itemCtx, op kmip14.Operation, payload *tree.Node) (bool, error) {
	if !ic.async || !p.asyncOps[op] {
		return false, nil
	}
	corr, ok, err := p.pending.queue(p.opts.Rand, ic.now, &pendingOp{owner: ic.caller.Identity, principal: ic.caller.Principal, op: op,
		payload: payload.Clone(), placeholder: ic.placeholder, v: ic.v})
	if err != nil || !ok {
		return false, err
	}
	ic.pending = corr
	ic.queued = append(ic.queued, corr)
	return true, nil
}

// pendingItem is the answer to a queued item.
func pendingItem(req *tree.Node, corr []byte) *tree.Node {
	r := tree.Struct(kmip14.TagBatchItem)
	echoItem(r, req)
	return r.Add(tree.Enum(kmip14.TagResultStatus, uint32(kmip14.ResultStatusOperationPending)),
		tree.Bytes(kmip14.TagAsynchronousCorrelationValue, corr))
}

// dropQueued forgets what an undone batch queued: undoing it means its
// pending operations never happen.
func (p *Processor) dropQueued(ic *itemCtx) {
	for _, corr := range ic.queued {
		p.pending.take(ic.caller.Identity, ic.caller.Principal, corr, ic.now)
	}
	ic.queued = nil
}

func correlationArg(payload *tree.Node) ([]byte, error) {
	n := payload.Child(kmip14.TagAsynchronousCorrelationValue)
	if n == nil {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing Asynchronous Correlation Value")
	}
	if n.Type != ttlv.TypeByteString {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Asynchronous Correlation Value must be a byte string")
	}
	return n.Bytes, nil
}

var errNoPending = Errorf(kmip14.ResultReasonItemNotFound, "no pending operation has this Asynchronous Correlation Value")

// opPoll performs a pending operation and answers its batch item. The
// operation runs in the poll's batch (its writes are undone with it).
func opPoll(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	corr, err := correlationArg(payload)
	if err != nil {
		return nil, err
	}
	po, ok := p.pending.take(ic.caller.Identity, ic.caller.Principal, corr, ic.now)
	if !ok {
		return nil, errNoPending
	}
	sub := &itemCtx{ctx: ic.ctx, caller: ic.caller, v: po.v, now: ic.now, placeholder: po.placeholder, objects: ic.objects}
	ic.answerOp = po.op
	r, err := p.call(sub, po.op, operations[po.op], po.payload)
	ic.placeholder = sub.placeholder
	return r, err
}

// opCancel cancels a pending operation; it was not performed.
func opCancel(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	corr, err := correlationArg(payload)
	if err != nil {
		return nil, err
	}
	if _, ok := p.pending.take(ic.caller.Identity, ic.caller.Principal, corr, ic.now); !ok {
		return nil, errNoPending
	}
	return tree.Struct(kmip14.TagResponsePayload,
		tree.Bytes(kmip14.TagAsynchronousCorrelationValue, corr),
		tree.Enum(kmip14.TagCancellationResult, uint32(kmip14.CancellationResultCanceled))), nil
}
