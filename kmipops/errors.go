// Package kmipops implements KMIP's protocol and operations: message and
// batch handling, dispatch, each operation's semantics and its cryptography.
// What an object is and how it is stored is package kmipops/object.
package kmipops

import (
	"fmt"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/reason"
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

var (
	_ reason.Reasoner  = (*Error)(nil)
	_ reason.Messenger = (*Error)(nil)
)

func (e *Error) Unwrap() error { return e.Err }

// ResultReason is the KMIP result reason the client sees.
func (e *Error) ResultReason() kmip14.ResultReason { return e.Reason }

// ClientMessage is Msg, the text the client sees.
func (e *Error) ClientMessage() string { return e.Msg }

// Errorf builds an Error with a client-safe message.
func Errorf(reason kmip14.ResultReason, format string, args ...any) *Error {
	return &Error{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// ReasonOf finds the KMIP ResultReason for any error: the first error in the
// chain that states one (reason.Of), else General Failure.
func ReasonOf(err error) kmip14.ResultReason {
	if r, ok := reason.Of(err); ok {
		return r
	}
	return kmip14.ResultReasonGeneralFailure
}

// ClientMessage is the text a client may see for err: the client message of
// the first error in the chain that has one (reason.Message), else a generic
// text, so causes (paths, CKR codes) stay in logs.
func ClientMessage(err error) string {
	if m, ok := reason.Message(err); ok {
		return m
	}
	return "internal error"
}
