package kmipmsg

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

func sample() []byte {
	return tree.MustEncode(Request(Version{1, 4}, Options{}, Item(kmip14.OperationGet,
		tree.Text(kmip14.TagUniqueIdentifier, "uid-1"))))
}

// hdr is a message header: tag RequestMessage, the given type and length.
func hdr(typ ttlv.Type, length uint32) []byte {
	b := []byte{0x42, 0x00, 0x78, byte(typ), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[4:], length)
	return b
}

func TestReadWholeMessages(t *testing.T) {
	msg := sample()
	two := append(append([]byte{}, msg...), msg...)
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(two),
		"one byte": iotest.OneByteReader(bytes.NewReader(two)),
		"half":     iotest.HalfReader(bytes.NewReader(two)),
	} {
		fr := Reader{R: r, Max: int64(len(msg))}
		for i := range 2 {
			got, err := fr.Read(nil)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("%s: message %d = %x, %v", name, i, got, err)
			}
		}
		// Nothing was read past a message, so the stream ends cleanly here.
		if _, err := fr.Read(nil); err != io.EOF {
			t.Fatalf("%s: after the last message: %v, want io.EOF itself", name, err)
		}
	}
}

func TestReadErrors(t *testing.T) {
	msg := sample()
	cases := []struct {
		name string
		in   []byte
		max  int64
		want error
	}{
		{"empty stream", nil, 0, io.EOF},
		{"part of a header", msg[:3], 0, ErrTruncated},
		{"header only", msg[:HeaderLen], 0, ErrTruncated},
		{"truncated body", msg[:len(msg)-1], 0, ErrTruncated},
		{"bad tag", append([]byte{0x00}, msg[1:]...), 0, ErrBadHeader},
		{"not a structure", hdr(ttlv.TypeTextString, 8), 0, ErrBadHeader},
		{"oversize", msg, int64(len(msg) - 1), ErrTooLarge},
		{"4 GiB claim", hdr(ttlv.TypeStructure, 0xffffffff), 0, ErrTooLarge},
	}
	for _, c := range cases {
		fr := Reader{R: bytes.NewReader(c.in), Max: c.max}
		_, err := fr.Read(nil)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
		if c.want == ErrTruncated && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: err = %v, want it to wrap io.ErrUnexpectedEOF", c.name, err)
		}
		if c.want != io.EOF && errors.Is(err, io.EOF) {
			t.Errorf("%s: err = %v reads as a clean end", c.name, err)
		}
	}
	// The cap is checked from the header: the body is not read.
	in := bytes.NewReader(msg)
	fr := Reader{R: in, Max: int64(len(msg) - 1)}
	_, err := fr.Next()
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Size != int64(len(msg)) || tl.Max != int64(len(msg)-1) {
		t.Fatalf("oversize: %v", err)
	}
	if in.Len() != len(msg)-HeaderLen {
		t.Fatalf("oversize: read %d bytes, want the header only", len(msg)-in.Len())
	}
	// Zero Max is DefaultMax.
	fr = Reader{R: bytes.NewReader(hdr(ttlv.TypeStructure, DefaultMax-HeaderLen+1))}
	if _, err := fr.Next(); !errors.As(err, &tl) || tl.Max != DefaultMax {
		t.Fatalf("default cap: %v", err)
	}
	// A stream error before the first byte comes back as it is.
	boom := errors.New("boom")
	fr = Reader{R: iotest.ErrReader(boom)}
	if _, err := fr.Read(nil); err != boom {
		t.Fatalf("error before the first byte = %v, want it unwrapped", err)
	}
	// After it, the error is ErrTruncated and still the stream's.
	fr = Reader{R: io.MultiReader(bytes.NewReader(msg[:10]), iotest.ErrReader(os.ErrDeadlineExceeded))}
	if _, err := fr.Read(nil); !errors.Is(err, ErrTruncated) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("timeout mid-message = %v", err)
	}
	// Body without Next is refused.
	if _, err := (&Reader{R: bytes.NewReader(msg)}).Body(nil); err == nil {
		t.Fatal("Body without Next succeeded")
	}
}

// A zero-length frame is a message of just its header: an empty structure,
// which the processor answers (missing Request Header), not a framing error.
func TestZeroLengthFrame(t *testing.T) {
	in := append(hdr(ttlv.TypeStructure, 0), sample()...)
	fr := Reader{R: bytes.NewReader(in)}
	got, err := fr.Read(nil)
	if err != nil || !bytes.Equal(got, in[:HeaderLen]) {
		t.Fatalf("zero-length frame = %x, %v", got, err)
	}
	n, err := tree.Decode(got, tree.DefaultLimits)
	if err != nil || n.Tag != kmip14.TagRequestMessage || len(n.Children) != 0 {
		t.Fatalf("zero-length frame decodes to %v, %v", n, err)
	}
	if got, err := fr.Read(nil); err != nil || !bytes.Equal(got, sample()) {
		t.Fatalf("message after a zero-length frame = %x, %v", got, err)
	}
}

func TestStarted(t *testing.T) {
	msg := sample()
	calls := 0
	fr := Reader{R: iotest.OneByteReader(bytes.NewReader(msg)), Started: func() error { calls++; return nil }}
	if got, err := fr.Read(nil); err != nil || !bytes.Equal(got, msg) || calls != 1 {
		t.Fatalf("Read = %v (%d calls to Started)", err, calls)
	}
	// Not called when nothing arrives.
	if _, err := fr.Read(nil); err != io.EOF || calls != 1 {
		t.Fatalf("at the end: %v, %d calls", err, calls)
	}
	// Its error stops the read, as it is.
	stop := errors.New("draining")
	fr = Reader{R: bytes.NewReader(msg), Started: func() error { return stop }}
	if _, err := fr.Read(nil); err != stop {
		t.Fatalf("Started's error: %v", err)
	}
	// One byte, then the end: truncated, not a clean end.
	fr = Reader{R: bytes.NewReader(msg[:1]), Started: func() error { return nil }}
	if _, err := fr.Read(nil); !errors.Is(err, ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("one byte then EOF: %v", err)
	}
}

func TestBodyGrowsWithData(t *testing.T) {
	full := sample()
	// A large claim with little data allocates little.
	claim := append(hdr(ttlv.TypeStructure, 1<<20), make([]byte, 100)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fr := Reader{R: bytes.NewReader(claim), Max: 2 << 20}
	_, err := fr.Read(nil)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 256<<10 {
		t.Fatalf("allocated %d bytes for 100 received", d)
	}
	// A pooled buffer is reused when it is big enough, and regrown when not;
	// on error the buffer comes back too, so that it can be scrubbed.
	pooled := make([]byte, 0, 4096)
	fr = Reader{R: bytes.NewReader(full)}
	got, err := fr.Read(pooled)
	if err != nil || !bytes.Equal(got, full) || &got[:1][0] != &pooled[:1][0] {
		t.Fatalf("Read into a pooled buffer = %d bytes, %v", len(got), err)
	}
	big := append(hdr(ttlv.TypeStructure, 10000), bytes.Repeat([]byte{7}, 10000)...)
	fr = Reader{R: bytes.NewReader(big)}
	if got, err = fr.Read(make([]byte, 0, 16)); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("Read beyond the pooled buffer = %d bytes, %v", len(got), err)
	}
	fr = Reader{R: bytes.NewReader(full[:len(full)-4])}
	if got, err = fr.Read(pooled); err == nil || !bytes.Equal(got, full[:len(full)-4]) || &got[:1][0] != &pooled[:1][0] {
		t.Fatalf("truncated Read returned %d bytes, %v", len(got), err)
	}
}

func TestReadTree(t *testing.T) {
	n, err := ReadTree(bytes.NewReader(sample()), 0, tree.DefaultLimits)
	if err != nil || n.Tag != kmip14.TagRequestMessage {
		t.Fatalf("ReadTree = %v, %v", n, err)
	}
	// Well framed but not TTLV inside: a decode error, not a framing one.
	bad := append(hdr(ttlv.TypeStructure, 8), 0x42, 0x00, 0x01, 0x0c, 0, 0, 0, 0)
	if _, err := ReadTree(bytes.NewReader(bad), 0, tree.DefaultLimits); !errors.Is(err, tree.ErrMalformed) {
		t.Fatalf("ReadTree of bad TTLV = %v", err)
	}
}

// dripReader hands out its bytes three at a time, then times out, as a peer
// that went silent under a read deadline.
type dripReader struct {
	b []byte
}

func (d *dripReader) Read(p []byte) (int, error) {
	if len(d.b) == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	n := copy(p[:min(len(p), 3)], d.b)
	d.b = d.b[n:]
	return n, nil
}

// FuzzReader: whatever the bytes, Read never holds much more memory than
// arrived (a hostile header cannot make it allocate what it claims), and
// what it returns is exactly the framed message at the start of the input.
func FuzzReader(f *testing.F) {
	f.Add(sample(), int64(0))
	f.Add(hdr(ttlv.TypeStructure, 0xffffffff), int64(1<<30))
	f.Add(hdr(ttlv.TypeStructure, 0), int64(8))
	f.Add(append(hdr(ttlv.TypeStructure, 1<<20), 1, 2, 3), int64(2<<20))
	f.Add([]byte{0x54, 0, 0, 1, 0, 0, 0, 16}, int64(100))
	f.Fuzz(func(t *testing.T, in []byte, limit int64) {
		// Body starts at 64 KiB at most and at most doubles (append's size
		// rounding may add a quarter) only once all it had is filled.
		const step = 64 << 10
		fr := Reader{R: &dripReader{b: in}, Max: limit}
		got, err := fr.Read(nil)
		if bound := 3*max(len(in), step) + 8192; cap(got) > bound {
			t.Fatalf("buffer of %d bytes for %d received", cap(got), len(in))
		}
		if err != nil {
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrBadHeader) && !errors.Is(err, ErrTooLarge) &&
				!errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("unexpected error %v", err)
			}
			if len(in) >= HeaderLen && errors.Is(err, ErrTruncated) {
				size, _ := tree.MessageLen(in)
				if int64(len(in)) >= size {
					t.Fatalf("truncated, but the input holds all %d bytes: %v", size, err)
				}
			}
			return
		}
		size, herr := tree.MessageLen(in)
		if herr != nil || int64(len(got)) != size || !bytes.Equal(got, in[:size]) {
			t.Fatalf("Read = %d bytes for a header saying %d (%v)", len(got), size, herr)
		}
		if lim := cmp.Or(max(limit, 0), DefaultMax); size > lim {
			t.Fatalf("a %d-byte message passed a %d-byte cap", size, lim)
		}
	})
}
