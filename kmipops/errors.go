// Package kmipops implements KMIP operation semantics over the kek and
// storage layers: message and batch handling, operations, objects and their
// attributes.
package kmipops

import (
	"errors"
	"fmt"

	"github.com/gemalto/kmip-go/kmip14"
)

// Error is kmipops' error: Reason and Msg go to the client, Err stays in the log.
type Error struct {
	Reason kmip14.ResultReason
	Msg    string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Reason, e.Msg, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Reason, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// ResultReason lets every layer's error say what the client should see.
func (e *Error) ResultReason() kmip14.ResultReason { return e.Reason }

// Errorf builds an Error with a client-safe message.
func Errorf(reason kmip14.ResultReason, format string, args ...any) *Error {
	return &Error{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// Reasoner is implemented by every layer's error type.
type Reasoner interface{ ResultReason() kmip14.ResultReason }

// ReasonOf finds the KMIP ResultReason for any error: the first error in the
// chain that knows its reason, else General Failure.
func ReasonOf(err error) kmip14.ResultReason {
	var r Reasoner
	if errors.As(err, &r) {
		return r.ResultReason()
	}
	return kmip14.ResultReasonGeneralFailure
}

// ClientMessage is the text a client may see for err: a kmipops.Error's Msg,
// or a generic text for anything else, so causes (paths, CKR codes) stay in logs.
func ClientMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Msg
	}
	var m interface{ ClientMessage() string }
	if errors.As(err, &m) {
		return m.ClientMessage()
	}
	return "internal error"
}
