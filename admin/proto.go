// Package admin is kmipd's admin channel: a local Unix socket, guarded by
// its file mode (0600) alone, on which the running server answers `kmipd
// admin` commands. It is never the KMIP port. The protocol is JSON lines:
// the client sends one Request; the server answers with any number of
// progress Replies and then one final Reply (Done), after which raw bytes
// follow until the server closes the connection when the final Reply says
// Stream (a backup). One request per connection.
package admin

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Request is the one line a client sends.
type Request struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Reply is one line the server sends.
type Reply struct {
	Progress *Progress       `json:"progress,omitempty"`
	Done     bool            `json:"done,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    string          `json:"error,omitempty"`
	Stream   bool            `json:"stream,omitempty"` // raw bytes follow until EOF
}

// Progress reports how far a long operation (a rotation) has come.
type Progress struct {
	What  string `json:"what"`
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
}

// maxLine bounds one request or reply line; requests are tiny.
const maxLine = 1 << 20

// Error is what the server said went wrong, or why the channel failed. Its
// text never holds key material: handlers report operations, not values.
type Error struct {
	Op  string
	Msg string
	Err error
}

func (e *Error) Error() string {
	s := "admin " + e.Op + ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// ErrNotRunning: nothing answers on the admin socket.
var ErrNotRunning = errors.New("kmipd is not running")

// ErrBusy is a handler's answer when the operation would overlap one that
// is running (a second rotation).
var ErrBusy = errors.New("another admin operation of this kind is running")

func decodeArgs(raw json.RawMessage, dst any) error {
	if len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("bad arguments: %w", err)
	}
	return nil
}

// DecodeArgs decodes a request's arguments into dst (left alone when none
// were sent).
func DecodeArgs(raw json.RawMessage, dst any) error { return decodeArgs(raw, dst) }
