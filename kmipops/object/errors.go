package object

import (
	"fmt"

	"github.com/gemalto/kmip-go/kmip14"
)

// Error is a refusal of the object model: an attribute a client may not
// give, a value of the wrong type, an object that does not exist. Reason
// and Msg are for the client; nothing else is in it. Failures of the store
// or the sealer are returned wrapped instead, with their own reasons.
type Error struct {
	Reason kmip14.ResultReason
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Reason, e.Msg) }

// ResultReason is the KMIP Result Reason the client is answered with.
func (e *Error) ResultReason() kmip14.ResultReason { return e.Reason }

// ClientMessage is the text the client is answered with.
func (e *Error) ClientMessage() string { return e.Msg }

func errorf(reason kmip14.ResultReason, format string, args ...any) *Error {
	return &Error{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// ErrNotFound answers a uid the caller has no object under: another owner's
// objects are simply not under the caller's prefix, so they are not found
// either.
var ErrNotFound = errorf(kmip14.ResultReasonItemNotFound, "object not found")

// ErrArchived answers an operation on an archived object (see
// Scope.WithArchived): it is off-line until Recover brings it back.
var ErrArchived = errorf(kmip14.ResultReasonObjectArchived, "object is archived")

// ErrContended answers a change to an object that another replica sharing
// the store kept changing first, however often it was made again
// (update.go): nothing of it was written, so the client may try again.
var ErrContended = errorf(kmip14.ResultReasonGeneralFailure, "the object kept changing under concurrent requests; nothing was changed, try again")
