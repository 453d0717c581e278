package kek

import (
	"bytes"
	"strings"
	"testing"
)

// TestRecordV3RoundTrip: entries naming their master keys are written as
// version 3 and read back with their labels; unlabelled ones keep versions
// 1 and 2; a truncated or over-long label is refused.
func TestRecordV3RoundTrip(t *testing.T) {
	es := []pkekEntry{
		{gen: 2, wrapped: []byte("wrapped-2"), mac: []byte("mac-2"), mkek: "kmipd-mkek/gen-2", hmac: ""},
		{gen: 1, wrapped: []byte("wrapped-1"), mac: []byte("mac-1"), mkek: "", hmac: "kmipd-hmac/gen-3"},
	}
	b, err := encodeRecord(es)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != recordV3 {
		t.Fatalf("labelled record written as version %d", b[0])
	}
	got, err := decodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(es) {
		t.Fatalf("%d entries, want %d", len(got), len(es))
	}
	for i, e := range es {
		g := got[i]
		if g.gen != e.gen || g.mkek != e.mkek || g.hmac != e.hmac || !bytes.Equal(g.wrapped, e.wrapped) || !bytes.Equal(g.mac, e.mac) {
			t.Fatalf("entry %d: %+v, want %+v", i, g, e)
		}
	}
	if gen, pending, err := RecordInfo(b); err != nil || gen != 2 || !pending {
		t.Fatalf("RecordInfo: %d %v %v", gen, pending, err)
	}
	for n := 1; n < len(b); n++ {
		if _, err := decodeRecord(b[:n]); err == nil {
			t.Fatalf("record truncated to %d bytes accepted", n)
		}
	}
	plain := []pkekEntry{{gen: 0, wrapped: []byte("w"), mac: []byte("m")}}
	if b, err := encodeRecord(plain); err != nil || b[0] != recordV1 {
		t.Fatalf("unlabelled generation 0: %v %v", b, err)
	}
	plain[0].gen = 1
	if b, err := encodeRecord(plain); err != nil || b[0] != recordV2 {
		t.Fatalf("unlabelled generation 1: %v %v", b, err)
	}
	long := []pkekEntry{{gen: 1, wrapped: []byte("w"), mac: []byte("m"), mkek: strings.Repeat("x", 256)}}
	if _, err := encodeRecord(long); err == nil {
		t.Fatal("a 256-byte label encoded")
	}
}
