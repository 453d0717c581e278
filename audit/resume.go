package audit

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
)

// resume finds where the chain of an existing log file stands: the seq and
// hash of its last record. fragment reports a last line without its '\n'
// (a crash mid-write), which the caller ends before appending. A file that
// is empty starts a new chain; one whose last line is not an audit record
// is refused, so that a wrong path never gets audit lines appended to it.
func resume(f *os.File) (c chain, fragment bool, err error) {
	st, err := f.Stat()
	if err != nil {
		return chain{}, false, err
	}
	size := st.Size()
	if size == 0 {
		return chain{}, false, nil
	}
	// A record is far shorter than maxLine; reading twice that holds the
	// last complete line even behind a fragment of the same size.
	n := min(size, 2*maxLine+2)
	tail := make([]byte, n)
	if _, err := f.ReadAt(tail, size-n); err != nil {
		return chain{}, false, err
	}
	whole := n == size // tail starts at the file's first byte
	if tail[len(tail)-1] != '\n' {
		fragment = true
		cut := bytes.LastIndexByte(tail, '\n')
		start := cut + 1
		if cut >= 0 || whole {
			// A fragment that is a whole record but for its '\n' is kept
			// as the last line: nothing of it was lost.
			if r, err := parseRecord(tail[start:]); err == nil {
				return chain{seq: r.seq, prev: r.hash}, true, nil
			}
		}
		if cut < 0 {
			if whole {
				return chain{}, true, nil // nothing but a fragment
			}
			return chain{}, false, errors.New("does not end with a kmipd audit record")
		}
		tail = tail[:cut+1]
	}
	line := tail[:len(tail)-1]
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	} else if !whole {
		return chain{}, false, errors.New("does not end with a kmipd audit record")
	}
	r, err := parseRecord(line)
	if err != nil {
		return chain{}, false, fmt.Errorf("does not end with a kmipd audit record (%v); not appending to it", err)
	}
	return chain{seq: r.seq, prev: sha256.Sum256(line)}, fragment, nil
}
