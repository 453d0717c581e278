package conformance

import (
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

const (
	corrPH   = `<CorrelationValue type="ByteString" value="$CORRELATION_VALUE"/>`
	initTrue = `<InitIndicator type="Boolean" value="true"/>`
)

func corrLit(v string) string { return `<CorrelationValue type="ByteString" value="` + v + `"/>` }

// compareStream checks got against exp as the answer to req (XML), with
// the bindings b of the case so far.
func compareStream(t *testing.T, b *Bindings, req, exp, got string) *Mismatch {
	t.Helper()
	tc, err := Parse(strings.NewReader("<KMIP>" + req + exp + "</KMIP>"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.Resolve(tc.Steps[0].Request, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return CompareStep(r, tc.Steps[0].Response, concrete(t, got), b, testNow.Add(-time.Second), testNow.Add(time.Second), time.Minute)
}

// reqTree builds a request message (XML) with the bindings b.
func reqTree(t *testing.T, b *Bindings, req string) *tree.Node {
	t.Helper()
	tc, err := Parse(strings.NewReader("<KMIP>" + req + response("") + "</KMIP>"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.Resolve(tc.Steps[0].Request, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The answer to a request with Init Indicator true binds $CORRELATION_VALUE
// afresh; within a stream the value must repeat.
func TestNewStreamRebindsCorrelationValue(t *testing.T) {
	b := NewBindings()
	b.Values["UNIQUE_IDENTIFIER_0"] = tree.Text(kmip14.TagUniqueIdentifier, "k1")
	start := request("Encrypt", uid0+`<Data type="ByteString" value="01"/>`+initTrue)
	next := request("Encrypt", uid0+`<Data type="ByteString" value="02"/>`+corrPH)
	exp := opResponse("Encrypt", uid0+corrPH)
	if m := compareStream(t, b, start, exp, opResponse("Encrypt", uidLit("k1")+corrLit("aa"))); m != nil {
		t.Fatal(m)
	}
	// Within the stream the value must repeat.
	if m := compareStream(t, b, next, exp, opResponse("Encrypt", uidLit("k1")+corrLit("bb"))); m == nil ||
		!strings.HasSuffix(m.Path, "ResponsePayload/CorrelationValue") {
		t.Fatalf("another value within a stream: %v", m)
	}
	if m := compareStream(t, b, next, exp, opResponse("Encrypt", uidLit("k1")+corrLit("aa"))); m != nil {
		t.Fatal(m)
	}
	// The second stream has its own value, and the stream after it repeats it.
	for _, op := range []string{"Encrypt", "Decrypt", "Sign", "SignatureVerify", "MAC", "MACVerify"} {
		v := hex.EncodeToString([]byte(op))
		if m := compareStream(t, b, request(op, uid0+initTrue), opResponse(op, uid0+corrPH), opResponse(op, uidLit("k1")+corrLit(v))); m != nil {
			t.Fatalf("%s starting a new stream: %v", op, m)
		}
		if got := hex.EncodeToString(b.Values["CORRELATION_VALUE"].Bytes); got != v {
			t.Fatalf("%s: bound to %s, want %s", op, got, v)
		}
		if m := compareStream(t, b, request(op, uid0+corrPH), opResponse(op, uid0+corrPH), opResponse(op, uidLit("k1")+corrLit("aa"))); m == nil {
			t.Fatalf("%s: the first stream's value still passed after a new stream began", op)
		}
	}
}

// Only the answer to a streaming request with Init Indicator true rebinds:
// not one with Init Indicator false or none, not another operation's, and
// not a comparison that does not know the request.
func TestOnlyStreamStartRebinds(t *testing.T) {
	got := opResponse("Encrypt", uidLit("k1")+corrLit("bb"))
	for _, c := range []struct{ name, req string }{
		{"no Init Indicator", request("Encrypt", uid0+corrPH)},
		{"Init Indicator false", request("Encrypt", uid0+`<InitIndicator type="Boolean" value="false"/>`)},
		{"Final Indicator true", request("Encrypt", uid0+corrPH+`<FinalIndicator type="Boolean" value="true"/>`)},
		{"not a streaming operation", request("Get", uid0+initTrue)},
	} {
		b := NewBindings()
		b.Values["UNIQUE_IDENTIFIER_0"] = tree.Text(kmip14.TagUniqueIdentifier, "k1")
		b.Values["CORRELATION_VALUE"] = tree.Bytes(kmip14.TagCorrelationValue, []byte{0xaa})
		if m := compareStream(t, b, c.req, opResponse("Encrypt", uid0+corrPH), got); m == nil {
			t.Errorf("%s: rebound $CORRELATION_VALUE", c.name)
		}
	}
	b := NewBindings()
	b.Values["CORRELATION_VALUE"] = tree.Bytes(kmip14.TagCorrelationValue, []byte{0xaa})
	if m := compare(t, opResponse("Encrypt", corrPH), opResponse("Encrypt", corrLit("bb")), b); m == nil {
		t.Error("Compare without the request rebound $CORRELATION_VALUE")
	}
}

// Every other placeholder in the answer to a stream's first request must
// still repeat, and $CORRELATION_VALUE rebinds only as a Correlation Value.
func TestNewStreamRebindsNothingElse(t *testing.T) {
	start := request("Encrypt", uid0+initTrue)
	fresh := func() *Bindings {
		b := NewBindings()
		b.Values["UNIQUE_IDENTIFIER_0"] = tree.Text(kmip14.TagUniqueIdentifier, "k1")
		b.Values["CORRELATION_VALUE"] = tree.Bytes(kmip14.TagCorrelationValue, []byte{0xaa})
		b.Values["DATA"] = tree.Bytes(kmip14.TagData, []byte{0x01})
		return b
	}
	for _, c := range []struct{ name, exp, got string }{
		{"Unique Identifier", opResponse("Encrypt", uid0+corrPH), opResponse("Encrypt", uidLit("k2")+corrLit("bb"))},
		{"Data", opResponse("Encrypt", uid0+`<Data type="ByteString" value="$DATA"/>`+corrPH),
			opResponse("Encrypt", uidLit("k1")+`<Data type="ByteString" value="02"/>`+corrLit("bb"))},
		{"$CORRELATION_VALUE as Data", opResponse("Encrypt", uid0+`<Data type="ByteString" value="$CORRELATION_VALUE"/>`),
			opResponse("Encrypt", uidLit("k1")+`<Data type="ByteString" value="bb"/>`)},
	} {
		if m := compareStream(t, fresh(), start, c.exp, c.got); m == nil {
			t.Errorf("%s rebound in the answer to an Init request", c.name)
		}
	}
}

// After a failed step, bindLoose takes a new stream's value too, and only
// a new stream's.
func TestNewStreamRebindsLoosely(t *testing.T) {
	b := NewBindings()
	b.Values["CORRELATION_VALUE"] = tree.Bytes(kmip14.TagCorrelationValue, []byte{0xaa})
	exp := msg(t, opResponse("Encrypt", corrPH))
	got := concrete(t, opResponse("Encrypt", corrLit("bb")))
	b.bindLoose(reqTree(t, b, request("Encrypt", corrPH)), exp, got)
	b.bindLoose(nil, exp, got)
	if v := b.Values["CORRELATION_VALUE"]; hex.EncodeToString(v.Bytes) != "aa" {
		t.Fatalf("rebound loosely without a new stream: %x", v.Bytes)
	}
	b.bindLoose(reqTree(t, b, request("Encrypt", initTrue)), exp, got)
	if v := b.Values["CORRELATION_VALUE"]; hex.EncodeToString(v.Bytes) != "bb" {
		t.Fatalf("new stream bound loosely to %x", v.Bytes)
	}
}

// A replay through two streams under one placeholder passes and sends each
// stream's own value; a server that changes the value within a stream fails.
func TestReplayTwoStreams(t *testing.T) {
	stream := request("Encrypt", uid0+initTrue) + opResponse("Encrypt", uid0+corrPH) +
		request("Encrypt", uid0+corrPH) + opResponse("Encrypt", uid0+corrPH)
	doc := "<KMIP>" + request("Create", `<ObjectType type="Enumeration" value="SymmetricKey"/>`) +
		opResponse("Create", `<ObjectType type="Enumeration" value="SymmetricKey"/>`+uid0) + stream + stream + "</KMIP>"
	tc, err := Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	run := func(second string) (Result, *fakeConn) {
		enc := func(v string) *tree.Node { return concrete(t, opResponse("Encrypt", uidLit("k1")+corrLit(v))) }
		f := &fakeConn{resp: []*tree.Node{
			concrete(t, opResponse("Create", `<ObjectType type="Enumeration" value="SymmetricKey"/>`+uidLit("k1"))),
			enc("aa"), enc("aa"), enc("bb"), enc(second),
		}}
		return Replay(context.Background(), f, tc), f
	}
	r, f := run("bb")
	if !r.Passed {
		t.Fatalf("failed: %s", r.Reason())
	}
	for i, want := range map[int]string{2: "aa", 4: "bb"} {
		if v, _ := f.reqs[i].Path(kmip14.TagBatchItem, kmip14.TagRequestPayload, kmip14.TagCorrelationValue).BytesValue(); hex.EncodeToString(v) != want {
			t.Errorf("request %d sent %x, want %s", i, v, want)
		}
	}
	if r, _ := run("aa"); r.Passed || r.Failed != 5 {
		t.Fatalf("a changed value within the second stream: passed %v at step %d", r.Passed, r.Failed)
	}
}

// In a batch, only the item whose request starts a stream rebinds: an item
// beside it that continues the current stream must still repeat the value.
func TestNewStreamRebindsOnlyItsBatchItem(t *testing.T) {
	item := func(v string) string {
		return `<BatchItem><Operation type="Enumeration" value="Encrypt"/><ResultStatus type="Enumeration" value="Success"/><ResponsePayload>` +
			uid0 + v + `</ResponsePayload></BatchItem>`
	}
	two := func(a, b string) string {
		return strings.Replace(response(item(a)+item(b)), `<BatchCount type="Integer" value="1"/>`, `<BatchCount type="Integer" value="2"/>`, 1)
	}
	req := `<RequestMessage><RequestHeader><ProtocolVersion><ProtocolVersionMajor type="Integer" value="1"/><ProtocolVersionMinor type="Integer" value="4"/></ProtocolVersion>
<BatchCount type="Integer" value="2"/></RequestHeader>
<BatchItem><Operation type="Enumeration" value="Encrypt"/><RequestPayload>` + uid0 + `<Data type="ByteString" value="01"/>` + corrPH + `</RequestPayload></BatchItem>
<BatchItem><Operation type="Enumeration" value="Encrypt"/><RequestPayload>` + uid0 + `<Data type="ByteString" value="02"/>` + initTrue + `</RequestPayload></BatchItem></RequestMessage>`
	exp := two(corrPH, corrPH)
	for _, c := range []struct {
		name, first string
		ok          bool
	}{{"continuing item repeats", "aa", true}, {"continuing item changes", "bb", false}} {
		b := NewBindings()
		b.Values["UNIQUE_IDENTIFIER_0"] = tree.Text(kmip14.TagUniqueIdentifier, "k1")
		b.Values["CORRELATION_VALUE"] = tree.Bytes(kmip14.TagCorrelationValue, []byte{0xaa})
		got := strings.ReplaceAll(two(corrLit(c.first), corrLit("cc")), "$UNIQUE_IDENTIFIER_0", "k1")
		m := compareStream(t, b, req, exp, got)
		if (m == nil) != c.ok || (m != nil && !strings.Contains(m.Path, "BatchItem[0]")) {
			t.Errorf("%s: %v", c.name, m)
		}
		if c.ok && hex.EncodeToString(b.Values["CORRELATION_VALUE"].Bytes) != "cc" {
			t.Errorf("%s: the new stream's value not bound: %x", c.name, b.Values["CORRELATION_VALUE"].Bytes)
		}
	}
}
