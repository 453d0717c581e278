package hsm

import (
	"errors"
	"fmt"
	"time"
)

// Defaults applied by Config.withDefaults.
const (
	DefaultMaxSessions = 4
	DefaultWaitTimeout = 5 * time.Second
	DefaultIdleTimeout = 30 * time.Second
	DefaultMKEKLabel   = "kmipd-mkek"
	DefaultHMACLabel   = "kmipd-hmac"

	// minSessions is the smallest useful cap: the persistent login session
	// plus one more, so a broken session can be replaced while another
	// keeps the token logged in.
	minSessions = 2
)

// Config says which PKCS#11 module and token to use and how to size the
// session pool. Exactly one of TokenLabel, TokenSerial and Slot selects the
// token.
type Config struct {
	ModulePath string

	TokenLabel  string
	TokenSerial string
	Slot        *uint

	// PIN is the user PIN, already resolved from wherever the operator keeps it.
	PIN string

	// MaxSessions is the hard cap on open sessions, the login session
	// included (default 4, minimum 2).
	MaxSessions int
	// MinIdle idle sessions (besides the login session) are kept open by the
	// reaper (default 0).
	MinIdle int
	// WaitTimeout bounds how long a caller waits for a session before ErrBusy
	// (session_wait_timeout, default 5s).
	WaitTimeout time.Duration
	// IdleTimeout is how long a surplus idle session stays open (default 30s).
	IdleTimeout time.Duration

	MKEKLabel string
	HMACLabel string
}

// Validate reports whether c is usable (defaults applied), for config loaders.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults returns a copy of c with defaults filled in, or an error if
// c is unusable.
func (c Config) withDefaults() (Config, error) {
	if c.ModulePath == "" {
		return c, errors.New("hsm: config: module path is required")
	}
	n := 0
	if c.TokenLabel != "" {
		n++
	}
	if c.TokenSerial != "" {
		n++
	}
	if c.Slot != nil {
		n++
	}
	if n != 1 {
		return c, fmt.Errorf("hsm: config: exactly one of token label, token serial and slot must be set (got %d)", n)
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.MaxSessions < minSessions {
		return c, fmt.Errorf("hsm: config: max_sessions must be at least %d (the login session plus one)", minSessions)
	}
	if c.MinIdle < 0 || c.MinIdle >= c.MaxSessions {
		return c, fmt.Errorf("hsm: config: min_idle must be between 0 and max_sessions-1 (%d)", c.MaxSessions-1)
	}
	if c.WaitTimeout == 0 {
		c.WaitTimeout = DefaultWaitTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.WaitTimeout < 0 || c.IdleTimeout < 0 {
		return c, errors.New("hsm: config: timeouts must not be negative")
	}
	if c.MKEKLabel == "" {
		c.MKEKLabel = DefaultMKEKLabel
	}
	if c.HMACLabel == "" {
		c.HMACLabel = DefaultHMACLabel
	}
	if c.MKEKLabel == c.HMACLabel {
		return c, errors.New("hsm: config: the MKEK and HMAC key labels must differ")
	}
	return c, nil
}

// tokenDesc describes the selected token for logs and errors.
func (c Config) tokenDesc() string {
	switch {
	case c.TokenLabel != "":
		return fmt.Sprintf("token label %q", c.TokenLabel)
	case c.TokenSerial != "":
		return fmt.Sprintf("token serial %q", c.TokenSerial)
	case c.Slot != nil:
		return fmt.Sprintf("slot %d", *c.Slot)
	}
	return "no token"
}
