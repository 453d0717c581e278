package kmipops

import (
	"context"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// In-process throughput of Process for the crypto hot path next to Create
// and Get: real Badger and kek over SoftHSM, no network or TTLV framing.
// Run: go test -run '^$' -bench 'BenchmarkProcess' ./kmipops/

func benchProcess(b *testing.B, req *tree.Node) {
	e := newRealEnv(b, Options{})
	benchProcessEnv(b, e, req)
}

func benchProcessEnv(b *testing.B, e *env, req *tree.Node) {
	ctx := context.Background()
	check := func(resp *tree.Node) {
		if s, _ := resp.Path(kmip14.TagBatchItem, kmip14.TagResultStatus).EnumValue(); s != uint32(kmip14.ResultStatusSuccess) {
			b.Fatalf("failed: %s", resp)
		}
	}
	check(e.p.Process(ctx, alice, req)) // warm the owner's pKEK
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			check(e.p.Process(ctx, alice, req))
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				check(e.p.Process(ctx, alice, req))
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
}

// BenchmarkProcessEncryptGCM encrypts 256 bytes with AES-256-GCM under a
// managed key, the server making the IV.
func BenchmarkProcessEncryptGCM(b *testing.B) {
	e := newRealEnv(b, Options{})
	uid := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 32))
	benchProcessEnv(b, e, reqMsg(e.v, item(kmip14.OperationEncrypt, uidF(uid),
		crParams(crMode(kmip14.BlockCipherModeGCM)), crData(make([]byte, 256)))))
}

// BenchmarkProcessGet gets one key over and over: served from the cache of
// opened objects (reading the stored record in place, or through a store
// that only copies), and with that cache off.
func BenchmarkProcessGet(b *testing.B) {
	for _, c := range []struct {
		name     string
		opts     Options
		copyOnly bool
	}{
		{"cached", Options{}, false},
		{"cached-copying-store", Options{}, true},
		{"uncached", Options{ObjectCacheBytes: -1}, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			e := newRealEnv(b, c.opts)
			if c.copyOnly {
				e.p = NewProcessor(copyingStore{e.st}, e.kr, c.opts, nil)
			}
			uid := e.create(alice)
			benchProcessEnv(b, e, reqMsg(e.v, item(kmip14.OperationGet, uidF(uid))))
		})
	}
}

// copyingStore hides the store's storage.Viewer.
type copyingStore struct{ storage.Store }

func BenchmarkProcessCreate(b *testing.B) {
	benchProcess(b, reqMsg(version{1, 4}, createAES(256)))
}
