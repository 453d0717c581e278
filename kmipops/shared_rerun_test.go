package kmipops

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kek/kektest"
	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
	"github.com/kmipd/kmipd/storage/pgtest"
)

// applyHookedStore is a replica's PostgreSQL store that runs onWrite once,
// right before it applies the first batch writing a key ending in suffix:
// between a replica's read of a record and its write of it.
type applyHookedStore struct {
	*storage.Postgres
	suffix  string
	mu      sync.Mutex
	onWrite func()
}

func (h *applyHookedStore) Apply(ctx context.Context, w []storage.Write) error {
	var f func()
	h.mu.Lock()
	for _, x := range w {
		if h.onWrite != nil && strings.HasPrefix(x.Key, "obj/") && strings.HasSuffix(x.Key, h.suffix) {
			f, h.onWrite = h.onWrite, nil
			break
		}
	}
	h.mu.Unlock()
	if f != nil {
		f()
	}
	return h.Postgres.Apply(ctx, w)
}

// TestSharedReKeyRunsAgainOnOtherReplicasWrite: replica b adds an
// attribute to a key between replica a's read of it and a's ReKey write.
// a's change is made again on b's write (object.Scope.Update), keeping
// the replacement its first run stored: the old key holds b's attribute
// and links to the one replacement, and no second replacement exists.
func TestSharedReKeyRunsAgainOnOtherReplicasWrite(t *testing.T) {
	url := pgtest.New(t).Database(t)
	mk := kektest.NewMasterKeys()
	open := func() *storage.Postgres {
		st, err := storage.OpenPostgres(context.Background(), storage.PostgresOptions{URL: url, MaxConns: 4}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	hs := &applyHookedStore{Postgres: open()}
	a := envOver(t, "", hs, mk, Options{})
	b := envOver(t, "", open(), mk, Options{})
	uid := a.create(alice)
	ran := false
	hs.mu.Lock()
	hs.suffix, hs.onWrite = "/"+uid, func() {
		okPayload(t, b.do(alice, item(kmip14.OperationAddAttribute, uidF(uid), attrNode("x-b", tree.Text(0, "v")))), 0)
		ran = true
	}
	hs.mu.Unlock()
	repl := text(t, okPayload(t, a.do(alice, item(kmip14.OperationReKey, uidF(uid))), 0), kmip14.TagUniqueIdentifier)
	if !ran {
		t.Fatal("b's Add Attribute did not run between a's read and write")
	}
	got := b.getAttrs(alice, uid, "x-b", "Link")
	if len(got["x-b"]) != 1 {
		t.Errorf("the old key has %d x-b attributes, want b's one (lost to a's write)", len(got["x-b"]))
	}
	var links []string
	for _, l := range got["Link"] {
		if lt, _ := l.Child(kmip14.TagLinkType).EnumValue(); kmip14.LinkType(lt) == kmip14.LinkTypeReplacementObjectLink {
			to, _ := l.Child(kmip14.TagLinkedObjectIdentifier).TextValue()
			links = append(links, to)
		}
	}
	if len(links) != 1 || links[0] != repl {
		t.Errorf("the old key's Replacement Object Links %v, want [%s]", links, repl)
	}
	records := 0
	if err := hs.List(context.Background(), "obj/", func(string, []byte) error { records++; return nil }); err != nil {
		t.Fatal(err)
	}
	if records != 2 {
		t.Errorf("%d object records, want 2 (the key and one replacement)", records)
	}
}
