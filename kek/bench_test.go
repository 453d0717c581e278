package kek

import (
	"context"
	"testing"

	"github.com/kmipd/kmipd/kek/kektest"
)

func benchKeyring(b *testing.B) (*Keyring, []byte) {
	f := newFixture(b, kektest.NewMasterKeys(), Config{})
	payload := make([]byte, 1024)
	f.seal("alice", "uid", "warm") // pKEK cached: the benchmarks measure steady state
	return f.k, payload
}

func BenchmarkSealCached(b *testing.B) {
	k, payload := benchKeyring(b)
	ctx := context.Background()
	aad := []byte("uid")
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := k.Seal(ctx, "alice", aad, payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkOpenCached(b *testing.B) {
	k, payload := benchKeyring(b)
	ctx := context.Background()
	aad := []byte("uid")
	sealed, err := k.Seal(ctx, "alice", aad, payload)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := k.Open(ctx, "alice", aad, sealed); err != nil {
				b.Fatal(err)
			}
		}
	})
}
