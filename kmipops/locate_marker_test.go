package kmipops

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/kek/kektest"
	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/storage"
)

// markerCounter counts the reads of index markers on an in-memory store
// (storage.Exclusive, as it embeds *storage.Memory).
type markerCounter struct {
	*storage.Memory
	reads atomic.Int64
}

func (m *markerCounter) Get(ctx context.Context, key string) ([]byte, error) {
	if strings.HasPrefix(key, "idx/") && strings.HasSuffix(key, "/built") {
		m.reads.Add(1)
	}
	return m.Memory.Get(ctx, key)
}

// sharedStore is the same store seen as one that replicas share: it is no
// storage.Exclusive.
type sharedStore struct {
	storage.Store
	storage.Batcher
}

func rotatePKEK(t *testing.T, kr *kek.Keyring, owner string) {
	t.Helper()
	prefix := "obj/" + owner + "/"
	if _, err := kr.RotatePKEK(context.Background(), owner, kek.Sealed{
		Prefix:  prefix,
		AAD:     func(key string) []byte { return []byte(strings.TrimPrefix(key, prefix)) },
		Derived: object.IndexPrefix(owner),
	}, nil); err != nil {
		t.Fatal(err)
	}
}

// waitRebuilt waits (at most a minute) until p has completed want index
// rebuilds and runs none.
func waitRebuilt(t *testing.T, p *Processor, want uint64) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		st := p.IndexStatus()
		if st.Ended["completed"] >= want && len(st.Running) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rebuild completed: %+v", st)
		}
	}
}

// TestLocateAfterRotationRemembersMarker: on a store only this process
// writes, an indexed Locate reads its owner's index marker once and then
// remembers it; a pKEK rotation, which drops the owner's index, makes the
// next Locate read it again, so it scans (every match found, none lost to
// the dropped index) while the rebuild runs, and uses the rebuilt index
// after. Over a store replicas share every Locate reads the marker.
func TestLocateAfterRotationRemembersMarker(t *testing.T) {
	mem := &markerCounter{Memory: storage.NewMemory()}
	t.Cleanup(func() { mem.Close() })
	e := envOver(t, "", mem, kektest.NewMasterKeys(), Options{})
	t.Cleanup(e.p.Close)
	for i := range 12 {
		okPayload(t, e.do(alice, createAES(256, nameAttr(fmt.Sprint("n", i%2)))), 0)
	}
	byName := nameAttr("n0")
	want, _ := locateWith(t, e, e.p, alice, byName)
	if len(want) != 6 {
		t.Fatalf("Locate by Name found %d, want 6", len(want))
	}
	locate := func(when string) {
		t.Helper()
		if got, _ := locateWith(t, e, e.p, alice, byName); !slices.Equal(got, want) {
			t.Fatalf("%s: Locate by Name = %v, want %v", when, got, want)
		}
	}
	reads := mem.reads.Load()
	for range 3 {
		locate("with the marker remembered")
	}
	if n := mem.reads.Load() - reads; n != 0 {
		t.Fatalf("%d marker reads by Locates after the first", n)
	}

	rotatePKEK(t, e.kr, alice.Identity)
	locate("after the rotation") // the scan: the index is gone
	if mem.reads.Load() == reads {
		t.Fatal("the Locate after a rotation did not read the marker")
	}
	waitRebuilt(t, e.p, 1)
	locate("after the rebuild")
	reads = mem.reads.Load()
	locate("after the rebuild, remembered")
	if n := mem.reads.Load() - reads; n != 0 {
		t.Fatalf("%d marker reads once the rebuilt index was seen", n)
	}

	// Shared: nothing remembered.
	sh := sharedStore{Store: mem, Batcher: mem.Memory}
	var _ storage.Exclusive = mem
	if _, ok := storage.Store(sh).(storage.Exclusive); ok {
		t.Fatal("sharedStore is Exclusive")
	}
	p := NewProcessor(sh, e.kr, Options{}, nil)
	t.Cleanup(p.Close)
	reads = mem.reads.Load()
	for range 3 {
		if got, _ := locateWith(t, e, p, alice, byName); !slices.Equal(got, want) {
			t.Fatalf("over a shared store: Locate by Name = %v, want %v", got, want)
		}
	}
	if n := mem.reads.Load() - reads; n != 3 {
		t.Fatalf("over a shared store: %d marker reads by 3 Locates", n)
	}
}
