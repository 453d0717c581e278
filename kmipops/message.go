package kmipops

import (
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// ErrorMessage builds a one-item ResponseMessage for failures found before a
// request could be decoded (oversized or malformed TTLV). It answers in
// protocol 1.0, the version every client understands.
func ErrorMessage(reason kmip14.ResultReason, msg string) *tree.Node {
	return tree.Struct(kmip14.TagResponseMessage,
		tree.Struct(kmip14.TagResponseHeader,
			tree.Struct(kmip14.TagProtocolVersion,
				tree.Int(kmip14.TagProtocolVersionMajor, 1),
				tree.Int(kmip14.TagProtocolVersionMinor, 0),
			),
			tree.Time(kmip14.TagTimeStamp, time.Now()),
			tree.Int(kmip14.TagBatchCount, 1),
		),
		tree.Struct(kmip14.TagBatchItem,
			tree.Enum(kmip14.TagResultStatus, uint32(kmip14.ResultStatusOperationFailed)),
			tree.Enum(kmip14.TagResultReason, uint32(reason)),
			tree.Text(kmip14.TagResultMessage, msg),
		),
	)
}
