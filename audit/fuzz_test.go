package audit

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzVerify: any input gives a report or an error, never a panic, and an
// input that passes has exactly as many records as lines.
func FuzzVerify(f *testing.F) {
	valid := join(makeLog(5))
	f.Add(valid)
	f.Add(valid[:len(valid)-7])
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"seq":1,"prev":"` + GenesisHash + `"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := Verify(bytes.NewReader(data))
		var p *Problem
		if err != nil && !errors.As(err, &p) {
			t.Fatalf("error that is not a Problem: %v", err)
		}
		if err == nil && rep.Records != bytes.Count(data, []byte("\n")) {
			t.Fatalf("intact with %d records for %d lines", rep.Records, bytes.Count(data, []byte("\n")))
		}
		if p != nil && (p.Line < 1 || p.Line > bytes.Count(data, []byte("\n"))+1) {
			t.Fatalf("problem at line %d of %d", p.Line, bytes.Count(data, []byte("\n"))+1)
		}
	})
}

// FuzzTamper: changing any byte of a line that has a line after it is
// always found.
func FuzzTamper(f *testing.F) {
	f.Add(uint16(10), byte('x'))
	f.Add(uint16(0), byte('\n'))
	f.Add(uint16(200), byte('"'))
	f.Fuzz(func(t *testing.T, pos uint16, b byte) {
		ls := makeLog(6)
		data := join(ls)
		limit := len(data) - len(ls[len(ls)-1]) // the last line has no witness
		i := int(pos) % limit
		if data[i] == b {
			return
		}
		data[i] = b
		_, err := Verify(bytes.NewReader(data))
		var p *Problem
		if !errors.As(err, &p) {
			t.Fatalf("byte %d changed to %q not detected: %v", i, b, err)
		}
	})
}
