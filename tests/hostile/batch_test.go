package hostile

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// TestTenThousandBatchItems: KMIP sets no limit on batch size, and 10,000
// small items fit well within the 1 MiB message cap, so the right answer is
// the complete one: every item executed in order and answered with its
// Unique Batch Item ID, an honest Batch Count — or, under the default Stop
// option, exactly the items up to the first failure. What the server holds
// for it must be returned afterwards.
func TestTenThousandBatchItems(t *testing.T) {
	e := StartServer(t, Options{})
	c := e.Dial(0)
	c.Timeout = 2 * time.Minute // 10,000 items under -race
	const n = 10_000
	withIDs := func(op kmip14.Operation, fields ...*tree.Node) []*tree.Node {
		items := make([]*tree.Node, n)
		for i := range items {
			it := Item(op, cloneAll(fields)...)
			id := binary.BigEndian.AppendUint32(nil, uint32(i))
			it.Children = append([]*tree.Node{it.Children[0], tree.Bytes(kmip14.TagUniqueBatchItemID, id)}, it.Children[1:]...)
			items[i] = it
		}
		return items
	}
	checkIDs := func(t *testing.T, resp *tree.Node, want int) []Result {
		t.Helper()
		rs := CheckMessage(t, resp)
		if len(rs) != want {
			t.Fatalf("%d items answered, want %d", len(rs), want)
		}
		for i, it := range resp.All(kmip14.TagBatchItem) {
			id, _ := it.Child(kmip14.TagUniqueBatchItemID).BytesValue()
			if !bytes.Equal(id, binary.BigEndian.AppendUint32(nil, uint32(i))) {
				t.Fatalf("item %d answered with Unique Batch Item ID %x", i, id)
			}
		}
		return rs
	}
	base := Measure()

	t.Run("10,000 Discover Versions", func(t *testing.T) {
		req := Request(withIDs(kmip14.OperationDiscoverVersions)...)
		if size := len(enc(req)); size > 1<<20 {
			t.Fatalf("request of %d bytes exceeds the cap", size)
		}
		for i, r := range checkIDs(t, must(c.RoundTrip(req)), n) {
			if !r.OK() || r.Operation != kmip14.OperationDiscoverVersions {
				t.Fatalf("item %d: %s", i, r)
			}
		}
	})
	t.Run("10,000 failures, continue on error", func(t *testing.T) {
		req := ContinueOnError(withIDs(kmip14.OperationGet, UID("no-such-object"))...)
		for i, r := range checkIDs(t, must(c.RoundTrip(req)), n) {
			if r.Status != kmip14.ResultStatusOperationFailed || r.Reason != kmip14.ResultReasonItemNotFound {
				t.Fatalf("item %d: %s", i, r)
			}
		}
	})
	t.Run("10,000 failures, stop on error", func(t *testing.T) {
		req := Request(withIDs(kmip14.OperationGet, UID("no-such-object"))...)
		r := checkIDs(t, must(c.RoundTrip(req)), 1)[0]
		WantFailure(t, r, kmip14.ResultReasonItemNotFound)
	})
	c.Close()
	alive(t, e)
	after := Measure()
	if grow := int64(after.HeapInuse) - int64(base.HeapInuse); grow > 16<<20 {
		t.Errorf("heap grew by %d MiB after the large batches", grow>>20)
	}
	WaitGoroutines(t, base.Goroutines, 2, 10*time.Second)
	t.Logf("allocated %d MiB for 30,000 batch items", (after.TotalAlloc-base.TotalAlloc)>>20)
}
