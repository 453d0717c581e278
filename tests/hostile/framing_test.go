package hostile

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/server"
)

// Raw TTLV pieces, so a case can lie about any length or type.

func ttlvHdr(tag uint32, typ ttlv.Type, length uint32) []byte {
	return []byte{byte(tag >> 16), byte(tag >> 8), byte(tag), byte(typ),
		byte(length >> 24), byte(length >> 16), byte(length >> 8), byte(length)}
}

// frame wraps inner in a Request Message structure header whose length is
// honest, so the server reads the whole message and must answer it.
func frame(inner ...[]byte) []byte {
	body := bytes.Join(inner, nil)
	return append(ttlvHdr(uint32(kmip14.TagRequestMessage), ttlv.TypeStructure, uint32(len(body))), body...)
}

func enc(n *tree.Node) []byte { return tree.MustEncode(n) }

// nested is depth Attribute structures around one text value.
func nested(depth int) *tree.Node {
	n := tree.Text(kmip14.TagName, "x")
	for range depth {
		n = tree.Struct(kmip14.TagAttribute, n)
	}
	return n
}

// alive proves the server still serves: a new connection as another
// identity gets a Discover Versions answered promptly.
func alive(t *testing.T, e *Env) {
	t.Helper()
	c := e.Dial(1)
	c.Timeout = 10 * time.Second
	WantOK(t, c.One(t, Item(kmip14.OperationDiscoverVersions)))
	c.Close()
}

// hostileCase is one message and the exact outcome it must get.
type hostileCase struct {
	name string
	send []byte
	// reason is the Result Reason of the single failed batch item the
	// server must answer; 0 means it must close without answering.
	reason kmip14.ResultReason
	// msg, if set, must be contained in the Result Message.
	msg string
	// closes: after answering, the server closes the connection (the
	// framing can no longer be trusted); otherwise the same connection
	// must go on serving.
	closes bool
	// closeWrite half-closes the client's side after sending.
	closeWrite bool
	// maxAlloc bounds what the whole exchange may allocate (both ends);
	// 0 means the default of 64 MiB.
	maxAlloc uint64
}

func TestHostileMessages(t *testing.T) {
	e := StartServer(t, Options{Server: server.Config{ReadTimeout: 2 * time.Second}})
	owner := e.Dial(0)
	uid := owner.MustUID(t, CreateAES(256))
	ok := Item(kmip14.OperationDiscoverVersions)
	pv := tree.Struct(kmip14.TagProtocolVersion, tree.Int(kmip14.TagProtocolVersionMajor, 1), tree.Int(kmip14.TagProtocolVersionMinor, 4))
	hdr := func(count *tree.Node, extra ...*tree.Node) *tree.Node {
		return tree.Struct(kmip14.TagRequestHeader, append([]*tree.Node{pv, count}, extra...)...)
	}
	msg := func(children ...*tree.Node) []byte { return enc(tree.Struct(kmip14.TagRequestMessage, children...)) }
	count := func(n int32) *tree.Node { return tree.Int(kmip14.TagBatchCount, n) }
	get := func(fields ...*tree.Node) []byte { return enc(Request(Item(kmip14.OperationGet, fields...))) }
	okBytes := enc(Request(ok))
	// A message claiming a body beyond the 1 MiB cap; the body never comes.
	huge := ttlvHdr(uint32(kmip14.TagRequestMessage), ttlv.TypeStructure, 0xffffffff)
	overCap := ttlvHdr(uint32(kmip14.TagRequestMessage), ttlv.TypeStructure, server.DefaultMaxMessageSize-tree.HeaderLen+1)
	const capMsg = "message exceeds 1048576 bytes"
	var manyItems []byte
	for range 100_001 / 2 { // 100,002 items with the root: one over tree.DefaultLimits
		manyItems = append(manyItems, ttlvHdr(uint32(kmip14.TagAttribute), ttlv.TypeStructure, 8)...)
		manyItems = append(manyItems, ttlvHdr(uint32(kmip14.TagName), ttlv.TypeStructure, 0)...)
	}
	IM, IF := kmip14.ResultReasonInvalidMessage, kmip14.ResultReasonInvalidField

	cases := []hostileCase{
		// Lengths.
		// The claimed size is never allocated: the whole exchange, TLS
		// handshake included, stays under 4 MiB.
		{name: "length field claims 4 GiB", send: huge, reason: IM, msg: capMsg, closes: true, maxAlloc: 4 << 20},
		{name: "length one byte over the cap", send: overCap, reason: IM, msg: capMsg, closes: true, maxAlloc: 4 << 20},
		{name: "truncated message then EOF", send: okBytes[:len(okBytes)-5], closeWrite: true},
		{name: "header only then EOF", send: okBytes[:tree.HeaderLen], closeWrite: true},
		{name: "value length past its structure", reason: IM, send: frame(
			ttlvHdr(uint32(kmip14.TagRequestHeader), ttlv.TypeStructure, 16),
			ttlvHdr(uint32(kmip14.TagName), ttlv.TypeTextString, 0x100), []byte("12345678"))},
		{name: "structure longer than its parent", reason: IM, send: frame(
			ttlvHdr(uint32(kmip14.TagRequestHeader), ttlv.TypeStructure, 64), make([]byte, 8))},
		{name: "integer of length 16", reason: IM, send: frame(
			ttlvHdr(uint32(kmip14.TagBatchCount), ttlv.TypeInteger, 16), make([]byte, 16))},
		{name: "text that is not UTF-8", reason: IM, send: frame(
			ttlvHdr(uint32(kmip14.TagName), ttlv.TypeTextString, 2), []byte{0xff, 0xfe, 0, 0, 0, 0, 0, 0})},
		{name: "unknown type byte", reason: IM, send: frame(ttlvHdr(uint32(kmip14.TagName), 0x0c, 0))},
		{name: "tag outside 0x42/0x54", reason: IM, send: frame(ttlvHdr(0x990001, ttlv.TypeStructure, 0))},
		{name: "trailing bytes after a value", reason: IM, send: frame(enc(tree.Int(kmip14.TagBatchCount, 1))[:16], make([]byte, 3))},
		{name: "Unique Identifier of 512 KiB", reason: kmip14.ResultReasonItemNotFound,
			send: get(UID(strings.Repeat("A", 512<<10)))},

		// Wrong types for known tags.
		{name: "Operation as TextString", reason: IM, msg: "Operation", send: msg(hdr(count(1)),
			tree.Struct(kmip14.TagBatchItem, tree.Text(kmip14.TagOperation, "Get"), tree.Struct(kmip14.TagRequestPayload, UID(uid))))},
		{name: "Batch Count as LongInteger", reason: IM, send: msg(hdr(tree.Long(kmip14.TagBatchCount, 1)), ok)},
		{name: "Protocol Version Major as Enumeration", reason: IM, send: msg(tree.Struct(kmip14.TagRequestHeader,
			tree.Struct(kmip14.TagProtocolVersion, tree.Enum(kmip14.TagProtocolVersionMajor, 1), tree.Int(kmip14.TagProtocolVersionMinor, 4)),
			count(1)), ok)},
		{name: "Unique Identifier as Integer", reason: IF, send: get(tree.Int(kmip14.TagUniqueIdentifier, 1))},
		{name: "Request Payload as ByteString", reason: IM, send: msg(hdr(count(1)),
			tree.Struct(kmip14.TagBatchItem, tree.Enum(kmip14.TagOperation, uint32(kmip14.OperationGet)), tree.Bytes(kmip14.TagRequestPayload, []byte(uid))))},
		{name: "Batch Item as Integer", reason: IM, send: msg(hdr(count(1)), tree.Int(kmip14.TagBatchItem, 1))},
		{name: "Request Header missing", reason: IM, send: msg(ok)},
		{name: "a Response Message sent as a request", reason: IM, send: enc(tree.Struct(kmip14.TagResponseMessage, hdr(count(1)), ok))},
		{name: "unknown tag as the message", reason: IM, send: enc(tree.Struct(ttlv.Tag(0x42ffff), hdr(count(1)), ok))},
		{name: "unknown operation", reason: kmip14.ResultReasonOperationNotSupported, send: enc(Request(Item(kmip14.Operation(0x7777))))},

		// Structure bombs within the size cap.
		{name: "nesting 1000 structures deep", reason: IM, msg: "nesting", send: enc(Request(Item(kmip14.OperationGet, UID(uid), nested(1000))))},
		{name: "100,002 items", reason: IM, msg: "items", send: frame(manyItems)},

		// Batch counts that lie.
		{name: "Batch Count 5, one item", reason: IM, msg: "Batch Count", send: msg(hdr(count(5)), ok)},
		{name: "Batch Count 1, three items", reason: IM, msg: "Batch Count", send: msg(hdr(count(1)), ok, ok, ok)},
		{name: "Batch Count 0, no items", reason: IM, msg: "Batch Count", send: msg(hdr(count(0)))},
		{name: "Batch Count -1", reason: IM, msg: "Batch Count", send: msg(hdr(count(-1)), ok)},
		{name: "Batch Count 2^31-1", reason: IM, msg: "Batch Count", send: msg(hdr(count(1<<31-1)), ok)},
	}
	base := Measure()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runHostile(t, e, tc) })
	}
	alive(t, e)
	// Nothing a hostile message did may have touched the owner's key.
	WantOK(t, owner.One(t, Item(kmip14.OperationGet, UID(uid))))
	owner.Close()
	after := Measure()
	// 100,002 decoded items are ~15 MB while one request is in flight;
	// none of it may stay.
	if grow := int64(after.HeapInuse) - int64(base.HeapInuse); grow > 16<<20 {
		t.Errorf("heap in use grew by %d MiB over the hostile messages", grow>>20)
	}
	WaitGoroutines(t, base.Goroutines, 2, 10*time.Second)
	t.Logf("heap %d → %d KiB, allocated %d MiB, goroutines %d → %d", base.HeapInuse>>10, after.HeapInuse>>10,
		(after.TotalAlloc-base.TotalAlloc)>>20, base.Goroutines, after.Goroutines)
}

func runHostile(t *testing.T, e *Env, tc hostileCase) {
	t.Helper()
	limit := tc.maxAlloc
	if limit == 0 {
		limit = 64 << 20
	}
	before := Measure()
	defer func() {
		d := Measure().TotalAlloc - before.TotalAlloc
		t.Logf("allocated %d KiB", d>>10)
		if d > limit {
			t.Errorf("the exchange allocated %d KiB (limit %d KiB)", d>>10, limit>>10)
		}
	}()
	c := e.Dial(0)
	defer c.Close()
	c.Timeout = 15 * time.Second
	if err := c.Send(tc.send); err != nil {
		t.Fatalf("send: %v", err)
	}
	if tc.closeWrite {
		c.CloseWrite()
	}
	if tc.reason == 0 {
		if err := c.WaitClosed(10 * time.Second); err != nil {
			t.Fatalf("want the server to close without answering: %v", err)
		}
		alive(t, e)
		return
	}
	resp, err := c.ReadResponse()
	if err != nil {
		t.Fatalf("want a %s answer, got %v", tc.reason, err)
	}
	r := Only(t, resp)
	WantFailure(t, r, tc.reason)
	if tc.msg != "" && !strings.Contains(r.Message, tc.msg) {
		t.Errorf("Result Message %q lacks %q", r.Message, tc.msg)
	}
	if tc.closes {
		if err := c.WaitClosed(10 * time.Second); err != nil {
			t.Fatalf("after answering, the connection must close: %v", err)
		}
	} else {
		// The message was read to its declared end, so the framing is
		// intact and the same connection must keep serving.
		WantOK(t, c.One(t, Item(kmip14.OperationDiscoverVersions)))
	}
	alive(t, e)
}

// TestUnsupportedProtocolVersions: KMIP 1.4 §11 (and PyKMIP's server) answer
// a version the server does not speak with Invalid Message, in a batch item
// without an Operation, written in a version the server supports.
func TestUnsupportedProtocolVersions(t *testing.T) {
	e := StartServer(t, Options{})
	c := e.Dial(0)
	for _, v := range [][2]int32{{0, 0}, {0, 9}, {1, 5}, {1, 99}, {2, 0}, {2, 1}, {3, 0}, {255, 255}, {-1, 4}, {1, -1}} {
		t.Run(fmt.Sprintf("%d.%d", v[0], v[1]), func(t *testing.T) {
			resp, err := c.RoundTrip(RequestV(v[0], v[1], Item(kmip14.OperationQuery)))
			if err != nil {
				t.Fatal(err)
			}
			r := Only(t, resp)
			WantFailure(t, r, kmip14.ResultReasonInvalidMessage)
			if !strings.Contains(r.Message, "not supported") {
				t.Errorf("message %q", r.Message)
			}
			if r.Operation != 0 {
				t.Errorf("refusal names operation %s; the request was not understood", r.Operation)
			}
			maj, min := ResponseVersion(resp)
			if maj != 1 || min < 0 || min > 4 {
				t.Errorf("answered in %d.%d, not a supported version", maj, min)
			}
			if v[0] >= 1 && (maj > v[0] || (maj == v[0] && min > v[1] && v[1] >= 0)) {
				t.Errorf("answered in %d.%d, newer than the request", maj, min)
			}
		})
	}
	// Every supported version still works on the same connection.
	for minor := int32(0); minor <= 4; minor++ {
		resp, err := c.RoundTrip(RequestV(1, minor, Item(kmip14.OperationQuery)))
		if err != nil {
			t.Fatal(err)
		}
		WantOK(t, Only(t, resp))
		if maj, min := ResponseVersion(resp); maj != 1 || min != minor {
			t.Errorf("1.%d answered in %d.%d", minor, maj, min)
		}
	}
}

// TestUnknownTags: fields kmipd does not know are ignored, so the answer is
// the one the same request gets without them (KMIP's rule for newer minor
// versions; kmipd applies it throughout rather than refusing, which keeps
// vendor extensions from clients such as storage arrays working).
func TestUnknownTags(t *testing.T) {
	e := StartServer(t, Options{})
	c := e.Dial(0)
	uid := c.MustUID(t, CreateAES(128))
	unknown := []*tree.Node{
		tree.Int(ttlv.Tag(0x42fff0), 7),
		tree.Text(ttlv.Tag(0x540077), "vendor"),
		tree.Struct(ttlv.Tag(0x42fff1), tree.Bytes(ttlv.Tag(0x42fff2), []byte{1, 2})),
	}
	in := func(n *tree.Node) *tree.Node { return n.Add(cloneAll(unknown)...) }
	for name, req := range map[string]*tree.Node{
		"in the header":      tree.Struct(kmip14.TagRequestMessage, in(Header(1, 4, 1)), Item(kmip14.OperationGet, UID(uid))),
		"in the batch item":  Request(in(Item(kmip14.OperationGet, UID(uid)))),
		"in the payload":     Request(Item(kmip14.OperationGet, append([]*tree.Node{UID(uid)}, cloneAll(unknown)...)...)),
		"beside batch items": in(Request(Item(kmip14.OperationGet, UID(uid)))),
	} {
		t.Run(name, func(t *testing.T) {
			p := WantOK(t, Only(t, must(c.RoundTrip(req))))
			if UIDOf(p) != uid || len(FindBytes(p, kmip14.TagKeyMaterial)) != 16 {
				t.Fatalf("unexpected payload %v", p)
			}
		})
	}
}

func cloneAll(ns []*tree.Node) []*tree.Node {
	out := make([]*tree.Node, len(ns))
	for i, n := range ns {
		out[i] = n.Clone()
	}
	return out
}

func must(resp *tree.Node, err error) *tree.Node {
	if err != nil {
		panic(err)
	}
	return resp
}

// TestValueAtTheCap: a value that fills the message up to the cap is served
// (and read back) rather than refused; one byte more is refused.
func TestValueAtTheCap(t *testing.T) {
	e := StartServer(t, Options{})
	c := e.Dial(0)
	overhead := len(enc(Request(RegisterSecret(nil))))
	secret := bytes.Repeat([]byte{0x5a}, server.DefaultMaxMessageSize-overhead-8)
	b := enc(Request(RegisterSecret(secret)))
	if len(b) > server.DefaultMaxMessageSize {
		t.Fatalf("request of %d bytes", len(b))
	}
	uid := UIDOf(WantOK(t, Only(t, must(c.RoundTripBytes(b)))))
	got := FindBytes(WantOK(t, c.One(t, Item(kmip14.OperationGet, UID(uid)))), kmip14.TagKeyMaterial)
	if !bytes.Equal(got, secret) {
		t.Fatalf("read back %d bytes, want %d", len(got), len(secret))
	}
	big := enc(Request(RegisterSecret(append(secret, make([]byte, 16)...))))
	if len(big) <= server.DefaultMaxMessageSize {
		t.Fatalf("over-cap request is only %d bytes", len(big))
	}
	// The server answers from the header and closes while the body is
	// still coming: the client's write may fail (EPIPE), but the answer
	// must be readable.
	go c.Send(big)
	resp, err := c.ReadResponse()
	if err != nil {
		t.Fatalf("no answer to an over-cap message whose body was streaming: %v", err)
	}
	r := Only(t, resp)
	WantFailure(t, r, kmip14.ResultReasonInvalidMessage)
	if err := c.WaitClosed(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	alive(t, e)
}
