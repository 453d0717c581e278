package kmipops

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// BenchmarkProcessGetMiss is a Get that misses kmipd's caches, as every Get
// does once the keys read outnumber them (a million objects, issue 20): N
// keys over real Badger and kek (SoftHSM), read in a shuffled cycle, with
// the store's value cache and the cache of opened objects small enough
// that nearly every read opens its record ("small-caches", which also
// fills and evicts as a server's would), or both off ("no-caches"). Each
// op decodes the request message, processes it and encodes the response,
// as the server does between its reads and writes. cpu-ns/op is the
// process's CPU time per Get (GC included), steadier than ns/op on a
// shared machine.
// Run: go test -run '^$' -bench BenchmarkProcessGetMiss -count 6 ./kmipops/
func BenchmarkProcessGetMiss(b *testing.B) {
	const n = 2048
	for _, c := range []struct {
		name                    string
		storeBytes, objectBytes int
	}{
		{"small-caches", 128 << 10, 256 << 10},
		{"no-caches", -1, -1},
	} {
		b.Run(c.name, func(b *testing.B) {
			dir, noSync := b.TempDir(), false
			open := func() storage.Store {
				st, err := storage.OpenBadger(dir, storage.BadgerOptions{GCInterval: -1, SyncWrites: &noSync, CacheBytes: c.storeBytes}, hclog.NewNullLogger())
				if err != nil {
					b.Fatalf("OpenBadger: %v", err)
				}
				return st
			}
			st := open()
			e := envOver(b, dir, st, sharedHSM(b), Options{ObjectCacheBytes: c.objectBytes})
			reqs := make([][]byte, n)
			for i := range reqs {
				uid := e.create(alice)
				e.do(alice, item(kmip14.OperationGet, uidF(uid))) // Fresh turns false: later Gets only read
				var err error
				if reqs[i], err = tree.Encode(reqMsg(e.v, item(kmip14.OperationGet, uidF(uid)))); err != nil {
					b.Fatal(err)
				}
			}
			// Reopened, the records are in a table, not the memtable, so a
			// read goes through a Bloom filter, a table index and a block as
			// at a million objects.
			if err := st.Close(); err != nil {
				b.Fatal(err)
			}
			st = open()
			b.Cleanup(func() { st.Close() })
			e = envOver(b, dir, st, sharedHSM(b), Options{ObjectCacheBytes: c.objectBytes})
			rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
			ctx := context.Background()
			var out []byte
			get := func(msg []byte) {
				req, err := tree.Decode(msg, tree.DefaultLimits)
				if err != nil {
					b.Fatal(err)
				}
				resp := e.p.Process(ctx, alice, req)
				if s, _ := resp.Path(kmip14.TagBatchItem, kmip14.TagResultStatus).EnumValue(); s != uint32(kmip14.ResultStatusSuccess) {
					b.Fatalf("failed: %s", resp)
				}
				if out, err = tree.AppendEncode(out[:0], resp); err != nil {
					b.Fatal(err)
				}
			}
			for _, r := range reqs { // warm: the caches hold what a server's would
				get(r)
			}
			b.ReportAllocs()
			i, cpu0 := 0, time.Duration(0)
			for b.Loop() {
				if i == 0 {
					cpu0 = cpuTime(b) // b.Loop's timer starts here too
				}
				get(reqs[i%n])
				i++
			}
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
