package kmipops

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/kek/kektest"
	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// Locate and Create with and without the blind index, in one run: the same
// Badger store (synced writes) and keyring, software master keys (no HSM
// in the measured path once the pKEK is cached), one owner holding N
// objects. "scan" is a Processor over the store with its Batcher hidden,
// which is how Locate worked before the index; "full" searches with the
// index but in full despite Maximum Items, as before the ordering index;
// "walk" walks the ordering index and stops at Maximum Items.
// Run: go test -run '^$' -bench 'BenchmarkLocate|BenchmarkCreateIndex' -benchtime 20x ./kmipops/
// N defaults to 10000; KMIPD_BENCH_N=10000,100000 measures each size in
// the same run (the walk's figure should not grow with N).

// unbatchedStore hides the store's storage.Batcher: no index is kept.
type unbatchedStore struct{ storage.Store }

// sharedView is the store as replicas would share it: no
// storage.Exclusive, so every indexed Locate reads its owner's index
// marker ("index-reread"; "index" remembers it, index_marker.go).
type sharedView struct {
	storage.Store
	storage.Batcher
	storage.KeyLister
	storage.Viewer
}

func newBadgerSoftEnv(b *testing.B) *env {
	st, err := storage.OpenBadger(b.TempDir(), storage.BadgerOptions{GCInterval: -1}, hclog.NewNullLogger())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return envOver(b, "", st, kektest.NewMasterKeys(), Options{})
}

func benchSizes() []int {
	var ns []int
	for _, f := range strings.Split(os.Getenv("KMIPD_BENCH_N"), ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			ns = append(ns, n)
		}
	}
	if len(ns) == 0 {
		ns = []int{10000}
	}
	return ns
}

func mustSucceed(b *testing.B, resp *tree.Node) {
	if s, _ := resp.Path(kmip14.TagBatchItem, kmip14.TagResultStatus).EnumValue(); s != uint32(kmip14.ResultStatusSuccess) {
		b.Fatalf("failed: %s", resp)
	}
}

func BenchmarkLocateByName(b *testing.B) {
	for _, n := range benchSizes() {
		benchLocateByName(b, n)
	}
}

func benchLocateByName(b *testing.B, n int) {
	ctx := context.Background()
	e := newBadgerSoftEnv(b)
	// Preload through Process, 16 at a time (group commit), names key-<i>.
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				mustSucceed(b, e.p.Process(ctx, alice, reqMsg(e.v, createAES(256, nameAttr(fmt.Sprintf("key-%d", i))))))
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	scan := NewProcessor(unbatchedStore{e.st}, e.kr, Options{}, nil)
	full := NewProcessor(e.st, e.kr, Options{}, nil)
	full.fullLocate = true
	bst := e.st.(*storage.Badger)
	reread := NewProcessor(sharedView{bst, bst, bst, bst}, e.kr, Options{}, nil)
	byName := reqMsg(e.v, item(kmip14.OperationLocate, nameAttr(fmt.Sprintf("key-%d", n/2))))
	byTypeMax10 := reqMsg(e.v, item(kmip14.OperationLocate, tree.Int(kmip14.TagMaximumItems, 10),
		attrNode("Object Type", tree.Enum(0, uint32(kmip14.ObjectTypeSymmetricKey)))))
	for _, c := range []struct {
		name string
		p    *Processor
		req  *tree.Node
		want int
	}{
		{"name/scan", scan, byName, 1},
		{"name/index", e.p, byName, 1},
		{"name/index-reread", reread, byName, 1},
		{"type-max10/scan", scan, byTypeMax10, 10},
		{"type-max10/full", full, byTypeMax10, 10},
		{"type-max10/walk", e.p, byTypeMax10, 10},
		{"type-max10/walk-reread", reread, byTypeMax10, 10},
	} {
		// The first indexed Locate of an owner checks its index against
		// its records once (RebuildIndex: it finds nothing to write here)
		// and marks it built; that one-time cost is left out.
		mustSucceed(b, c.p.Process(ctx, alice, c.req))
		b.Run(fmt.Sprintf("%s/N=%d", c.name, n), func(b *testing.B) {
			for b.Loop() {
				resp := c.p.Process(ctx, alice, c.req)
				mustSucceed(b, resp)
				if got := len(resp.Path(kmip14.TagBatchItem, kmip14.TagResponsePayload).All(kmip14.TagUniqueIdentifier)); got != c.want {
					b.Fatalf("located %d, want %d", got, c.want)
				}
			}
		})
	}
}

// BenchmarkCreateIndex is Create's cost with the index's writes (one
// transaction with the record) and without (the record alone).
func BenchmarkCreateIndex(b *testing.B) {
	for _, indexed := range []bool{false, true} {
		name := "plain"
		if indexed {
			name = "indexed"
		}
		b.Run(name, func(b *testing.B) {
			e := newBadgerSoftEnv(b)
			if !indexed {
				e.p = NewProcessor(unbatchedStore{e.st}, e.kr, Options{}, nil)
			}
			benchProcessEnv(b, e, reqMsg(e.v, createAES(256, nameAttr("k"),
				attrNode("Object Group", tree.Text(0, "g")))))
		})
	}
}
