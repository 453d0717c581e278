package kmipops

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kek/kektest"
	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// heldRebuild holds every index rebuild of owner at its listing of the
// owner's index (its second pass, before the index is marked built; Locate
// lists no index here) until release is closed, counts them, and closes
// built once the owner's index is marked built.
type heldRebuild struct {
	*storage.Memory
	prefix   string
	entered  chan struct{}
	release  chan struct{}
	built    chan struct{}
	once     sync.Once
	rebuilds atomic.Int32
}

func (h *heldRebuild) List(ctx context.Context, prefix string, fn func(string, []byte) error) error {
	if prefix == h.prefix {
		h.rebuilds.Add(1)
		h.entered <- struct{}{}
		select {
		case <-h.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return h.Memory.List(ctx, prefix, fn)
}

func (h *heldRebuild) Apply(ctx context.Context, w []storage.Write) error {
	err := h.Memory.Apply(ctx, w)
	for _, x := range w {
		if err == nil && x.Key == h.prefix+"built" {
			h.once.Do(func() { close(h.built) })
		}
	}
	return err
}

// TestLocateWhileIndexRebuilds: records written before the index (an
// upgrade) are located correctly, by Name and with Maximum Items, at once
// by Locates that find the index not built, while the one rebuild the
// first of them started is held; after it the same Locates give the same.
func TestLocateWhileIndexRebuilds(t *testing.T) {
	mem := storage.NewMemory()
	t.Cleanup(func() { mem.Close() })
	old := envOver(t, "", unbatchedStore{mem}, kektest.NewMasterKeys(), Options{})
	for i := range 12 {
		okPayload(t, old.do(alice, createAES(256, nameAttr(fmt.Sprint("n", i%2)))), 0)
	}
	h := &heldRebuild{Memory: mem, prefix: object.IndexPrefix(alice.Identity),
		entered: make(chan struct{}, 4), release: make(chan struct{}), built: make(chan struct{})}
	p := NewProcessor(h, old.kr, Options{}, nil)
	t.Cleanup(p.Close)
	byName := []*tree.Node{nameAttr("n0")}
	max3 := []*tree.Node{tree.Int(kmip14.TagMaximumItems, 3), attrNode("Object Type", tree.Enum(0, uint32(kmip14.ObjectTypeSymmetricKey)))}
	wantName, _ := locateWith(t, old, old.p, alice, byName...) // the scan: no index
	wantMax, _ := locateWith(t, old, old.p, alice, max3...)
	if len(wantName) != 6 || len(wantMax) != 3 {
		t.Fatalf("scan found %d by name, %d of at most 3", len(wantName), len(wantMax))
	}
	check := func(when string) {
		t.Helper()
		if got, _ := locateWith(t, old, p, alice, byName...); !slices.Equal(got, wantName) {
			t.Errorf("%s: Locate by Name = %v, want %v", when, got, wantName)
		}
		if got, _ := locateWith(t, old, p, alice, max3...); !slices.Equal(got, wantMax) {
			t.Errorf("%s: Locate with Maximum Items = %v, want %v", when, got, wantMax)
		}
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			check("during the rebuild")
		}()
	}
	wg.Wait()
	<-h.entered
	check("during the rebuild")
	close(h.release)
	<-h.built
	check("after the rebuild")
	if n := h.rebuilds.Load(); n != 1 {
		t.Fatalf("%d rebuilds started, want 1", n)
	}
}
