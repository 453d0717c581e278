package kmipops

import (
	"bytes"
	"testing"
)

func TestUnpadPKCS5(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want []byte
		ok   bool
	}{
		{append(bytes.Repeat([]byte{7}, 15), 1), bytes.Repeat([]byte{7}, 15), true},
		{bytes.Repeat([]byte{16}, 16), []byte{}, true},
		{append([]byte{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}, 3, 3, 3), bytes.Repeat([]byte{9}, 13), true},
		{append(bytes.Repeat([]byte{0}, 13), 2, 3, 3), nil, false},
		{bytes.Repeat([]byte{0}, 16), nil, false},
		{bytes.Repeat([]byte{17}, 16), nil, false},
	} {
		got, ok := unpadPKCS5(c.in, 16)
		if ok != c.ok || (ok && !bytes.Equal(got, c.want)) {
			t.Errorf("unpad(%x) = %x, %v", c.in, got, ok)
		}
	}
}
