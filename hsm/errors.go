package hsm

import (
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/pkcs11"
)

// Class groups PKCS#11 return codes by what the pool must do about them. It
// is also all that callers learn of a failure's kind: package hsm knows no
// KMIP, and kek maps classes to Result Reasons.
type Class int

const (
	// ClassOther: returned to the caller; the session stays pooled.
	ClassOther Class = iota
	// ClassBroken: the session (or its login state) is unusable; it is
	// discarded, the token logged in again and the operation retried once.
	ClassBroken
	// ClassCapacity: the HSM is short of sessions or memory; the effective
	// cap is lowered (AIMD) and the operation retried after a back-off.
	ClassCapacity
	// ClassDevice: the device or token is gone; the HSM is marked not ready
	// and re-initialised in the background.
	ClassDevice
	// ClassCrypto: a tag or signature did not verify (bad input, not a fault).
	ClassCrypto
	// ClassBusy: no session within WaitTimeout (or capacity retries exhausted).
	ClassBusy
	// ClassUnavailable: the HSM is not ready (being recovered, or closed).
	ClassUnavailable
)

func (c Class) String() string {
	switch c {
	case ClassOther:
		return "other"
	case ClassBroken:
		return "broken-session"
	case ClassCapacity:
		return "capacity"
	case ClassDevice:
		return "device"
	case ClassCrypto:
		return "crypto"
	case ClassBusy:
		return "busy"
	case ClassUnavailable:
		return "unavailable"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// Error is the hsm layer's error. Code is the PKCS#11 CKR_ value (0 when the
// failure did not come from the module). Err is the cause, for the log; it
// never contains key material. ClientMessage is safe to show a client.
type Error struct {
	Op    string
	Code  uint
	Class Class
	Err   error
}

// Sentinels, usable with errors.Is: any *Error of the matching class matches.
var (
	ErrBusy        = &Error{Op: "acquire session", Class: ClassBusy, Err: errors.New("no session available within the wait timeout")}
	ErrUnavailable = &Error{Op: "acquire session", Class: ClassUnavailable, Err: errors.New("HSM not ready")}
)

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("hsm: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString(e.ClientMessage())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrBusy) / errors.Is(err, ErrUnavailable) true for
// every error of that kind, not only the sentinel value itself.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	switch t {
	case ErrBusy:
		return e.Class == ClassBusy || e.Class == ClassCapacity
	case ErrUnavailable:
		return e.Class == ClassUnavailable || e.Class == ClassDevice
	}
	return e == t
}

// ClientMessage is text safe to send to a KMIP client.
func (e *Error) ClientMessage() string {
	switch e.Class {
	case ClassBusy, ClassCapacity:
		return "HSM busy"
	case ClassUnavailable, ClassDevice:
		return "HSM unavailable"
	case ClassCrypto:
		return "cryptographic failure"
	}
	return "HSM error"
}

// classify sorts a CKR_ code into a Class.
func classify(code uint) Class {
	switch code {
	case pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_USER_NOT_LOGGED_IN, pkcs11.CKR_SESSION_READ_ONLY,
		// An operation left active (or lost) on a session poisons it for the
		// next caller; a stale key handle means the login or the handles
		// must be refreshed. Both are cured by a fresh, re-logged-in session.
		pkcs11.CKR_OPERATION_ACTIVE, pkcs11.CKR_OPERATION_NOT_INITIALIZED,
		pkcs11.CKR_KEY_HANDLE_INVALID, pkcs11.CKR_OBJECT_HANDLE_INVALID:
		return ClassBroken
	case pkcs11.CKR_SESSION_COUNT, pkcs11.CKR_DEVICE_MEMORY, pkcs11.CKR_HOST_MEMORY:
		return ClassCapacity
	case pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_TOKEN_NOT_PRESENT,
		pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED, pkcs11.CKR_GENERAL_ERROR,
		pkcs11.CKR_TOKEN_NOT_RECOGNIZED, pkcs11.CKR_SLOT_ID_INVALID:
		return ClassDevice
	case pkcs11.CKR_SIGNATURE_INVALID, pkcs11.CKR_SIGNATURE_LEN_RANGE,
		pkcs11.CKR_ENCRYPTED_DATA_INVALID, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE:
		return ClassCrypto
	}
	return ClassOther
}

// toError turns any error from an operation into an *Error, classifying
// PKCS#11 codes. An *Error passes through unchanged.
func toError(op string, err error) *Error {
	if err == nil {
		return nil
	}
	var he *Error
	if errors.As(err, &he) {
		return he
	}
	var pe pkcs11.Error
	if errors.As(err, &pe) {
		return &Error{Op: op, Code: uint(pe), Class: classify(uint(pe)), Err: err}
	}
	return &Error{Op: op, Class: ClassOther, Err: err}
}

// cryptoError reports a failed tag or signature. SoftHSM 2.6.1 answers a
// bad GCM tag with CKR_GENERAL_ERROR (verified experimentally), so callers
// on the decrypt path use this instead of the generic classification.
func cryptoError(op string, err error) *Error {
	var pe pkcs11.Error
	code := uint(0)
	if errors.As(err, &pe) {
		code = uint(pe)
	}
	return &Error{Op: op, Code: code, Class: ClassCrypto, Err: err}
}

// ckrName is the symbolic name of a CKR_ code, for logs and metric labels.
func ckrName(code uint) string {
	s := pkcs11.Error(code).Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}
