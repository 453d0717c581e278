package hostile

import (
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
)

func TestSmoke(t *testing.T) {
	start := time.Now()
	e := StartServer(t, Options{})
	t.Logf("start %v", time.Since(start))
	c := e.Dial(0)
	uid := c.MustUID(t, CreateAES(256))
	r := c.One(t, Item(kmip14.OperationGet, UID(uid)))
	WantOK(t, r)
	b := e.Dial(1)
	WantFailure(t, b.One(t, Item(kmip14.OperationGet, UID(uid))), kmip14.ResultReasonItemNotFound)
	t.Logf("conns %v", Metric(e.Metrics(), "kmipd_connections_active"))
	e.Restart()
	c = e.Dial(0)
	WantOK(t, c.One(t, Item(kmip14.OperationGet, UID(uid))))
	t.Logf("total %v", time.Since(start))
}
