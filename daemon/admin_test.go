package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/admin"
	"github.com/kmipd/kmipd/backup"
	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/hsm/hsmtest"
	"github.com/kmipd/kmipd/kmipops"
	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
	"github.com/kmipd/kmipd/tests/hostile"
)

// adminEnv is a built kmipd with an admin socket, on an HSM the test holds
// (so a restore can use it after the daemon is closed).
type adminEnv struct {
	c *daemon.Config
	h *hsm.HSM
	d *daemon.Daemon
}

func startAdmin(t *testing.T) *adminEnv {
	t.Helper()
	c, hc := testConfig(t)
	adminSocket(t, c)
	h, d := buildOnHSM(t, c, hc)
	return &adminEnv{c: c, h: h, d: d}
}

// adminSocket points c's admin socket into a fresh directory the test
// removes. Unix socket paths are short (108 bytes); TempDir's may not be.
func adminSocket(t *testing.T, c *daemon.Config) {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "kadm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	c.Admin.Socket = filepath.Join(sockDir, "admin.sock")
}

// buildOnHSM opens the HSM hc names and builds the daemon on c with it; the
// test closes both at its end.
func buildOnHSM(t *testing.T, c *daemon.Config, hc hsm.Config) (*hsm.HSM, *daemon.Daemon) {
	t.Helper()
	h, err := hsm.Open(t.Context(), hc, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	d, err := daemon.BuildWith(t.Context(), c, nil, daemon.Hooks{HSM: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return h, d
}

func caller(i int) kmipops.Caller {
	return kmipops.Caller{Identity: fmt.Sprintf("owner-%d", i), CommonName: fmt.Sprintf("client-%d", i)}
}

func create(ctx context.Context, d *daemon.Daemon, c kmipops.Caller) (string, error) {
	r := hostile.Results(d.Processor().Process(ctx, c, hostile.Request(hostile.CreateAES(256))))
	if len(r) != 1 || !r[0].OK() {
		return "", fmt.Errorf("Create: %v", r)
	}
	return hostile.UIDOf(r[0].Payload), nil
}

func getKey(ctx context.Context, d *daemon.Daemon, c kmipops.Caller, uid string) ([]byte, error) {
	r := hostile.Results(d.Processor().Process(ctx, c, hostile.Request(hostile.Item(kmip14.OperationGet, hostile.UID(uid)))))
	if len(r) != 1 || !r[0].OK() {
		return nil, fmt.Errorf("Get %s: %v", uid, r)
	}
	return hostile.FindBytes(r[0].Payload, kmip14.TagKeyMaterial), nil
}

// clients run Create, then Get of what they made, for each of some owners,
// until stopped, counting failures.
type clients struct {
	stopped chan struct{}
	wg      sync.WaitGroup
	failed  atomic.Int64
	first   chan error // the first failure
}

// startLoad starts clients for owners caller(0) … caller(owners-1).
func startLoad(ctx context.Context, d *daemon.Daemon, owners int) *clients {
	cl := &clients{stopped: make(chan struct{}), first: make(chan error, 1)}
	for i := 0; i < owners; i++ {
		cl.wg.Add(1)
		go func(c kmipops.Caller) {
			defer cl.wg.Done()
			for n := 0; n < 500; n++ { // bounded
				select {
				case <-cl.stopped:
					return
				default:
				}
				uid, err := create(ctx, d, c)
				if err == nil {
					_, err = getKey(ctx, d, c, uid)
				}
				if err != nil {
					cl.failed.Add(1)
					select {
					case cl.first <- err:
					default:
					}
				}
			}
		}(caller(i))
	}
	return cl
}

// stop ends the clients and says how many requests failed, and the first
// failure.
func (cl *clients) stop() (failed int64, first error) {
	close(cl.stopped)
	cl.wg.Wait()
	select {
	case first = <-cl.first:
	default:
	}
	return cl.failed.Load(), first
}

// seedKeys creates n AES keys for each of owners caller(0) … caller(owners-1).
func seedKeys(t *testing.T, d *daemon.Daemon, owners, n int) {
	t.Helper()
	for i := 0; i < owners; i++ {
		for j := 0; j < n; j++ {
			if _, err := create(t.Context(), d, caller(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// snapshotKeys reads every object through KMIP Get.
func snapshotKeys(t *testing.T, d *daemon.Daemon, owners int) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for i := 0; i < owners; i++ {
		prefix := "obj/" + caller(i).Identity + "/"
		err := d.Store().List(t.Context(), prefix, func(key string, _ []byte) error {
			uid := strings.TrimPrefix(key, prefix)
			k, err := getKey(t.Context(), d, caller(i), uid)
			if err != nil {
				return err
			}
			out[caller(i).Identity+"/"+uid] = k
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// checkLocateAll checks that a Locate by Object Type (an indexed criterion)
// finds exactly c's stored objects.
func checkLocateAll(t *testing.T, d *daemon.Daemon, c kmipops.Caller) {
	t.Helper()
	stored := map[string]bool{}
	prefix := "obj/" + c.Identity + "/"
	if err := d.Store().List(t.Context(), prefix, func(key string, _ []byte) error {
		stored[strings.TrimPrefix(key, prefix)] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r := hostile.Results(d.Processor().Process(t.Context(), c, hostile.Request(hostile.Item(kmip14.OperationLocate,
		hostile.Attr("Object Type", tree.Enum(0, uint32(kmip14.ObjectTypeSymmetricKey)))))))
	if len(r) != 1 || !r[0].OK() {
		t.Fatalf("Locate: %v", r)
	}
	found := r[0].Payload.All(kmip14.TagUniqueIdentifier)
	if len(found) != len(stored) {
		t.Fatalf("%s: Locate found %d objects, %d stored", c.Identity, len(found), len(stored))
	}
	for _, n := range found {
		if uid, _ := n.TextValue(); !stored[uid] {
			t.Fatalf("%s: Locate found %q, which is not stored", c.Identity, uid)
		}
	}
}

func TestAdminStatusAndErrors(t *testing.T) {
	e := startAdmin(t)
	if fi, err := os.Stat(e.c.Admin.Socket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket: %v %v", fi, err)
	}
	if _, err := create(t.Context(), e.d, caller(0)); err != nil {
		t.Fatal(err)
	}
	raw, err := admin.Call(t.Context(), e.c.Admin.Socket, "status", nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var s admin.Status
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	if s.Token.Label != e.c.HSM.TokenLabel || s.MKEKLabel != e.c.HSM.MKEKLabel || len(s.Owners) != 1 ||
		s.Owners[0].Objects != 1 || s.Owners[0].Owner != "owner-0" || s.Sessions.Max == 0 {
		t.Fatalf("status: %+v", s)
	}
	var b bytes.Buffer
	s.Render(&b)
	if !strings.Contains(b.String(), "owner-0") {
		t.Fatalf("rendered status:\n%s", b.String())
	}
	// A second kmipd on the same socket is refused; so is a path that is
	// not a socket.
	if _, err := admin.Listen(e.c.Admin.Socket, nil, nil); err == nil || !strings.Contains(err.Error(), "another kmipd") {
		t.Fatalf("second listener: %v", err)
	}
	notSock := filepath.Join(filepath.Dir(e.c.Admin.Socket), "file")
	if err := os.WriteFile(notSock, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Listen(notSock, nil, nil); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("listener over a file: %v", err)
	}
	// A stale socket (nothing answers) is replaced.
	stale := filepath.Join(filepath.Dir(e.c.Admin.Socket), "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	s2, err := admin.Listen(stale, nil, nil)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	s2.Close()
	// Nothing listening: a clear error.
	_, err = admin.Call(t.Context(), stale, "status", nil, nil, nil)
	if !errors.Is(err, admin.ErrNotRunning) {
		t.Fatalf("call to a closed socket: %v", err)
	}
	_, err = admin.Call(t.Context(), e.c.Admin.Socket, "nope", nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "unknown operation") {
		t.Fatalf("unknown op: %v", err)
	}
}

// backupUnderLoad takes an admin backup through socket while clients of
// owners owners create and read keys on d, and reads it back; it fails the
// test if any client request fails meanwhile.
func backupUnderLoad(t *testing.T, d *daemon.Daemon, socket string, owners int) (*bytes.Buffer, []backup.Record) {
	t.Helper()
	cl := startLoad(t.Context(), d, owners)
	time.Sleep(50 * time.Millisecond)
	var buf bytes.Buffer
	if _, err := admin.Call(t.Context(), socket, "backup", nil, nil, &buf); err != nil {
		t.Fatal(err)
	}
	failed, firstErr := cl.stop()
	if failed != 0 {
		t.Fatalf("%d requests failed during the backup, e.g. %v", failed, firstErr)
	}
	_, recs, err := backup.Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return &buf, recs
}

// TestAdminBackupRestore: a backup taken while clients create and read keys
// restores into a fresh store with every object identical through KMIP
// Get; a non-empty store and another token's HSM are refused with nothing
// written.
func TestAdminBackupRestore(t *testing.T) {
	e := startAdmin(t)
	const owners = 3
	seedKeys(t, e.d, owners, 10)
	buf, recs := backupUnderLoad(t, e.d, e.c.Admin.Socket, owners)
	// What the backup holds, read through KMIP before the server goes.
	want := map[string][]byte{}
	for _, r := range recs {
		rest, ok := strings.CutPrefix(r.Key, "obj/")
		if !ok {
			continue
		}
		owner, uid, _ := strings.Cut(rest, "/")
		c := kmipops.Caller{Identity: owner, CommonName: "x"}
		k, err := getKey(t.Context(), e.d, c, uid)
		if err != nil {
			t.Fatal(err)
		}
		want[owner+"/"+uid] = k
	}
	if len(want) < owners*10 {
		t.Fatalf("backup holds %d objects, want at least %d", len(want), owners*10)
	}
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}

	// Into a fresh store.
	fresh := t.TempDir()
	st, err := storage.OpenBadger(fresh, storage.BadgerOptions{GCInterval: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := backup.Restore(t.Context(), st, e.h, bytes.NewReader(buf.Bytes()))
	if err != nil || n != len(recs) {
		t.Fatalf("restore: %d records, %v (want %d)", n, err, len(recs))
	}
	// Again into the same (now non-empty) store: refused, nothing changed.
	before := countKeys(t, st)
	if _, err := backup.Restore(t.Context(), st, e.h, bytes.NewReader(buf.Bytes())); !errors.Is(err, backup.ErrNotEmpty) {
		t.Fatalf("restore into a non-empty store: %v", err)
	}
	if after := countKeys(t, st); after != before {
		t.Fatalf("refused restore changed the store: %d -> %d keys", before, after)
	}
	st.Close()

	// Another token cannot open the pKEKs: refused, nothing written.
	other, err := hsm.Open(t.Context(), hsmtest.SoftHSM(t), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	empty, err := storage.OpenBadger(t.TempDir(), storage.BadgerOptions{GCInterval: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Restore(t.Context(), empty, other, bytes.NewReader(buf.Bytes())); err == nil || !strings.Contains(err.Error(), "HMAC key is not the one") {
		t.Fatalf("restore with another HSM: %v", err)
	}
	if n := countKeys(t, empty); n != 0 {
		t.Fatalf("refused restore wrote %d keys", n)
	}
	empty.Close()
	// A truncated backup is refused before anything else.
	if _, _, err := backup.Read(bytes.NewReader(buf.Bytes()[:buf.Len()-10])); err == nil {
		t.Fatal("truncated backup accepted")
	}

	// Serve the restored store: every object identical through KMIP Get.
	c2 := *e.c
	c2.Storage.Path = fresh
	c2.Admin = nil
	servesRestored(t, &c2, e.h, want)
}

// servesRestored builds a daemon on c with h and fails the test unless
// every object of want (by "owner/uid") reads back through KMIP Get byte for
// byte, as a 32-byte key.
func servesRestored(t *testing.T, c *daemon.Config, h *hsm.HSM, want map[string][]byte) {
	t.Helper()
	d, err := daemon.BuildWith(t.Context(), c, nil, daemon.Hooks{HSM: h})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for id, k := range want {
		owner, uid, _ := strings.Cut(id, "/")
		got, err := getKey(t.Context(), d, kmipops.Caller{Identity: owner, CommonName: "x"}, uid)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, k) || len(k) != 32 {
			t.Fatalf("%s differs after restore", id)
		}
	}
}

func countKeys(t *testing.T, st storage.Store) int {
	n := 0
	if err := st.List(t.Context(), "", func(string, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAdminRotatePKEK: every owner's pKEK rotated while clients create and
// read keys: no request fails and every object reads back byte for byte.
func TestAdminRotatePKEK(t *testing.T) {
	e := startAdmin(t)
	const owners = 3
	seedKeys(t, e.d, owners, 40)
	before := snapshotKeys(t, e.d, owners)
	for i := 0; i < owners; i++ {
		checkLocateAll(t, e.d, caller(i)) // builds the index under the old pKEK
	}
	cl := startLoad(t.Context(), e.d, owners)
	var progress int
	raw, err := admin.Call(t.Context(), e.c.Admin.Socket, "rotate-pkek", daemon.RotatePKEKArgs{All: true},
		func(admin.Progress) { progress++ }, nil)
	failed, firstErr := cl.stop()
	if err != nil {
		t.Fatal(err)
	}
	if failed != 0 {
		t.Fatalf("%d requests failed during the rotation, e.g. %v", failed, firstErr)
	}
	var res daemon.RotatePKEKResult
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Owners) != owners || progress == 0 {
		t.Fatalf("rotation result %+v, %d progress lines", res, progress)
	}
	for _, o := range res.Owners {
		if o.From != 0 || o.To != 1 || o.Resealed < 40 {
			t.Errorf("owner %s: %+v", o.Owner, o)
		}
	}
	after := snapshotKeys(t, e.d, owners)
	for id, k := range before {
		if !bytes.Equal(after[id], k) {
			t.Fatalf("%s changed or vanished in the rotation", id)
		}
	}
	// The blind index is derived from the pKEK: after the rotation it is
	// rebuilt under the new one, and Locate still finds every object.
	for i := 0; i < owners; i++ {
		checkLocateAll(t, e.d, caller(i))
	}
	// Every record now names generation 1.
	var s admin.Status
	raw, err = admin.Call(t.Context(), e.c.Admin.Socket, "status", nil, nil, nil)
	if err == nil {
		err = json.Unmarshal(raw, &s)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range s.Owners {
		if o.Generation != 1 || o.Pending {
			t.Errorf("status after rotation: %+v", o)
		}
	}
	// Bad arguments are refused.
	if _, err := admin.Call(t.Context(), e.c.Admin.Socket, "rotate-pkek", daemon.RotatePKEKArgs{Owner: "nobody"}, nil, nil); err == nil {
		t.Fatal("rotation of an owner without a pKEK accepted")
	}
	if _, err := admin.Call(t.Context(), e.c.Admin.Socket, "rotate-pkek", daemon.RotatePKEKArgs{}, nil, nil); err == nil {
		t.Fatal("rotation of nobody accepted")
	}
}
