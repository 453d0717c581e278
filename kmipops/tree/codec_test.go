package tree

import (
	"bytes"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"
)

func TestRoundTripAllTypes(t *testing.T) {
	now := time.Unix(1700000000, 0).UTC()
	in := Struct(kmip14.TagRequestMessage,
		Int(kmip14.TagBatchCount, -7),
		Long(kmip14.TagUsageLimitsTotal, 1<<40),
		Enum(kmip14.TagOperation, uint32(kmip14.OperationCreate)),
		Bool(kmip14.TagAsynchronousIndicator, true),
		Text(kmip14.TagName, "héllo"),
		Bytes(kmip14.TagKeyMaterial, []byte{1, 2, 3}),
		Big(kmip14.TagModulus, big.NewInt(-12345)),
		Time(kmip14.TagActivationDate, now),
		Interval(kmip14.TagLeaseTime, 90*time.Second),
		Struct(kmip14.TagAttribute, Text(kmip14.TagAttributeName, "x-a")),
	)
	b, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(b, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	b2 := MustEncode(out)
	if !bytes.Equal(b, b2) {
		t.Fatalf("round trip differs")
	}
	if v, _ := out.Child(kmip14.TagBatchCount).IntValue(); v != -7 {
		t.Fatalf("int = %d", v)
	}
	if out.Child(kmip14.TagModulus).Big.Int64() != -12345 {
		t.Fatalf("big = %v", out.Child(kmip14.TagModulus).Big)
	}
	if v, _ := out.Child(kmip14.TagActivationDate).TimeValue(); !v.Equal(now) {
		t.Fatalf("time = %v", v)
	}
	if v, _ := out.Path(kmip14.TagAttribute, kmip14.TagAttributeName).TextValue(); v != "x-a" {
		t.Fatalf("path = %q", v)
	}
}

func TestDecodeRejects(t *testing.T) {
	deep := Text(kmip14.TagName, "x")
	for i := 0; i < 1000; i++ {
		deep = Struct(kmip14.TagAttribute, deep)
	}
	good := MustEncode(Struct(kmip14.TagRequestMessage, Text(kmip14.TagName, "abc")))
	cases := map[string][]byte{
		"empty":     {},
		"truncated": good[:len(good)-3],
		"trailing":  append(append([]byte{}, good...), 0),
		"badtag":    append([]byte{0x00}, good[1:]...),
		"deep":      MustEncode(deep),
		"badtype":   {0x42, 0x00, 0x01, 0x0c, 0, 0, 0, 0},
		"badintlen": {0x42, 0x00, 0x01, byte(ttlv.TypeInteger), 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0},
		"bool2":     {0x42, 0x00, 0x01, byte(ttlv.TypeBoolean), 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 2},
		"hugetext":  {0x42, 0x00, 0x01, byte(ttlv.TypeTextString), 0xff, 0xff, 0xff, 0xff, 'a'},
	}
	for name, b := range cases {
		if _, err := Decode(b, DefaultLimits); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(MustEncode(Struct(kmip14.TagRequestMessage, Text(kmip14.TagName, "abc"), Int(kmip14.TagBatchCount, 1))))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := Decode(b, DefaultLimits)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to the same bytes, except for padding
		// content, which the encoder zeroes.
		if _, err := Encode(n); err != nil {
			t.Fatalf("decoded tree does not encode: %v", err)
		}
	})
}
