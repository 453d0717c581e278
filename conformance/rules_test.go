package conformance

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

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
	// Nor is a Vendor Identification outside Query a server's description.
	vendor := func(v string) string {
		return opResponse("Get", uidLit("k")+`<VendorIdentification type="TextString" value="`+v+`"/>`)
	}
	get := request("Get", uidLit("k"))
	if m := compareReq(t, get, vendor("server-vendor.com"), vendor("kmipd")); m == nil || !strings.HasSuffix(m.Path, "ResponsePayload/VendorIdentification") {
		t.Fatalf("a Vendor Identification outside Query: %v", m)
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

// bs is a ByteString field of n bytes, each b (hex).
func bs(tag string, n int, b string) string {
	return `<` + tag + ` type="ByteString" value="` + strings.Repeat(b, n) + `"/>`
}

func cryptoParams(fields string) string {
	return `<CryptographicParameters>` + fields + `</CryptographicParameters>`
}

const (
	oaep     = `<PaddingMethod type="Enumeration" value="OAEP"/>`
	pkcs15   = `<PaddingMethod type="Enumeration" value="PKCS1V1_5"/>`
	cbc      = `<BlockCipherMode type="Enumeration" value="CBC"/><PaddingMethod type="Enumeration" value="PKCS5"/>`
	randomIV = `<RandomIV type="Boolean" value="true"/>`
)

func TestRandomOutputs(t *testing.T) {
	plain := bs("Data", 28, "66")
	for _, c := range []struct {
		name     string
		op, req  string // request operation and payload
		exp, got string // expected and actual payloads
		path     string // "" means accepted
	}{
		// RNG Retrieve: random bytes, of the length asked and recorded.
		{"RNG: other bytes", "RNGRetrieve", `<DataLength type="Integer" value="32"/>`, bs("Data", 32, "9c"), bs("Data", 32, "5a"), ""},
		{"RNG: shorter", "RNGRetrieve", `<DataLength type="Integer" value="32"/>`, bs("Data", 32, "9c"), bs("Data", 16, "5a"), "ResponsePayload/Data"},
		{"RNG: longer", "RNGRetrieve", `<DataLength type="Integer" value="32"/>`, bs("Data", 32, "9c"), bs("Data", 33, "5a"), "ResponsePayload/Data"},
		{"RNG: not bytes", "RNGRetrieve", `<DataLength type="Integer" value="32"/>`, bs("Data", 32, "9c"), `<Data type="TextString" value="x"/>`, "ResponsePayload/Data"},
		// RSA-OAEP: a fresh seed per call; the length is the modulus size.
		{"OAEP: other ciphertext", "Encrypt", uidLit("k") + cryptoParams(oaep) + plain, uidLit("k") + bs("Data", 256, "6a"), uidLit("k") + bs("Data", 256, "7f"), ""},
		{"OAEP: wrong length", "Encrypt", uidLit("k") + cryptoParams(oaep) + plain, uidLit("k") + bs("Data", 256, "6a"), uidLit("k") + bs("Data", 128, "7f"), "ResponsePayload/Data"},
		{"OAEP: identifier still exact", "Encrypt", uidLit("k") + cryptoParams(oaep) + plain, uidLit("k") + bs("Data", 256, "6a"), uidLit("j") + bs("Data", 256, "7f"), "ResponsePayload/UniqueIdentifier"},
		{"OAEP: a client's byte field still exact", "Encrypt", uidLit("k") + cryptoParams(oaep) + plain + bs("IVCounterNonce", 16, "01"),
			uidLit("k") + bs("Data", 256, "6a") + bs("IVCounterNonce", 16, "01"), uidLit("k") + bs("Data", 256, "7f") + bs("IVCounterNonce", 16, "02"), "ResponsePayload/IVCounterNonce"},
		// Random IV: the server's IV and the ciphertext under it.
		{"Random IV: other IV and ciphertext", "Encrypt", uidLit("k") + cryptoParams(cbc+randomIV) + plain,
			uidLit("k") + bs("Data", 32, "e7") + bs("IVCounterNonce", 16, "ff"), uidLit("k") + bs("Data", 32, "55") + bs("IVCounterNonce", 16, "01"), ""},
		{"Random IV: IV of another length", "Encrypt", uidLit("k") + cryptoParams(cbc+randomIV) + plain,
			uidLit("k") + bs("Data", 32, "e7") + bs("IVCounterNonce", 16, "ff"), uidLit("k") + bs("Data", 32, "55") + bs("IVCounterNonce", 12, "01"), "ResponsePayload/IVCounterNonce"},
		{"no IV asked, one recorded", "Encrypt", uidLit("k") + cryptoParams(cbc) + plain,
			uidLit("k") + bs("Data", 32, "e7") + bs("IVCounterNonce", 16, "ff"), uidLit("k") + bs("Data", 32, "55") + bs("IVCounterNonce", 16, "01"), ""},
		{"no IV asked, IV missing", "Encrypt", uidLit("k") + cryptoParams(cbc) + plain,
			uidLit("k") + bs("Data", 32, "e7") + bs("IVCounterNonce", 16, "ff"), uidLit("k") + bs("Data", 32, "55"), "ResponsePayload/IVCounterNonce"},
		// Deterministic operations stay exact.
		{"CBC with the client's IV", "Encrypt", uidLit("k") + cryptoParams(cbc) + plain + bs("IVCounterNonce", 16, "01"),
			uidLit("k") + bs("Data", 32, "e7"), uidLit("k") + bs("Data", 32, "55"), "ResponsePayload/Data"},
		{"CBC with the client's IV, IV echoed", "Encrypt", uidLit("k") + cryptoParams(cbc) + plain + bs("IVCounterNonce", 16, "01"),
			uidLit("k") + bs("Data", 32, "e7") + bs("IVCounterNonce", 16, "01"), uidLit("k") + bs("Data", 32, "e7") + bs("IVCounterNonce", 16, "02"), "ResponsePayload/IVCounterNonce"},
		{"Random IV false", "Encrypt", uidLit("k") + cryptoParams(cbc+`<RandomIV type="Boolean" value="false"/>`) + plain + bs("IVCounterNonce", 16, "01"),
			uidLit("k") + bs("Data", 32, "e7"), uidLit("k") + bs("Data", 32, "55"), "ResponsePayload/Data"},
		{"ECB, no IV anywhere", "Encrypt", uidLit("k") + cryptoParams(`<BlockCipherMode type="Enumeration" value="ECB"/>`) + plain,
			uidLit("k") + bs("Data", 32, "e7"), uidLit("k") + bs("Data", 32, "55"), "ResponsePayload/Data"},
		{"PKCS#1 v1.5 Encrypt", "Encrypt", uidLit("k") + cryptoParams(pkcs15) + plain, uidLit("k") + bs("Data", 256, "6a"), uidLit("k") + bs("Data", 256, "7f"), "ResponsePayload/Data"},
		{"PKCS#1 v1.5 Decrypt", "Decrypt", uidLit("k") + cryptoParams(pkcs15) + bs("Data", 256, "6a"), uidLit("k") + plain, uidLit("k") + bs("Data", 28, "67"), "ResponsePayload/Data"},
		{"OAEP Decrypt", "Decrypt", uidLit("k") + cryptoParams(oaep) + bs("Data", 256, "6a"), uidLit("k") + plain, uidLit("k") + bs("Data", 28, "67"), "ResponsePayload/Data"},
		{"Random IV Decrypt", "Decrypt", uidLit("k") + cryptoParams(cbc+randomIV) + bs("Data", 32, "6a") + bs("IVCounterNonce", 16, "01"),
			uidLit("k") + plain, uidLit("k") + bs("Data", 28, "67"), "ResponsePayload/Data"},
		{"Sign", "Sign", uidLit("k") + cryptoParams(oaep) + plain, uidLit("k") + bs("SignatureData", 256, "6a"), uidLit("k") + bs("SignatureData", 256, "7f"), "ResponsePayload/SignatureData"},
	} {
		m := compareReq(t, request(c.op, c.req), opResponse(c.op, c.exp), opResponse(c.op, c.got))
		switch {
		case c.path == "" && m != nil:
			t.Errorf("%s rejected: %v", c.name, m)
		case c.path != "" && (m == nil || !strings.HasSuffix(m.Path, c.path)):
			t.Errorf("%s: mismatch %v, want one at …%s", c.name, m, c.path)
		}
	}
	m := compareReq(t, request("RNGRetrieve", `<DataLength type="Integer" value="1"/>`), opResponse("RNGRetrieve", bs("Data", 1, "9c")),
		opResponse("RNGRetrieve", `<Data type="TextString" value="x"/>`))
	if m == nil || m.Expected != "a ByteString" {
		t.Errorf("a Text String of the recorded length: %v", m)
	}
	// Without the request the rule cannot apply: strict.
	if m := compare(t, opResponse("RNGRetrieve", bs("Data", 32, "9c")), opResponse("RNGRetrieve", bs("Data", 32, "5a")), NewBindings()); m == nil {
		t.Error("random bytes accepted without knowing the request")
	}
}

// The OASIS cases set OAEP or Random IV on the key (Register's template) and
// Encrypt without naming them: the replay remembers the key's parameters, and
// later steps send the bytes the server really returned.
func TestRandomOutputsFromKeyParameters(t *testing.T) {
	tmpl := func(params string) string {
		return `<TemplateAttribute><Attribute><AttributeName type="TextString" value="Cryptographic Parameters"/><AttributeValue>` +
			params + `</AttributeValue></Attribute></TemplateAttribute>`
	}
	plain := bs("Data", 33, "01")
	encrypt := request("Encrypt", uid0+plain)
	run := func(create, createResp, encryptResp, gotCreate, gotEncrypt string, more ...string) (Result, *fakeConn) {
		doc := "<KMIP>" + create + createResp + encrypt + encryptResp + strings.Join(more, "") + "</KMIP>"
		tc, err := Parse(strings.NewReader(doc))
		if err != nil {
			t.Fatal(err)
		}
		f := &fakeConn{resp: []*tree.Node{concrete(t, gotCreate), concrete(t, gotEncrypt)}}
		for i := 2; i < len(tc.Steps); i++ {
			f.resp = append(f.resp, concrete(t, opResponse("Decrypt", uidLit("k")+plain)))
		}
		return Replay(context.Background(), f, tc), f
	}
	register := func(params string) string {
		return request("Register", `<ObjectType type="Enumeration" value="PublicKey"/>`+tmpl(params))
	}
	registered := opResponse("Register", uid0)
	gotRegistered := opResponse("Register", uidLit("k"))

	oaepExp := opResponse("Encrypt", uid0+bs("Data", 256, "6a"))
	if r, _ := run(register(oaep), registered, oaepExp, gotRegistered, opResponse("Encrypt", uidLit("k")+bs("Data", 256, "7f"))); !r.Passed {
		t.Errorf("OAEP key: %s", r.Reason())
	}
	if r, _ := run(register(oaep), registered, oaepExp, gotRegistered, opResponse("Encrypt", uidLit("k")+bs("Data", 255, "7f"))); r.Passed || r.Failed != 2 {
		t.Errorf("OAEP key, short ciphertext: %+v", r)
	}
	if r, _ := run(register(pkcs15), registered, oaepExp, gotRegistered, opResponse("Encrypt", uidLit("k")+bs("Data", 256, "7f"))); r.Passed || r.Failed != 2 {
		t.Errorf("PKCS#1 v1.5 key: ciphertext not compared: %+v", r)
	}
	// The request's own padding overrides the key's.
	override := request("Encrypt", uid0+cryptoParams(pkcs15)+plain)
	doc := "<KMIP>" + register(oaep) + registered + override + oaepExp + "</KMIP>"
	tc, err := Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeConn{resp: []*tree.Node{concrete(t, gotRegistered), concrete(t, opResponse("Encrypt", uidLit("k")+bs("Data", 256, "7f")))}}
	if r := Replay(context.Background(), f, tc); r.Passed {
		t.Error("PKCS#1 v1.5 requested on an OAEP key: ciphertext not compared")
	}
	// A failed Register records nothing.
	failed := response(`<BatchItem><Operation type="Enumeration" value="Register"/><ResultStatus type="Enumeration" value="OperationFailed"/>
  <ResultReason type="Enumeration" value="InvalidField"/><ResponsePayload>` + uidLit("k") + `</ResponsePayload></BatchItem>`)
	b := NewBindings()
	b.learnParams(concrete(t, strings.ReplaceAll(register(oaep), "RequestMessage", "ResponseMessage")), concrete(t, failed))
	if len(b.Params) != 0 {
		t.Errorf("failed Register recorded parameters: %v", b.Params)
	}

	// CreateKeyPair: each key's own template, else the common one. (A
	// generated pair's outputs are length-checked anyway, so look inside.)
	ckp := request("CreateKeyPair", strings.ReplaceAll(tmpl(oaep), "TemplateAttribute", "CommonTemplateAttribute")+
		strings.ReplaceAll(tmpl(pkcs15), "TemplateAttribute", "PrivateKeyTemplateAttribute"))
	ckpGot := opResponse("CreateKeyPair", `<PrivateKeyUniqueIdentifier type="TextString" value="p"/><PublicKeyUniqueIdentifier type="TextString" value="k"/>`)
	b = NewBindings()
	b.learnParams(concrete(t, strings.ReplaceAll(ckp, "RequestMessage", "ResponseMessage")), concrete(t, ckpGot))
	pad := func(uid string) uint32 { v, _ := b.Params[uid].Child(kmip14.TagPaddingMethod).EnumValue(); return v }
	if pad("k") != uint32(kmip14.PaddingMethodOAEP) || pad("p") != uint32(kmip14.PaddingMethodPKCS1V1_5) {
		t.Errorf("CreateKeyPair parameters: public %v, private %v", b.Params["k"], b.Params["p"])
	}

	// Random IV on the key; the Decrypt that follows sends the server's bytes.
	symKey := request("Register", `<ObjectType type="Enumeration" value="SymmetricKey"/>`+tmpl(cbc+randomIV))
	ivExp := opResponse("Encrypt", uid0+bs("Data", 48, "e7")+bs("IVCounterNonce", 16, "ff"))
	decrypt := request("Decrypt", uid0+`<Data type="ByteString" value="$DATA_0"/><IVCounterNonce type="ByteString" value="$IV_COUNTER_NONCE"/>`) +
		opResponse("Decrypt", uid0+plain)
	r, f := run(symKey, registered, ivExp, gotRegistered, opResponse("Encrypt", uidLit("k")+bs("Data", 48, "55")+bs("IVCounterNonce", 16, "01")), decrypt)
	if !r.Passed {
		t.Fatalf("Random IV key: %s", r.Reason())
	}
	p := f.reqs[2].Path(kmip14.TagBatchItem, kmip14.TagRequestPayload)
	if d, _ := p.Child(kmip14.TagData).BytesValue(); !bytes.Equal(d, bytes.Repeat([]byte{0x55}, 48)) {
		t.Errorf("Decrypt sent Data %x, not the server's ciphertext", d)
	}
	if iv, _ := p.Child(kmip14.TagIVCounterNonce).BytesValue(); !bytes.Equal(iv, bytes.Repeat([]byte{0x01}, 16)) {
		t.Errorf("Decrypt sent IV %x, not the server's IV", iv)
	}
}

// TestAttributeIndexZeroNamed: an Attribute Index of 0 on one side and none
// on the other name the same instance; any other index, or a badly typed
// one, still fails.
func TestAttributeIndexZeroNamed(t *testing.T) {
	name := `<AttributeName type="TextString" value="Name"/>`
	val := `<AttributeValue><NameValue type="TextString" value="k"/><NameType type="Enumeration" value="UninterpretedTextString"/></AttributeValue>`
	idx := func(typ, v string) string { return `<AttributeIndex type="` + typ + `" value="` + v + `"/>` }
	a := func(parts ...string) string { return "<Attribute>" + strings.Join(parts, "") + "</Attribute>" }
	for _, c := range []struct {
		name, exp, got, path string // path "" means accepted
	}{
		{"zero named", a(name, val), a(name, idx("Integer", "0"), val), ""},
		{"zero named, both", a(name, idx("Integer", "0"), val), a(name, idx("Integer", "0"), val), ""},
		{"index 1 for none", a(name, val), a(name, idx("Integer", "1"), val), "Attribute[0]/AttributeValue"},
		{"zero as enumeration", a(name, val), a(name, idx("Enumeration", "0"), val), "Attribute[0]/AttributeValue"},
		{"expected index missing", a(name, idx("Integer", "1"), val), a(name, val), "Attribute[0]/AttributeIndex"},
		{"expected zero left out", a(name, idx("Integer", "0"), val), a(name, val), ""},
		{"expected zero, got 2", a(name, idx("Integer", "0"), val), a(name, idx("Integer", "2"), val), "Attribute[0]/AttributeIndex"},
	} {
		m := compare(t, getAttrs("u", c.exp), getAttrs("u", c.got), NewBindings())
		switch {
		case c.path == "" && m != nil:
			t.Errorf("%s rejected: %v", c.name, m)
		case c.path != "" && (m == nil || !strings.HasSuffix(m.Path, c.path)):
			t.Errorf("%s: mismatch %v, want one at …%s", c.name, m, c.path)
		}
	}
}

// TestDefaultPolicyNameAt12: in a listing of all attributes answered at KMIP
// 1.0–1.2, an Operation Policy Name the case did not record may be there (the
// server's default, §3.18); at 1.4, or when named attributes were asked, it
// is an extra field.
func TestDefaultPolicyNameAt12(t *testing.T) {
	at := func(minor, s string) string {
		return strings.ReplaceAll(s, `<ProtocolVersionMinor type="Integer" value="4"/>`, `<ProtocolVersionMinor type="Integer" value="`+minor+`"/>`)
	}
	state := attr("State", "Enumeration", "PreActive")
	policy := attr("Operation Policy Name", "TextString", "default")
	exp := getAttrs("$UNIQUE_IDENTIFIER_0", state)
	all := request("GetAttributes", uidLit("u"))
	named := request("GetAttributes", uidLit("u")+`<AttributeName type="TextString" value="State"/>`)
	for _, c := range []struct {
		name, minor, req string
		ok               bool
	}{
		{"1.2 listing", "2", all, true},
		{"1.0 listing", "0", all, true},
		{"1.4 listing", "4", all, false},
		{"1.2 named", "2", named, false},
	} {
		if m := compareReq(t, at(c.minor, c.req), at(c.minor, exp), at(c.minor, getAttrs("u", state, policy))); (m == nil) != c.ok {
			t.Errorf("%s: mismatch %v", c.name, m)
		}
	}
	list := at("1", request("GetAttributeList", uidLit("u")))
	if m := compareReq(t, list, at("1", opResponse("GetAttributeList", uid0+`<AttributeName type="TextString" value="State"/>`)),
		at("1", opResponse("GetAttributeList", uidLit("u")+`<AttributeName type="TextString" value="State"/>
  <AttributeName type="TextString" value="Operation Policy Name"/>`))); m != nil {
		t.Errorf("1.1 GetAttributeList with Operation Policy Name: %v", m)
	}
}
