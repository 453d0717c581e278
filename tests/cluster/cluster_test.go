package cluster

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipclient"
	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

var aes = kmipclient.KeySpec{Algorithm: kmip14.CryptographicAlgorithmAES, Length: 256,
	UsageMask: kmip14.CryptographicUsageMaskEncrypt | kmip14.CryptographicUsageMaskDecrypt}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func get(t *testing.T, cl *kmipclient.Client, id string) []byte {
	t.Helper()
	o, err := cl.Get(ctxT(t), id, 0)
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	return o.Material
}

func wantReason(t *testing.T, what string, err error, want kmip14.ResultReason) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want %v", what, want)
	}
	if got, ok := kmipclient.ReasonOf(err); !ok || got != want {
		t.Fatalf("%s: %v, want result reason %v", what, err, want)
	}
}

// TestReadYourWritesAcrossReplicas: every replica serves at once what another
// created, destroyed, revoked or changed, although each has already opened
// (and cached) the object before the other changed it.
func TestReadYourWritesAcrossReplicas(t *testing.T) {
	c := startCluster(t, 3, 6)
	cl := c.clients(c.identity("alice"))
	a, b, z := cl[0], cl[1], cl[2]
	ctx := ctxT(t)

	t.Run("create on A, get on B and C", func(t *testing.T) {
		id, err := a.Create(ctx, aes)
		if err != nil {
			t.Fatal(err)
		}
		want := get(t, a, id)
		if len(want) != 32 {
			t.Fatalf("material is %d bytes", len(want))
		}
		for _, other := range []*kmipclient.Client{b, z} {
			if got := get(t, other, id); !bytes.Equal(got, want) {
				t.Fatal("another replica reads different key material")
			}
		}
	})

	t.Run("destroy on B, get on A", func(t *testing.T) {
		id, err := a.Create(ctx, aes)
		if err != nil {
			t.Fatal(err)
		}
		get(t, a, id) // A has opened it
		if err := b.Destroy(ctx, id); err != nil {
			t.Fatal(err)
		}
		_, err = a.Get(ctx, id, 0)
		wantReason(t, "Get on A after Destroy on B", err, kmip14.ResultReasonItemNotFound)
		wantReason(t, "Destroy on C after Destroy on B", z.Destroy(ctx, id), kmip14.ResultReasonItemNotFound)
	})

	t.Run("revoke on A, encrypt on B", func(t *testing.T) {
		id, err := a.Create(ctx, aes)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Activate(ctx, id); err != nil {
			t.Fatal(err)
		}
		gcm := kmipclient.Cipher{Mode: kmip14.BlockCipherModeGCM}
		if _, err := b.Encrypt(ctx, id, []byte("before"), gcm); err != nil { // B has opened it
			t.Fatal(err)
		}
		if err := a.Revoke(ctx, id, kmip14.RevocationReasonCodeCessationOfOperation, ""); err != nil {
			t.Fatal(err)
		}
		_, err = b.Encrypt(ctx, id, []byte("after"), gcm)
		wantReason(t, "Encrypt on B after Revoke on A", err, kmip14.ResultReasonPermissionDenied)
	})

	t.Run("attribute change on A, read on B", func(t *testing.T) {
		id, err := a.Create(ctx, aes)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.GetAttributes(ctx, id); err != nil { // B has opened it
			t.Fatal(err)
		}
		if err := a.Activate(ctx, id); err != nil {
			t.Fatal(err)
		}
		name := kmipclient.Name("cluster-" + id)
		if _, err := a.Do(ctx, kmip14.OperationAddAttribute, tree.Text(kmip14.TagUniqueIdentifier, id), name.Node()); err != nil {
			t.Fatal(err)
		}
		attrs, err := b.GetAttributes(ctx, id, "State", "Name")
		if err != nil {
			t.Fatal(err)
		}
		var state, names string
		for _, at := range attrs {
			switch at.Name {
			case "State":
				state = at.Text()
			case "Name":
				names += at.Text()
			}
		}
		if !strings.Contains(state, "Active") || strings.Contains(state, "PreActive") || !strings.Contains(names, "cluster-"+id) {
			t.Fatalf("B reads State %q, Name %q", state, names)
		}
	})
}

// TestFirstUseRaceMakesOnePKEK: owners whose first request reaches every
// replica at once get one pKEK each, and each replica's objects open on the
// others.
func TestFirstUseRaceMakesOnePKEK(t *testing.T) {
	const owners = 6
	c := startCluster(t, 3, 6)
	ctx := ctxT(t)
	for o := range owners {
		cl := c.clients(c.identity("racer-" + string(rune('a'+o))))
		ids := make([]string, len(cl))
		errs := make([]error, len(cl))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range cl {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ids[i], errs[i] = cl[i].Create(ctx, aes)
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("owner %d, replica %d: %v", o, i, err)
			}
		}
		for i, id := range ids {
			want := get(t, cl[i], id)
			if got := get(t, cl[(i+1)%len(cl)], id); !bytes.Equal(got, want) {
				t.Fatalf("owner %d: replica %d's key reads differently on the next replica", o, i)
			}
		}
	}
	n := 0
	err := c.replicas[0].d.Store().List(ctx, "pkek/", func(string, []byte) error { n++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if n != owners {
		t.Fatalf("%d pKEK records for %d owners", n, owners)
	}
}

// TestBudgetWiring: every replica's pool runs under the one budget, whose
// metrics its /metrics registry serves, and the shares add up to at most it.
func TestBudgetWiring(t *testing.T) {
	const budget = 4
	c := startCluster(t, 2, budget)
	sum := 0
	for i, r := range c.replicas {
		s := r.d.HSM().Stats()
		if !s.Budgeted || s.Share < 1 || s.ShareLost || s.PeakOpen > s.Share {
			t.Errorf("replica %d: %+v", i, s)
		}
		sum += s.Share
		mfs, err := r.d.Metrics().Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, mf := range mfs {
			found = found || strings.HasPrefix(mf.GetName(), "kmipd_hsm_budget_")
		}
		if !found {
			t.Errorf("replica %d serves no kmipd_hsm_budget_ metrics", i)
		}
		if _, ok := r.d.Store().(storage.Viewer); !ok {
			t.Errorf("replica %d's store is %T, not PostgreSQL's Viewer", i, r.d.Store())
		}
	}
	if sum > budget {
		t.Errorf("shares add up to %d, budget %d", sum, budget)
	}
}
