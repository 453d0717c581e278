package hostile

import (
	"strings"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/server"
)

// TestWorkOfAGoneClientStops: a 2,000-item Locate batch over 200 objects is
// 400,000 AES-GCM opens from one 100 KB request. A client can send it,
// disconnect, and repeat on MaxConns connections. The server bounds the work
// of one request by RequestTimeout (kmipops stops between items, Locate
// between records), so after the client is gone and the bound has passed no
// more Locate work runs. (A disconnect cannot be told from a TLS half-close
// before a write fails, and half-closed clients are answered; see
// TestHalfOpenConnections.)
func TestWorkOfAGoneClientStops(t *testing.T) {
	e := StartServer(t, Options{Server: server.Config{RequestTimeout: time.Second}})
	c := e.Dial(0)
	// The 200 keys are made in batches of 20, so that setting them up stays
	// well inside the 1 s bound on a loaded machine: only the Locate batch
	// below is meant to meet it.
	for range 10 {
		items := make([]*tree.Node, 20)
		for i := range items {
			items[i] = CreateAES(128)
		}
		for _, r := range c.Do(t, Request(items...)) {
			WantOK(t, r)
		}
	}
	items := make([]*tree.Node, 2000)
	for i := range items {
		items[i] = Item(kmip14.OperationLocate)
	}
	if err := c.Send(enc(ContinueOnError(items...))); err != nil {
		t.Fatal(err)
	}
	m := e.Metrics()
	WaitMetric(t, m, "kmipd_requests_total", func(v float64) bool { return v > 0 }, 10*time.Second, "operation", "Locate")
	c.Close()
	// The bound is 1 s from when the request was decoded, which is before
	// the first Locate was seen; the half second beyond it is for the item
	// in flight at the deadline and the answers to the cancelled rest (the
	// counter counts those too), which a loaded machine (go test -race
	// running packages in parallel) can push past a sleep of exactly 1 s.
	time.Sleep(1500 * time.Millisecond)
	before := Metric(m, "kmipd_requests_total", "operation", "Locate")
	time.Sleep(2 * time.Second)
	after := Metric(m, "kmipd_requests_total", "operation", "Locate")
	if after > before {
		t.Fatalf("%v Locate items ran in the 2 s after their client disconnected (%v of 2000 done)", after-before, after)
	}
}

// TestStreamsDoNotPinRequests: tree.Decode puts all of a message's text in
// one string, so a Text kept after the request pins the whole message. The
// stream table keeps the request's Unique Identifier for up to five minutes:
// sixteen streams opened by messages padded with ~900 KiB of ignored text
// pin ~14 MiB (256 streams, the global cap, would pin 256 MiB), although
// each stream buffers 16 bytes and maxStreamHeld is meant to bound them.
// kmipops therefore clones the uid where it stores it.
func TestStreamsDoNotPinRequests(t *testing.T) {
	e := StartServer(t, Options{})
	c := e.Dial(0)
	uid := c.MustUID(t, CreateAES(256))
	WantOK(t, c.One(t, Item(kmip14.OperationActivate, UID(uid))))
	ecb := tree.Struct(kmip14.TagCryptographicParameters,
		tree.Enum(kmip14.TagBlockCipherMode, uint32(kmip14.BlockCipherModeECB)),
		tree.Enum(kmip14.TagPaddingMethod, uint32(kmip14.PaddingMethodNone)))
	base := Measure()
	for range 16 {
		WantOK(t, c.One(t, Item(kmip14.OperationEncrypt, UID(uid), ecb.Clone(), tree.Bytes(kmip14.TagData, make([]byte, 16)),
			tree.Bool(kmip14.TagInitIndicator, true), tree.Text(ttlv.Tag(0x540099), strings.Repeat("j", 900<<10)))))
	}
	if grow := int64(Measure().HeapInuse) - int64(base.HeapInuse); grow > 4<<20 {
		t.Fatalf("16 open streams of 16 bytes each hold %d KiB of heap", grow>>10)
	}
}
