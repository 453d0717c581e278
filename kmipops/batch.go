package kmipops

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

type batchOptions struct {
	continueOnError bool
	undo            bool
	maxResponseSize int32
	async           bool // the client accepts asynchronous answers (op_async.go)
}

func parseBatchOptions(hdr *tree.Node) (batchOptions, error) {
	var bo batchOptions
	if n := hdr.Child(kmip14.TagBatchErrorContinuationOption); n != nil {
		v, ok := n.EnumValue()
		if !ok {
			return bo, Errorf(kmip14.ResultReasonInvalidMessage, "Batch Error Continuation Option must be an enumeration")
		}
		switch kmip14.BatchErrorContinuationOption(v) {
		case kmip14.BatchErrorContinuationOptionContinue:
			bo.continueOnError = true
		case kmip14.BatchErrorContinuationOptionStop:
		case kmip14.BatchErrorContinuationOptionUndo:
			bo.undo = true // see undo.go
		default:
			return bo, Errorf(kmip14.ResultReasonInvalidMessage, "unknown Batch Error Continuation Option")
		}
	}
	if n := hdr.Child(kmip14.TagMaximumResponseSize); n != nil {
		v, ok := n.IntValue()
		if !ok || v <= 0 {
			return bo, Errorf(kmip14.ResultReasonInvalidMessage, "Maximum Response Size must be a positive integer")
		}
		bo.maxResponseSize = v
	}
	for _, t := range []ttlv.Tag{kmip14.TagAsynchronousIndicator, kmip14.TagBatchOrderOption} {
		if n := hdr.Child(t); n != nil {
			v, ok := n.BoolValue()
			if !ok {
				return bo, Errorf(kmip14.ResultReasonInvalidMessage, "%s must be a boolean", t)
			}
			bo.async = bo.async || (t == kmip14.TagAsynchronousIndicator && v)
		}
	}
	// Asynchronous Indicator only says the client could accept a pending
	// answer; the server chooses which operations get one (op_async.go).
	// Batch Order Option: items are always executed in order.
	return bo, nil
}

// itemCtx carries what one batch item's operation needs.
type itemCtx struct {
	ctx    context.Context
	caller Caller
	v      version
	now    time.Time
	// placeholder is the ID Placeholder: the Unique Identifier the previous
	// item produced or acted on, used by items that omit theirs.
	placeholder string
	// objects are the caller's objects; under the Undo option they log
	// what the batch writes (undo.go).
	objects object.Scope
	// audit gathers the batch's audit events; nil when auditing is off.
	audit *auditBatch
	// async: the request accepts asynchronous answers. pending is the
	// correlation value of the item just queued, queued those of every
	// item of the batch; answerOp is the Operation a Poll answers as.
	async    bool
	pending  []byte
	queued   [][]byte
	answerOp kmip14.Operation
}

type opFunc func(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error)

// operations maps each supported operation to its handler. Query reports
// exactly these.
var operations map[kmip14.Operation]opFunc

// operationOrder is the order Query lists operations in.
var operationOrder = []kmip14.Operation{
	kmip14.OperationQuery, kmip14.OperationDiscoverVersions,
	kmip14.OperationCreate, kmip14.OperationCreateKeyPair, kmip14.OperationRegister,
	kmip14.OperationLocate, kmip14.OperationGet, kmip14.OperationGetAttributes,
	kmip14.OperationGetAttributeList, kmip14.OperationAddAttribute,
	kmip14.OperationModifyAttribute, kmip14.OperationDeleteAttribute,
	kmip14.OperationActivate, kmip14.OperationRevoke, kmip14.OperationDestroy,
	kmip14.OperationObtainLease, kmip14.OperationCertify, kmip14.OperationReCertify,
	kmip14.OperationReKey, kmip14.OperationReKeyKeyPair, kmip14.OperationCheck,
	kmip14.OperationGetUsageAllocation, kmip14.OperationArchive, kmip14.OperationRecover,
	kmip14.OperationPoll, kmip14.OperationCancel,
	kmip14.OperationEncrypt, kmip14.OperationDecrypt, kmip14.OperationSign, kmip14.OperationSignatureVerify,
	kmip14.OperationMAC, kmip14.OperationMACVerify, kmip14.OperationHash,
	kmip14.OperationRNGRetrieve, kmip14.OperationRNGSeed,
	kmip14.OperationDeriveKey, kmip14.OperationCreateSplitKey, kmip14.OperationJoinSplitKey,
	kmip14.OperationImport, kmip14.OperationExport,
}

func init() {
	// Assigned in init because opQuery refers to operations.
	operations = map[kmip14.Operation]opFunc{
		kmip14.OperationQuery:            opQuery,
		kmip14.OperationDiscoverVersions: opDiscoverVersions,
		kmip14.OperationCreate:           opCreate,
		kmip14.OperationCreateKeyPair:    opCreateKeyPair,
		kmip14.OperationRegister:         opRegister,
		kmip14.OperationLocate:           opLocate,
		kmip14.OperationGet:              opGet,
		kmip14.OperationGetAttributes:    opGetAttributes,
		kmip14.OperationGetAttributeList: opGetAttributeList,
		kmip14.OperationAddAttribute:     opAddAttribute,
		kmip14.OperationModifyAttribute:  opModifyAttribute,
		kmip14.OperationDeleteAttribute:  opDeleteAttribute,
		kmip14.OperationActivate:         opActivate,
		kmip14.OperationRevoke:           opRevoke,
		kmip14.OperationDestroy:          opDestroy,
		kmip14.OperationObtainLease:      opObtainLease,
		kmip14.OperationCertify:          opCertify,
		kmip14.OperationReCertify:        opReCertify,
		kmip14.OperationEncrypt:          opEncrypt,
		kmip14.OperationDecrypt:          opDecrypt,
		kmip14.OperationSign:             opSign,
		kmip14.OperationSignatureVerify:  opSignatureVerify,
		kmip14.OperationMAC:              opMAC,
		kmip14.OperationMACVerify:        opMACVerify,
		kmip14.OperationHash:             opHash,
		kmip14.OperationRNGRetrieve:      opRNGRetrieve,
		kmip14.OperationRNGSeed:          opRNGSeed,
		kmip14.OperationDeriveKey:        opDeriveKey,
		kmip14.OperationCreateSplitKey:   opCreateSplitKey,
		kmip14.OperationJoinSplitKey:     opJoinSplitKey,
		kmip14.OperationImport:           opImport,
		kmip14.OperationExport:           opExport,

		// Re-key, Check, usage allocation, archiving (issue 16).
		kmip14.OperationReKey:              opReKey,
		kmip14.OperationReKeyKeyPair:       opReKeyKeyPair,
		kmip14.OperationCheck:              opCheck,
		kmip14.OperationGetUsageAllocation: opGetUsageAllocation,
		kmip14.OperationArchive:            opArchive,
		kmip14.OperationRecover:            opRecover,
		kmip14.OperationPoll:               opPoll,
		kmip14.OperationCancel:             opCancel,
	}
}

// runBatch executes the items in order. Under Stop (the default) the items
// after a failure are neither executed nor answered (KMIP 1.4 §6.13: "the
// server SHALL NOT continue processing subsequent operations"; responses to
// processed items are returned normally).
//
// Under Undo the same happens, and then everything the earlier items did is
// undone and their answers become Operation Undone (undo.go).
func (p *Processor) runBatch(ctx context.Context, c Caller, v version, bo batchOptions, items []*tree.Node, ab *auditBatch) []*tree.Node {
	var undo *object.UndoLog
	if bo.undo && len(items) > 1 {
		undo = object.NewUndoLog()
	}
	ic := &itemCtx{ctx: ctx, caller: c, v: v, objects: p.objects.Scope(c.Identity, undo).As(c.Principal), audit: ab, async: bo.async}
	out := make([]*tree.Node, 0, len(items))
	for i, it := range items {
		if err := ctx.Err(); err != nil {
			return p.cancelRest(ic, bo, out, items[i:], err)
		}
		resp, failed := p.runItem(ic, it)
		out = append(out, resp)
		if failed && ic.objects.Undoing() {
			p.rollback(ic)
			for i := range out[:len(out)-1] {
				out[i] = undoneItem(out[i])
			}
		}
		if failed && !bo.continueOnError {
			break
		}
	}
	return out
}

// metricOpName is an operation's metric label. Only named operations become
// labels, so a client cannot mint unbounded label values.
func metricOpName(op kmip14.Operation) string {
	if s := op.String(); !strings.HasPrefix(s, "0x") {
		return s
	}
	return "Unknown"
}

// cancelRest answers the items a cancelled or timed-out request will not run:
// in one cheap pass with one log line, so a huge batch stops costing CPU the
// moment its time is up. Under Stop only the first of them is answered.
func (p *Processor) cancelRest(ic *itemCtx, bo batchOptions, out, rest []*tree.Node, err error) []*tree.Node {
	msg := "request cancelled"
	if errors.Is(err, context.DeadlineExceeded) {
		msg = "request exceeded the server's time limit"
	}
	if !bo.continueOnError {
		rest = rest[:1]
	}
	now := time.Now()
	for _, it := range rest {
		op := "Unknown"
		if v, ok := it.Child(kmip14.TagOperation).EnumValue(); ok {
			op = metricOpName(kmip14.Operation(v))
		}
		p.observe(op, kmip14.ResultReasonGeneralFailure.String(), now)
		ic.audit.record(it, nil, now)
		out = append(out, failItem(it, kmip14.ResultReasonGeneralFailure, msg))
	}
	if ic.objects.Undoing() {
		p.rollback(ic)
		for i := range out[:len(out)-len(rest)] {
			out[i] = undoneItem(out[i])
		}
	}
	p.log.Warn("request stopped before its end", "reason", msg, "items_not_run", len(rest), "caller", ic.caller.CommonName)
	return out
}

// runItem executes one batch item; it recovers panics itself so that one bad
// item cannot lose the answers of the items before it.
func (p *Processor) runItem(ic *itemCtx, it *tree.Node) (resp *tree.Node, failed bool) {
	start := time.Now()
	ic.now = p.opts.Now().UTC().Truncate(time.Second)
	ic.pending, ic.answerOp = nil, 0
	opName := "Unknown"
	if ic.audit != nil {
		defer func() { ic.audit.record(it, resp, start) }() // after the recover below
	}
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("panic in operation", "op", opName, "panic_type", fmt.Sprintf("%T", r), "caller", ic.caller.CommonName)
			resp, failed = failItem(it, kmip14.ResultReasonGeneralFailure, "internal error"), true
			p.observe(opName, kmip14.ResultReasonGeneralFailure.String(), start)
		}
	}()
	payload, err := p.dispatch(ic, it, &opName)
	defer answerAs(&resp, ic)
	if err != nil {
		reason := ReasonOf(err)
		p.logFailure(ic, opName, reason, err)
		p.observe(opName, reason.String(), start)
		// A failed item leaves no usable placeholder behind.
		ic.placeholder = ""
		fi := failItem(it, reason, ClientMessage(err))
		var fp failurePayload
		if errors.As(err, &fp) {
			fi.Add(fp.FailurePayload())
		}
		return fi, true
	}
	if corr := ic.pending; corr != nil {
		// Queued: what it will produce is not known yet.
		ic.pending, ic.placeholder = nil, ""
		p.observe(opName, "pending", start)
		return pendingItem(it, corr), false
	}
	p.observe(opName, "success", start)
	r := tree.Struct(kmip14.TagBatchItem)
	echoItem(r, it)
	r.Add(tree.Enum(kmip14.TagResultStatus, uint32(kmip14.ResultStatusSuccess)), payload)
	return r, false
}

// failurePayload is an error whose failed item still carries a Response
// Payload (Check's refused fields, op_check.go).
type failurePayload interface{ FailurePayload() *tree.Node }

// answerAs gives a Poll's answer the Operation of the operation it
// performed (op_async.go).
func answerAs(resp **tree.Node, ic *itemCtx) {
	op := ic.answerOp
	ic.answerOp = 0
	if op == 0 || *resp == nil {
		return
	}
	for _, c := range (*resp).Children {
		if c.Tag == kmip14.TagOperation {
			c.Int = int64(op)
		}
	}
}

func (p *Processor) dispatch(ic *itemCtx, it *tree.Node, opName *string) (*tree.Node, error) {
	if it.Type != ttlv.TypeStructure {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "Batch Item must be a structure")
	}
	opn := it.Child(kmip14.TagOperation)
	opv, ok := opn.EnumValue()
	if !ok {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing or malformed Operation")
	}
	op := kmip14.Operation(opv)
	*opName = metricOpName(op)
	if id := it.Child(kmip14.TagUniqueBatchItemID); id != nil && id.Type != ttlv.TypeByteString {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "Unique Batch Item ID must be a byte string")
	}
	for _, ext := range it.All(kmip14.TagMessageExtension) {
		if crit, _ := ext.Child(kmip14.TagCriticalityIndicator).BoolValue(); crit {
			return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "critical Message Extension not supported")
		}
	}
	fn, ok := operations[op]
	if !ok {
		return nil, Errorf(kmip14.ResultReasonOperationNotSupported, "operation %s not supported", op)
	}
	if since := opSince[op]; since > ic.v.minor && op != kmip14.OperationDiscoverVersions {
		// The request's protocol version has no such operation (KMIP 1.0's
		// Operation enumeration ends at Put, 1.1's at Discover Versions), and
		// Query at that version does not offer it. Discover Versions is the
		// negotiation itself: a client that does not yet know what the
		// server speaks may send it under its lowest version (PyKMIP's
		// server answers it under any), and refusing it would leave a 1.0
		// client unable to learn that 1.4 is there.
		return nil, Errorf(kmip14.ResultReasonOperationNotSupported, "%s needs KMIP 1.%d", op, since)
	}
	payload := it.Child(kmip14.TagRequestPayload)
	if payload == nil || payload.Type != ttlv.TypeStructure {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing Request Payload")
	}
	if err := ic.ctx.Err(); err != nil {
		msg := "request cancelled"
		if errors.Is(err, context.DeadlineExceeded) {
			msg = "request exceeded the server's time limit"
		}
		return nil, &Error{Reason: kmip14.ResultReasonGeneralFailure, Msg: msg, Err: err}
	}
	if queued, err := p.goAsync(ic, op, payload); queued || err != nil {
		return nil, err
	}
	return p.call(ic, op, fn, payload)
}

// call runs op's handler fn, letting it see archived objects if op reads
// them (op_archive.go).
func (p *Processor) call(ic *itemCtx, op kmip14.Operation, fn opFunc, payload *tree.Node) (*tree.Node, error) {
	saved := ic.objects
	defer func() { ic.objects = saved }()
	if readsArchived[op] {
		ic.objects = ic.objects.WithArchived()
	}
	// The default operation policy lets every credential identity read
	// public objects (object/access.go).
	ic.objects = ic.objects.Reading(readsOnly[op])
	return fn(p, ic, payload)
}

// readsOnly are the operations KMIP's default operation policy allows to
// all on Public Keys and Certificates (1.0–1.2 §3.18.1).
var readsOnly = map[kmip14.Operation]bool{
	kmip14.OperationGet: true, kmip14.OperationGetAttributes: true,
	kmip14.OperationGetAttributeList: true, kmip14.OperationLocate: true,
}

func (p *Processor) observe(op, result string, start time.Time) {
	if p.opts.Observer != nil {
		p.opts.Observer.ObserveOperation(op, result, time.Since(start))
	}
}

// logFailure logs the cause of a failed item. Client mistakes are routine
// (debug); anything the server could not do is a warning or error.
func (p *Processor) logFailure(ic *itemCtx, op string, reason kmip14.ResultReason, err error) {
	args := []any{"op", op, "reason", reason.String(), "caller", ic.caller.CommonName, "err", err}
	var ke *Error
	var oe *object.Error
	switch {
	case reason == kmip14.ResultReasonGeneralFailure:
		p.log.Error("operation failed", args...)
	case errors.As(err, &ke) && ke.Err == nil, errors.As(err, &oe):
		p.log.Debug("operation refused", args...)
	default:
		p.log.Warn("operation failed", args...)
	}
}

// uidArg resolves the Unique Identifier of a request payload: the field
// when present, else the ID Placeholder.
func uidArg(ic *itemCtx, payload *tree.Node) (string, error) {
	n := payload.Child(kmip14.TagUniqueIdentifier)
	if n == nil {
		if ic.placeholder == "" {
			return "", Errorf(kmip14.ResultReasonMissingData, "Unique Identifier missing and no ID Placeholder set")
		}
		return ic.placeholder, nil
	}
	s, ok := n.TextValue()
	if !ok {
		return "", Errorf(kmip14.ResultReasonInvalidField, "Unique Identifier must be a text string")
	}
	return s, nil
}

// respUID is the common one-field response payload.
func respUID(uid string, more ...*tree.Node) *tree.Node {
	r := tree.Struct(kmip14.TagResponsePayload, tree.Text(kmip14.TagUniqueIdentifier, uid))
	return r.Add(more...)
}

// updateResp is the tail of every operation that changes one object: it runs
// fn on the object (see object.Scope.Update), then makes uid the ID
// Placeholder and answers it. Callers add any further response fields to
// the payload.
func updateResp(ic *itemCtx, uid string, fn func(o *object.Object) (changed bool, err error)) (*tree.Node, error) {
	if _, err := ic.objects.Update(ic.ctx, uid, fn); err != nil {
		return nil, err
	}
	ic.placeholder = uid
	return respUID(uid), nil
}
