package kek

import (
	"context"
	"errors"
	"fmt"

	"github.com/gemalto/kmip-go/kmip14"
)

// Error is the kek layer's error. Reason and Msg are safe for the client; Err
// is the cause, for the log. None of them ever holds key material.
type Error struct {
	Reason kmip14.ResultReason
	Msg    string
	Err    error
}

var _ interface {
	error
	ResultReason() kmip14.ResultReason
	ClientMessage() string
} = (*Error)(nil)

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
	var r interface{ ResultReason() kmip14.ResultReason }
	if errors.As(err, &r) {
		e.Reason = r.ResultReason()
	}
	var m interface{ ClientMessage() string }
	if errors.As(err, &m) {
		e.Msg = m.ClientMessage()
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
	var r interface{ ResultReason() kmip14.ResultReason }
	if errors.As(err, &r) {
		return r.ResultReason() == kmip14.ResultReasonCryptographicFailure
	}
	return true
}
