// Package crash_test kills kmipd with SIGKILL in the middle of a concurrent
// write load, again and again on one folder, and checks after every restart
// that each object whose Create or Register was acknowledged is there byte
// for byte, and that nothing half-written is visible.
package crash_test

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/tests/hostile"
)

const defaultCycles = 20

// ack is an acknowledged write: the server answered Success.
type ack struct {
	uid      string
	material []byte
	kind     string
}

// owner is one client identity and what it was told is stored.
type owner struct {
	name string
	tls  *tls.Config

	mu   sync.Mutex
	acks map[string]ack // uid → ack
}

func (o *owner) record(a ack) {
	o.mu.Lock()
	o.acks[a.uid] = a
	o.mu.Unlock()
}

func TestKillDuringWrites(t *testing.T) {
	cycles := defaultCycles
	if s := os.Getenv("KMIPD_CRASH_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("KMIPD_CRASH_CYCLES=%q", s)
		}
		cycles = n
	}
	if testing.Short() {
		cycles = 3
	}
	root := t.TempDir()
	srv := newDevServer(t, filepath.Join(root, "dev"))
	srv.start()
	defer srv.kill()
	owners := []*owner{{name: "dev client", tls: srv.clientTLS(certs.ClientCertFile, certs.ClientKeyFile), acks: map[string]ack{}}}

	const workers = 4
	start := time.Now()
	totalUnacked := 0
	for cycle := range cycles {
		// A new identity every cycle: its pKEK is created (HSM wrap and
		// MAC, store Create) while the kill may land.
		fresh := &owner{name: fmt.Sprintf("c%d", cycle), acks: map[string]ack{}}
		fresh.tls = srv.newIdentity(fresh.name)
		owners = append(owners, fresh)

		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range workers {
			o := owners[0]
			if w%2 == 1 {
				o = fresh
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				load(srv, o, fmt.Sprintf("c%d-w%d", cycle, w), stop)
			}()
		}
		time.Sleep(time.Duration(50+mrand.IntN(451)) * time.Millisecond)
		srv.kill()
		close(stop)
		wg.Wait()

		srv.start()
		for i, o := range owners {
			// Each worker has at most one write in flight when the kill
			// lands; owners from earlier cycles had none.
			maxExtra := 0
			if i == 0 || o == fresh {
				maxExtra = workers / 2
			}
			totalUnacked += verify(t, srv, o, maxExtra)
		}
		if t.Failed() {
			t.Fatalf("cycle %d failed; kmipd log:\n%s", cycle, srv.logTail())
		}
	}
	n := 0
	for _, o := range owners {
		n += len(o.acks)
	}
	t.Logf("%d kill cycles in %v: %d acknowledged objects all intact, %d unacknowledged objects found complete",
		cycles, time.Since(start).Round(time.Millisecond), n, totalUnacked)
	if n < cycles {
		t.Errorf("only %d writes were acknowledged over %d cycles: the load never got going", n, cycles)
	}
}

// load writes until the server dies (or stop): alternately a Register of
// known bytes, and a Create whose key material the same batch reads back
// (Create, then Get through the ID Placeholder), so every acknowledged
// object has known bytes.
func load(srv *devServer, o *owner, tag string, stop chan struct{}) {
	c, err := srv.dial(o.tls)
	if err != nil {
		return
	}
	defer c.Close()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		name := hostile.Name(fmt.Sprintf("%s-%d", tag, i))
		if i%2 == 0 {
			secret := make([]byte, 48)
			rand.Read(secret)
			resp, err := c.RoundTrip(hostile.Request(hostile.RegisterSecret(secret, name)))
			if err != nil {
				return
			}
			if rs := hostile.Results(resp); len(rs) == 1 && rs[0].OK() {
				o.record(ack{uid: hostile.UIDOf(rs[0].Payload), material: secret, kind: "Register"})
			}
			continue
		}
		resp, err := c.RoundTrip(hostile.Request(hostile.CreateAES(256, name), hostile.Item(kmip14.OperationGet)))
		if err != nil {
			return
		}
		if rs := hostile.Results(resp); len(rs) == 2 && rs[0].OK() && rs[1].OK() {
			o.record(ack{uid: hostile.UIDOf(rs[0].Payload), material: hostile.FindBytes(rs[1].Payload, kmip14.TagKeyMaterial), kind: "Create"})
		}
	}
}

// verify checks o's objects after a restart and returns how many complete
// objects exist beyond those acknowledged: writes the kill cut off between
// commit and answer, at most maxExtra.
func verify(t *testing.T, srv *devServer, o *owner, maxExtra int) int {
	t.Helper()
	c, err := srv.dial(o.tls)
	if err != nil {
		t.Fatalf("dial as %s after restart: %v", o.name, err)
	}
	defer c.Close()
	c.Timeout = time.Minute
	// Locate opens every sealed record of the owner: a torn or corrupt one
	// fails it (Cryptographic Failure) rather than being skipped.
	resp, err := c.RoundTrip(hostile.Request(hostile.Item(kmip14.OperationLocate)))
	if err != nil {
		t.Fatalf("Locate as %s: %v", o.name, err)
	}
	located := map[string]bool{}
	for _, n := range hostile.WantOK(t, hostile.Only(t, resp)).All(kmip14.TagUniqueIdentifier) {
		located[n.Text] = true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var uids []string
	for uid := range located {
		uids = append(uids, uid)
	}
	for uid := range o.acks {
		if !located[uid] {
			t.Errorf("%s: acknowledged %s %s is gone after the crash", o.name, o.acks[uid].kind, uid)
		}
	}
	// Every stored object, acknowledged or not, must Get whole.
	adopted := map[string][]byte{}
	for len(uids) > 0 {
		n := min(len(uids), 200)
		chunk := uids[:n]
		uids = uids[n:]
		items := make([]*tree.Node, n)
		for i, uid := range chunk {
			items[i] = hostile.Item(kmip14.OperationGet, hostile.UID(uid))
		}
		resp, err := c.RoundTrip(hostile.ContinueOnError(items...))
		if err != nil {
			t.Fatalf("Get as %s: %v", o.name, err)
		}
		for i, r := range hostile.CheckMessage(t, resp) {
			uid := chunk[i]
			if !r.OK() {
				t.Errorf("%s: stored object %s does not Get cleanly: %s", o.name, uid, r)
				continue
			}
			got := hostile.FindBytes(r.Payload, kmip14.TagKeyMaterial)
			if a, ok := o.acks[uid]; ok && !bytes.Equal(got, a.material) {
				t.Errorf("%s: %s %s reads back %x, acknowledged with %x", o.name, a.kind, uid, got, a.material)
			} else if !ok {
				adopted[uid] = got
			}
			if len(got) == 0 {
				t.Errorf("%s: stored object %s has no key material", o.name, uid)
			}
		}
	}
	if len(adopted) > maxExtra {
		t.Errorf("%s: %d objects stored that were never acknowledged (at most %d writes were in flight)", o.name, len(adopted), maxExtra)
	}
	// Unacknowledged but complete objects are adopted, so later cycles
	// check that they stay intact too.
	for uid, m := range adopted {
		o.acks[uid] = ack{uid: uid, material: m, kind: "unacknowledged write"}
	}
	return len(adopted)
}
