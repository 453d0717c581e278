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
	f.Add(MustEncode(sampleRecord()))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := Decode(b, DefaultLimits)
		if err != nil {
			return
		}
		// The in-place view agrees with the tree on whatever decodes.
		sameAsNode(t, Item(b), n)
		// Whatever decodes must re-encode to the same bytes, except for padding
		// content, which the encoder zeroes.
		got, err := Encode(n)
		if err != nil {
			t.Fatalf("decoded tree does not encode: %v", err)
		}
		if want := kmipgoEncode(t, n); !bytes.Equal(got, want) {
			t.Fatalf("Encode differs from kmip-go:\n got %x\nwant %x", got, want)
		}
		// The re-encoding is canonical: it decodes and encodes to itself.
		n2, err := Decode(got, DefaultLimits)
		if err != nil {
			t.Fatalf("re-encoded tree does not decode: %v", err)
		}
		if again := MustEncode(n2); !bytes.Equal(again, got) {
			t.Fatalf("round trip differs:\n got %x\nwant %x", again, got)
		}
	})
}

// kmipgoEncode is the reference: the kmip-go encoder tree.Encode used to
// delegate to, which Encode must match byte for byte.
func kmipgoEncode(t testing.TB, n *Node) []byte {
	var buf bytes.Buffer
	e := ttlv.NewEncoder(&buf)
	var enc func(n *Node) error
	enc = func(n *Node) error {
		switch n.Type {
		case ttlv.TypeStructure:
			return e.EncodeStructure(n.Tag, func(*ttlv.Encoder) error {
				for _, c := range n.Children {
					if err := enc(c); err != nil {
						return err
					}
				}
				return nil
			})
		case ttlv.TypeInteger:
			e.EncodeInteger(n.Tag, int32(n.Int))
		case ttlv.TypeLongInteger:
			e.EncodeLongInteger(n.Tag, n.Int)
		case ttlv.TypeEnumeration:
			e.EncodeEnumeration(n.Tag, uint32(n.Int))
		case ttlv.TypeInterval:
			e.EncodeInterval(n.Tag, time.Duration(n.Int)*time.Second)
		case ttlv.TypeBoolean:
			e.EncodeBoolean(n.Tag, n.Int != 0)
		case ttlv.TypeBigInteger:
			v := n.Big
			if v == nil {
				v = new(big.Int)
			}
			e.EncodeBigInteger(n.Tag, v)
		case ttlv.TypeTextString:
			e.EncodeTextString(n.Tag, n.Text)
		case ttlv.TypeByteString:
			e.EncodeByteString(n.Tag, n.Bytes)
		case ttlv.TypeDateTime:
			e.EncodeDateTime(n.Tag, n.Time)
		case ttlv.TypeDateTimeExtended:
			e.EncodeDateTimeExtended(n.Tag, n.Time)
		default:
			t.Fatalf("reference encoder: type %v", n.Type)
		}
		return nil
	}
	if err := enc(n); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestEncodeMatchesKMIPGo(t *testing.T) {
	bigs := []*big.Int{nil, big.NewInt(0), big.NewInt(1), big.NewInt(-1), big.NewInt(127), big.NewInt(128),
		big.NewInt(-128), big.NewInt(-129), big.NewInt(255), big.NewInt(-256), big.NewInt(1 << 62),
		new(big.Int).Lsh(big.NewInt(1), 64), new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 64)),
		new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 63)), new(big.Int).Lsh(big.NewInt(3), 200)}
	in := Struct(kmip14.TagRequestMessage,
		Int(kmip14.TagBatchCount, -7),
		Long(kmip14.TagUsageLimitsTotal, -1<<40),
		Enum(kmip14.TagOperation, 0xffffffff),
		Bool(kmip14.TagAsynchronousIndicator, true),
		&Node{Tag: kmip14.TagAsynchronousIndicator, Type: ttlv.TypeBoolean, Int: 5},
		Text(kmip14.TagName, ""), Text(kmip14.TagName, "12345678"), Text(kmip14.TagName, "héllo wörld"),
		Bytes(kmip14.TagKeyMaterial, nil), Bytes(kmip14.TagKeyMaterial, []byte{}),
		Bytes(kmip14.TagKeyMaterial, make([]byte, 33)),
		Time(kmip14.TagActivationDate, time.Unix(-5, 0)),
		&Node{Tag: kmip14.TagActivationDate, Type: ttlv.TypeDateTimeExtended, Time: time.Unix(1700000000, 123456789)},
		Interval(kmip14.TagLeaseTime, 90*time.Second),
		&Node{Tag: kmip14.TagLeaseTime, Type: ttlv.TypeInterval, Int: 1 << 40},
		Struct(kmip14.TagAttribute),
		Struct(kmip14.TagAttribute, Struct(kmip14.TagAttribute, Text(kmip14.TagAttributeName, "x-a"))),
		sampleRecord(),
	)
	for _, v := range bigs {
		in.Add(&Node{Tag: kmip14.TagModulus, Type: ttlv.TypeBigInteger, Big: v})
	}
	want := kmipgoEncode(t, in)
	got, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Encode differs from kmip-go:\n got %x\nwant %x", got, want)
	}
	prefix := []byte("prefix")
	got2, err := AppendEncode(prefix, in)
	if err != nil || !bytes.Equal(got2[:6], prefix) || !bytes.Equal(got2[6:], want) {
		t.Fatalf("AppendEncode = %v, %x", err, got2)
	}
	if l, err := EncodedLen(in); err != nil || l != len(want) {
		t.Fatalf("EncodedLen = %d, %v; want %d", l, err, len(want))
	}
	if _, err := Encode(Struct(kmip14.TagAttribute, &Node{Tag: kmip14.TagName, Type: 0x0c})); err == nil {
		t.Fatal("Encode of an unknown type succeeded")
	}
	// Every BigInteger encoding decodes back to its value.
	for _, v := range bigs[1:] {
		n, err := Decode(MustEncode(&Node{Tag: kmip14.TagModulus, Type: ttlv.TypeBigInteger, Big: v}), DefaultLimits)
		if err != nil || n.Big.Cmp(v) != 0 {
			t.Fatalf("big %v decoded as %v, %v", v, n.Big, err)
		}
	}
}

// Decoded trees share slabs; editing one node must never show in another.
func TestDecodedTreeIsIndependent(t *testing.T) {
	b := MustEncode(sampleRecord())
	n, err := Decode(b, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	clear(b) // the tree must not alias the input
	attrs := n.All(kmip14.TagAttribute)
	first, second := attrs[0], attrs[1]
	before := second.String()
	first.Add(Text(kmip14.TagAttributeName, "extra"), Text(kmip14.TagAttributeName, "more"))
	first.Child(kmip14.TagAttributeName).Text += "!"
	if got := second.String(); got != before {
		t.Fatalf("appending to one node's children changed its sibling:\n%s\n%s", before, got)
	}
	body := n.Child(kmip14.TagSymmetricKey)
	km := body.Path(kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial)
	digest := attrs[9].Path(kmip14.TagAttributeValue, kmip14.TagDigestValue)
	if digest == nil || km == nil {
		t.Fatal("sample record lacks its digest or key material")
	}
	d0 := bytes.Clone(digest.Bytes)
	km.Bytes = append(km.Bytes, 0xAA)
	if !bytes.Equal(digest.Bytes, d0) {
		t.Fatal("appending to one byte string changed another")
	}
	if len(n.Children[0].Children) != 0 || n.Children[0].Children != nil {
		t.Fatal("a scalar has children")
	}
	if e, _ := Decode(MustEncode(Struct(kmip14.TagAttribute)), DefaultLimits); e.Children != nil {
		t.Fatal("an empty structure decodes with a non-nil child list")
	}
	if e, _ := Decode(MustEncode(Bytes(kmip14.TagKeyMaterial, []byte{})), DefaultLimits); e.Bytes == nil {
		t.Fatal("an empty byte string decodes as nil, which Encode would drop")
	}
}

func TestCloneKeepsEmptyByteString(t *testing.T) {
	n := Struct(kmip14.TagRequestPayload, Bytes(kmip14.TagData, []byte{}))
	c := n.Clone()
	if got := c.Child(kmip14.TagData).Bytes; got == nil {
		t.Fatal("Clone turned an empty byte string into nil")
	}
	b1, b2 := MustEncode(n), MustEncode(c)
	if !bytes.Equal(b1, b2) {
		t.Fatalf("clone encodes differently:\n%x\n%x", b1, b2)
	}
}

// Validate must agree with Decode on every input, and allocate nothing on a
// valid one.
func TestValidateAgreesWithDecode(t *testing.T) {
	good := MustEncode(Struct(kmip14.TagRequestMessage, Text(kmip14.TagName, "abc"), Bytes(kmip14.TagData, []byte{1}), Int(kmip14.TagBatchCount, 1)))
	inputs := [][]byte{good, {}, good[:len(good)-1], append(append([]byte{}, good...), 0)}
	for i := range good {
		b := append([]byte{}, good...)
		b[i] ^= 0xff
		inputs = append(inputs, b)
	}
	for i, b := range inputs {
		_, derr := Decode(b, DefaultLimits)
		verr := Validate(b, DefaultLimits)
		if (derr == nil) != (verr == nil) || (derr != nil && derr.Error() != verr.Error()) {
			t.Fatalf("input %d: Decode err %v, Validate err %v", i, derr, verr)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = Validate(good, DefaultLimits) }); n != 0 {
		t.Fatalf("Validate allocates %v times on a valid message", n)
	}
}
