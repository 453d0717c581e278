package kmipops

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// Bounds on streamed (multi-part) operations. Streams live in memory only:
// a restart ends them, which a client sees as an unknown Correlation Value.
const (
	streamTTL          = 5 * time.Minute // idle time before a stream is dropped
	maxStreams         = 256             // per Processor
	maxStreamsPerOwner = 16
	// maxStreamHeld bounds what one stream buffers: GCM decryption holds all
	// ciphertext until the tag is checked, RSA holds one block.
	maxStreamHeld = 256 << 10
)

// session is one cryptographic operation over data given in one part, or
// in several (KMIP 1.3 streaming: Init Indicator, Correlation Value, Final
// Indicator). A single-part request is one update and a final.
type cryptoSession interface {
	// update consumes one part and returns the output it releases now.
	update(data []byte) ([]byte, error)
	// final ends the operation. req is the last request payload, which
	// carries what is checked at the end (tag, signature, MAC). It returns
	// the remaining output and the result fields of the response.
	final(req *tree.Node) ([]byte, []*tree.Node, error)
	// held is how many bytes the session buffers.
	held() int
}

// cryptoOp describes one streamable operation for runCrypto.
type cryptoOp struct {
	op    kmip14.Operation
	keyed bool // Hash alone works without a key
	use   keyUse
	// emitsData: Encrypt and Decrypt answer Data for every part; the
	// others answer their result only at the end.
	emitsData bool
	// digested: Digested Data may stand in for Data (Sign, Verify).
	digested bool
	// start builds the session from the key (nil when not keyed), the
	// effective parameters and the first request. It may return fields for
	// the first response (a server-generated IV).
	start func(p *Processor, ic *itemCtx, k *opKey, cp cryptoParams, req *tree.Node) (cryptoSession, []*tree.Node, error)
}

func payloadBool(payload *tree.Node, tag ttlv.Tag) (bool, error) {
	n := payload.Child(tag)
	if n == nil {
		return false, nil
	}
	v, ok := n.BoolValue()
	if !ok {
		return false, Errorf(kmip14.ResultReasonInvalidField, "%s must be a boolean", tree.TagName(tag))
	}
	return v, nil
}

// payloadBytes reads an optional byte-string field.
func payloadBytes(payload *tree.Node, tag ttlv.Tag) ([]byte, bool, error) {
	n := payload.Child(tag)
	if n == nil {
		return nil, false, nil
	}
	b, ok := n.BytesValue()
	if !ok {
		return nil, false, Errorf(kmip14.ResultReasonInvalidField, "%s must be a byte string", tree.TagName(tag))
	}
	return b, true, nil
}

// runCrypto executes a cryptographic operation, single-part or one part of
// a stream.
func (p *Processor) runCrypto(ic *itemCtx, payload *tree.Node, spec *cryptoOp) (*tree.Node, error) {
	init, err := payloadBool(payload, kmip14.TagInitIndicator)
	if err != nil {
		return nil, err
	}
	fin, err := payloadBool(payload, kmip14.TagFinalIndicator)
	if err != nil {
		return nil, err
	}
	data, hasData, err := payloadBytes(payload, kmip14.TagData)
	if err != nil {
		return nil, err
	}
	cv, hasCV, err := payloadBytes(payload, kmip14.TagCorrelationValue)
	if err != nil {
		return nil, err
	}
	if hasCV {
		if init {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Init Indicator given with a Correlation Value")
		}
		return p.continueStream(ic, payload, spec, cv, data, fin)
	}
	// The first part of a stream may carry no data yet (KMIP 1.3+ made Data
	// optional for streaming); a single-part operation needs its input.
	if !hasData && !init && !(spec.digested && payload.Child(kmip14.TagDigestedData) != nil) {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing Data")
	}
	var k *opKey
	var o *object.Object
	uid := ""
	if spec.keyed {
		if uid, err = uidArg(ic, payload); err != nil {
			return nil, err
		}
		if k, err = p.useKey(ic, uid, spec.use); err != nil {
			return nil, err
		}
		defer k.wipe()
		o = k.o
	}
	cp, err := effectiveParams(payload, o)
	if err != nil {
		return nil, err
	}
	sess, first, err := spec.start(p, ic, k, cp, payload)
	if err != nil {
		return nil, err
	}
	out, err := sess.update(data)
	if err != nil {
		return nil, err
	}
	if init && !fin {
		if sess.held() > maxStreamHeld {
			return nil, errStreamTooBig
		}
		if err := spec.consume(p, ic, k, len(data), true); err != nil {
			return nil, err
		}
		cv, err := p.streams.open(ic, spec.op, uid, sess, p.opts.Rand)
		if err != nil {
			return nil, err
		}
		spec.setPlaceholder(ic, uid)
		return spec.respond(uid, out, true, first, nil, cv), nil
	}
	rest, fields, err := sess.final(payload)
	if err != nil {
		return nil, err
	}
	// Usage is counted once the operation has succeeded, so a refused or
	// failed request costs the key nothing.
	if err := spec.consume(p, ic, k, len(data), true); err != nil {
		return nil, err
	}
	spec.setPlaceholder(ic, uid)
	return spec.respond(uid, append(out, rest...), init, first, fields, nil), nil
}

// consume counts a protecting part against the key's Usage Limits.
func (spec *cryptoOp) consume(p *Processor, ic *itemCtx, k *opKey, n int, first bool) error {
	if !spec.use.protect {
		return nil
	}
	return p.consumeUsage(ic, k, int64(n), first)
}

var errStreamTooBig = Errorf(kmip14.ResultReasonPermissionDenied, "stream buffers more than %d bytes", maxStreamHeld)

// continueStream runs a later part of a stream. Any failure ends the
// stream: a client cannot probe a half-done operation repeatedly.
func (p *Processor) continueStream(ic *itemCtx, payload *tree.Node, spec *cryptoOp, cv, data []byte, fin bool) (*tree.Node, error) {
	tab := p.streams
	st, err := tab.take(ic, cv)
	if err != nil {
		return nil, err
	}
	keep := false
	defer func() { tab.release(ic, cv, st, keep) }()
	if st.op != spec.op {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Correlation Value belongs to a %s stream", st.op)
	}
	if n := payload.Child(kmip14.TagUniqueIdentifier); n != nil {
		if s, _ := n.TextValue(); s != st.uid {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Unique Identifier differs from the stream's")
		}
	}
	for _, t := range []ttlv.Tag{kmip14.TagIVCounterNonce, kmip14.TagAuthenticatedEncryptionAdditionalData} {
		if payload.Child(t) != nil {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "%s is only accepted in the first part of a stream", tree.TagName(t))
		}
	}
	var k *opKey
	if spec.keyed {
		// The key is checked again for every part: a key revoked or
		// destroyed mid-stream stops the stream.
		if k, err = p.useKey(ic, st.uid, spec.use); err != nil {
			return nil, err
		}
		k.wipe() // the session holds what it needs
	}
	out, err := st.sess.update(data)
	if err != nil {
		return nil, err
	}
	if st.sess.held() > maxStreamHeld {
		return nil, errStreamTooBig
	}
	if err := spec.consume(p, ic, k, len(data), false); err != nil {
		return nil, err
	}
	spec.setPlaceholder(ic, st.uid)
	if !fin {
		keep = true
		return spec.respond(st.uid, out, true, nil, nil, cv), nil
	}
	rest, fields, err := st.sess.final(payload)
	if err != nil {
		return nil, err
	}
	return spec.respond(st.uid, append(out, rest...), true, nil, fields, nil), nil
}

// setPlaceholder makes the key the ID Placeholder for the next batch item;
// Hash acts on no object and leaves it alone.
func (spec *cryptoOp) setPlaceholder(ic *itemCtx, uid string) {
	if spec.keyed {
		ic.placeholder = uid
	}
}

// respond builds the response payload in the field order of KMIP 1.4 §4.29
// and after: Unique Identifier, Data, IV, result fields, Correlation Value.
// A part of a stream that produced no output yet (a block cipher holding
// less than a block, a final part with nothing left) answers without Data,
// which is optional in the response (§4.29, the OASIS TC-STREAM-ENC case); a
// single-part operation always answers its Data, empty or not.
func (spec *cryptoOp) respond(uid string, out []byte, part bool, first, fields []*tree.Node, cv []byte) *tree.Node {
	r := tree.Struct(kmip14.TagResponsePayload)
	if uid != "" {
		r.Add(tree.Text(kmip14.TagUniqueIdentifier, uid))
	}
	if spec.emitsData && !(part && len(out) == 0) {
		if out == nil {
			out = []byte{}
		}
		r.Add(tree.Bytes(kmip14.TagData, out))
	}
	r.Add(first...)
	r.Add(fields...)
	if cv != nil {
		r.Add(tree.Bytes(kmip14.TagCorrelationValue, cv))
	}
	return r
}

// stream is one open multi-part operation.
type cryptoStream struct {
	owner   string
	op      kmip14.Operation
	uid     string
	sess    cryptoSession
	expires time.Time
	busy    bool // a request is working on it
}

// streamTable holds a Processor's open streams, keyed by Correlation Value:
// 128 random bits, and only usable by the owner who opened the stream.
type streamTable struct {
	mu      sync.Mutex
	m       map[string]*cryptoStream
	byOwner map[string]int
}

func newStreamTable() *streamTable {
	return &streamTable{m: map[string]*cryptoStream{}, byOwner: map[string]int{}}
}

// sweep drops expired streams (their sessions, and key schedules, with
// them). Called with mu held; the table is small enough to scan.
func (t *streamTable) sweep(now time.Time) {
	for k, s := range t.m {
		if !s.busy && now.After(s.expires) {
			t.drop(k, s)
		}
	}
}

func (t *streamTable) drop(k string, s *cryptoStream) {
	delete(t.m, k)
	if t.byOwner[s.owner]--; t.byOwner[s.owner] <= 0 {
		delete(t.byOwner, s.owner)
	}
}

// open registers a new stream and returns its Correlation Value.
func (t *streamTable) open(ic *itemCtx, op kmip14.Operation, uid string, sess cryptoSession, rnd io.Reader) ([]byte, error) {
	cv := make([]byte, 16)
	if _, err := io.ReadFull(rnd, cv); err != nil {
		return nil, fmt.Errorf("random correlation value: %w", err)
	}
	owner := ic.caller.Identity
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep(ic.now)
	if len(t.m) >= maxStreams || t.byOwner[owner] >= maxStreamsPerOwner {
		return nil, Errorf(kmip14.ResultReasonPermissionDenied, "too many open streams")
	}
	// Clone: uid is a substring of the request's decoded text, and keeping it
	// for the stream's lifetime would pin the whole request message.
	t.m[string(cv)] = &cryptoStream{owner: owner, op: op, uid: strings.Clone(uid), sess: sess, expires: ic.now.Add(streamTTL)}
	t.byOwner[owner]++
	return cv, nil
}

// take claims the caller's stream cv for one request. Another owner's
// stream is answered exactly as an unknown one.
func (t *streamTable) take(ic *itemCtx, cv []byte) (*cryptoStream, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep(ic.now)
	s, ok := t.m[string(cv)]
	if !ok || s.owner != ic.caller.Identity {
		return nil, Errorf(kmip14.ResultReasonItemNotFound, "unknown or expired Correlation Value")
	}
	if s.busy {
		return nil, Errorf(kmip14.ResultReasonIllegalOperation, "stream is in use by another request")
	}
	s.busy = true
	return s, nil
}

// release returns a stream after a request: kept for the next part, or
// dropped when finished or failed.
func (t *streamTable) release(ic *itemCtx, cv []byte, s *cryptoStream, keep bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s.busy = false
	if !keep {
		if cur, ok := t.m[string(cv)]; ok && cur == s {
			t.drop(string(cv), s)
		}
		return
	}
	s.expires = ic.now.Add(streamTTL)
}

// count reports the open streams (for tests).
func (t *streamTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// bufferedSession buffers every part and runs fn once at the end: for
// operations that cannot release output early (RSA, authenticated
// decryption), bounded by maxStreamHeld.
type bufferedSession struct {
	buf bytes.Buffer
	fn  func(data []byte, req *tree.Node) ([]byte, []*tree.Node, error)
}

func (b *bufferedSession) update(data []byte) ([]byte, error) {
	if b.buf.Len()+len(data) > maxStreamHeld {
		return nil, errStreamTooBig
	}
	b.buf.Write(data)
	return nil, nil
}

func (b *bufferedSession) final(req *tree.Node) ([]byte, []*tree.Node, error) {
	return b.fn(b.buf.Bytes(), req)
}

func (b *bufferedSession) held() int { return b.buf.Len() }
