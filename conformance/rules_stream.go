package conformance

import (
	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// A new stream's Correlation Value. KMIP 1.3/1.4 streaming (Encrypt,
// Decrypt, Sign, Signature Verify, MAC, MAC Verify, §4.29-4.34): a request
// with Init Indicator true starts a stream, and the server returns a
// Correlation Value that identifies it; every later request of the stream
// carries that value back. Each stream has its own value, but
// TC-STREAM-ENC-1-14 writes three streams' values under one placeholder,
// $CORRELATION_VALUE. So only in the answer to a request item that starts a
// stream does the Correlation Value bind afresh; within a stream it must
// repeat, and so must every other placeholder everywhere (README "How a
// response is compared").

// streams reports whether an operation can run as a stream (KMIP 1.3+).
func streams(op uint32) bool {
	switch kmip14.Operation(op) {
	case kmip14.OperationEncrypt, kmip14.OperationDecrypt, kmip14.OperationSign,
		kmip14.OperationSignatureVerify, kmip14.OperationMAC, kmip14.OperationMACVerify:
		return true
	}
	return false
}

// startsStream reports whether a request batch item starts a stream: a
// streaming operation whose payload has Init Indicator true.
func startsStream(reqItem *tree.Node) bool {
	if reqItem == nil {
		return false
	}
	op, _ := reqItem.Child(kmip14.TagOperation).EnumValue()
	starts, _ := reqItem.Path(kmip14.TagRequestPayload, kmip14.TagInitIndicator).BoolValue()
	return starts && streams(op)
}

// rebindsStream names the placeholder the answer to a stream's first
// request binds afresh: the stream's Correlation Value.
func rebindsStream(tag ttlv.Tag) bool { return tag == kmip14.TagCorrelationValue }

// unbindStream forgets the Correlation Value placeholder of the answer to a
// stream's first request before bindLoose binds it again.
func (b *Bindings) unbindStream(bi *Node) {
	for _, p := range bi.Children {
		if p.Tag == kmip14.TagResponsePayload {
			b.unbindFields(p.Children, rebindsStream)
		}
	}
}
