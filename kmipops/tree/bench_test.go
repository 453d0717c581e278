package tree

import (
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"
)

// sampleRecord is shaped like the record kmipops stores for a generated
// AES-256 key (private record tags, ~20 attributes, the SymmetricKey body):
// about 50 nodes and 800 bytes, so the benchmarks measure what a Get decodes.
func sampleRecord() *Node {
	now := time.Unix(1700000000, 0)
	attr := func(name string, idx int32, v *Node) *Node {
		return Struct(kmip14.TagAttribute, Text(kmip14.TagAttributeName, name),
			Int(kmip14.TagAttributeIndex, idx), v)
	}
	v := kmip14.TagAttributeValue
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	return Struct(ttlv.Tag(0x540001),
		Int(ttlv.Tag(0x540002), 1),
		Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)),
		Text(kmip14.TagUniqueIdentifier, "3f1c2a9e-5b7d-4e21-9a0c-7d2f1e6b8c44"),
		attr("Cryptographic Algorithm", 0, Enum(v, uint32(kmip14.CryptographicAlgorithmAES))),
		attr("Cryptographic Length", 0, Int(v, 256)),
		attr("Cryptographic Usage Mask", 0, Int(v, 12)),
		attr("Name", 0, Struct(v, Text(kmip14.TagNameValue, "bench-key"),
			Enum(kmip14.TagNameType, uint32(kmip14.NameTypeUninterpretedTextString)))),
		attr("Object Type", 0, Enum(v, uint32(kmip14.ObjectTypeSymmetricKey))),
		attr("State", 0, Enum(v, uint32(kmip14.StatePreActive))),
		attr("Initial Date", 0, Time(v, now)),
		attr("Last Change Date", 0, Time(v, now)),
		attr("Original Creation Date", 0, Time(v, now)),
		attr("Digest", 0, Struct(v, Enum(kmip14.TagHashingAlgorithm, uint32(kmip14.HashingAlgorithmSHA_256)),
			Bytes(kmip14.TagDigestValue, key), Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)))),
		attr("Sensitive", 0, Bool(v, false)),
		attr("Extractable", 0, Bool(v, true)),
		attr("Fresh", 0, Bool(v, false)),
		attr("Lease Time", 0, Interval(v, time.Hour)),
		attr("Unique Identifier", 0, Text(v, "3f1c2a9e-5b7d-4e21-9a0c-7d2f1e6b8c44")),
		Struct(kmip14.TagSymmetricKey, Struct(kmip14.TagKeyBlock,
			Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)),
			Struct(kmip14.TagKeyValue, Bytes(kmip14.TagKeyMaterial, key)),
			Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmAES)),
			Int(kmip14.TagCryptographicLength, 256))),
	)
}

func countNodes(n *Node) int {
	c := 1
	for _, ch := range n.Children {
		c += countNodes(ch)
	}
	return c
}

func BenchmarkDecode(b *testing.B) {
	msg := MustEncode(sampleRecord())
	n, err := Decode(msg, DefaultLimits)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(countNodes(n)), "nodes")
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(msg, DefaultLimits); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	n := sampleRecord()
	b.SetBytes(int64(len(MustEncode(n))))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(n); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCloneKeyBody clones what a Get of an AES key serves: kmipops
// clones the stored body for every Get, as the response is the caller's.
func BenchmarkCloneKeyBody(b *testing.B) {
	n := Struct(kmip14.TagSymmetricKey, Struct(kmip14.TagKeyBlock,
		Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)),
		Struct(kmip14.TagKeyValue, Bytes(kmip14.TagKeyMaterial, make([]byte, 32))),
		Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmAES)),
		Int(kmip14.TagCryptographicLength, 256)))
	b.ReportAllocs()
	for b.Loop() {
		n.Clone()
	}
}
