package kek

import (
	"context"
	"errors"
	"fmt"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/reason"
)

// Error is the kek layer's error. Reason and Msg are safe for the client; Err
// is the cause, for the log. None of them ever holds key material.
type Error struct {
	Reason kmip14.ResultReason
	Msg    string
	Err    error
}

var (
	_ reason.Reasoner  = (*Error)(nil)
	_ reason.Messenger = (*Error)(nil)
	// The HSM's client text passes through; its Result Reason is kek's to say.
	_ reason.Messenger = (*hsm.Error)(nil)
)

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("kek: %s: %v", e.Msg, e.Err)
	}
	return "kek: " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// ResultReason is the KMIP result reason the client should see.
func (e *Error) ResultReason() kmip14.ResultReason { return e.Reason }

// ClientMessage is text safe to send to a KMIP client.
func (e *Error) ClientMessage() string { return e.Msg }

const (
	msgIntegrity = "sealed object failed its integrity check"
	msgPKEK      = "key encryption key failed its integrity check"
)

// integrityError is the one answer for any failure to open a sealed object:
// which check failed is for the log, not the client.
func integrityError(err error) *Error {
	return &Error{Reason: kmip14.ResultReasonCryptographicFailure, Msg: msgIntegrity, Err: err}
}

// passThrough wraps a failure of a lower layer (HSM, storage, context),
// keeping its result reason and client message when it has them, so that a
// busy HSM still reads "HSM busy" and errors.As still finds the hsm.Error.
func passThrough(what string, err error) *Error {
	e := &Error{Reason: kmip14.ResultReasonGeneralFailure, Msg: "key hierarchy unavailable", Err: fmt.Errorf("%s: %w", what, err)}
	if r, ok := lowerReason(err); ok {
		e.Reason = r
	}
	if m, ok := reason.Message(err); ok {
		e.Msg = m
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		e.Msg = "request cancelled or timed out"
	}
	return e
}

// isIntegrityFailure tells a MAC/tag mismatch (tampering or corruption) from
// an HSM that is merely busy, unavailable or cancelled: only the former is a
// security event. An error that states a reason other than Cryptographic
// Failure is operational; one that states none is treated as a mismatch.
func isIntegrityFailure(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if r, ok := lowerReason(err); ok {
		return r == kmip14.ResultReasonCryptographicFailure
	}
	return true
}

// lowerReason is the Result Reason a lower layer's failure states: that of
// an error that knows its own (reason.Of), else the one kek gives an HSM
// failure class, since package hsm knows no KMIP. False when neither.
func lowerReason(err error) (kmip14.ResultReason, bool) {
	if r, ok := reason.Of(err); ok {
		return r, true
	}
	var he *hsm.Error
	if errors.As(err, &he) {
		return hsmReason(he.Class), true
	}
	return 0, false
}

// hsmReason maps an HSM failure class to what a KMIP client is told. A tag
// or signature that did not verify is a Cryptographic Failure; a busy, lost
// or broken HSM is the server's problem, a General Failure (the client
// message says which: "HSM busy", "HSM unavailable").
func hsmReason(c hsm.Class) kmip14.ResultReason {
	if c == hsm.ClassCrypto {
		return kmip14.ResultReasonCryptographicFailure
	}
	return kmip14.ResultReasonGeneralFailure
}
