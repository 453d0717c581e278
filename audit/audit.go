// Package audit is kmipd's audit trail: one JSON line per KMIP operation
// (batch item), never key material, each line carrying the SHA-256 of the
// line before it so that a changed, removed, inserted or reordered line is
// found by Verify.
//
// # Line format
//
// Every line is one JSON object ending in '\n'. It starts with
//
//	{"seq":N,"prev":"<64 hex digits>",...
//
// seq counts lines from 1 and never restarts while the chain goes on, across
// restarts and rotated files alike. prev is the lowercase hex SHA-256 of the
// previous line's exact bytes without its '\n'; the first line of a new chain
// has seq 1 and prev GenesisHash. So the first line of a file that logrotate
// started names the hash of the last line of the file before it, and Verify
// checks one file on its own (each line against the one before) or several
// in order (VerifyAfter also checks each file's first line against the end of
// the previous file).
//
// Event lines carry time, identity, cn, version, op, batch_index,
// batch_item_id (hex), request_uids, response_uids, uids_omitted, result,
// reason and duration_ns (empty fields are left out). The sink adds
// {"audit":"open"} when it starts writing a file and {"audit":"close"} when it
// stops (shutdown, or rotation on Reopen), so a file that ends without a close
// record was cut, or is still being written, or its writer crashed.
//
// A hash chain needs no key, so it shows edits that do not rewrite every line
// after them, and it cannot show lines cut from the end of the newest file:
// keep the last hash Verify reports (or ship the lines elsewhere) to anchor it.
package audit

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Logger receives one Event per KMIP batch item. Log may block while the
// sink is behind (it never drops an event to keep going) and returns
// an error only when the event was not taken: the sink is closed, or ctx
// ended while waiting. Log does not keep e's slices after it returns:
// the caller reuses them (the Sink encodes e before returning).
type Logger interface {
	Log(ctx context.Context, e Event) error
}

// Event is what one audit line says about one operation. It holds
// identifiers, never key material or attribute values.
type Event struct {
	Time       time.Time // when the item started
	Identity   string    // the caller's owner key (hex SHA-256 of its certificate's SPKI)
	CommonName string    // the client certificate's subject CN
	// Principal is the credential identity the request's KMIP Credential
	// named under Identity ("user:<name>", "device:..."); empty without one.
	Principal string
	Version   string // KMIP protocol version of the answer, "1.4"
	// Operation is the KMIP operation ("Get"); empty when the message was
	// refused before any batch item ran (then BatchIndex is -1).
	Operation   string
	BatchIndex  int    // 0-based position in the request's batch; -1 for the whole message
	BatchItemID []byte // the request's Unique Batch Item ID, if any
	// RequestUIDs and ResponseUIDs are the Unique Identifiers the request
	// named and the response returned, at most MaxUIDs each; UIDsOmitted
	// counts those left out (a Locate may return thousands).
	RequestUIDs  []string
	ResponseUIDs []string
	UIDsOmitted  int
	Result       string        // KMIP Result Status: "Success", "OperationFailed", "OperationUndone"; or ResultMalformed
	Reason       string        // KMIP Result Reason when not successful: "ItemNotFound"; what was malformed
	Duration     time.Duration // the item's run time; 0 for a message refused as a whole
}

// ResultMalformed is the Result of a message refused before it could be
// decoded (the server's framing errors); Reason then says why.
const ResultMalformed = "malformed"

// MaxUIDs bounds each list of unique identifiers in one line.
const MaxUIDs = 16

// ErrClosed is returned by Log after Close.
var ErrClosed = errors.New("audit: log closed")

// Stderr is the target that OpenTarget sends to standard error.
const Stderr = "stderr"

// OpenTarget opens the sink a configuration names: Stderr, or a file path
// (Open). The sink's own problems go to log.
func OpenTarget(target string, opts Options, log hclog.Logger) (*Sink, error) {
	if target == Stderr {
		return NewStream(os.Stderr, opts, log), nil
	}
	return Open(target, opts, log)
}

// Nop discards every event: the Logger of a server with no audit block.
type Nop struct{}

func (Nop) Log(context.Context, Event) error { return nil }

var (
	_ Logger = Nop{}
	_ Logger = (*Sink)(nil)
)
