package bench

import (
	"errors"
	"fmt"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// checkTree is the reference for checkResponse: the same checks on a
// decoded tree (what the load generator did before it walked responses in
// place). The two must agree on every input.
func checkTree(k opKind, msg []byte) (string, error) {
	resp, err := tree.Decode(msg, tree.DefaultLimits)
	if err != nil {
		return "", err
	}
	if resp.Tag != kmip14.TagResponseMessage || resp.Type != ttlv.TypeStructure {
		return "", errors.New("response is not a ResponseMessage")
	}
	items := resp.All(kmip14.TagBatchItem)
	if len(items) != 1 {
		return "", fmt.Errorf("response has %d batch items, want 1", len(items))
	}
	it := items[0]
	st, ok := it.Child(kmip14.TagResultStatus).EnumValue()
	if !ok {
		return "", errors.New("response has no Result Status")
	}
	if kmip14.ResultStatus(st) != kmip14.ResultStatusSuccess {
		e := &opError{Reason: kmip14.ResultStatus(st).String()}
		if r, ok := it.Child(kmip14.TagResultReason).EnumValue(); ok {
			e.Reason = kmip14.ResultReason(r).String()
		}
		e.Message, _ = it.Child(kmip14.TagResultMessage).TextValue()
		return "", e
	}
	p := it.Child(kmip14.TagResponsePayload)
	if p == nil {
		return "", fmt.Errorf("%s: Success without a Response Payload", k)
	}
	uid, ok := p.Child(kmip14.TagUniqueIdentifier).TextValue()
	if !ok {
		return "", fmt.Errorf("%s: Success without a Unique Identifier", k)
	}
	switch k {
	case opGet:
		if m, _ := p.Path(kmip14.TagSymmetricKey, kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial).BytesValue(); len(m) == 0 {
			return "", errors.New("Get: no symmetric key material in the response")
		}
	case opEncrypt:
		if d, _ := p.Child(kmip14.TagData).BytesValue(); len(d) == 0 {
			return "", errors.New("Encrypt: no Data in the response")
		}
		if iv, _ := p.Child(kmip14.TagIVCounterNonce).BytesValue(); len(iv) == 0 {
			return "", errors.New("Encrypt: the server generated no IV (IV/Counter/Nonce missing)")
		}
	}
	return uid, nil
}

func response(items ...*tree.Node) []byte {
	kids := []*tree.Node{tree.Struct(kmip14.TagResponseHeader,
		tree.Struct(kmip14.TagProtocolVersion,
			tree.Int(kmip14.TagProtocolVersionMajor, 1),
			tree.Int(kmip14.TagProtocolVersionMinor, 2)),
		tree.Long(kmip14.TagTimeStamp, 1700000000),
		tree.Int(kmip14.TagBatchCount, int32(len(items))),
	)}
	return tree.MustEncode(tree.Struct(kmip14.TagResponseMessage, append(kids, items...)...))
}

func item(op kmip14.Operation, status *tree.Node, rest ...*tree.Node) *tree.Node {
	kids := []*tree.Node{tree.Enum(kmip14.TagOperation, uint32(op))}
	if status != nil {
		kids = append(kids, status)
	}
	return tree.Struct(kmip14.TagBatchItem, append(kids, rest...)...)
}

func success() *tree.Node {
	return tree.Enum(kmip14.TagResultStatus, uint32(kmip14.ResultStatusSuccess))
}

func getPayload(material []byte) *tree.Node {
	return tree.Struct(kmip14.TagResponsePayload,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)),
		tree.Text(kmip14.TagUniqueIdentifier, "3f1c2a4e-uid"),
		tree.Struct(kmip14.TagSymmetricKey,
			tree.Struct(kmip14.TagKeyBlock,
				tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)),
				tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, material)),
				tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmAES)),
				tree.Int(kmip14.TagCryptographicLength, 256))))
}

func responseCorpus() map[string]struct {
	k   opKind
	msg []byte
} {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i + 1)
	}
	type c = struct {
		k   opKind
		msg []byte
	}
	return map[string]c{
		"get ok":         {opGet, response(item(kmip14.OperationGet, success(), getPayload(key)))},
		"get no key":     {opGet, response(item(kmip14.OperationGet, success(), getPayload(nil)))},
		"get no payload": {opGet, response(item(kmip14.OperationGet, success()))},
		"create ok": {opCreate, response(item(kmip14.OperationCreate, success(), tree.Struct(kmip14.TagResponsePayload,
			tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)),
			tree.Text(kmip14.TagUniqueIdentifier, "new-uid"))))},
		"create uid wrong type": {opCreate, response(item(kmip14.OperationCreate, success(), tree.Struct(kmip14.TagResponsePayload,
			tree.Bytes(kmip14.TagUniqueIdentifier, []byte("new-uid")))))},
		"encrypt ok": {opEncrypt, response(item(kmip14.OperationEncrypt, success(), tree.Struct(kmip14.TagResponsePayload,
			tree.Text(kmip14.TagUniqueIdentifier, "k"),
			tree.Bytes(kmip14.TagData, key[:20]),
			tree.Bytes(kmip14.TagIVCounterNonce, key[:12]))))},
		"encrypt no iv": {opEncrypt, response(item(kmip14.OperationEncrypt, success(), tree.Struct(kmip14.TagResponsePayload,
			tree.Text(kmip14.TagUniqueIdentifier, "k"),
			tree.Bytes(kmip14.TagData, key[:20]))))},
		"failure": {opGet, response(item(kmip14.OperationGet,
			tree.Enum(kmip14.TagResultStatus, uint32(kmip14.ResultStatusOperationFailed)),
			tree.Enum(kmip14.TagResultReason, uint32(kmip14.ResultReasonItemNotFound)),
			tree.Text(kmip14.TagResultMessage, "no such object")))},
		"failure bare": {opGet, response(item(kmip14.OperationGet,
			tree.Enum(kmip14.TagResultStatus, uint32(kmip14.ResultStatusOperationFailed))))},
		"no status":  {opGet, response(item(kmip14.OperationGet, nil, getPayload(key)))},
		"two items":  {opGet, response(item(kmip14.OperationGet, success(), getPayload(key)), item(kmip14.OperationGet, success(), getPayload(key)))},
		"no items":   {opGet, response()},
		"batch leaf": {opGet, response(tree.Text(kmip14.TagBatchItem, "x"))},
		"not a response": {opGet, tree.MustEncode(tree.Struct(kmip14.TagRequestMessage,
			item(kmip14.OperationGet, success(), getPayload(key))))},
	}
}

func sameOutcome(t *testing.T, name string, k opKind, msg []byte) {
	t.Helper()
	want, wantErr := checkTree(k, msg)
	got, gotErr := checkResponse(k, msg)
	if fmt.Sprint(wantErr) != fmt.Sprint(gotErr) || (wantErr == nil && string(got) != want) {
		t.Fatalf("%s (% x):\n checkResponse = %q, %v\n tree reference = %q, %v", name, msg, got, gotErr, want, wantErr)
	}
	var wantOp, gotOp *opError
	if errors.As(wantErr, &wantOp) != errors.As(gotErr, &gotOp) {
		t.Fatalf("%s: opError-ness differs: %v vs %v", name, gotErr, wantErr)
	}
	if errors.Is(wantErr, tree.ErrMalformed) != errors.Is(gotErr, tree.ErrMalformed) {
		t.Fatalf("%s: ErrMalformed-ness differs: %v vs %v", name, gotErr, wantErr)
	}
}

// TestCheckResponseMatchesTree checks the in-place response walk against
// the decoded-tree reference on well-formed responses of every shape, on
// every truncation and extension, and on every single-byte corruption.
func TestCheckResponseMatchesTree(t *testing.T) {
	for name, c := range responseCorpus() {
		sameOutcome(t, name, c.k, c.msg)
		for n := 0; n < len(c.msg); n++ {
			sameOutcome(t, name+" truncated", c.k, c.msg[:n])
		}
		sameOutcome(t, name+" trailing", c.k, append(append([]byte(nil), c.msg...), make([]byte, 8)...))
		for i := range c.msg {
			for _, v := range []byte{0x00, 0x01, 0x02, 0x05, 0x07, 0x08, 0x0a, 0x0b, 0x10, 0x42, 0x54, 0x80, 0xc0, 0xff, c.msg[i] ^ 0x01} {
				m := append([]byte(nil), c.msg...)
				m[i] = v
				sameOutcome(t, fmt.Sprintf("%s byte %d=%#x", name, i, v), c.k, m)
			}
		}
	}
	// Nesting at and beyond tree.DefaultLimits.MaxDepth.
	for _, depth := range []int{tree.DefaultLimits.MaxDepth, tree.DefaultLimits.MaxDepth + 1} {
		n := tree.Text(kmip14.TagResultMessage, "deep")
		for i := 1; i < depth; i++ {
			n = tree.Struct(kmip14.TagResponsePayload, n)
		}
		n.Tag = kmip14.TagResponseMessage
		sameOutcome(t, fmt.Sprintf("depth %d", depth), opGet, tree.MustEncode(n))
	}
}

func TestCheckResponseAllocs(t *testing.T) {
	c := responseCorpus()["get ok"]
	if a := testing.AllocsPerRun(100, func() {
		if _, err := checkResponse(c.k, c.msg); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Fatalf("checkResponse of a successful Get allocates %v times, want 0", a)
	}
}

func BenchmarkCheckResponse(b *testing.B) {
	c := responseCorpus()["get ok"]
	b.Run("inplace", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_, _ = checkResponse(c.k, c.msg)
		}
	})
	b.Run("tree", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_, _ = checkTree(c.k, c.msg)
		}
	})
}
