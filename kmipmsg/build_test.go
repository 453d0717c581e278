package kmipmsg

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// The message structures as kmip-go declares them (its root package needs a
// module kmipd does not otherwise use), fields in the order of KMIP 1.4
// §7.2, for kmip-go's own encoder to marshal.
type (
	kmipProtocolVersion struct{ ProtocolVersionMajor, ProtocolVersionMinor int }
	kmipCredential      struct {
		TTLVTag         struct{} `ttlv:"Credential"`
		CredentialType  kmip14.CredentialType
		CredentialValue any
	}
	kmipUsernamePassword struct{ Username, Password string }
	kmipAuthentication   struct{ Credential []kmipCredential }
	kmipRequestHeader    struct {
		ProtocolVersion              kmipProtocolVersion
		MaximumResponseSize          int                                 `ttlv:",omitempty"`
		AsynchronousIndicator        bool                                `ttlv:",omitempty"`
		Authentication               *kmipAuthentication                 `ttlv:",omitempty"`
		BatchErrorContinuationOption kmip14.BatchErrorContinuationOption `ttlv:",omitempty"`
		BatchCount                   int
	}
	kmipRequestBatchItem struct {
		Operation         kmip14.Operation
		UniqueBatchItemID []byte `ttlv:",omitempty"`
		RequestPayload    any
	}
	kmipRequestMessage struct {
		TTLVTag       struct{} `ttlv:"RequestMessage"`
		RequestHeader kmipRequestHeader
		BatchItem     []kmipRequestBatchItem
	}
	kmipResponseHeader struct {
		ProtocolVersion kmipProtocolVersion
		TimeStamp       time.Time
		BatchCount      int
	}
	kmipResponseBatchItem struct {
		Operation     kmip14.Operation `ttlv:",omitempty"`
		ResultStatus  kmip14.ResultStatus
		ResultReason  kmip14.ResultReason `ttlv:",omitempty"`
		ResultMessage string              `ttlv:",omitempty"`
	}
	kmipResponseMessage struct {
		TTLVTag        struct{} `ttlv:"ResponseMessage"`
		ResponseHeader kmipResponseHeader
		BatchItem      []kmipResponseBatchItem
	}
)

// The builders write what kmip-go's encoder writes for the same message.
func TestRequestMatchesKMIPGo(t *testing.T) {
	type getPayload struct{ UniqueIdentifier string }
	for _, c := range []struct {
		name string
		o    Options
		hdr  kmipRequestHeader
	}{
		{"plain", Options{}, kmipRequestHeader{}},
		{"every option", Options{
			MaxResponseSize:        4096,
			Asynchronous:           true,
			Credential:             UsernamePassword("alice", "s3cret"),
			BatchErrorContinuation: kmip14.BatchErrorContinuationOptionContinue,
		}, kmipRequestHeader{
			MaximumResponseSize:   4096,
			AsynchronousIndicator: true,
			Authentication: &kmipAuthentication{Credential: []kmipCredential{{
				CredentialType:  kmip14.CredentialTypeUsernameAndPassword,
				CredentialValue: kmipUsernamePassword{Username: "alice", Password: "s3cret"},
			}}},
			BatchErrorContinuationOption: kmip14.BatchErrorContinuationOptionContinue,
		}},
	} {
		got := tree.MustEncode(Request(Version{1, 2}, c.o,
			Item(kmip14.OperationGet, tree.Text(kmip14.TagUniqueIdentifier, "uid-1")),
			ItemWithID(kmip14.OperationDestroy, []byte{7, 8}, tree.Text(kmip14.TagUniqueIdentifier, "uid-2"))))
		c.hdr.ProtocolVersion = kmipProtocolVersion{ProtocolVersionMajor: 1, ProtocolVersionMinor: 2}
		c.hdr.BatchCount = 2
		want, err := ttlv.Marshal(kmipRequestMessage{RequestHeader: c.hdr, BatchItem: []kmipRequestBatchItem{
			{Operation: kmip14.OperationGet, RequestPayload: getPayload{"uid-1"}},
			{Operation: kmip14.OperationDestroy, UniqueBatchItemID: []byte{7, 8}, RequestPayload: getPayload{"uid-2"}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", c.name, ttlv.TTLV(got), ttlv.TTLV(want))
		}
	}
}

func TestResponseMatchesKMIPGo(t *testing.T) {
	now := time.Unix(1700000000, 0).UTC()
	failed := AddFailure(tree.Struct(kmip14.TagBatchItem, tree.Enum(kmip14.TagOperation, uint32(kmip14.OperationGet))),
		kmip14.ResultReasonItemNotFound, "no such object")
	got := tree.MustEncode(Response(Version{1, 4}, now, failed))
	want, err := ttlv.Marshal(kmipResponseMessage{
		ResponseHeader: kmipResponseHeader{
			ProtocolVersion: kmipProtocolVersion{ProtocolVersionMajor: 1, ProtocolVersionMinor: 4},
			TimeStamp:       now,
			BatchCount:      1,
		},
		BatchItem: []kmipResponseBatchItem{{
			Operation:     kmip14.OperationGet,
			ResultStatus:  kmip14.ResultStatusOperationFailed,
			ResultReason:  kmip14.ResultReasonItemNotFound,
			ResultMessage: "no such object",
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("\n got %s\nwant %s", ttlv.TTLV(got), ttlv.TTLV(want))
	}
}

func TestHeaderCountAsGiven(t *testing.T) {
	h := RequestHeader(Version{1, 0}, 5, Options{})
	if n, _ := h.Child(kmip14.TagBatchCount).IntValue(); n != 5 {
		t.Fatalf("Batch Count %d, want the 5 asked for", n)
	}
	if v, ok := ParseVersion(h.Child(kmip14.TagProtocolVersion)); !ok || v != (Version{1, 0}) || v.String() != "1.0" {
		t.Fatalf("version %v, %v", v, ok)
	}
	for _, bad := range []*tree.Node{nil, tree.Int(kmip14.TagProtocolVersion, 1),
		tree.Struct(kmip14.TagProtocolVersion, tree.Int(kmip14.TagProtocolVersionMajor, 1))} {
		if _, ok := ParseVersion(bad); ok {
			t.Errorf("ParseVersion(%v) accepted", bad)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	b := tree.MustEncode(ErrorMessage(kmip14.ResultReasonInvalidMessage, "message exceeds 8 bytes"))
	resp, err := tree.Decode(b, tree.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := ResponseVersion(resp); !ok || v != (Version{1, 0}) {
		t.Fatalf("version %v, %v; want 1.0", v, ok)
	}
	if ts, ok := resp.Path(kmip14.TagResponseHeader, kmip14.TagTimeStamp).TimeValue(); !ok || time.Since(ts) > time.Minute {
		t.Fatalf("time stamp %v, %v", ts, ok)
	}
	rs := Results(resp)
	if n, ok := BatchCount(resp); !ok || n != 1 || len(rs) != 1 {
		t.Fatalf("batch count %d (%v), %d items", n, ok, len(rs))
	}
	r := rs[0]
	if r.OK() || r.Status != kmip14.ResultStatusOperationFailed || r.Reason != kmip14.ResultReasonInvalidMessage ||
		r.Message != "message exceeds 8 bytes" || r.Payload != nil || r.Operation != 0 {
		t.Fatalf("result %+v", r)
	}
	if s := r.String(); !strings.HasSuffix(s, `: OperationFailed: InvalidMessage ("message exceeds 8 bytes")`) {
		t.Fatalf("String = %s", s)
	}
}

func TestResultOf(t *testing.T) {
	payload := tree.Struct(kmip14.TagResponsePayload, tree.Text(kmip14.TagUniqueIdentifier, "u"))
	ok := ResultOf(tree.Struct(kmip14.TagBatchItem,
		tree.Enum(kmip14.TagOperation, uint32(kmip14.OperationCreate)),
		tree.Enum(kmip14.TagResultStatus, uint32(kmip14.ResultStatusSuccess)), payload))
	if !ok.OK() || ok.Operation != kmip14.OperationCreate || ok.Payload != payload || ok.String() != "Create: Success" {
		t.Fatalf("success: %+v (%s)", ok, ok)
	}
	// No Result Status (or one of the wrong type) is not Success.
	for _, it := range []*tree.Node{
		tree.Struct(kmip14.TagBatchItem),
		tree.Struct(kmip14.TagBatchItem, tree.Int(kmip14.TagResultStatus, 0)),
	} {
		if r := ResultOf(it); r.OK() || r.Status != NoStatus {
			t.Fatalf("status of %v: %+v", it, r)
		}
	}
	if rs := Results(nil); rs != nil {
		t.Fatalf("Results(nil) = %v", rs)
	}
}
