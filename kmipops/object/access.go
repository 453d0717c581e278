package object

import (
	"sync"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
)

// Who may use an object within its owner's scope, and in which order
// objects were made. Both live in the record, outside the attributes, so
// no client can read, add, change or delete them.
//
// The owner (the TLS client, see DEVELOPERS.md) namespaces objects: another
// owner's uid is not found. Within one owner, a request may carry a KMIP
// Credential naming a user or a device (package credential): the object then
// records that credential identity as its creator, and the default
// operation policy (KMIP 1.0–1.2 §3.18.1) gives every operation on it to
// its creator only, except that Get, Get Attributes, Get Attribute List and
// Locate of a Public Key or Certificate are allowed to all. An object made
// without a Credential has no creator and stays reachable by every request
// of its owner, with a Credential or without.

// ErrDenied answers a use of an object that the default operation policy
// refuses to the request's credential identity.
var ErrDenied = errorf(kmip14.ResultReasonPermissionDenied, "access denied by the object's operation policy")

// As returns the same objects as seen by requests under the credential
// identity principal ("" for a request without a Credential): objects it
// inserts record it as their creator, and objects another identity created
// are ErrDenied (read-only operations on public objects: see Reading).
// A Scope that was never bound with As sees every object (the server's own
// maintenance, such as rebuilding the index).
func (s Scope) As(principal string) Scope {
	s.principal, s.bound = principal, true
	return s
}

// Reading says whether the current operation only reads objects (Get, Get
// Attributes, Get Attribute List, Locate), which the default policy allows
// to all on Public Keys and Certificates.
func (s Scope) Reading(read bool) Scope {
	s.reading = read
	return s
}

// Principal is the credential identity the scope acts for.
func (s *Scope) Principal() string { return s.principal }

// allowed applies the default operation policy to o.
func (s *Scope) allowed(o *Object) bool {
	if !s.bound || o.creator == "" || o.creator == s.principal {
		return true
	}
	return s.reading && (o.typ == kmip14.ObjectTypePublicKey || o.typ == kmip14.ObjectTypeCertificate)
}

// Creator is the credential identity the object was made under ("" when
// it was made without a Credential).
func (o *Object) Creator() string { return o.creator }

// Order is the object's place in the order objects were made: the
// nanosecond stamp Insert gave it, or for a record written before stamps
// existed its Initial Date.
func (o *Object) Order() int64 {
	if o.stamp != 0 {
		return o.stamp
	}
	t, _ := o.InitialDate()
	return t.UnixNano()
}

// stampClock hands out insertion stamps: the wall clock in nanoseconds,
// made strictly increasing within the repository, so that objects made in
// one batch keep their order.
type stampClock struct {
	mu   sync.Mutex
	last int64
}

func (c *stampClock) next() int64 {
	now := time.Now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	if now <= c.last {
		now = c.last + 1
	}
	c.last = now
	return now
}
