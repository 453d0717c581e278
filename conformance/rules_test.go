package conformance

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// compareReq checks got against exp as the answer to the request req (XML).
func compareReq(t *testing.T, req, exp, got string) *Mismatch {
	t.Helper()
	tc, err := Parse(strings.NewReader("<KMIP>" + req + exp + "</KMIP>"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewBindings().Resolve(tc.Steps[0].Request, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return CompareStep(r, tc.Steps[0].Response, concrete(t, got), NewBindings(), testNow.Add(-time.Second), testNow.Add(time.Second), time.Minute)
}

func rngAttr(fields string) string {
	return `<Attribute><AttributeName type="TextString" value="Random Number Generator"/><AttributeValue>` + fields + `</AttributeValue></Attribute>`
}

func TestRandomNumberGeneratorValueIsServers(t *testing.T) {
	exp := getAttrs("u", rngAttr(`<RNGAlgorithm type="Enumeration" value="ANSIX9_31"/>
  <CryptographicAlgorithm type="Enumeration" value="AES"/><CryptographicLength type="Integer" value="256"/>`))
	for _, c := range []struct {
		name, got, path string // path "" means accepted
	}{
		{"unspecified", getAttrs("u", rngAttr(`<RNGAlgorithm type="Enumeration" value="Unspecified"/>`)), ""},
		{"a DRBG", getAttrs("u", rngAttr(`<RNGAlgorithm type="Enumeration" value="DRBG"/><CryptographicAlgorithm type="Enumeration" value="AES"/>
  <CryptographicLength type="Integer" value="256"/><DRBGAlgorithm type="Enumeration" value="CTR"/>`)), ""},
		{"no RNG Algorithm", getAttrs("u", rngAttr(`<CryptographicAlgorithm type="Enumeration" value="AES"/>`)), "AttributeValue/RNGAlgorithm"},
		{"badly typed field", getAttrs("u", rngAttr(`<RNGAlgorithm type="Enumeration" value="DRBG"/><CryptographicLength type="Enumeration" value="0x00000100"/>`)), "AttributeValue/CryptographicLength"},
		{"foreign field", getAttrs("u", rngAttr(`<RNGAlgorithm type="Enumeration" value="DRBG"/><KeyFormatType type="Enumeration" value="Raw"/>`)), "AttributeValue/KeyFormatType"},
		{"not a structure", getAttrs("u", attr("Random Number Generator", "Enumeration", "0x00000001")), "AttributeValue"},
		{"attribute missing", getAttrs("u"), "Attribute[0]"},
	} {
		m := compare(t, exp, c.got, NewBindings())
		switch {
		case c.path == "" && m != nil:
			t.Errorf("%s rejected: %v", c.name, m)
		case c.path != "" && (m == nil || !strings.HasSuffix(m.Path, c.path)):
			t.Errorf("%s: mismatch %v, want one at …%s", c.name, m, c.path)
		}
	}
}

func TestQueryAnswerIsServers(t *testing.T) {
	query := request("Query", `<QueryFunction type="Enumeration" value="QueryOperations"/><QueryFunction type="Enumeration" value="QueryObjects"/>`)
	exp := opResponse("Query", `<Operation type="Enumeration" value="Query"/><Operation type="Enumeration" value="Check"/>
  <ObjectType type="Enumeration" value="Template"/><VendorIdentification type="TextString" value="server-vendor.com"/><ServerInformation/>`)
	ok := opResponse("Query", `<Operation type="Enumeration" value="Query"/><Operation type="Enumeration" value="DiscoverVersions"/>
  <ObjectType type="Enumeration" value="SymmetricKey"/><VendorIdentification type="TextString" value="kmipd"/>`)
	if m := compareReq(t, query, exp, ok); m != nil {
		t.Fatalf("another server's description rejected: %v", m)
	}
	noQuery := opResponse("Query", `<Operation type="Enumeration" value="Locate"/>`)
	if m := compareReq(t, query, exp, noQuery); m == nil || !strings.HasSuffix(m.Path, "ResponsePayload/Operation") {
		t.Fatalf("an answer without Query: %v", m)
	}
	badType := opResponse("Query", `<Operation type="Enumeration" value="Query"/><ObjectType type="Integer" value="2"/>`)
	if m := compareReq(t, query, exp, badType); m == nil || !strings.HasSuffix(m.Path, "ResponsePayload/ObjectType") {
		t.Fatalf("an Integer Object Type: %v", m)
	}
	// Outside Query an Object Type is compared as always.
	create := request("Create", `<ObjectType type="Enumeration" value="SymmetricKey"/>`)
	if m := compareReq(t, create, opResponse("Create", `<ObjectType type="Enumeration" value="SymmetricKey"/>`+uid0),
		opResponse("Create", `<ObjectType type="Enumeration" value="SecretData"/>`+uidLit("k"))); m == nil {
		t.Fatal("Create's Object Type not compared")
	}
}

func TestAllAttributeListings(t *testing.T) {
	state := attr("State", "Enumeration", "PreActive")
	exp := getAttrs("$UNIQUE_IDENTIFIER_0", state)
	all := request("GetAttributes", uidLit("u"))
	named := request("GetAttributes", uidLit("u")+`<AttributeName type="TextString" value="State"/>`)
	sensitive := attr("Sensitive", "Boolean", "false")
	for _, c := range []struct {
		name, req, got string
		ok             bool
	}{
		{"server-kept extra, all asked", all, getAttrs("u", state, sensitive), true},
		{"server-defined y- extra", all, getAttrs("u", attr("y-audit", "TextString", "z"), state), true},
		{"client x- extra", all, getAttrs("u", attr("x-left-over", "TextString", "z"), state), false},
		{"client Name extra", all, getAttrs("u", state, `<Attribute><AttributeName type="TextString" value="Name"/><AttributeValue>
  <NameValue type="TextString" value="n"/><NameType type="Enumeration" value="UninterpretedTextString"/></AttributeValue></Attribute>`), false},
		{"lifecycle date extra", all, getAttrs("u", state, attr("Activation Date", "DateTime", testNow.Format(time.RFC3339))), false},
		{"expected one missing", all, getAttrs("u", sensitive), false},
		{"extra when named", named, getAttrs("u", state, sensitive), false},
	} {
		if m := compareReq(t, c.req, exp, c.got); (m == nil) != c.ok {
			t.Errorf("%s: mismatch %v", c.name, m)
		}
	}
	list := request("GetAttributeList", uidLit("u"))
	expList := opResponse("GetAttributeList", uid0+`<AttributeName type="TextString" value="State"/>`)
	if m := compareReq(t, list, expList, opResponse("GetAttributeList", uidLit("u")+`<AttributeName type="TextString" value="State"/>
  <AttributeName type="TextString" value="Lease Time"/>`)); m != nil {
		t.Errorf("GetAttributeList with Lease Time: %v", m)
	}
	if m := compareReq(t, list, expList, opResponse("GetAttributeList", uidLit("u")+`<AttributeName type="TextString" value="State"/>
  <AttributeName type="TextString" value="x-a"/>`)); m == nil {
		t.Error("GetAttributeList with a leftover x-a accepted")
	}
	// Without the request the rule cannot apply: strict.
	if m := compare(t, exp, getAttrs("u", state, sensitive), NewBindings()); m == nil {
		t.Error("extra accepted without knowing the request")
	}
}

func TestResponseCarriesRequestVersion(t *testing.T) {
	req := request("Destroy", uidLit("u"))
	v13 := strings.Replace(opResponse("Destroy", uidLit("u")), `ProtocolVersionMinor type="Integer" value="4"`, `ProtocolVersionMinor type="Integer" value="3"`, 1)
	v14 := opResponse("Destroy", uidLit("u"))
	// A case recording 1.3 for a 1.4 request holds the server to 1.4.
	if m := compareReq(t, req, v13, v14); m != nil {
		t.Fatalf("1.4 answer to a 1.4 request rejected: %v", m)
	}
	m := compareReq(t, req, v13, v13)
	if m == nil || m.Path != "ResponseMessage/ResponseHeader/ProtocolVersion/ProtocolVersionMinor" || m.Expected != "4" {
		t.Fatalf("1.3 answer to a 1.4 request: %v", m)
	}
	// A message-level failure may be answered in another version: as recorded.
	fail := strings.Replace(response(`<BatchItem><ResultStatus type="Enumeration" value="OperationFailed"/>
  <ResultReason type="Enumeration" value="InvalidMessage"/></BatchItem>`), `value="4"`, `value="3"`, 1)
	if m := compareReq(t, req, fail, fail); m != nil {
		t.Fatalf("recorded failure version: %v", m)
	}
}

// TL-M-3 reads back the key TL-M-2 generated: a run remembers it.
func TestRunMemory(t *testing.T) {
	get := func(uid, km string) string {
		return opResponse("Get", `<ObjectType type="Enumeration" value="SymmetricKey"/>`+uid+`<SymmetricKey><KeyBlock>
  <KeyFormatType type="Enumeration" value="Raw"/><KeyValue><KeyMaterial type="ByteString" value="`+km+`"/></KeyValue></KeyBlock></SymmetricKey>`)
	}
	parse := func(doc string) *TestCase {
		tc, err := Parse(strings.NewReader("<KMIP>" + doc + "</KMIP>"))
		if err != nil {
			t.Fatal(err)
		}
		return tc
	}
	first := parse(request("Create", `<ObjectType type="Enumeration" value="SymmetricKey"/>`) +
		opResponse("Create", `<ObjectType type="Enumeration" value="SymmetricKey"/>`+uid0))
	second := parse(request("Locate", "") + opResponse("Locate", uid0) + request("Get", uid0) + get(uid0, "2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a"))
	run := func(mem *Memory) Result {
		f := &fakeConn{resp: []*tree.Node{concrete(t, opResponse("Create", `<ObjectType type="Enumeration" value="SymmetricKey"/>`+uidLit("k9")))}}
		if r := ReplayWith(context.Background(), f, first, Options{Memory: mem}); !r.Passed {
			t.Fatal(r.Reason())
		}
		f.resp = []*tree.Node{concrete(t, opResponse("Locate", uidLit("k9"))), concrete(t, get(uidLit("k9"), "0123456789abcdef0123456789abcdef"))}
		return ReplayWith(context.Background(), f, second, Options{Memory: mem})
	}
	if r := run(NewMemory()); !r.Passed {
		t.Fatalf("with run memory: %s", r.Reason())
	}
	if r := run(nil); r.Passed || !strings.Contains(r.Reason(), "KeyMaterial") {
		t.Fatalf("without run memory the key bytes are exact: %+v", r)
	}
}
