package storage

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/kmipd/kmipd/storage/pgtest"
)

// BenchmarkPutGet compares the backends on the same machine in one run:
// synced Put, Create and Get of object-sized records, from one goroutine
// (the latency of one request) and from 16 (what concurrency buys: group
// commit for Badger, parallel sessions for PostgreSQL). Badger serves
// repeated Gets from its value cache; the PostgreSQL store has none (other
// replicas may write), so every Get is a round trip.
func BenchmarkPutGet(b *testing.B) {
	backends := []struct {
		name string
		open func(b *testing.B) Store
	}{
		{"badger", func(b *testing.B) Store { return openTest(b, b.TempDir()) }},
		{"postgres", func(b *testing.B) Store { return openPG(b, pgtest.Database(b), PostgresOptions{MaxConns: 16}) }},
	}
	value := make([]byte, 800) // a sealed object record
	const keys = 1000
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			defer s.Close()
			ctx := context.Background()
			for i := range keys {
				if err := s.Put(ctx, fmt.Sprintf("obj/owner/%d", i), value); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			ops := map[string]func(i int64) error{
				"put":    func(i int64) error { return s.Put(ctx, fmt.Sprintf("obj/owner/%d", i%keys), value) },
				"get":    func(i int64) error { _, err := s.Get(ctx, fmt.Sprintf("obj/owner/%d", i%keys)); return err },
				"create": func(i int64) error { return s.Create(ctx, fmt.Sprintf("obj/new/%d", i), value) },
			}
			for _, op := range []string{"put", "get", "create"} {
				for _, want := range []int{1, 16} {
					// RunParallel runs parallelism × GOMAXPROCS goroutines.
					par := max(1, want/runtime.GOMAXPROCS(0))
					n := par * runtime.GOMAXPROCS(0)
					if want == 1 {
						n = 1
					}
					b.Run(fmt.Sprintf("%s/goroutines=%d", op, n), func(b *testing.B) {
						fn := ops[op]
						if want == 1 {
							for range b.N {
								if err := fn(next.Add(1)); err != nil {
									b.Fatal(err)
								}
							}
							return
						}
						b.SetParallelism(par)
						b.RunParallel(func(pb *testing.PB) {
							for pb.Next() {
								if err := fn(next.Add(1)); err != nil {
									b.Error(err)
									return
								}
							}
						})
					})
				}
			}
		})
	}
}
