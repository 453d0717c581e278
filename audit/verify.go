package audit

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Report summarises a verified file (or the part before its first problem).
type Report struct {
	Records   int    // lines that chain correctly
	FirstSeq  uint64 // seq of the first line
	LastSeq   uint64 // seq of the last line: the next file starts at LastSeq+1
	FirstPrev string // what the first line chains to: GenesisHash, or the end of an earlier file
	LastHash  string // hash of the last line: the next file's first prev
	Opens     int    // open records: the sink (re)started or rotated into this file
	Closed    bool   // the last line is a close record
}

// Kind names what Verify found wrong.
type Kind string

const (
	Changed   Kind = "changed"   // a line's bytes differ from what was chained
	Removed   Kind = "removed"   // lines are missing (seq jumps)
	Inserted  Kind = "inserted"  // a line is not part of the chain
	Reordered Kind = "reordered" // lines are out of order
	Malformed Kind = "malformed" // not an audit record
	Truncated Kind = "truncated" // the last line has no end
	Unlinked  Kind = "unlinked"  // a file starts a new chain instead of going on from the one before
)

// Problem is the first thing Verify found wrong; Verify returns it as its
// error. Line is 1-based within the input Verify was reading.
type Problem struct {
	Line   int
	Kind   Kind
	Detail string
}

func (p *Problem) Error() string { return fmt.Sprintf("line %d: %s: %s", p.Line, p.Kind, p.Detail) }

// maxLine bounds one line; the sink's lines are a few hundred bytes.
const maxLine = 1 << 20

// Verify checks that every line of r is an audit record chained to the line
// before it. The first line is taken as it is (it may continue a rotated
// file: see VerifyAfter). It returns a *Problem naming the first bad line,
// or another error if r fails.
func Verify(r io.Reader) (Report, error) { return verify(r, nil) }

// VerifyAfter checks r like Verify and also that its first line continues
// the file that prev reports on (seq and hash), for rotated files checked
// in order. An empty r passes prev's end on.
func VerifyAfter(prev Report, r io.Reader) (Report, error) { return verify(r, &prev) }

type record struct {
	seq   uint64
	prev  [sha256.Size]byte
	hash  [sha256.Size]byte
	audit string
}

// parseRecord reads the fields the chain needs and hashes line (without its '\n').
func parseRecord(line []byte) (record, error) {
	var raw struct {
		Seq   *uint64 `json:"seq"`
		Prev  *string `json:"prev"`
		Audit string  `json:"audit"`
	}
	if err := json.Unmarshal(line, &raw); err != nil {
		return record{}, fmt.Errorf("not an audit record: %v", err)
	}
	if raw.Seq == nil || *raw.Seq == 0 {
		return record{}, errors.New("not an audit record: no seq")
	}
	r := record{seq: *raw.Seq, audit: raw.Audit, hash: sha256.Sum256(line)}
	if raw.Prev == nil || len(*raw.Prev) != 2*sha256.Size {
		return record{}, errors.New("not an audit record: no prev hash")
	}
	if _, err := hex.Decode(r.prev[:], []byte(*raw.Prev)); err != nil {
		return record{}, errors.New("not an audit record: prev is not hex")
	}
	return r, nil
}

func follows(a, b *record) bool { return b.prev == a.hash && b.seq == a.seq+1 }

func verify(r io.Reader, after *Report) (rep Report, err error) {
	lr := &lineReader{r: bufio.NewReaderSize(r, 64<<10)}
	var last *record
	if after != nil {
		rep.LastSeq, rep.LastHash = after.LastSeq, after.LastHash
	}
	defer func() {
		if last != nil {
			rep.LastSeq, rep.LastHash = last.seq, hex.EncodeToString(last.hash[:])
		}
	}()
	for {
		line, complete, err := lr.next()
		if errors.Is(err, io.EOF) {
			return rep, nil
		}
		if errors.Is(err, errLineTooLong) {
			return rep, &Problem{Line: lr.n + 1, Kind: Malformed, Detail: "longer than 1 MiB"}
		}
		if err != nil {
			return rep, err
		}
		i := lr.n
		b, perr := parseRecord(line)
		switch {
		case !complete:
			return rep, &Problem{Line: i, Kind: Truncated, Detail: "the last line has no newline: the file was cut"}
		case perr != nil:
			return rep, &Problem{Line: i, Kind: Malformed, Detail: perr.Error()}
		case last == nil:
			if after != nil && after.LastHash != "" {
				if p := checkLink(after, &b); p != nil {
					return rep, p
				}
			}
			rep.FirstSeq, rep.FirstPrev = b.seq, hex.EncodeToString(b.prev[:])
		case !follows(last, &b):
			return rep, classify(i, last, &b, lr.lookahead())
		}
		rep.Records++
		rep.Closed = b.audit == "close"
		if b.audit == "open" {
			rep.Opens++
		}
		last = &b
	}
}

// classify explains why line i (b) does not follow line i-1 (a); c is line
// i+1 when it is a record.
func classify(i int, a, b, c *record) *Problem {
	linked, seqOK := b.prev == a.hash, b.seq == a.seq+1
	switch {
	case linked:
		return &Problem{i, Changed, fmt.Sprintf("seq %d where %d was written (its prev still matches line %d)", b.seq, a.seq+1, i-1)}
	case c != nil && follows(a, c) && follows(c, b):
		return &Problem{i, Reordered, fmt.Sprintf("lines %d and %d are swapped (seq %d before %d)", i, i+1, b.seq, c.seq)}
	case c != nil && follows(a, c):
		return &Problem{i, Inserted, fmt.Sprintf("not part of the chain: line %d continues line %d", i+1, i-1)}
	case b.seq == a.seq && b.prev == a.prev:
		return &Problem{i - 1, Inserted, fmt.Sprintf("lines %d and %d both claim seq %d after the same line: one was inserted", i-1, i, b.seq)}
	case seqOK && c != nil && c.seq == b.seq+1 && c.prev != b.hash:
		// Line i's own bytes changed too (its prev, at least): line i+1
		// does not chain to it either.
		return &Problem{i, Changed, fmt.Sprintf("its prev names neither line %d nor anything line %d chains to", i-1, i+1)}
	case seqOK:
		return &Problem{i - 1, Changed, fmt.Sprintf("its hash is not the prev that line %d names", i)}
	case b.seq > a.seq:
		return &Problem{i, Removed, fmt.Sprintf("seq %d..%d missing before this line", a.seq+1, b.seq-1)}
	default:
		return &Problem{i, Reordered, fmt.Sprintf("seq %d after seq %d", b.seq, a.seq)}
	}
}

// checkLink checks that b, the first line of a file, continues the file
// reported in after.
func checkLink(after *Report, b *record) *Problem {
	prev := hex.EncodeToString(b.prev[:])
	linked, want := prev == after.LastHash, after.LastSeq+1
	switch {
	case linked && b.seq == want:
		return nil
	case prev == GenesisHash && b.seq == 1:
		return &Problem{1, Unlinked, fmt.Sprintf("starts a new chain instead of going on from seq %d of the file before: files out of order, or the log was started afresh", after.LastSeq)}
	case linked:
		return &Problem{1, Changed, fmt.Sprintf("seq %d where %d was written", b.seq, want)}
	case b.seq == want:
		return &Problem{1, Changed, "does not chain to the last line of the file before: that line, or this one's prev, was changed"}
	case b.seq > want:
		return &Problem{1, Removed, fmt.Sprintf("seq %d..%d missing between the file before and this one", want, b.seq-1)}
	default:
		return &Problem{1, Reordered, fmt.Sprintf("seq %d after seq %d: files out of order?", b.seq, after.LastSeq)}
	}
}

var errLineTooLong = errors.New("line too long")

// lineReader yields lines of any length up to maxLine, counting them.
type lineReader struct {
	r   *bufio.Reader
	n   int
	buf []byte
}

// next returns the next line without its '\n' and whether it had one; the
// slice is reused by the next call. io.EOF means no bytes were left.
func (lr *lineReader) next() ([]byte, bool, error) {
	lr.buf = lr.buf[:0]
	for {
		chunk, err := lr.r.ReadSlice('\n')
		if len(lr.buf)+len(chunk) > maxLine+1 {
			return nil, false, errLineTooLong
		}
		lr.buf = append(lr.buf, chunk...)
		switch {
		case err == nil:
			lr.n++
			return lr.buf[:len(lr.buf)-1], true, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(lr.buf) > 0:
			lr.n++
			return lr.buf, false, nil
		default:
			return nil, false, err
		}
	}
}

// lookahead parses the next line, or returns nil.
func (lr *lineReader) lookahead() *record {
	line, complete, err := lr.next()
	if err != nil || !complete {
		return nil
	}
	r, err := parseRecord(line)
	if err != nil {
		return nil
	}
	return &r
}
