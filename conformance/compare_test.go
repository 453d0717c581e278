package conformance

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

var testNow = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// msg parses one message element written in the test-case XML encoding.
func msg(t *testing.T, body string) *Node {
	t.Helper()
	tc, err := Parse(strings.NewReader("<KMIP><RequestMessage/>" + body + "</KMIP>"))
	if err != nil {
		t.Fatal(err)
	}
	return tc.Steps[0].Response
}

// concrete parses a placeholder-free response and builds its tree.
func concrete(t *testing.T, body string) *tree.Node {
	t.Helper()
	n, err := NewBindings().Resolve(msg(t, body), testNow)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func response(items string) string {
	return `<ResponseMessage><ResponseHeader>
  <ProtocolVersion><ProtocolVersionMajor type="Integer" value="1"/><ProtocolVersionMinor type="Integer" value="4"/></ProtocolVersion>
  <TimeStamp type="DateTime" value="$NOW"/><BatchCount type="Integer" value="1"/>
</ResponseHeader>` + items + `</ResponseMessage>`
}

func getAttrs(uid string, attrs ...string) string {
	return response(`<BatchItem><Operation type="Enumeration" value="GetAttributes"/>
  <ResultStatus type="Enumeration" value="Success"/><ResponsePayload>
  <UniqueIdentifier type="TextString" value="` + uid + `"/>` + strings.Join(attrs, "") + `</ResponsePayload></BatchItem>`)
}

func attr(name, typ, val string) string {
	return `<Attribute><AttributeName type="TextString" value="` + name + `"/><AttributeValue type="` + typ + `" value="` + val + `"/></Attribute>`
}

// compare checks got (its $NOW resolved to testNow) against exp.
func compare(t *testing.T, exp, got string, b *Bindings) *Mismatch {
	t.Helper()
	return Compare(msg(t, exp), concrete(t, got), b, testNow.Add(-time.Second), testNow.Add(time.Second), time.Minute)
}

func TestAttributeOrderTolerated(t *testing.T) {
	state := attr("State", "Enumeration", "PreActive")
	alg := attr("Cryptographic Algorithm", "Enumeration", "AES")
	mask := attr("Cryptographic Usage Mask", "Integer", "Encrypt Decrypt")
	exp := getAttrs("$UNIQUE_IDENTIFIER_0", state, alg, mask)
	if m := compare(t, exp, getAttrs("uid-1", mask, state, alg), NewBindings()); m != nil {
		t.Fatalf("reordered attributes rejected: %v", m)
	}
	// The same attributes with one missing, or one extra, are not the same.
	if m := compare(t, exp, getAttrs("uid-1", mask, state), NewBindings()); m == nil || !strings.Contains(m.Expected, `"Cryptographic Algorithm"`) {
		t.Fatalf("missing attribute: %v", m)
	}
	extra := attr("Cryptographic Length", "Integer", "128")
	if m := compare(t, exp, getAttrs("uid-1", mask, extra, state, alg), NewBindings()); m == nil ||
		m.Path != "ResponseMessage/BatchItem[0]/ResponsePayload/Attribute[1]" {
		t.Fatalf("extra attribute: %v", m)
	}
}

func TestChangedEnumReportsPath(t *testing.T) {
	exp := getAttrs("$UNIQUE_IDENTIFIER_0", attr("Cryptographic Algorithm", "Enumeration", "AES"), attr("State", "Enumeration", "PreActive"))
	got := getAttrs("uid-1", attr("State", "Enumeration", "Active"), attr("Cryptographic Algorithm", "Enumeration", "AES"))
	m := compare(t, exp, got, NewBindings())
	if m == nil {
		t.Fatal("changed enum accepted")
	}
	want := &Mismatch{Path: "ResponseMessage/BatchItem[0]/ResponsePayload/Attribute[1]/AttributeValue", Expected: "PreActive", Got: "Active"}
	if m.Path != want.Path || m.Expected != want.Expected || m.Got != want.Got {
		t.Fatalf("mismatch = %+v, want %+v", m, want)
	}
	// An enum outside attributes is reported the same way.
	exp = response(`<BatchItem><Operation type="Enumeration" value="Get"/><ResultStatus type="Enumeration" value="Success"/></BatchItem>`)
	got = response(`<BatchItem><Operation type="Enumeration" value="Get"/><ResultStatus type="Enumeration" value="OperationFailed"/>
  <ResultReason type="Enumeration" value="ItemNotFound"/><ResultMessage type="TextString" value="gone"/></BatchItem>`)
	m = compare(t, exp, got, NewBindings())
	if m == nil || m.Path != "ResponseMessage/BatchItem[0]/ResultStatus" || m.Expected != "Success" || m.Got != "OperationFailed" ||
		!strings.Contains(m.Note, "ItemNotFound") {
		t.Fatalf("mismatch = %+v", m)
	}
}

func TestTolerances(t *testing.T) {
	fail := response(`<BatchItem><Operation type="Enumeration" value="Get"/><ResultStatus type="Enumeration" value="OperationFailed"/>
  <ResultReason type="Enumeration" value="ItemNotFound"/><ResultMessage type="TextString" value="%s"/></BatchItem>`)
	// Free text and the header time stamp may differ.
	got := strings.Replace(strings.Replace(fail, "%s", "no such object", 1), `value="$NOW"`, `value="2001-01-01T00:00:00Z"`, 1)
	if m := compare(t, strings.Replace(fail, "%s", "NOT_FOUND", 1), got, NewBindings()); m != nil {
		t.Fatalf("free text or time stamp compared: %v", m)
	}
	// $NOW-3600 accepts an hour ago, not now.
	exp := getAttrs("x", attr("Activation Date", "DateTime", "$NOW-3600"))
	hourAgo := testNow.Add(-time.Hour).Format(time.RFC3339)
	if m := compare(t, exp, getAttrs("x", attr("Activation Date", "DateTime", hourAgo)), NewBindings()); m != nil {
		t.Fatalf("$NOW-3600: %v", m)
	}
	if m := compare(t, exp, getAttrs("x", attr("Activation Date", "DateTime", testNow.Format(time.RFC3339))), NewBindings()); m == nil ||
		!strings.HasSuffix(m.Path, "Attribute[0]/AttributeValue") {
		t.Fatalf("$NOW-3600 matched now: %v", m)
	}
	// A literal that is not a placeholder is exact, even for times.
	exp = getAttrs("x", attr("Activation Date", "DateTime", "1970-01-01T00:00:06+00:00"))
	if m := compare(t, exp, getAttrs("x", attr("Activation Date", "DateTime", "1970-01-01T00:00:07Z")), NewBindings()); m == nil {
		t.Fatal("different literal time accepted")
	}
}

// fakeConn answers requests with canned responses and records requests.
type fakeConn struct {
	resp []*tree.Node
	reqs []*tree.Node
}

func (f *fakeConn) RoundTrip(_ context.Context, req *tree.Node) (*tree.Node, error) {
	f.reqs = append(f.reqs, req)
	if len(f.resp) == 0 {
		return nil, errors.New("no more responses")
	}
	r := f.resp[0]
	f.resp = f.resp[1:]
	return r, nil
}
func (f *fakeConn) Close() error { return nil }

func opResponse(op, payload string) string {
	return response(`<BatchItem><Operation type="Enumeration" value="` + op + `"/><ResultStatus type="Enumeration" value="Success"/><ResponsePayload>` + payload + `</ResponsePayload></BatchItem>`)
}

func request(op, payload string) string {
	return `<RequestMessage><RequestHeader><ProtocolVersion><ProtocolVersionMajor type="Integer" value="1"/><ProtocolVersionMinor type="Integer" value="4"/></ProtocolVersion>
<BatchCount type="Integer" value="1"/></RequestHeader><BatchItem><Operation type="Enumeration" value="` + op + `"/><RequestPayload>` + payload + `</RequestPayload></BatchItem></RequestMessage>`
}

const uid0 = `<UniqueIdentifier type="TextString" value="$UNIQUE_IDENTIFIER_0"/>`

func uidLit(s string) string { return `<UniqueIdentifier type="TextString" value="` + s + `"/>` }

func threeSteps(t *testing.T) *TestCase {
	doc := "<KMIP>" +
		request("Create", `<ObjectType type="Enumeration" value="SymmetricKey"/>`) +
		opResponse("Create", `<ObjectType type="Enumeration" value="SymmetricKey"/>`+uid0) +
		request("Activate", uid0+`<ActivationDate type="DateTime" value="$NOW-3600"/>`) +
		opResponse("Activate", uid0) +
		request("Destroy", uid0) + opResponse("Destroy", uid0) + "</KMIP>"
	tc, err := Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	tc.Name = "T-M-1"
	return tc
}

func TestPlaceholdersBindAndSubstitute(t *testing.T) {
	f := &fakeConn{resp: []*tree.Node{
		concrete(t, opResponse("Create", `<ObjectType type="Enumeration" value="SymmetricKey"/>`+uidLit("srv-42"))),
		concrete(t, opResponse("Activate", uidLit("srv-42"))),
		concrete(t, opResponse("Destroy", uidLit("srv-42"))),
	}}
	before := time.Now()
	r := Replay(context.Background(), f, threeSteps(t))
	if !r.Passed {
		t.Fatalf("failed: %s", r.Reason())
	}
	for i, req := range f.reqs[1:] {
		if got, _ := req.Path(kmip14.TagBatchItem, kmip14.TagRequestPayload, kmip14.TagUniqueIdentifier).TextValue(); got != "srv-42" {
			t.Fatalf("request %d carries %q, want the bound srv-42", i+2, got)
		}
	}
	ad, _ := f.reqs[1].Path(kmip14.TagBatchItem, kmip14.TagRequestPayload, kmip14.TagActivationDate).TimeValue()
	if d := before.Add(-time.Hour).Sub(ad); d > 2*time.Second || d < -2*time.Second {
		t.Fatalf("$NOW-3600 generated as %v", ad)
	}
}

func TestBoundValueMustRepeat(t *testing.T) {
	// The server answers Activate for another object: the bound value differs.
	// The Destroy step still runs, with the identifier bound at Create.
	f := &fakeConn{resp: []*tree.Node{
		concrete(t, opResponse("Create", `<ObjectType type="Enumeration" value="SymmetricKey"/>`+uidLit("srv-42"))),
		concrete(t, opResponse("Activate", uidLit("srv-43"))),
		concrete(t, opResponse("Destroy", uidLit("srv-42"))),
	}}
	r := Replay(context.Background(), f, threeSteps(t))
	if r.Passed || r.Failed != 2 || r.Mismatch == nil ||
		r.Mismatch.Path != "ResponseMessage/BatchItem[0]/ResponsePayload/UniqueIdentifier" ||
		!strings.Contains(r.Mismatch.Expected, `"srv-42"`) || r.Mismatch.Got != `"srv-43"` {
		t.Fatalf("result = %+v %v", r, r.Mismatch)
	}
	if len(f.reqs) != 3 {
		t.Fatalf("%d requests sent; the cleanup step must still run", len(f.reqs))
	}
}

func TestGeneratedKeyMaterial(t *testing.T) {
	getKey := func(uid, km string) string {
		return opResponse("Get", `<ObjectType type="Enumeration" value="SymmetricKey"/>`+uid+`<SymmetricKey><KeyBlock>
  <KeyFormatType type="Enumeration" value="Raw"/><KeyValue><KeyMaterial type="ByteString" value="`+km+`"/></KeyValue>
</KeyBlock></SymmetricKey>`)
	}
	exp := getKey(uid0, "00112233445566778899aabbccddeeff")
	created := opResponse("Create", `<ObjectType type="Enumeration" value="SymmetricKey"/>`+uid0)
	registered := opResponse("Register", uid0)
	for _, c := range []struct {
		first, km string
		ok        bool
	}{
		{created, "ffeeddccbbaa99887766554433221100", true},     // random key: any value of the right length
		{created, "ffeeddccbbaa9988776655443322", false},        // but not another length
		{registered, "ffeeddccbbaa99887766554433221100", false}, // a registered key is exact
	} {
		b := NewBindings()
		if m := compare(t, c.first, strings.Replace(c.first, "$UNIQUE_IDENTIFIER_0", "k1", 1), b); m != nil {
			t.Fatal(m)
		}
		m := compare(t, exp, getKey(uidLit("k1"), c.km), b)
		if (m == nil) != c.ok {
			t.Errorf("after %.40q, key %s: mismatch %v", c.first, c.km, m)
		}
	}
}

// A generated key's Big Integers (Transparent key formats) are type-checked
// only: its private exponent and CRT values differ in length from one random
// key to the next, and TTLV pads each after a sign byte. Anyone else's Big
// Integers, and a generated key's other fields, compare as always.
func TestGeneratedBigIntegers(t *testing.T) {
	getKey := func(uid, d, alg string) string {
		return opResponse("Get", `<ObjectType type="Enumeration" value="PrivateKey"/>`+uid+`<PrivateKey><KeyBlock>
  <KeyFormatType type="Enumeration" value="TransparentRSAPrivateKey"/><KeyValue><KeyMaterial>
  <PrivateExponent type="BigInteger" value="`+d+`"/></KeyMaterial></KeyValue>
  <CryptographicAlgorithm type="Enumeration" value="`+alg+`"/></KeyBlock></PrivateKey>`)
	}
	exp := getKey(uid0, "0x00c0ffee00c0ffee00c0ffee00c0ffee", "RSA")
	created := opResponse("CreateKeyPair", `<PrivateKeyUniqueIdentifier type="TextString" value="$UNIQUE_IDENTIFIER_0"/><PublicKeyUniqueIdentifier type="TextString" value="$UNIQUE_IDENTIFIER_1"/>`)
	registered := opResponse("Register", uid0)
	for _, c := range []struct {
		first, d, alg string
		ok            bool
	}{
		{created, "0x0000000000000001", "RSA", true},                    // a random key's exponent, shorter
		{created, "0x0000000000000001", "ECDSA", false},                 // but its other fields are exact
		{registered, "0x0000000000000001", "RSA", false},                // a registered key is exact
		{registered, "0x00c0ffee00c0ffee00c0ffee00c0ffee", "RSA", true}, // and matches itself
	} {
		b := NewBindings()
		if m := compare(t, c.first, strings.ReplaceAll(strings.ReplaceAll(c.first, "$UNIQUE_IDENTIFIER_0", "k1"), "$UNIQUE_IDENTIFIER_1", "k2"), b); m != nil {
			t.Fatal(m)
		}
		m := compare(t, exp, getKey(uidLit("k1"), c.d, c.alg), b)
		if (m == nil) != c.ok {
			t.Errorf("after %.40q, exponent %s, %s: mismatch %v", c.first, c.d, c.alg, m)
		}
	}
}

// A case may record a server output as a literal and use it later as a
// placeholder: the request gets what the server actually returned.
func TestPlaceholderFromEarlierField(t *testing.T) {
	doc := "<KMIP>" +
		request("Encrypt", uidLit("k")+`<Data type="ByteString" value="0102"/>`) +
		opResponse("Encrypt", uidLit("k")+`<Data type="ByteString" value="aaaa"/>`) +
		request("Decrypt", uidLit("k")+`<Data type="ByteString" value="$DATA_0"/>`) +
		opResponse("Decrypt", uidLit("k")+`<Data type="ByteString" value="0102"/>`) + "</KMIP>"
	tc, err := Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeConn{resp: []*tree.Node{
		concrete(t, opResponse("Encrypt", uidLit("k")+`<Data type="ByteString" value="bbbb"/>`)),
		concrete(t, opResponse("Decrypt", uidLit("k")+`<Data type="ByteString" value="0102"/>`)),
	}}
	r := Replay(context.Background(), f, tc)
	if r.Passed || r.Failed != 1 {
		t.Fatalf("a different literal ciphertext must fail: %+v", r)
	}
	if len(f.reqs) != 2 {
		t.Fatalf("%d requests", len(f.reqs))
	}
	if d, _ := f.reqs[1].Path(kmip14.TagBatchItem, kmip14.TagRequestPayload, kmip14.TagData).BytesValue(); string(d) != "\xbb\xbb" {
		t.Fatalf("$DATA_0 sent as %x, want the server's bbbb", d)
	}
}
