package conformance

import (
	"context"
	"strings"
	"testing"
)

// Payloads of the Locates the rule tells apart (TC-151-11/12's first).
const (
	inDefault    = `<MaximumItems type="Integer" value="1"/>`
	groupDefault = `<Attribute><AttributeName type="TextString" value="Object Group"/><AttributeValue type="TextString" value="default"/></Attribute>`
	memberFresh  = `<ObjectGroupMember type="Enumeration" value="GroupMemberFresh"/>`
	memberDflt   = `<ObjectGroupMember type="Enumeration" value="GroupMemberDefault"/>`
	uid1         = `<UniqueIdentifier type="TextString" value="$UNIQUE_IDENTIFIER_1"/>`
	recordedKey  = "7fe09d434868ae14a0021ac19330f8d9226790d680e519f8ac25f42d72f60f0c"
	serversKey   = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
)

func getKey(uid, km string) string {
	return opResponse("Get", `<ObjectType type="Enumeration" value="SymmetricKey"/>`+uid+`<SymmetricKey><KeyBlock>
  <KeyFormatType type="Enumeration" value="Raw"/><KeyValue><KeyMaterial type="ByteString" value="`+km+`"/></KeyValue></KeyBlock></SymmetricKey>`)
}

func parseCase(t *testing.T, doc string) *TestCase {
	t.Helper()
	tc, err := Parse(strings.NewReader("<KMIP>" + doc + "</KMIP>"))
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

// replayCase replays doc against the server responses got (XML), with the
// run memory mem (nil: none).
func replayCase(t *testing.T, mem *Memory, doc string, got ...string) Result {
	t.Helper()
	f := &fakeConn{}
	for _, g := range got {
		f.resp = append(f.resp, concrete(t, g))
	}
	return ReplayWith(context.Background(), f, parseCase(t, doc), Options{Memory: mem})
}

// A Group Member Fresh Locate may answer with a key the server made on the
// fly (§4.9): its key material compares by length. Any other Locate returns
// an existing object, whose bytes stay exact.
func TestFreshLocateGenerates(t *testing.T) {
	locateThenGet := func(locate string) string {
		return request("Locate", locate) + opResponse("Locate", uid0) + request("Get", uid0) + getKey(uid0, recordedKey)
	}
	for _, c := range []struct {
		name, locate, km string
		ok               bool
	}{
		{"fresh: another key", inDefault + memberFresh + groupDefault, serversKey, true},
		{"fresh: another length", inDefault + memberFresh + groupDefault, serversKey[:32], false},
		{"plain Locate", inDefault + groupDefault, serversKey, false},
		{"plain Locate, same key", inDefault + groupDefault, recordedKey, true},
		{"group member default", inDefault + memberDflt + groupDefault, serversKey, false},
	} {
		r := replayCase(t, NewMemory(), locateThenGet(c.locate), opResponse("Locate", uidLit("k1")), getKey(uidLit("k1"), c.km))
		if r.Passed != c.ok || (!c.ok && (r.Failed != 2 || r.Mismatch == nil || !strings.HasSuffix(r.Mismatch.Path, "KeyMaterial"))) {
			t.Errorf("%s: %+v %v", c.name, r, r.Mismatch)
		}
	}
}

// An identifier the case or an earlier case of the run bound before the
// Fresh Locate names an object that existed already: its bytes stay exact.
func TestFreshLocateOfKnownObject(t *testing.T) {
	register := request("Register", `<ObjectType type="Enumeration" value="SymmetricKey"/>`) + opResponse("Register", uid0)
	fresh := inDefault + memberFresh + groupDefault
	// Registered earlier in the case, located under another placeholder.
	doc := register + request("Locate", fresh) + opResponse("Locate", uid1) + request("Get", uid1) + getKey(uid1, recordedKey)
	r := replayCase(t, NewMemory(), doc, opResponse("Register", uidLit("k1")), opResponse("Locate", uidLit("k1")), getKey(uidLit("k1"), serversKey))
	if r.Passed || r.Failed != 3 || !strings.HasSuffix(r.Mismatch.Path, "KeyMaterial") {
		t.Fatalf("registered in the case: %+v %v", r, r.Mismatch)
	}
	// Registered earlier in the case, located under its own placeholder.
	doc = register + request("Locate", fresh) + opResponse("Locate", uid0) + request("Get", uid0) + getKey(uid0, recordedKey)
	r = replayCase(t, NewMemory(), doc, opResponse("Register", uidLit("k1")), opResponse("Locate", uidLit("k1")), getKey(uidLit("k1"), serversKey))
	if r.Passed || r.Failed != 3 || !strings.HasSuffix(r.Mismatch.Path, "KeyMaterial") {
		t.Fatalf("same placeholder: %+v %v", r, r.Mismatch)
	}
	// Registered by an earlier case of the run: exact with the run memory,
	// which is what tells it apart (without it, the object looks new).
	locate := request("Locate", fresh) + opResponse("Locate", uid0) + request("Get", uid0) + getKey(uid0, recordedKey)
	for _, c := range []struct {
		mem *Memory
		ok  bool
	}{{NewMemory(), false}, {nil, true}} {
		if r := replayCase(t, c.mem, register, opResponse("Register", uidLit("k1"))); !r.Passed {
			t.Fatal(r.Reason())
		}
		r := replayCase(t, c.mem, locate, opResponse("Locate", uidLit("k1")), getKey(uidLit("k1"), serversKey))
		if r.Passed != c.ok {
			t.Errorf("registered by an earlier case, memory %v: %+v %v", c.mem != nil, r, r.Mismatch)
		}
	}
}

// Only the Locate item of a batch that asks for a Fresh member makes its
// identifier generated; the plain Locate beside it stays exact.
func TestFreshLocateInBatch(t *testing.T) {
	item := func(op, payload string) string {
		return `<BatchItem><Operation type="Enumeration" value="` + op + `"/><ResultStatus type="Enumeration" value="Success"/><ResponsePayload>` + payload + `</ResponsePayload></BatchItem>`
	}
	req := `<RequestMessage><RequestHeader><ProtocolVersion><ProtocolVersionMajor type="Integer" value="1"/><ProtocolVersionMinor type="Integer" value="4"/></ProtocolVersion>
<BatchCount type="Integer" value="2"/></RequestHeader>
<BatchItem><Operation type="Enumeration" value="Locate"/><RequestPayload>` + inDefault + groupDefault + `</RequestPayload></BatchItem>
<BatchItem><Operation type="Enumeration" value="Locate"/><RequestPayload>` + inDefault + memberFresh + groupDefault + `</RequestPayload></BatchItem></RequestMessage>`
	batch := func(a, b string) string {
		return strings.Replace(response(item("Locate", a)+item("Locate", b)), `<BatchCount type="Integer" value="1"/>`, `<BatchCount type="Integer" value="2"/>`, 1)
	}
	doc := req + batch(uid0, uid1) + request("Get", uid0) + getKey(uid0, recordedKey) + request("Get", uid1) + getKey(uid1, recordedKey)
	got := []string{batch(uidLit("k0"), uidLit("k1")), getKey(uidLit("k0"), recordedKey), getKey(uidLit("k1"), serversKey)}
	if r := replayCase(t, NewMemory(), doc, got...); !r.Passed {
		t.Fatalf("the Fresh item's new key: %s", r.Reason())
	}
	got[1] = getKey(uidLit("k0"), serversKey)
	if r := replayCase(t, NewMemory(), doc, got...); r.Passed || r.Failed != 2 || !strings.HasSuffix(r.Mismatch.Path, "KeyMaterial") {
		t.Fatalf("the plain item's key must be exact: %+v %v", r, r.Mismatch)
	}
}

// The rule reads the request: without it (Compare), a Locate is a Locate.
func TestFreshLocateNeedsRequest(t *testing.T) {
	b := NewBindings()
	if m := compare(t, opResponse("Locate", uid0), opResponse("Locate", uidLit("k1")), b); m != nil {
		t.Fatal(m)
	}
	if m := compare(t, getKey(uid0, recordedKey), getKey(uidLit("k1"), serversKey), b); m == nil {
		t.Fatal("key material accepted without the request")
	}
}
