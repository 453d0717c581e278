package hostile

import (
	"bytes"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipmsg"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// Request builders, over kmipmsg's. They build trees (not kmip-go structs)
// so a test can still put any tag, type or count anywhere, and send any
// bytes with Conn.Send.

// Header is a Request Header for protocol major.minor with batch count n
// (honest or not), then extra fields.
func Header(major, minor, n int32, extra ...*tree.Node) *tree.Node {
	return kmipmsg.RequestHeader(kmipmsg.Version{Major: major, Minor: minor}, n, kmipmsg.Options{}).Add(extra...)
}

// Request is a KMIP 1.4 Request Message with an honest Batch Count.
func Request(items ...*tree.Node) *tree.Node {
	return RequestV(1, 4, items...)
}

// RequestV is Request in protocol major.minor.
func RequestV(major, minor int32, items ...*tree.Node) *tree.Node {
	return kmipmsg.Request(kmipmsg.Version{Major: major, Minor: minor}, kmipmsg.Options{}, items...)
}

// ContinueOnError is a Request whose header asks to run every item even
// after a failure.
func ContinueOnError(items ...*tree.Node) *tree.Node {
	return kmipmsg.Request(kmipmsg.Version{Major: 1, Minor: 4},
		kmipmsg.Options{BatchErrorContinuation: kmip14.BatchErrorContinuationOptionContinue}, items...)
}

// Item is one Batch Item.
func Item(op kmip14.Operation, fields ...*tree.Node) *tree.Node {
	return kmipmsg.Item(op, fields...)
}

// Attr is an Attribute; v's tag is replaced by Attribute Value.
func Attr(name string, v *tree.Node) *tree.Node {
	v.Tag = kmip14.TagAttributeValue
	return tree.Struct(kmip14.TagAttribute, tree.Text(kmip14.TagAttributeName, name), v)
}

// Name is a Name attribute.
func Name(s string) *tree.Node {
	return Attr("Name", tree.Struct(0,
		tree.Text(kmip14.TagNameValue, s),
		tree.Enum(kmip14.TagNameType, uint32(kmip14.NameTypeUninterpretedTextString))))
}

// UID is a Unique Identifier field.
func UID(uid string) *tree.Node { return tree.Text(kmip14.TagUniqueIdentifier, uid) }

// CreateAES is a Create item for an AES key of bits with Encrypt|Decrypt.
func CreateAES(bits int32, extra ...*tree.Node) *tree.Node {
	attrs := append([]*tree.Node{
		Attr("Cryptographic Algorithm", tree.Enum(0, uint32(kmip14.CryptographicAlgorithmAES))),
		Attr("Cryptographic Length", tree.Int(0, bits)),
		Attr("Cryptographic Usage Mask", tree.Int(0, int32(kmip14.CryptographicUsageMaskEncrypt|kmip14.CryptographicUsageMaskDecrypt))),
	}, extra...)
	return Item(kmip14.OperationCreate,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)),
		tree.Struct(kmip14.TagTemplateAttribute, attrs...))
}

// RegisterSecret is a Register item for Secret Data (a password, opaque).
func RegisterSecret(secret []byte, extra ...*tree.Node) *tree.Node {
	return Item(kmip14.OperationRegister,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSecretData)),
		tree.Struct(kmip14.TagTemplateAttribute, extra...),
		tree.Struct(kmip14.TagSecretData,
			tree.Enum(kmip14.TagSecretDataType, uint32(kmip14.SecretDataTypePassword)),
			tree.Struct(kmip14.TagKeyBlock,
				tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeOpaque)),
				tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, secret)))))
}

// RegisterAES is a Register item for a raw AES key.
func RegisterAES(key []byte, extra ...*tree.Node) *tree.Node {
	attrs := append([]*tree.Node{
		Attr("Cryptographic Usage Mask", tree.Int(0, int32(kmip14.CryptographicUsageMaskEncrypt|kmip14.CryptographicUsageMaskDecrypt))),
	}, extra...)
	return Item(kmip14.OperationRegister,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)),
		tree.Struct(kmip14.TagTemplateAttribute, attrs...),
		tree.Struct(kmip14.TagSymmetricKey,
			tree.Struct(kmip14.TagKeyBlock,
				tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)),
				tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, key)),
				tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmAES)),
				tree.Int(kmip14.TagCryptographicLength, int32(len(key)*8)))))
}

// CreateKeyPair is a CreateKeyPair item for RSA of bits (as Barbican asks).
func CreateKeyPair(bits int32) *tree.Node {
	return Item(kmip14.OperationCreateKeyPair,
		tree.Struct(kmip14.TagCommonTemplateAttribute,
			Attr("Cryptographic Algorithm", tree.Enum(0, uint32(kmip14.CryptographicAlgorithmRSA))),
			Attr("Cryptographic Length", tree.Int(0, bits))),
		tree.Struct(kmip14.TagPrivateKeyTemplateAttribute,
			Attr("Cryptographic Usage Mask", tree.Int(0, int32(kmip14.CryptographicUsageMaskSign)))),
		tree.Struct(kmip14.TagPublicKeyTemplateAttribute,
			Attr("Cryptographic Usage Mask", tree.Int(0, int32(kmip14.CryptographicUsageMaskVerify)))))
}

// Revoke is a Revoke item (Cessation of Operation) for uid; "" uses the ID
// Placeholder.
func Revoke(uid string) *tree.Node {
	var f []*tree.Node
	if uid != "" {
		f = append(f, UID(uid))
	}
	f = append(f, tree.Struct(kmip14.TagRevocationReason,
		tree.Enum(kmip14.TagRevocationReasonCode, uint32(kmip14.RevocationReasonCodeCessationOfOperation))))
	return Item(kmip14.OperationRevoke, f...)
}

// Result is one response batch item.
type Result = kmipmsg.Result

// Results returns every batch item of a response message.
func Results(resp *tree.Node) []Result { return kmipmsg.Results(resp) }

// Only returns the single batch item of resp, failing the test unless resp
// is a Response Message with exactly one item and an honest Batch Count.
func Only(t testing.TB, resp *tree.Node) Result {
	t.Helper()
	rs := CheckMessage(t, resp)
	if len(rs) != 1 {
		t.Fatalf("response has %d batch items, want 1", len(rs))
	}
	return rs[0]
}

// CheckMessage checks resp is a Response Message whose Batch Count matches
// its items, and returns the items.
func CheckMessage(t testing.TB, resp *tree.Node) []Result {
	t.Helper()
	if resp == nil || resp.Tag != kmip14.TagResponseMessage {
		t.Fatalf("not a Response Message: %v", resp)
	}
	rs := Results(resp)
	if n, ok := kmipmsg.BatchCount(resp); !ok || int(n) != len(rs) {
		t.Fatalf("response Batch Count %d (ok=%v) but %d items", n, ok, len(rs))
	}
	return rs
}

// WantFailure fails the test unless r failed with reason.
func WantFailure(t testing.TB, r Result, reason kmip14.ResultReason) {
	t.Helper()
	if r.Status != kmip14.ResultStatusOperationFailed || r.Reason != reason {
		t.Fatalf("got %s, want Operation Failed / %s", r, reason)
	}
	if r.Payload != nil {
		t.Fatalf("failed item carries a payload: %s", r.Payload)
	}
}

// WantOK fails the test unless r succeeded, and returns its payload.
func WantOK(t testing.TB, r Result) *tree.Node {
	t.Helper()
	if !r.OK() {
		t.Fatalf("got %s, want Success", r)
	}
	return r.Payload
}

// ResponseVersion is the protocol version a response is written in.
func ResponseVersion(resp *tree.Node) (major, minor int32) {
	v, _ := kmipmsg.ResponseVersion(resp)
	return v.Major, v.Minor
}

// UIDOf is the Unique Identifier text of a payload ("" if none).
func UIDOf(p *tree.Node) string {
	s, _ := p.Child(kmip14.TagUniqueIdentifier).TextValue()
	return s
}

// FindBytes is the first byte string with tag in n, depth first.
func FindBytes(n *tree.Node, tag ttlv.Tag) []byte {
	if n == nil {
		return nil
	}
	if n.Tag == tag && n.Type == ttlv.TypeByteString {
		return bytes.Clone(n.Bytes)
	}
	for _, c := range n.Children {
		if b := FindBytes(c, tag); b != nil {
			return b
		}
	}
	return nil
}

// Do sends one request and returns its items, failing the test on a
// transport error or a response that is not a well-formed message.
func (c *Conn) Do(t testing.TB, req *tree.Node) []Result {
	t.Helper()
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatalf("round trip: %v", err)
	}
	return CheckMessage(t, resp)
}

// One sends a one-item request and returns its result.
func (c *Conn) One(t testing.TB, item *tree.Node) Result {
	t.Helper()
	rs := c.Do(t, Request(item))
	if len(rs) != 1 {
		t.Fatalf("%d items in response, want 1", len(rs))
	}
	return rs[0]
}

// MustUID runs a one-item request that must succeed and returns the Unique
// Identifier it answered.
func (c *Conn) MustUID(t testing.TB, item *tree.Node) string {
	t.Helper()
	uid := UIDOf(WantOK(t, c.One(t, item)))
	if uid == "" {
		t.Fatalf("no Unique Identifier in the response")
	}
	return uid
}
