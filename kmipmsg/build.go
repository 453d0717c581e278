package kmipmsg

import (
	"fmt"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Version is a KMIP protocol version.
type Version struct{ Major, Minor int32 }

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Node is the Protocol Version structure.
func (v Version) Node() *tree.Node {
	return tree.Struct(kmip14.TagProtocolVersion,
		tree.Int(kmip14.TagProtocolVersionMajor, v.Major),
		tree.Int(kmip14.TagProtocolVersionMinor, v.Minor))
}

// ParseVersion reads a Protocol Version structure; false when n is not one
// or lacks an integer Major or Minor.
func ParseVersion(n *tree.Node) (Version, bool) {
	if n == nil || n.Type != ttlv.TypeStructure {
		return Version{}, false
	}
	maj, ok1 := n.Child(kmip14.TagProtocolVersionMajor).IntValue()
	min, ok2 := n.Child(kmip14.TagProtocolVersionMinor).IntValue()
	return Version{maj, min}, ok1 && ok2
}

// Options are a Request Header's optional fields; the zero value sets none.
type Options struct {
	MaxResponseSize int32 // Maximum Response Size, when > 0
	Asynchronous    bool  // Asynchronous Indicator, when true
	// Credential, when set, is sent in the header's Authentication (see
	// UsernamePassword).
	Credential             *tree.Node
	BatchErrorContinuation kmip14.BatchErrorContinuationOption // when non-zero
}

// RequestHeader builds a Request Header: the Protocol Version, the fields
// o sets (in the order of KMIP 1.4 §7.2), then Batch Count n. n is written
// as given, so a test can make it disagree with the items.
func RequestHeader(v Version, n int32, o Options) *tree.Node {
	h := tree.Struct(kmip14.TagRequestHeader, v.Node())
	if o.MaxResponseSize > 0 {
		h.Add(tree.Int(kmip14.TagMaximumResponseSize, o.MaxResponseSize))
	}
	if o.Asynchronous {
		h.Add(tree.Bool(kmip14.TagAsynchronousIndicator, true))
	}
	if o.Credential != nil {
		h.Add(tree.Struct(kmip14.TagAuthentication, o.Credential))
	}
	if o.BatchErrorContinuation != 0 {
		h.Add(tree.Enum(kmip14.TagBatchErrorContinuationOption, uint32(o.BatchErrorContinuation)))
	}
	return h.Add(tree.Int(kmip14.TagBatchCount, n))
}

// Request builds a Request Message whose Batch Count is its number of items.
func Request(v Version, o Options, items ...*tree.Node) *tree.Node {
	m := tree.Struct(kmip14.TagRequestMessage, RequestHeader(v, int32(len(items)), o))
	return m.Add(items...)
}

// Item builds a request Batch Item: the Operation, then a Request Payload
// holding fields.
func Item(op kmip14.Operation, fields ...*tree.Node) *tree.Node {
	return tree.Struct(kmip14.TagBatchItem,
		tree.Enum(kmip14.TagOperation, uint32(op)),
		tree.Struct(kmip14.TagRequestPayload, fields...))
}

// ItemWithID is Item with a Unique Batch Item ID, which the response echoes.
func ItemWithID(op kmip14.Operation, id []byte, fields ...*tree.Node) *tree.Node {
	return tree.Struct(kmip14.TagBatchItem,
		tree.Enum(kmip14.TagOperation, uint32(op)),
		tree.Bytes(kmip14.TagUniqueBatchItemID, id),
		tree.Struct(kmip14.TagRequestPayload, fields...))
}

// UsernamePassword is a Credential of type Username and Password.
func UsernamePassword(user, password string) *tree.Node {
	return tree.Struct(kmip14.TagCredential,
		tree.Enum(kmip14.TagCredentialType, uint32(kmip14.CredentialTypeUsernameAndPassword)),
		tree.Struct(kmip14.TagCredentialValue,
			tree.Text(kmip14.TagUsername, user),
			tree.Text(kmip14.TagPassword, password)))
}

// ResponseHeader builds a Response Header: Protocol Version, Time Stamp and
// Batch Count.
func ResponseHeader(v Version, now time.Time, n int) *tree.Node {
	return tree.Struct(kmip14.TagResponseHeader,
		v.Node(),
		tree.Time(kmip14.TagTimeStamp, now),
		tree.Int(kmip14.TagBatchCount, int32(n)))
}

// Response builds a Response Message of items, its header stamped now.
func Response(v Version, now time.Time, items ...*tree.Node) *tree.Node {
	m := tree.Struct(kmip14.TagResponseMessage, ResponseHeader(v, now, len(items)))
	return m.Add(items...)
}

// AddFailure completes a response Batch Item (which may already echo the
// request's Operation and Unique Batch Item ID) as failed: Result Status
// Operation Failed, then reason and the client-safe msg.
func AddFailure(item *tree.Node, reason kmip14.ResultReason, msg string) *tree.Node {
	return item.Add(
		tree.Enum(kmip14.TagResultStatus, uint32(kmip14.ResultStatusOperationFailed)),
		tree.Enum(kmip14.TagResultReason, uint32(reason)),
		tree.Text(kmip14.TagResultMessage, msg))
}

// ErrorMessage is the answer to a failure found before a request could be
// decoded (oversized or malformed TTLV): one failed item, in protocol 1.0,
// the version every client understands.
func ErrorMessage(reason kmip14.ResultReason, msg string) *tree.Node {
	return Response(Version{1, 0}, time.Now(), AddFailure(tree.Struct(kmip14.TagBatchItem), reason, msg))
}
