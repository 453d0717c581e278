package kmipmsg

import (
	"fmt"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// NoStatus is the Status of a Result whose item has no (enumerated) Result
// Status. It is not Success, which is zero.
const NoStatus kmip14.ResultStatus = 0xffffffff

// Result is what one response Batch Item says.
type Result struct {
	Operation kmip14.Operation // zero when absent
	Status    kmip14.ResultStatus
	Reason    kmip14.ResultReason // zero when absent
	Message   string
	Payload   *tree.Node // the Response Payload, or nil
}

func (r Result) String() string {
	if r.Status == kmip14.ResultStatusSuccess {
		return fmt.Sprintf("%s: Success", r.Operation)
	}
	return fmt.Sprintf("%s: %s: %s (%q)", r.Operation, r.Status, r.Reason, r.Message)
}

// OK reports success.
func (r Result) OK() bool { return r.Status == kmip14.ResultStatusSuccess }

// ResultOf reads one response Batch Item.
func ResultOf(it *tree.Node) Result {
	r := Result{Status: NoStatus}
	if v, ok := it.Child(kmip14.TagOperation).EnumValue(); ok {
		r.Operation = kmip14.Operation(v)
	}
	if v, ok := it.Child(kmip14.TagResultStatus).EnumValue(); ok {
		r.Status = kmip14.ResultStatus(v)
	}
	if v, ok := it.Child(kmip14.TagResultReason).EnumValue(); ok {
		r.Reason = kmip14.ResultReason(v)
	}
	r.Message, _ = it.Child(kmip14.TagResultMessage).TextValue()
	r.Payload = it.Child(kmip14.TagResponsePayload)
	return r
}

// Results reads every Batch Item of a Response Message, in order.
func Results(resp *tree.Node) []Result {
	var out []Result
	for _, it := range resp.All(kmip14.TagBatchItem) {
		out = append(out, ResultOf(it))
	}
	return out
}

// BatchCount is the Batch Count a Response Message's header states.
func BatchCount(resp *tree.Node) (int32, bool) {
	return resp.Path(kmip14.TagResponseHeader, kmip14.TagBatchCount).IntValue()
}

// ResponseVersion is the Protocol Version a Response Message is written in.
func ResponseVersion(resp *tree.Node) (Version, bool) {
	return ParseVersion(resp.Path(kmip14.TagResponseHeader, kmip14.TagProtocolVersion))
}
