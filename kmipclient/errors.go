package kmipclient

import (
	"errors"
	"fmt"

	"github.com/gemalto/kmip-go/kmip14"
)

// Kind says what went wrong with a request.
type Kind int

const (
	// Failed: the server answered and refused the operation; Reason and
	// Message are what it said.
	Failed Kind = iota + 1
	// Transport: no answer came: dial, TLS handshake, timeout, closed or
	// reset connection.
	Transport
	// Protocol: an answer came but is not a valid response to the request.
	Protocol
)

func (k Kind) String() string {
	switch k {
	case Failed:
		return "failed"
	case Transport:
		return "connection"
	case Protocol:
		return "protocol"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Error is the one error type of this package. It never holds key material:
// Message is the server's client-safe Result Message, and Err a transport or
// decoding error.
type Error struct {
	Kind      Kind
	Operation kmip14.Operation
	Status    kmip14.ResultStatus // Failed only
	Reason    kmip14.ResultReason // Failed only; zero when the server gave none
	Message   string              // Failed only: the Result Message
	Err       error               // Transport and Protocol: the cause
}

func (e *Error) Error() string {
	switch e.Kind {
	case Failed:
		s := EnumName(kmip14.TagOperation, uint32(e.Operation))
		if e.Status != kmip14.ResultStatusOperationFailed {
			// Pending or Undone say more than the reason.
			s += ": " + EnumName(kmip14.TagResultStatus, uint32(e.Status))
		}
		if e.Reason != 0 {
			s += ": " + EnumName(kmip14.TagResultReason, uint32(e.Reason))
		}
		if e.Message != "" {
			s += ": " + e.Message
		}
		return s
	case Protocol:
		return fmt.Sprintf("%s: invalid response: %v", EnumName(kmip14.TagOperation, uint32(e.Operation)), e.Err)
	}
	return fmt.Sprintf("%s: connection failed: %v", EnumName(kmip14.TagOperation, uint32(e.Operation)), e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ReasonOf is the Result Reason of a refused operation; false for any other
// error.
func ReasonOf(err error) (kmip14.ResultReason, bool) {
	var e *Error
	if errors.As(err, &e) && e.Kind == Failed {
		return e.Reason, true
	}
	return 0, false
}

// KindOf is the Kind of err, or 0 when it is no *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}
