package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
	"unicode/utf8"
)

// GenesisHash is the prev of the first line of a new chain.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Client-chosen strings are cut so that a line stays small whatever a
// request carries (a Unique Identifier may be as long as a message).
const (
	maxField       = 256 // bytes of one string field
	maxBatchItemID = 64  // bytes of a Unique Batch Item ID before hex
)

// chain is the state a line is written against: the last seq and the hash
// of the last line.
type chain struct {
	seq  uint64
	prev [sha256.Size]byte
}

// A line is a head, which only the chain can write, and a body, which the
// caller encodes on its own (the Sink's writer chains it later):
//
//	head: {"seq":N,"prev":"…"
//	body: ,"time":"…",…}
//
// appendLine joins them, hashes the line and makes it the chain's last.

// appendLine appends the line made of c's next head and body, and the '\n'
// that the hash does not cover.
func (c *chain) appendLine(dst, body []byte) []byte {
	start := len(dst)
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, c.seq+1, 10)
	dst = append(dst, `,"prev":"`...)
	dst = hex.AppendEncode(dst, c.prev[:])
	dst = append(dst, '"')
	dst = append(dst, body...)
	c.seq++
	c.prev = sha256.Sum256(dst[start:])
	return append(dst, '\n')
}

// appendEvent appends e's line.
func (c *chain) appendEvent(dst []byte, e *Event) []byte {
	var b [512]byte
	return c.appendLine(dst, appendEventBody(b[:0], e))
}

// appendEventBody appends the body of e's line: everything after prev.
func appendEventBody(dst []byte, e *Event) []byte {
	dst = appendTimeField(dst, e.Time)
	dst = appendField(dst, "identity", e.Identity)
	dst = appendField(dst, "cn", e.CommonName)
	if e.Principal != "" {
		dst = appendField(dst, "principal", e.Principal)
	}
	dst = appendField(dst, "version", e.Version)
	if e.Operation != "" {
		dst = appendField(dst, "op", e.Operation)
	}
	dst = append(dst, `,"batch_index":`...)
	dst = strconv.AppendInt(dst, int64(e.BatchIndex), 10)
	if len(e.BatchItemID) > 0 {
		id := e.BatchItemID[:min(len(e.BatchItemID), maxBatchItemID)]
		dst = append(dst, `,"batch_item_id":"`...)
		dst = hex.AppendEncode(dst, id)
		dst = append(dst, '"')
	}
	omitted := e.UIDsOmitted
	dst, omitted = appendList(dst, "request_uids", e.RequestUIDs, omitted)
	dst, omitted = appendList(dst, "response_uids", e.ResponseUIDs, omitted)
	if omitted > 0 {
		dst = append(dst, `,"uids_omitted":`...)
		dst = strconv.AppendInt(dst, int64(omitted), 10)
	}
	dst = appendField(dst, "result", e.Result)
	if e.Reason != "" {
		dst = appendField(dst, "reason", e.Reason)
	}
	dst = append(dst, `,"duration_ns":`...)
	dst = strconv.AppendInt(dst, int64(e.Duration), 10)
	return append(dst, '}')
}

// appendControl appends the sink's own record: {"audit":"open"} or "close".
func (c *chain) appendControl(dst []byte, t time.Time, what string) []byte {
	var b [128]byte
	body := appendField(appendTimeField(b[:0], t), "audit", what)
	return c.appendLine(dst, append(body, '}'))
}

// appendTimeField appends ,"time":"…" in UTC, as time.RFC3339Nano formats
// it (trailing zeros of the fraction dropped), without the general
// formatter's cost: it runs once per request.
func appendTimeField(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		dst = append(dst, `,"time":"`...)
		dst = t.AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"')
	}
	hour, minute, sec := t.Clock()
	dst = append(dst, `,"time":"`...)
	dst = appendDigits(dst, year, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, minute, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec, 2)
	if ns := t.Nanosecond(); ns != 0 {
		digits := 9
		for ns%10 == 0 {
			ns /= 10
			digits--
		}
		dst = append(dst, '.')
		dst = appendDigits(dst, ns, digits)
	}
	return append(dst, 'Z', '"')
}

// appendDigits appends v (≥ 0) as exactly n decimal digits.
func appendDigits(dst []byte, v, n int) []byte {
	for range n {
		dst = append(dst, '0')
	}
	for i := len(dst) - 1; n > 0; i, n = i-1, n-1 {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
	return dst
}

func appendField(dst []byte, name, value string) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return appendString(dst, value)
}

// appendList writes at most MaxUIDs of list and adds the rest to omitted.
func appendList(dst []byte, name string, list []string, omitted int) ([]byte, int) {
	if len(list) == 0 {
		return dst, omitted
	}
	if len(list) > MaxUIDs {
		omitted += len(list) - MaxUIDs
		list = list[:MaxUIDs]
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, `":[`...)
	for i, s := range list {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, s)
	}
	return append(dst, ']'), omitted
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, cut to maxField bytes (on a rune
// boundary, marked with "…"). Control characters, U+2028/9 and invalid UTF-8
// are escaped or replaced as encoding/json does, so every line is valid JSON
// on one line whatever a client put in its certificate or identifiers.
func appendString(dst []byte, s string) []byte {
	cut := false
	if len(s) > maxField {
		n := maxField
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s, cut = s[:n], true
	}
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	if cut {
		dst = append(dst, "…"...)
	}
	return append(dst, '"')
}
