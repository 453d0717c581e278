package daemon_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/admin"
	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/kmipops"
	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/tests/hostile"
)

// indexKeys lists owner's index entries, the markers aside.
func indexKeys(t *testing.T, d *daemon.Daemon, owner string) []string {
	t.Helper()
	p := object.IndexPrefix(owner)
	var keys []string
	if err := d.Store().List(t.Context(), p, func(k string, _ []byte) error {
		if strings.Contains(k[len(p):], "/") {
			keys = append(keys, k)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// locateSymmetric counts what a Locate by Object Type finds for c.
func locateSymmetric(t *testing.T, d *daemon.Daemon, c kmipops.Caller) int {
	t.Helper()
	r := hostile.Results(d.Processor().Process(t.Context(), c, hostile.Request(hostile.Item(kmip14.OperationLocate,
		hostile.Attr("Object Type", tree.Enum(0, uint32(kmip14.ObjectTypeSymmetricKey)))))))
	if len(r) != 1 || !r[0].OK() {
		t.Fatalf("Locate: %v", r)
	}
	return len(r[0].Payload.All(kmip14.TagUniqueIdentifier))
}

func reindex(t *testing.T, e *adminEnv, args daemon.ReindexArgs) (daemon.ReindexResult, error) {
	t.Helper()
	var res daemon.ReindexResult
	raw, err := admin.Call(t.Context(), e.c.Admin.Socket, "reindex", args, nil, nil)
	if err == nil {
		err = json.Unmarshal(raw, &res)
	}
	return res, err
}

// TestAdminReindex: a damaged index (entries missing, one for an object
// that is not there) misleads Locate until `reindex` rebuilds it, which
// reports what it fixed and makes it exactly what the writes had kept and
// what a rebuild from nothing makes; `reindex -all` under clients creating
// and reading keys fails no request and leaves every index equal to a
// fresh rebuild. Bad arguments are refused with nothing changed.
func TestAdminReindex(t *testing.T) {
	e := startAdmin(t)
	const owners, n = 2, 30
	seedKeys(t, e.d, owners, n)
	o0 := caller(0).Identity
	kept := indexKeys(t, e.d, o0)
	if len(kept) < 4*n {
		t.Fatalf("%d index entries for %d objects", len(kept), n)
	}

	// Damage: every third entry gone, one for an object that is not there.
	var dropped int
	for i, k := range kept {
		if i%3 == 0 {
			if err := e.d.Store().Delete(t.Context(), k); err != nil {
				t.Fatal(err)
			}
			dropped++
		}
	}
	bogus := kept[1][:strings.LastIndexByte(kept[1], '/')+1] + "no-such-object"
	if err := e.d.Store().Put(t.Context(), bogus, nil); err != nil {
		t.Fatal(err)
	}

	if got := locateSymmetric(t, e.d, caller(0)); got >= n {
		t.Fatalf("Locate over the damaged index found %d of %d: the damage did not show", got, n)
	}

	// Bad arguments: refused, the index untouched.
	damaged := indexKeys(t, e.d, o0)
	for _, bad := range []daemon.ReindexArgs{{}, {Owner: o0, All: true}, {Owner: "nobody"}, {Owner: "a/b"}} {
		if _, err := reindex(t, e, bad); err == nil {
			t.Errorf("reindex %+v accepted", bad)
		}
	}
	if now := indexKeys(t, e.d, o0); !slices.Equal(now, damaged) {
		t.Fatal("a refused reindex changed the index")
	}

	res, err := reindex(t, e, daemon.ReindexArgs{Owner: o0})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Owners) != 1 {
		t.Fatalf("result: %+v", res)
	}
	if got := res.Owners[0]; got.Owner != o0 || got.Objects != n || got.Written != dropped || got.Removed != 1 || got.Seconds < 0 {
		t.Fatalf("reindex of a damaged index: %+v; want %d objects, %d written, 1 removed", got, n, dropped)
	}
	if now := indexKeys(t, e.d, o0); !slices.Equal(now, kept) {
		t.Fatalf("index after reindex (%d entries) differs from the one the writes kept (%d)", len(now), len(kept))
	}
	checkLocateAll(t, e.d, caller(0))

	// From nothing: the same entries, all written.
	for _, k := range kept {
		if err := e.d.Store().Delete(t.Context(), k); err != nil {
			t.Fatal(err)
		}
	}
	res, err = reindex(t, e, daemon.ReindexArgs{Owner: o0})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Owners[0]; got.Written != len(kept) || got.Removed != 0 || got.Objects != n {
		t.Fatalf("reindex from nothing: %+v, want %d written", got, len(kept))
	}
	if now := indexKeys(t, e.d, o0); !slices.Equal(now, kept) {
		t.Fatalf("index rebuilt from nothing (%d entries) differs from the one the writes kept (%d)", len(now), len(kept))
	}

	// Every owner, under clients.
	cl := startLoad(t.Context(), e.d, owners)
	res, err = reindex(t, e, daemon.ReindexArgs{All: true})
	failed, firstErr := cl.stop()
	if err != nil {
		t.Fatal(err)
	}
	if failed != 0 {
		t.Fatalf("%d requests failed during the reindex, e.g. %v", failed, firstErr)
	}
	if len(res.Owners) != owners {
		t.Fatalf("reindex -all: %+v", res)
	}
	for i := range owners {
		c := caller(i)
		checkLocateAll(t, e.d, c)
		live := indexKeys(t, e.d, c.Identity)
		for _, k := range live {
			if err := e.d.Store().Delete(t.Context(), k); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := reindex(t, e, daemon.ReindexArgs{Owner: c.Identity}); err != nil {
			t.Fatal(err)
		}
		if fresh := indexKeys(t, e.d, c.Identity); !slices.Equal(live, fresh) {
			t.Fatalf("%s: index after reindex under load (%d entries) differs from a fresh rebuild (%d)", c.Identity, len(live), len(fresh))
		}
	}
}

// TestLocateOverOldIndexAnswersAtOnce: an owner whose index marker is of
// an older version is answered by the scan (every object found) while its
// rebuild runs in the background, and closing the daemon stops that
// rebuild without error.
func TestLocateOverOldIndexAnswersAtOnce(t *testing.T) {
	e := startAdmin(t)
	seedKeys(t, e.d, 1, 20)
	o0 := caller(0).Identity
	if err := e.d.Store().Put(t.Context(), object.IndexPrefix(o0)+"built", []byte("1")); err != nil {
		t.Fatal(err)
	}
	for _, k := range indexKeys(t, e.d, o0) {
		if err := e.d.Store().Delete(t.Context(), k); err != nil {
			t.Fatal(err)
		}
	}
	checkLocateAll(t, e.d, caller(0)) // by the scan: the index is empty
	// reindex waits for the background rebuild, then runs its own.
	if _, err := reindex(t, e, daemon.ReindexArgs{Owner: o0}); err != nil {
		t.Fatal(err)
	}
	if v, err := e.d.Store().Get(t.Context(), object.IndexPrefix(o0)+"built"); err != nil || string(v) == "1" {
		t.Fatalf("marker after reindex: %q, %v", v, err)
	}
	checkLocateAll(t, e.d, caller(0))
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestAdminReindexDuringPKEKRotation: an owner whose pKEK rotation was
// interrupted (its record holds two generations) cannot be reindexed: a
// clear error, nothing marked; once the rotation is finished, reindex
// rebuilds its index under the new key and Locate finds every object.
func TestAdminReindexDuringPKEKRotation(t *testing.T) {
	e := startAdmin(t)
	seedKeys(t, e.d, 1, 40)
	o0 := caller(0).Identity
	ctx, cancel := context.WithCancel(t.Context())
	prefix := "obj/" + o0 + "/"
	_, err := e.d.Keyring().RotatePKEK(ctx, o0, kek.Sealed{
		Prefix:  prefix,
		AAD:     func(key string) []byte { return []byte(strings.TrimPrefix(key, prefix)) },
		Derived: object.IndexPrefix(o0),
	}, func(done, total int) { cancel() })
	cancel()
	if err == nil {
		t.Fatal("the interrupted rotation finished")
	}
	marker := func() string {
		v, err := e.d.Store().Get(t.Context(), object.IndexPrefix(o0)+"built")
		if err != nil {
			return err.Error()
		}
		return string(v)
	}
	was, entries := marker(), indexKeys(t, e.d, o0)
	if _, err := reindex(t, e, daemon.ReindexArgs{Owner: o0}); err == nil || !strings.Contains(err.Error(), "rotates") {
		t.Fatalf("reindex during a pKEK rotation: %v", err)
	}
	if now := marker(); now != was || !slices.Equal(indexKeys(t, e.d, o0), entries) {
		t.Fatalf("a refused reindex changed the index: marker %q -> %q", was, now)
	}
	checkLocateAll(t, e.d, caller(0)) // by the scan meanwhile
	if _, err := admin.Call(t.Context(), e.c.Admin.Socket, "rotate-pkek", daemon.RotatePKEKArgs{Owner: o0}, nil, nil); err != nil {
		t.Fatal(err)
	}
	res, err := reindex(t, e, daemon.ReindexArgs{Owner: o0})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Owners[0]; got.Objects != 40 || got.Written < 4*40 {
		t.Fatalf("reindex after the rotation: %+v", got)
	}
	if now := marker(); now != "2" {
		t.Fatalf("marker after reindex: %q", now)
	}
	checkLocateAll(t, e.d, caller(0))
}
