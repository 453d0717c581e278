// Package backup writes and restores kmipd's sealed records: the pKEK
// records (pkek/), the sealed objects (obj/) and the credential password
// bindings (cred/), exactly as stored, so a
// backup is useless without the HSM whose MKEK and HMAC key sealed them.
//
// A backup is JSON lines: a Header, one Record per key, and a Trailer with
// the record count and the SHA-256 of every line before it, so a truncated
// or altered file is refused. The header's Check is the HSM's MAC over a
// fixed label: it says which HMAC key the backup needs without revealing
// anything, and a restore checks it, and every pKEK record, through its own
// HSM before writing a byte.
package backup

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/storage"
)

// Format names this file layout.
const Format = "kmipd-backup/1"

// Prefixes are what a backup holds: the pKEK records first.
// "cred/" holds the password bindings of credential identities
// (kmipops/credential.Prefix): salted hashes, not sealed.
var Prefixes = []string{kek.RecordPrefix, "obj/", "cred/"}

// checkLabel is what Check is the MAC of.
var checkLabel = []byte("kmipd/backup-check/v1")

// Header opens a backup.
type Header struct {
	Format    string    `json:"format"`
	Created   time.Time `json:"created"`
	Version   string    `json:"kmipd_version"`
	MKEKLabel string    `json:"mkek_label"`
	HMACLabel string    `json:"hmac_label"`
	Check     []byte    `json:"check"` // HMAC(checkLabel) under the HMAC key
}

// Record is one stored key and its value, as stored.
type Record struct {
	Key   string `json:"k"`
	Value []byte `json:"v"`
}

// Trailer closes a backup.
type Trailer struct {
	End     bool   `json:"end"`
	Records int    `json:"records"`
	SHA256  string `json:"sha256"` // of every line before this one
}

// Error is this package's error: Msg says what is wrong with the backup or
// the store; it never holds a value.
type Error struct {
	Msg string
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return "backup: " + e.Msg + ": " + e.Err.Error()
	}
	return "backup: " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// ErrNotEmpty: a restore found the store already holding records.
var ErrNotEmpty = errors.New("the store is not empty")

// MasterKeys is what a backup needs of the HSM.
type MasterKeys interface {
	kek.MasterKeys
}

// NewHeader fills in a header for the HSM mk.
func NewHeader(ctx context.Context, mk MasterKeys, version, mkekLabel, hmacLabel string) (Header, error) {
	check, err := mk.MAC(ctx, checkLabel)
	if err != nil {
		return Header{}, &Error{Msg: "computing the HSM check value", Err: err}
	}
	return Header{Format: Format, Created: time.Now().UTC(), Version: version,
		MKEKLabel: mkekLabel, HMACLabel: hmacLabel, Check: check}, nil
}

type hashWriter struct {
	w io.Writer
	h hash.Hash
}

func (hw hashWriter) Write(p []byte) (int, error) {
	hw.h.Write(p)
	return hw.w.Write(p)
}

// Write writes a backup of snap's sealed records, as of one instant, to w.
func Write(ctx context.Context, w io.Writer, snap storage.Snapshotter, hdr Header) (records int, err error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	hw := hashWriter{w: bw, h: sha256.New()}
	enc := json.NewEncoder(hw)
	if err := enc.Encode(hdr); err != nil {
		return 0, err
	}
	err = snap.Snapshot(ctx, Prefixes, func(key string, value []byte) error {
		records++
		return enc.Encode(Record{Key: key, Value: value})
	})
	if err != nil {
		return records, &Error{Msg: "reading the store", Err: err}
	}
	t := Trailer{End: true, Records: records, SHA256: hex.EncodeToString(hw.h.Sum(nil))}
	if err := json.NewEncoder(bw).Encode(t); err != nil {
		return records, err
	}
	return records, bw.Flush()
}

// Read parses and checks a whole backup: format, trailer, digest, and that
// every key is one a backup holds.
func Read(r io.Reader) (Header, []Record, error) {
	var hdr Header
	h := sha256.New()
	br := bufio.NewReaderSize(r, 64<<10)
	var recs []Record
	first, sawEnd := true, false
	for {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) && len(line) == 0 {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return hdr, nil, &Error{Msg: "reading", Err: err}
		}
		if sawEnd {
			return hdr, nil, &Error{Msg: "data after the trailer"}
		}
		switch {
		case first:
			if err := json.Unmarshal(line, &hdr); err != nil || hdr.Format != Format {
				return hdr, nil, &Error{Msg: "not a kmipd backup (" + Format + ")"}
			}
			first = false
		case strings.HasPrefix(string(line), `{"end":`):
			var t Trailer
			if err := json.Unmarshal(line, &t); err != nil || !t.End {
				return hdr, nil, &Error{Msg: "malformed trailer"}
			}
			if t.Records != len(recs) || t.SHA256 != hex.EncodeToString(h.Sum(nil)) {
				return hdr, nil, &Error{Msg: "the backup was altered or truncated (its digest or record count does not match)"}
			}
			sawEnd = true
			continue
		default:
			var rec Record
			if err := json.Unmarshal(line, &rec); err != nil {
				return hdr, nil, &Error{Msg: fmt.Sprintf("record %d is malformed", len(recs)+1)}
			}
			if !hasPrefix(rec.Key) {
				return hdr, nil, &Error{Msg: fmt.Sprintf("record %d has a key outside %v", len(recs)+1, Prefixes)}
			}
			recs = append(recs, rec)
		}
		h.Write(line)
	}
	if first {
		return hdr, nil, &Error{Msg: "empty file"}
	}
	if !sawEnd {
		return hdr, nil, &Error{Msg: "truncated: no trailer"}
	}
	return hdr, recs, nil
}

func hasPrefix(key string) bool {
	for _, p := range Prefixes {
		if strings.HasPrefix(key, p) && len(key) > len(p) {
			return true
		}
	}
	return false
}

// Restore writes a backup into st, which must be empty, after proving
// through mk that this HSM holds the keys it needs: the header's check
// value, then every pKEK record's MAC and unwrap. On any error nothing is
// left written.
func Restore(ctx context.Context, st storage.Store, mk MasterKeys, r io.Reader) (int, error) {
	hdr, recs, err := Read(r)
	if err != nil {
		return 0, err
	}
	if err := mk.VerifyMAC(ctx, checkLabel, hdr.Check); err != nil {
		return 0, &Error{Msg: fmt.Sprintf("this HSM's HMAC key is not the one that made the backup (it names %q and MKEK %q)", hdr.HMACLabel, hdr.MKEKLabel), Err: err}
	}
	for _, rec := range recs {
		if owner, ok := kek.IsRecordKey(rec.Key); ok {
			if err := kek.VerifyRecord(ctx, mk, owner, rec.Value); err != nil {
				return 0, &Error{Msg: fmt.Sprintf("this HSM cannot open the pKEK of owner %q", owner), Err: err}
			}
		}
	}
	empty := true
	if err := st.List(ctx, "", func(string, []byte) error { empty = false; return errStop }); err != nil && !errors.Is(err, errStop) {
		return 0, &Error{Msg: "reading the store", Err: err}
	}
	if !empty {
		return 0, &Error{Msg: "refusing to restore", Err: ErrNotEmpty}
	}
	for i, rec := range recs {
		if err := st.Create(ctx, rec.Key, rec.Value); err != nil {
			// Undo what was written, on a context that is not cancelled.
			for _, done := range recs[:i] {
				_ = st.Delete(context.WithoutCancel(ctx), done.Key)
			}
			return 0, &Error{Msg: fmt.Sprintf("writing %s (the store was left empty)", rec.Key), Err: err}
		}
	}
	return len(recs), nil
}

var errStop = errors.New("stop")
