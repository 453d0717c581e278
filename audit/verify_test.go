package audit

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// makeLog returns n chained lines, each with its '\n': an open record and
// events, as the sink writes them.
func makeLog(n int) [][]byte {
	var c chain
	out := make([][]byte, 0, n)
	for i := range n {
		var b []byte
		if i == 0 {
			b = c.appendControl(nil, time.Unix(0, 0), "open")
		} else {
			e := testEvent(i)
			if i%2 == 0 {
				e.CommonName = "bob"
			}
			b = c.appendEvent(nil, &e)
		}
		out = append(out, b)
	}
	return out
}

func join(ls [][]byte) []byte { return bytes.Join(ls, nil) }

func TestVerifyIntact(t *testing.T) {
	rep, err := Verify(bytes.NewReader(join(makeLog(10))))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 10 || rep.FirstSeq != 1 || rep.LastSeq != 10 || rep.FirstPrev != GenesisHash || rep.Closed || rep.Opens != 1 {
		t.Fatalf("%+v", rep)
	}
	if rep, err := Verify(strings.NewReader("")); err != nil || rep.Records != 0 {
		t.Fatalf("empty: %+v %v", rep, err)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	const n = 10
	cases := []struct {
		name   string
		tamper func(ls [][]byte) [][]byte
		line   int
		kind   Kind
	}{
		{"changed field", func(ls [][]byte) [][]byte {
			ls[4] = bytes.Replace(ls[4], []byte(`"cn":"bob"`), []byte(`"cn":"eve"`), 1)
			return ls
		}, 5, Changed},
		{"changed first line", func(ls [][]byte) [][]byte {
			ls[0] = bytes.Replace(ls[0], []byte(`"open"`), []byte(`"nope"`), 1)
			return ls
		}, 1, Changed},
		{"changed seq", func(ls [][]byte) [][]byte {
			ls[4] = bytes.Replace(ls[4], []byte(`"seq":5,`), []byte(`"seq":7,`), 1)
			return ls
		}, 5, Changed},
		{"changed prev", func(ls [][]byte) [][]byte {
			i := bytes.Index(ls[4], []byte(`"prev":"`)) + len(`"prev":"`)
			ls[4][i] = map[bool]byte{true: '1', false: '0'}[ls[4][i] == '0']
			return ls
		}, 5, Changed},
		{"removed middle line", func(ls [][]byte) [][]byte { return append(ls[:4:4], ls[5:]...) }, 5, Removed},
		{"removed two lines", func(ls [][]byte) [][]byte { return append(ls[:4:4], ls[6:]...) }, 5, Removed},
		{"truncated tail", func(ls [][]byte) [][]byte {
			ls[n-1] = ls[n-1][:len(ls[n-1])/2]
			return ls
		}, n, Truncated},
		{"last newline cut", func(ls [][]byte) [][]byte {
			ls[n-1] = ls[n-1][:len(ls[n-1])-1]
			return ls
		}, n, Truncated},
		{"swapped lines", func(ls [][]byte) [][]byte {
			ls[3], ls[4] = ls[4], ls[3]
			return ls
		}, 4, Reordered},
		{"line moved back", func(ls [][]byte) [][]byte {
			moved := ls[2]
			out := append(append(append([][]byte{}, ls[:2]...), ls[3:7]...), moved)
			return append(out, ls[7:]...)
		}, 3, Removed},
		{"copy inserted", func(ls [][]byte) [][]byte {
			return append(append(append([][]byte{}, ls[:5]...), ls[1]), ls[5:]...)
		}, 6, Inserted},
		{"forged line inserted", func(ls [][]byte) [][]byte {
			forged := bytes.Replace(ls[5], []byte(`"seq":6,`), []byte(`"seq":6,"x":1,`), 1)
			return append(append(append([][]byte{}, ls[:5]...), forged), ls[5:]...)
		}, 6, Inserted},
		{"garbage line", func(ls [][]byte) [][]byte {
			ls[6] = []byte("not json\n")
			return ls
		}, 7, Malformed},
		{"blank line", func(ls [][]byte) [][]byte {
			return append(append(append([][]byte{}, ls[:3]...), []byte("\n")), ls[3:]...)
		}, 4, Malformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Verify(bytes.NewReader(join(c.tamper(makeLog(n)))))
			var p *Problem
			if !errors.As(err, &p) {
				t.Fatalf("not detected: %v", err)
			}
			if p.Line != c.line || p.Kind != c.kind {
				t.Fatalf("%v, want %s at line %d", p, c.kind, c.line)
			}
		})
	}
}

func TestVerifyLongLine(t *testing.T) {
	ls := makeLog(3)
	ls[1] = append(bytes.Repeat([]byte("x"), maxLine+10), '\n')
	_, err := Verify(bytes.NewReader(join(ls)))
	var p *Problem
	if !errors.As(err, &p) || p.Line != 2 || p.Kind != Malformed {
		t.Fatalf("%v", err)
	}
}
