// Package kmipmsg is KMIP's message layer over the TTLV tree (kmipops/tree):
// it reads one framed message off a stream with its size checked before
// allocation, builds Request and Response Messages and their headers, and
// reads the results of a response. The server, the conformance replayer,
// the load generator and the tests all frame and build messages here.
package kmipmsg

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// HeaderLen is the size of the TTLV header that starts every message.
const HeaderLen = tree.HeaderLen

// DefaultMax is the size cap of a Reader whose Max is zero: far above any
// response kmipd or PyKMIP sends, far below what a hostile header can claim.
const DefaultMax = 16 << 20

var (
	// ErrBadHeader: the header cannot start a KMIP message, so its length
	// cannot be trusted and there is no next message to find.
	ErrBadHeader = errors.New("kmipmsg: unparseable message header")
	// ErrTruncated: the stream failed or ended after a message's first byte
	// and before its last. The stream's error is wrapped too (an early end
	// is io.ErrUnexpectedEOF), so timeouts and resets stay recognisable.
	ErrTruncated = errors.New("kmipmsg: message truncated")
	// ErrTooLarge matches every *TooLargeError.
	ErrTooLarge = errors.New("kmipmsg: message too large")
)

// TooLargeError is a header claiming more than the cap. Nothing was
// allocated for it and the body is still unread.
type TooLargeError struct{ Size, Max int64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("kmipmsg: message of %d bytes exceeds the %d-byte cap", e.Size, e.Max)
}

// Is makes errors.Is(err, ErrTooLarge) true.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// Reader reads framed messages from R, one at a time. It never reads past
// the message it is reading, so the next one stays in R.
type Reader struct {
	R io.Reader
	// Max caps a message's total size (header included), checked from the
	// header before anything is allocated; zero means DefaultMax.
	Max int64
	// Started, when set, runs once the first byte of a message has arrived,
	// before the rest is read: the server switches from its idle deadline
	// to its read deadline there. Its error ends the read and is returned
	// as it is.
	Started func() error

	hdr  [HeaderLen]byte
	size int64 // of the message whose header was read last; 0 when none
}

// Next reads the next message's header and returns the message's total
// size, header included. Its errors:
//   - io.EOF, as it is: R ended cleanly before the first byte;
//   - any other error of R before the first byte, as it is (an idle timeout);
//   - ErrTruncated: R failed or ended within the header;
//   - ErrBadHeader: the header cannot start a message;
//   - *TooLargeError: the header claims more than Max.
func (r *Reader) Next() (int64, error) {
	r.size = 0
	first := 0
	if r.Started != nil {
		// The first byte alone, so Started runs as soon as it arrives.
		if _, err := io.ReadFull(r.R, r.hdr[:1]); err != nil {
			return 0, err
		}
		if err := r.Started(); err != nil {
			return 0, err
		}
		first = 1
	}
	if n, err := io.ReadFull(r.R, r.hdr[first:]); err != nil {
		if first+n == 0 {
			return 0, err
		}
		return 0, truncated(err, first+n, HeaderLen)
	}
	size, err := tree.MessageLen(r.hdr[:])
	if err != nil {
		return 0, fmt.Errorf("%w %x: %w", ErrBadHeader, r.hdr, err)
	}
	max := r.Max
	if max <= 0 {
		max = DefaultMax
	}
	if size > max {
		return 0, &TooLargeError{Size: size, Max: max}
	}
	r.size = size
	return size, nil
}

// Body reads the rest of the message whose header Next returned into buf,
// from its start (buf may be nil; its capacity is reused and regrown). The
// buffer grows with the bytes that actually arrive, so a peer that claims
// a large message and sends nothing holds little memory. On error it is
// ErrTruncated, and the buffer is still returned, so that a pooled one can
// be scrubbed.
func (r *Reader) Body(buf []byte) ([]byte, error) {
	const step = 64 << 10
	n := int(r.size)
	if n == 0 {
		return buf[:0], errors.New("kmipmsg: Body without a header read by Next")
	}
	r.size = 0
	if cap(buf) < min(n, step) {
		buf = make([]byte, 0, min(n, step))
	}
	buf = append(buf[:0], r.hdr[:]...)
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n, 2*cap(buf))-len(buf))
		}
		m, err := r.R.Read(buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < n {
			return buf, truncated(err, len(buf), n)
		}
	}
	return buf, nil
}

// Read reads one whole message into buf (as Body does) with Next's and
// Body's errors.
func (r *Reader) Read(buf []byte) ([]byte, error) {
	if _, err := r.Next(); err != nil {
		return buf[:0], err
	}
	return r.Body(buf)
}

// ReadTree reads one message of at most max bytes (zero: DefaultMax) from
// r and decodes it within lim, for clients that want the tree.
func ReadTree(r io.Reader, max int64, lim tree.Limits) (*tree.Node, error) {
	fr := Reader{R: r, Max: max}
	b, err := fr.Read(nil)
	if err != nil {
		return nil, err
	}
	return tree.Decode(b, lim)
}

func truncated(err error, got, want int) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w after %d of %d bytes: %w", ErrTruncated, got, want, err)
}
