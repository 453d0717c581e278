package cluster

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipclient"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// TestSharedAddAttributeOnTwoReplicas: clients of two replicas add
// instances of one attribute to one key at once. Each replica reads the
// record, changes it and writes it back; every Add Attribute answered
// Success is in the key afterwards (no replica's write overwrites
// another's, kmipops/object/update.go).
func TestSharedAddAttributeOnTwoReplicas(t *testing.T) {
	c := startCluster(t, 2, 4)
	cl := c.clients(c.identity("alice"))
	ctx := ctxT(t)
	id, err := cl[0].Create(ctx, aes)
	if err != nil {
		t.Fatal(err)
	}
	const n = 15
	var wg sync.WaitGroup
	for i, client := range cl {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range n {
				a := kmipclient.Attr("x-tag", tree.Text(0, fmt.Sprintf("r%d-%d", i, j)))
				if _, err := client.Do(ctx, kmip14.OperationAddAttribute, tree.Text(kmip14.TagUniqueIdentifier, id), a.Node()); err != nil {
					t.Errorf("replica %d: Add Attribute %d: %v", i, j, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	attrs, err := cl[1].GetAttributes(ctx, id, "x-tag")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range attrs {
		s, _ := a.Value.TextValue()
		got = append(got, s)
	}
	var lost []string
	for i := range cl {
		for j := range n {
			if v := fmt.Sprintf("r%d-%d", i, j); !slices.Contains(got, v) {
				lost = append(lost, v)
			}
		}
	}
	if len(lost) > 0 || len(got) != len(cl)*n {
		t.Errorf("the key holds %d of %d acknowledged instances; lost %v", len(got), len(cl)*n, lost)
	}
}
