// Package reason is how an error tells a KMIP client what went wrong: the
// Result Reason it answers and a message safe to send. Every layer that
// knows KMIP (kek, kmipops) has one error type satisfying Reasoner and
// Messenger; package hsm knows no KMIP, and kek maps its failure classes.
package reason

import (
	"errors"

	"github.com/gemalto/kmip-go/kmip14"
)

// Reasoner is an error that knows the KMIP Result Reason a client should see.
type Reasoner interface{ ResultReason() kmip14.ResultReason }

// Messenger is an error with a message safe to send to a KMIP client: no
// key material, paths or PKCS#11 codes, which stay in the log.
type Messenger interface{ ClientMessage() string }

// Of is the Result Reason of the first error in err's chain that states
// one; false when none does.
func Of(err error) (kmip14.ResultReason, bool) {
	var r Reasoner
	if errors.As(err, &r) {
		return r.ResultReason(), true
	}
	return 0, false
}

// Message is the client message of the first error in err's chain that has
// one; false when none does.
func Message(err error) (string, bool) {
	var m Messenger
	if errors.As(err, &m) {
		return m.ClientMessage(), true
	}
	return "", false
}
