package conformance

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// A three-space Attribute Name is read as the KMIP name in a request and in
// an expected response; the attribute's value is untouched.
func TestWrappedNameInRequestAndResponse(t *testing.T) {
	doc := "<KMIP>" + request("GetAttributes", uidLit("k1")+
		`<AttributeName type="TextString" value="Unique   Identifier"/><AttributeName type="TextString" value="Activation`+"\t"+`Date"/>`) +
		getAttrs("k1", attr("Object   Type", "Enumeration", "SymmetricKey"), attr("x-Custom   Name", "TextString", "a   b")) + "</KMIP>"
	tc, err := Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	p := tc.Steps[0].Request.Children[1].Children[1]
	if n1, n2 := p.Children[1].Lit.Text, p.Children[2].Lit.Text; n1 != "Unique Identifier" || n2 != "Activation Date" {
		t.Errorf("request names %q, %q", n1, n2)
	}
	rp := tc.Steps[0].Response.Children[1].Children[2]
	a, x := rp.Children[1], rp.Children[2]
	if a.Children[0].Lit.Text != "Object Type" || a.Children[1].Lit.Int != int64(kmip14.ObjectTypeSymmetricKey) {
		t.Errorf("response attribute %q = %d", a.Children[0].Lit.Text, a.Children[1].Lit.Int)
	}
	if x.Children[0].Lit.Text != "x-Custom   Name" || x.Children[1].Lit.Text != "a   b" {
		t.Errorf("custom attribute %q = %q", x.Children[0].Lit.Text, x.Children[1].Lit.Text)
	}
	// The comparison sees the KMIP name.
	got := concrete(t, getAttrs("k1", attr("Object Type", "Enumeration", "SymmetricKey"), attr("x-Custom   Name", "TextString", "a   b")))
	if m := Compare(tc.Steps[0].Response, got, NewBindings(), testNow.Add(-time.Second), testNow.Add(time.Second), time.Minute); m != nil {
		t.Fatal(m)
	}
}

func pendingResp(op, acv string) string {
	return response(`<BatchItem><Operation type="Enumeration" value="` + op + `"/><ResultStatus type="Enumeration" value="OperationPending"/>` +
		`<AsynchronousCorrelationValue type="ByteString" value="` + acv + `"/></BatchItem>`)
}

// Each Operation Pending answer binds $ASYNCHRONOUS_CORRELATION_VALUE
// afresh; the Poll answers in between must repeat it, and no other
// placeholder is rebound.
func TestPendingRebindsCorrelationValue(t *testing.T) {
	const ph = "$ASYNCHRONOUS_CORRELATION_VALUE"
	polled := opResponse("Poll", `<AsynchronousCorrelationValue type="ByteString" value="`+ph+`"/>`)
	polledLit := func(v string) string {
		return opResponse("Poll", `<AsynchronousCorrelationValue type="ByteString" value="`+v+`"/>`)
	}
	b := NewBindings()
	if m := compare(t, pendingResp("Locate", ph), pendingResp("Locate", "01"), b); m != nil {
		t.Fatal(m)
	}
	if m := compare(t, polled, polledLit("02"), b); m == nil {
		t.Fatal("a Poll answer with another correlation value passed")
	}
	if m := compare(t, polled, polledLit("01"), b); m != nil {
		t.Fatal(m)
	}
	// The second asynchronous Locate has its own value.
	if m := compare(t, pendingResp("Locate", ph), pendingResp("Locate", "02"), b); m != nil {
		t.Fatalf("second pending operation: %v", m)
	}
	if m := compare(t, polled, polledLit("01"), b); m == nil {
		t.Fatal("the first correlation value still passed after the second pending answer")
	}
	if m := compare(t, polled, polledLit("02"), b); m != nil {
		t.Fatal(m)
	}
	// Any other placeholder in a pending item must still repeat.
	withUID := func(uid string) string {
		return response(`<BatchItem><Operation type="Enumeration" value="Locate"/><ResultStatus type="Enumeration" value="OperationPending"/>` +
			`<AsynchronousCorrelationValue type="ByteString" value="03"/><ResponsePayload>` + uid + `</ResponsePayload></BatchItem>`)
	}
	b = NewBindings()
	b.Values["UNIQUE_IDENTIFIER_0"] = &tree.Node{Tag: kmip14.TagUniqueIdentifier, Type: 7, Text: "k1"}
	if m := compare(t, withUID(uid0), withUID(uidLit("k2")), b); m == nil {
		t.Fatal("a pending answer rebound $UNIQUE_IDENTIFIER_0")
	}
}

// After a failed step, bindLoose also takes each pending answer's own value.
func TestPendingRebindsLoosely(t *testing.T) {
	b := NewBindings()
	b.bindLoose(nil, msg(t, pendingResp("Archive", "$ASYNCHRONOUS_CORRELATION_VALUE")), concrete(t, pendingResp("Archive", "0a")))
	b.bindLoose(nil, msg(t, pendingResp("Recover", "$ASYNCHRONOUS_CORRELATION_VALUE")), concrete(t, pendingResp("Recover", "0b")))
	if v := b.Values["ASYNCHRONOUS_CORRELATION_VALUE"]; v == nil || hex.EncodeToString(v.Bytes) != "0b" {
		t.Fatalf("bound to %v", v)
	}
}

// oneStep is a one-step file; marked adds a "# TIME" line as the 1.0-1.2
// files have.
func oneStep(t *testing.T, marked bool, resp string) *Node {
	t.Helper()
	mark := ""
	if marked {
		mark = "\n# TIME 0\n"
	}
	tc, err := Parse(strings.NewReader("<KMIP>" + mark + request("GetAttributes", uidLit("k1")) + resp + "</KMIP>"))
	if err != nil {
		t.Fatal(err)
	}
	return tc.Steps[0].Response
}

func TestServerClockLiterals(t *testing.T) {
	const recorded = "2012-04-27T08:12:21+00:00"
	now := testNow.Format(time.RFC3339)
	check := func(marked bool, name, got string) *Mismatch {
		exp := oneStep(t, marked, getAttrs("k1", attr(name, "DateTime", recorded)))
		return Compare(exp, concrete(t, getAttrs("k1", attr(name, "DateTime", got))), NewBindings(),
			testNow.Add(-time.Second), testNow.Add(time.Second), time.Minute)
	}
	// (a) a server-clock attribute's literal matches a current server time,
	// including under its wrapped name, but not any time at all.
	for _, name := range []string{"Initial Date", "Last Change Date", "Destroy Date", "Archive   Date"} {
		if m := check(true, name, now); m != nil {
			t.Errorf("%s: %v", name, m)
		}
		if m := check(true, name, recorded); m == nil {
			t.Errorf("%s: the recorded 2012 instant passed as a current time", name)
		}
	}
	// (b) a client-set date stays exact.
	for _, name := range []string{"Activation Date", "Deactivation Date", "Protect Stop Date"} {
		if m := check(true, name, now); m == nil {
			t.Errorf("%s: a client-set date passed with another value", name)
		}
		if m := check(true, name, recorded); m != nil {
			t.Errorf("%s: %v", name, m)
		}
	}
	// (c) a file without "# TIME" markers (the 1.4 corpus) is exact.
	if m := check(false, "Initial Date", now); m == nil {
		t.Error("the rule applied to a file without # TIME markers")
	}
	// Nor does the rule touch a request.
	tc, err := Parse(strings.NewReader("<KMIP>\n# TIME 0\n" + request("Locate", attr("Initial Date", "DateTime", recorded)) + opResponse("Locate", uid0) + "</KMIP>"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := NewBindings().Resolve(tc.Steps[0].Request, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := req.Path(kmip14.TagBatchItem, kmip14.TagRequestPayload, kmip14.TagAttribute, kmip14.TagAttributeValue).TimeValue(); v.Format(time.RFC3339) != "2012-04-27T08:12:21Z" {
		t.Errorf("request sends %v", v)
	}
}

// Generated RSA private key material: a PKCS#1 or PKCS#8 key of the
// recorded modulus size, whatever its DER length; another size, another
// format, or a registered key fails.
func TestGeneratedRSAPrivateKeySize(t *testing.T) {
	gen := func(bits int) *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a := gen(1024)
	a1 := x509.MarshalPKCS1PrivateKey(a)
	var b1 []byte
	for range 40 {
		if d := x509.MarshalPKCS1PrivateKey(gen(1024)); len(d) != len(a1) {
			b1 = d
			break
		}
	}
	if b1 == nil {
		t.Fatal("no 1024-bit key of another DER length in 40 tries")
	}
	a8, _ := x509.MarshalPKCS8PrivateKey(a)
	b8 := func() []byte {
		for range 40 {
			d, _ := x509.MarshalPKCS8PrivateKey(gen(1024))
			if len(d) != len(a8) {
				return d
			}
		}
		t.Fatal("no PKCS#8 key of another DER length in 40 tries")
		return nil
	}()
	big1 := x509.MarshalPKCS1PrivateKey(gen(1536))
	getKey := func(uid, fmtType string, km []byte) string {
		return opResponse("Get", `<ObjectType type="Enumeration" value="PrivateKey"/>`+uid+`<PrivateKey><KeyBlock>
  <KeyFormatType type="Enumeration" value="`+fmtType+`"/><KeyValue><KeyMaterial type="ByteString" value="`+hex.EncodeToString(km)+`"/></KeyValue>
</KeyBlock></PrivateKey>`)
	}
	created := opResponse("CreateKeyPair", `<PrivateKeyUniqueIdentifier type="TextString" value="$UNIQUE_IDENTIFIER_0"/><PublicKeyUniqueIdentifier type="TextString" value="$UNIQUE_IDENTIFIER_1"/>`)
	registered := opResponse("Register", uid0)
	for _, c := range []struct {
		name     string
		first    string
		exp, got []byte
		ok       bool
	}{
		{"PKCS#1, same size, other length", created, a1, b1, true},
		{"PKCS#8, same size, other length", created, a8, b8, true},
		{"PKCS#1, other modulus size", created, a1, big1, false},
		{"PKCS#1 recorded, PKCS#8 returned", created, a1, b8, false},
		{"registered key", registered, a1, b1, false},
	} {
		bd := NewBindings()
		first := strings.NewReplacer("$UNIQUE_IDENTIFIER_0", "k1", "$UNIQUE_IDENTIFIER_1", "k2").Replace(c.first)
		if m := compare(t, c.first, first, bd); m != nil {
			t.Fatal(m)
		}
		m := compare(t, getKey(uid0, "PKCS_1", c.exp), getKey(uidLit("k1"), "PKCS_1", c.got), bd)
		if (m == nil) != c.ok {
			t.Errorf("%s: mismatch %v", c.name, m)
		}
	}
}

// The clock-step replay still answers a whole legacy case with its
// rebinding: a Replay through two pending operations passes.
func TestReplayTwoPendingOperations(t *testing.T) {
	const ph = `<AsynchronousCorrelationValue type="ByteString" value="$ASYNCHRONOUS_CORRELATION_VALUE"/>`
	doc := "<KMIP>\n# TIME 0\n" +
		request("Locate", "") + pendingResp("Locate", "$ASYNCHRONOUS_CORRELATION_VALUE") +
		request("Poll", ph) + opResponse("Poll", "") +
		request("Locate", "") + pendingResp("Locate", "$ASYNCHRONOUS_CORRELATION_VALUE") +
		request("Poll", ph) + opResponse("Poll", "") + "</KMIP>"
	tc, err := Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeConn{resp: []*tree.Node{
		concrete(t, pendingResp("Locate", "aa")), concrete(t, opResponse("Poll", "")),
		concrete(t, pendingResp("Locate", "bb")), concrete(t, opResponse("Poll", "")),
	}}
	r := Replay(context.Background(), f, tc)
	if !r.Passed {
		t.Fatalf("failed: %s", r.Reason())
	}
	for i, want := range map[int]string{1: "aa", 3: "bb"} {
		if v, _ := f.reqs[i].Path(kmip14.TagBatchItem, kmip14.TagRequestPayload, kmip14.TagAsynchronousCorrelationValue).BytesValue(); hex.EncodeToString(v) != want {
			t.Errorf("Poll %d sent %x, want %s", i, v, want)
		}
	}
}

// An Activation Date literal of a 1.0-1.2 file compares as $NOW only for an
// object whose Activation Date an Activate of the case set; a date a client
// set, another object's, another date attribute, a failed Activate and a
// 1.4 file stay exact.
func TestActivationDateFromActivate(t *testing.T) {
	const recorded = "2013-01-10T23:36:01+00:00"
	now := time.Now().UTC().Format(time.RFC3339)
	created := opResponse("Create", `<ObjectType type="Enumeration" value="SymmetricKey"/>`+uid0)
	activate := request("Activate", uid0)
	activated := opResponse("Activate", uid0)
	refused := response(`<BatchItem><Operation type="Enumeration" value="Activate"/><ResultStatus type="Enumeration" value="OperationFailed"/>
  <ResultReason type="Enumeration" value="PermissionDenied"/></BatchItem>`)
	modify := request("ModifyAttribute", uid0+attr("Activation Date", "DateTime", recorded))
	modified := opResponse("ModifyAttribute", uid0+attr("Activation Date", "DateTime", recorded))
	read := func(name string) string {
		return request("GetAttributes", uid0+`<AttributeName type="TextString" value="`+name+`"/>`)
	}
	type step struct{ req, exp, got string }
	at := func(uid, name, v string) string { return getAttrs(uid, attr(name, "DateTime", v)) }
	sub := func(s, uid string) string { return strings.ReplaceAll(s, "$UNIQUE_IDENTIFIER_0", uid) }
	for _, c := range []struct {
		name   string
		marked bool
		steps  []step
		pass   bool
	}{
		{"activated, server's clock", true, []step{
			{activate, activated, sub(activated, "k1")},
			{read("Activation Date"), at("$UNIQUE_IDENTIFIER_0", "Activation Date", recorded), at("k1", "Activation Date", now)}}, true},
		{"activated, recorded 2013 instant returned", true, []step{
			{activate, activated, sub(activated, "k1")},
			{read("Activation Date"), at("$UNIQUE_IDENTIFIER_0", "Activation Date", recorded), at("k1", "Activation Date", "2013-01-10T23:36:02+00:00")}}, false},
		{"no Activate: a client's date", true, []step{
			{read("Activation Date"), at("$UNIQUE_IDENTIFIER_0", "Activation Date", recorded), at("k1", "Activation Date", now)}}, false},
		{"no Activate: the client's date, exact", true, []step{
			{read("Activation Date"), at("$UNIQUE_IDENTIFIER_0", "Activation Date", recorded), at("k1", "Activation Date", recorded)}}, true},
		{"Activate refused", true, []step{
			{activate, refused, refused},
			{read("Activation Date"), at("$UNIQUE_IDENTIFIER_0", "Activation Date", recorded), at("k1", "Activation Date", now)}}, false},
		{"activated, then set by Modify Attribute", true, []step{
			{activate, activated, sub(activated, "k1")},
			{modify, modified, sub(modified, "k1")},
			{read("Activation Date"), at("$UNIQUE_IDENTIFIER_0", "Activation Date", recorded), at("k1", "Activation Date", now)}}, false},
		{"activated, then set by Modify Attribute, exact", true, []step{
			{activate, activated, sub(activated, "k1")},
			{modify, modified, sub(modified, "k1")},
			{read("Activation Date"), at("$UNIQUE_IDENTIFIER_0", "Activation Date", recorded), at("k1", "Activation Date", recorded)}}, true},
		{"another object activated", true, []step{
			{request("Activate", uidLit("k2")), opResponse("Activate", uidLit("k2")), opResponse("Activate", uidLit("k2"))},
			{read("Activation Date"), at("$UNIQUE_IDENTIFIER_0", "Activation Date", recorded), at("k1", "Activation Date", now)}}, false},
		{"activated, another date attribute", true, []step{
			{activate, activated, sub(activated, "k1")},
			{read("Deactivation Date"), at("$UNIQUE_IDENTIFIER_0", "Deactivation Date", recorded), at("k1", "Deactivation Date", now)}}, false},
		{"activated, a 1.4 file", false, []step{
			{activate, activated, sub(activated, "k1")},
			{read("Activation Date"), at("$UNIQUE_IDENTIFIER_0", "Activation Date", recorded), at("k1", "Activation Date", now)}}, false},
	} {
		mark := ""
		if c.marked {
			mark = "\n# TIME 0\n"
		}
		doc := "<KMIP>" + mark + request("Create", `<ObjectType type="Enumeration" value="SymmetricKey"/>`) + created
		f := &fakeConn{resp: []*tree.Node{concrete(t, sub(created, "k1"))}}
		for _, s := range c.steps {
			doc += s.req + s.exp
			f.resp = append(f.resp, concrete(t, s.got))
		}
		tc, err := Parse(strings.NewReader(doc + "</KMIP>"))
		if err != nil {
			t.Fatal(err)
		}
		// A failure must be the last step's, the Activation Date read.
		r := Replay(context.Background(), f, tc)
		if r.Passed != c.pass || (!r.Passed && r.Failed != len(tc.Steps)) {
			t.Errorf("%s: passed %v, want %v (%s)", c.name, r.Passed, c.pass, r.Reason())
		}
	}
}

// A client's Add Attribute of Activation Date after an Activate (a server
// that accepts it) makes the date the client's again: exact, as after a
// Modify Attribute.
func TestActivationDateAddedByClient(t *testing.T) {
	const recorded = "2013-01-10T23:36:01+00:00"
	sub := func(s string) string { return strings.ReplaceAll(s, "$UNIQUE_IDENTIFIER_0", "k1") }
	created := opResponse("Create", `<ObjectType type="Enumeration" value="SymmetricKey"/>`+uid0)
	activated := opResponse("Activate", uid0)
	added := opResponse("AddAttribute", uid0+attr("Activation Date", "DateTime", recorded))
	read := getAttrs("$UNIQUE_IDENTIFIER_0", attr("Activation Date", "DateTime", recorded))
	doc := "<KMIP>\n# TIME 0\n" + request("Create", `<ObjectType type="Enumeration" value="SymmetricKey"/>`) + created +
		request("Activate", uid0) + activated +
		request("AddAttribute", uid0+attr("Activation Date", "DateTime", recorded)) + added +
		request("GetAttributes", uid0+`<AttributeName type="TextString" value="Activation Date"/>`) + read + "</KMIP>"
	for _, c := range []struct {
		name, date string
		pass       bool
	}{{"server's clock", time.Now().UTC().Format(time.RFC3339), false}, {"the client's date", recorded, true}} {
		tc, err := Parse(strings.NewReader(doc))
		if err != nil {
			t.Fatal(err)
		}
		f := &fakeConn{resp: []*tree.Node{concrete(t, sub(created)), concrete(t, sub(activated)), concrete(t, sub(added)),
			concrete(t, getAttrs("k1", attr("Activation Date", "DateTime", c.date)))}}
		if r := Replay(context.Background(), f, tc); r.Passed != c.pass || (!r.Passed && r.Failed != 4) {
			t.Errorf("%s: passed %v, want %v (%s)", c.name, r.Passed, c.pass, r.Reason())
		}
	}
}
