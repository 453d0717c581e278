package kmipops

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/audit"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// auditBatch gathers what one request's audit events need while its items
// run. The events go out when the answers are final: Undo and Maximum
// Response Size may still change an item's result after it ran.
type auditBatch struct {
	items []auditItem
	one   [1]auditItem // items' first backing array: most batches have one item
	// uids backs every item's lists, so that recording allocates nothing in
	// the steady state: the Logger does not keep an event's slices.
	uids []string
}

// auditBatches recycles auditBatch: emitAudit copies everything out.
var auditBatches = sync.Pool{New: func() any { return new(auditBatch) }}

type auditItem struct {
	op                string
	start             time.Time
	d                 time.Duration
	batchID           []byte
	reqUIDs, respUIDs []string
	omitted           int
}

// newAuditBatch is nil when auditing is off, which every audit hook checks.
func (p *Processor) newAuditBatch() *auditBatch {
	if p.opts.Audit == nil {
		return nil
	}
	ab := auditBatches.Get().(*auditBatch)
	ab.items, ab.uids = ab.one[:0], ab.uids[:0]
	return ab
}

// record records batch item it, answered by resp (nil when it did not
// run), which started at start. It reads identifiers only: the Unique
// Identifier fields of the request and response payloads, never a key,
// an attribute value or a message.
func (ab *auditBatch) record(it, resp *tree.Node, start time.Time) {
	if ab == nil {
		return
	}
	a := auditItem{op: "Unknown", start: start, d: time.Since(start)}
	if v, ok := it.Child(kmip14.TagOperation).EnumValue(); ok {
		a.op = metricOpName(kmip14.Operation(v))
	}
	if id := it.Child(kmip14.TagUniqueBatchItemID); id != nil && id.Type == ttlv.TypeByteString && len(id.Bytes) > 0 {
		// A copy: the sink encodes it later, and the request's bytes are
		// not promised to stay as they are once Process returns.
		a.batchID = append([]byte(nil), id.Bytes[:min(len(id.Bytes), maxAuditBatchID)]...)
	}
	// One backing array for every list of the batch; each item's lists are
	// capped at their ends, so that the next item's appends (or a larger
	// array when they grow it) leave them as they are.
	from := len(ab.uids)
	limit := from + 2*audit.MaxUIDs
	uids := collectUIDs(it.Child(kmip14.TagRequestPayload), ab.uids, limit, &a.omitted)
	n := len(uids)
	uids = collectUIDs(resp.Child(kmip14.TagResponsePayload), uids, limit, &a.omitted)
	a.reqUIDs, a.respUIDs = uids[from:n:n], uids[n:len(uids):len(uids)]
	ab.uids = uids
	ab.items = append(ab.items, a)
}

// maxPooledUIDs bounds the uids array a pooled auditBatch keeps: a large
// batch's stays with it, not in the pool.
const maxPooledUIDs = 256

// maxAuditBatchID is as much of a Unique Batch Item ID as a line shows.
const maxAuditBatchID = 64

// uidTags are the fields that name an object. Attributes (the Unique
// Identifier attribute too) are never read.
var uidTags = [...]ttlv.Tag{kmip14.TagUniqueIdentifier, kmip14.TagPrivateKeyUniqueIdentifier, kmip14.TagPublicKeyUniqueIdentifier}

// collectUIDs appends the text values of uidTags anywhere in n (a Get's
// wrapping key sits in Key Wrapping Specification), out holding at most
// limit (an item's request and response lists take 2*audit.MaxUIDs), and
// counts the rest in omitted. The sink cuts each list to audit.MaxUIDs.
func collectUIDs(n *tree.Node, out []string, limit int, omitted *int) []string {
	if n == nil {
		return out
	}
	for _, c := range n.Children {
		switch {
		case c.Tag == kmip14.TagAttribute || c.Tag == kmip14.TagKeyBlock:
			// Attribute values and key material are not walked at all.
		case c.Type == ttlv.TypeStructure:
			out = collectUIDs(c, out, limit, omitted)
		case c.Type == ttlv.TypeTextString && (c.Tag == uidTags[0] || c.Tag == uidTags[1] || c.Tag == uidTags[2]):
			if len(out) < limit {
				out = append(out, c.Text)
			} else {
				*omitted++
			}
		}
	}
	return out
}

// auditVersions avoids formatting the version for every event.
var auditVersions = [...]string{"1.0", "1.1", "1.2", "1.3", "1.4"}

// emitAudit sends one event per answered item, with the result the client got;
// a message refused before its items ran is one event with BatchIndex -1.
func (p *Processor) emitAudit(ctx context.Context, ab *auditBatch, c Caller, v version, resp *tree.Node) {
	if ab == nil {
		return
	}
	defer func() {
		// Process promises not to panic, and this runs after its recover.
		if r := recover(); r != nil {
			p.log.Error("panic while auditing; audit events of this request lost", "panic_type", fmt.Sprintf("%T", r), "caller", c.CommonName)
		}
		clear(ab.items) // nothing of this request stays reachable from the pool
		clear(ab.uids)
		ab.items = nil
		if cap(ab.uids) > maxPooledUIDs {
			ab.uids = nil
		}
		auditBatches.Put(ab)
	}()
	var ver string
	if v.major == 1 && v.minor >= 0 && int(v.minor) < len(auditVersions) {
		ver = auditVersions[v.minor]
	} else {
		ver = v.String()
	}
	base := audit.Event{Identity: c.Identity, CommonName: c.CommonName, Principal: c.Principal, Version: ver}
	if len(ab.items) == 0 {
		// Refused as a whole, before any item started: no duration
		// is measured, which keeps a clock read off every request.
		e := base
		e.Time, e.BatchIndex = time.Now(), -1
		e.Result, e.Reason = resultOf(resp.Child(kmip14.TagBatchItem))
		p.sendAudit(ctx, e)
		return
	}
	// The answers are in item order, one per recorded item.
	answers := resp.Children
	for i := range ab.items {
		a := &ab.items[i]
		e := base
		e.Time, e.Duration, e.Operation, e.BatchIndex, e.BatchItemID = a.start, a.d, a.op, i, a.batchID
		e.RequestUIDs, e.ResponseUIDs, e.UIDsOmitted = a.reqUIDs, a.respUIDs, a.omitted
		for len(answers) > 0 && answers[0].Tag != kmip14.TagBatchItem {
			answers = answers[1:]
		}
		if len(answers) > 0 {
			e.Result, e.Reason = resultOf(answers[0])
			answers = answers[1:]
		}
		p.sendAudit(ctx, e)
	}
}

func resultOf(it *tree.Node) (status, reason string) {
	if s, ok := it.Child(kmip14.TagResultStatus).EnumValue(); ok {
		status = kmip14.ResultStatus(s).String()
	}
	if r, ok := it.Child(kmip14.TagResultReason).EnumValue(); ok {
		reason = kmip14.ResultReason(r).String()
	}
	return status, reason
}

func (p *Processor) sendAudit(ctx context.Context, e audit.Event) {
	if err := p.opts.Audit.Log(ctx, e); err != nil {
		p.log.Error("audit event not recorded", "op", e.Operation, "caller", e.CommonName, "result", e.Result, "error", err)
	}
}

// AuditMalformed records a message the server could not take apart: bad
// framing, a size over the limit, a read cut short, undecodable TTLV, or a
// failed TLS handshake. One line with the caller (empty before the
// handshake finished), result "malformed" and reason, which says what was
// wrong in fixed words: never a byte of the message.
func (p *Processor) AuditMalformed(ctx context.Context, c Caller, reason string) {
	if p.opts.Audit == nil {
		return
	}
	p.sendAudit(ctx, audit.Event{Time: time.Now(), Identity: c.Identity, CommonName: c.CommonName,
		BatchIndex: -1, Result: audit.ResultMalformed, Reason: reason})
}
