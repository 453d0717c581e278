package hostile

import (
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/kmipd/kmipd/kmipops/tree"
)

func TestExploreBatch(t *testing.T) {
	e := StartServer(t, Options{})
	c := e.Dial(0)
	c.Timeout = 5 * time.Minute
	uid := c.MustUID(t, CreateAES(256))
	for i := 0; i < 50; i++ {
		c.MustUID(t, CreateAES(128))
	}
	for name, it := range map[string]*tree.Node{
		"discover": Item(kmip14.OperationDiscoverVersions),
		"get":      Item(kmip14.OperationGet, UID(uid)),
		"getattrs": Item(kmip14.OperationGetAttributes, UID(uid)),
		"locate":   Item(kmip14.OperationLocate, tree.Int(kmip14.TagMaximumItems, 1)),
		"query":    Item(kmip14.OperationQuery, tree.Enum(kmip14.TagQueryFunction, 1), tree.Enum(kmip14.TagQueryFunction, 3)),
		"missing":  Item(kmip14.OperationGet, UID("nope")),
	} {
		items := make([]*tree.Node, 10000)
		for i := range items {
			items[i] = it
		}
		req := ContinueOnError(items...)
		b := enc(req)
		m0 := Measure()
		start := time.Now()
		resp, err := c.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		m1 := Measure()
		rb := enc(resp)
		t.Logf("%s: req %d KiB resp %d KiB in %v, alloc %d MiB", name, len(b)>>10, len(rb)>>10, time.Since(start), (m1.TotalAlloc-m0.TotalAlloc)>>20)
	}
}
