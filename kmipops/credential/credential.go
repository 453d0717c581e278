// Package credential reads the KMIP Credential of a request header (KMIP
// 1.4 §2.1.2: Username and Password, Device) into the credential identity
// it names, and verifies its password.
//
// kmipd's owner is the TLS client (its public key hash): it owns the pKEK
// and the storage namespace. A Credential names a user or a device under
// that owner, so that one TLS client (a gateway, a storage array) can keep
// its users' objects apart: the object records the identity that made it,
// and the default operation policy gives it to that identity alone
// (kmipops/object/access.go). A password is never stored or logged in the
// clear: Binder keeps a salted PBKDF2 hash of it, sealed under the owner's
// pKEK.
package credential

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// MaxPrincipal bounds a credential identity, in bytes: it goes into every
// object its holder makes.
const MaxPrincipal = 1024

// Credential is the identity a request's Credential names and the password
// that proves it.
type Credential struct {
	// Principal is the credential identity: "user:<Username>" or
	// "device:" and the quoted device fields (serial number, device,
	// network, machine and media identifiers, in that order).
	Principal string
	// Username is the Username of a Username and Password credential.
	Username string
	// Password is the credential's Password; HasPassword says whether it
	// was given (it is optional in both credential types).
	Password    []byte
	HasPassword bool
}

// Wipe clears the password.
func (c *Credential) Wipe() {
	if c != nil {
		clear(c.Password)
	}
}

// Error is a refused Credential: Authentication Not Successful, or Invalid
// Field for a malformed one. Msg is safe for the client and the log; no
// password ever goes into one.
type Error struct {
	Reason kmip14.ResultReason
	Msg    string
}

func (e *Error) Error() string                     { return e.Msg }
func (e *Error) ResultReason() kmip14.ResultReason { return e.Reason }
func (e *Error) ClientMessage() string             { return e.Msg }
func denied(format string, args ...any) *Error {
	return &Error{kmip14.ResultReasonAuthenticationNotSuccessful, fmt.Sprintf(format, args...)}
}
func invalid(format string, args ...any) *Error {
	return &Error{kmip14.ResultReasonInvalidField, fmt.Sprintf(format, args...)}
}
func textField(v *tree.Node, tag ttlv.Tag) (string, bool) {
	s, ok := v.Child(tag).TextValue()
	return s, ok
}

// deviceFields are a Device credential's identifying fields, in the order
// the principal lists them. Its Password proves the identity.
var deviceFields = []ttlv.Tag{kmip14.TagDeviceSerialNumber, kmip14.TagDeviceIdentifier,
	kmip14.TagNetworkIdentifier, kmip14.TagMachineIdentifier, kmip14.TagMediaIdentifier}

// Parse reads the Authentication structure of a request header (nil: none,
// and so no credential). At most one credential may name an identity;
// Attestation credentials (1.2) are not supported.
func Parse(auth *tree.Node) (*Credential, error) {
	if auth == nil {
		return nil, nil
	}
	if auth.Type != ttlv.TypeStructure {
		return nil, invalid("Authentication must be a structure")
	}
	var found *Credential
	for _, n := range auth.All(kmip14.TagCredential) {
		c, err := parseOne(n)
		if err != nil {
			found.Wipe()
			return nil, err
		}
		if found != nil {
			found.Wipe()
			c.Wipe()
			return nil, denied("more than one credential")
		}
		found = c
	}
	if found == nil {
		return nil, invalid("Authentication without a Credential")
	}
	return found, nil
}

func parseOne(n *tree.Node) (*Credential, error) {
	t, ok := n.Child(kmip14.TagCredentialType).EnumValue()
	if !ok {
		return nil, invalid("Credential Type must be an enumeration")
	}
	v := n.Child(kmip14.TagCredentialValue)
	if v == nil || v.Type != ttlv.TypeStructure {
		return nil, invalid("Credential Value must be a structure")
	}
	c := &Credential{}
	if p := v.Child(kmip14.TagPassword); p != nil {
		s, ok := p.TextValue()
		if !ok {
			return nil, invalid("Password must be a text string")
		}
		c.Password, c.HasPassword = []byte(s), true
	}
	switch kmip14.CredentialType(t) {
	case kmip14.CredentialTypeUsernameAndPassword:
		u, ok := textField(v, kmip14.TagUsername)
		if !ok || u == "" {
			c.Wipe()
			return nil, invalid("a Username and Password credential needs a Username")
		}
		c.Username, c.Principal = u, "user:"+u
	case kmip14.CredentialTypeDevice:
		var b strings.Builder
		b.WriteString("device:")
		any := false
		for i, tag := range deviceFields {
			if i > 0 {
				b.WriteByte(',')
			}
			if s, ok := textField(v, tag); ok {
				b.WriteString(strconv.Quote(s))
				any = true
			} else if v.Child(tag) != nil {
				c.Wipe()
				return nil, invalid("%s must be a text string", tag)
			}
		}
		if !any {
			c.Wipe()
			return nil, invalid("a Device credential needs at least one identifier")
		}
		c.Principal = b.String()
	default:
		c.Wipe()
		return nil, denied("credential type %s is not supported", kmip14.CredentialType(t))
	}
	if len(c.Principal) > MaxPrincipal {
		c.Wipe()
		return nil, invalid("credential identity longer than %d bytes", MaxPrincipal)
	}
	return c, nil
}
