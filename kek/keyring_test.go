package kek

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/kek/kektest"
	"github.com/kmipd/kmipd/storage"
)

// exerciseKeyring is the Keyring suite; it runs against any MasterKeys (the
// software one here, SoftHSM via the hsm package in hsm_test.go).
func exerciseKeyring(t *testing.T, mk MasterKeys) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, MasterKeys)
	}{
		{"RoundTrip", testRoundTrip},
		{"WrongOwnerOrAAD", testWrongOwnerOrAAD},
		{"TamperedSealed", testTamperedSealed},
		{"TamperedRecord", testTamperedRecord},
		{"MovedRecord", testMovedRecord},
		{"ConcurrentFirstUse", testConcurrentFirstUse},
		{"CacheHitNoCalls", testCacheHitNoCalls},
		{"TTLExpiry", testTTLExpiry},
		{"KeyGeneration", testKeyGeneration},
		{"SizeBound", testSizeBound},
		{"HSMErrorsPassThrough", testHSMErrors},
		{"WaiterContext", testWaiterContext},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, mk) })
	}
}

func TestKeyringSoftMK(t *testing.T) { exerciseKeyring(t, kektest.NewMasterKeys()) }

func testRoundTrip(t *testing.T, mk MasterKeys) {
	f := newFixture(t, mk, Config{})
	ctx := context.Background()
	for _, n := range []int{0, 1, 1024, 100 << 10} {
		pt := bytes.Repeat([]byte{byte(n)}, n)
		s1, err := f.k.Seal(ctx, "alice", []byte("uid-1"), pt)
		if err != nil {
			t.Fatal(err)
		}
		s2, _ := f.k.Seal(ctx, "alice", []byte("uid-1"), pt)
		if len(s1) != 1+12+n+16 || s1[0] != 1 {
			t.Fatalf("sealed len %d version %d, want %d / 1", len(s1), s1[0], 1+12+n+16)
		}
		if bytes.Equal(s1, s2) {
			t.Fatal("two Seals of the same input are identical (nonce reuse)")
		}
		if n > 8 && bytes.Contains(s1, pt[:8]) {
			t.Fatal("plaintext visible in sealed blob")
		}
		got, err := f.k.Open(ctx, "alice", []byte("uid-1"), s1)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Open = %d bytes, %v", len(got), err)
		}
		// OpenInPlace agrees, inside the sealed buffer; a tampered copy
		// fails the same way Open does.
		inPlace := bytes.Clone(s1)
		got, err = f.k.OpenInPlace(ctx, "alice", []byte("uid-1"), inPlace)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("OpenInPlace = %d bytes, %v", len(got), err)
		}
		if n > 0 && &got[0] != &inPlace[1+12] {
			t.Fatal("OpenInPlace did not decrypt in place")
		}
		bad := bytes.Clone(s1)
		bad[len(bad)-1] ^= 1
		_, err = f.k.OpenInPlace(ctx, "alice", []byte("uid-1"), bad)
		wantCrypto(t, err, msgIntegrity)
		_, err = f.k.OpenInPlace(ctx, "alice", []byte("uid-1"), s1[:5])
		wantCrypto(t, err, msgIntegrity)
	}
	if st := f.k.Stats(); st.Created != 1 || st.Size != 1 || st.Unwraps != 0 {
		t.Fatalf("stats %+v, want 1 created, size 1, no unwraps", st)
	}
	// A fresh Keyring (restart) unwraps the stored pKEK and opens old blobs.
	s := f.seal("alice", "u", "persisted")
	k2 := f.keyring(f.mk, Config{})
	if got, err := k2.Open(ctx, "alice", []byte("u"), s); err != nil || string(got) != "persisted" {
		t.Fatalf("Open after restart = %q, %v", got, err)
	}
	if st := k2.Stats(); st.Created != 0 || st.Unwraps != 1 {
		t.Fatalf("restart stats %+v, want 0 created, 1 unwrap", st)
	}
	if _, err := f.k.Seal(ctx, "", nil, nil); err == nil {
		t.Fatal("Seal with empty owner succeeded")
	}
	if _, err := f.k.Seal(ctx, "a\x00b", nil, nil); err == nil {
		t.Fatal("Seal with NUL in owner succeeded")
	}
}

func testWrongOwnerOrAAD(t *testing.T, mk MasterKeys) {
	f := newFixture(t, mk, Config{})
	ctx := context.Background()
	s := f.seal("alice", "uid-1", "secret")
	f.seal("bob", "x", "bob's")

	_, err := f.k.Open(ctx, "bob", []byte("uid-1"), s)
	wantCrypto(t, err, msgIntegrity)
	_, err = f.k.Open(ctx, "alice", []byte("uid-2"), s)
	wantCrypto(t, err, msgIntegrity)
	_, err = f.k.Open(ctx, "alice", nil, s)
	wantCrypto(t, err, msgIntegrity)
	// Owner/aad boundary: ("alice", "\x00x") must not equal ("alice\x00", "x").
	_, err = f.k.Open(ctx, "alice", []byte("uid-1\x00"), s)
	wantCrypto(t, err, msgIntegrity)

	// An owner without a pKEK: Open fails and does not create one.
	_, err = f.k.Open(ctx, "carol", []byte("uid-1"), s)
	wantCrypto(t, err, msgIntegrity)
	if _, err := f.raw.Get(ctx, storageKey("carol")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Open created a pKEK for carol: %v", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatal("plaintext in error")
	}
}

func testTamperedSealed(t *testing.T, mk MasterKeys) {
	f := newFixture(t, mk, Config{})
	ctx := context.Background()
	s := f.seal("alice", "uid", "a sealed object body")
	for i := range s {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(s)
			bad[i] ^= bit
			if _, err := f.k.Open(ctx, "alice", []byte("uid"), bad); err == nil {
				t.Fatalf("Open succeeded with byte %d flipped", i)
			} else {
				wantCrypto(t, err, msgIntegrity)
			}
		}
	}
	for _, bad := range [][]byte{nil, s[:1], s[:28], s[:len(s)-1], append(bytes.Clone(s), 0)} {
		_, err := f.k.Open(ctx, "alice", []byte("uid"), bad)
		wantCrypto(t, err, msgIntegrity)
	}
}

func testTamperedRecord(t *testing.T, mk MasterKeys) {
	f := newFixture(t, mk, Config{})
	ctx := context.Background()
	s := f.seal("alice", "uid", "body")
	orig := f.record("alice")
	for _, i := range []int{0, 1, 2, 3, len(orig) / 2, len(orig) - 33, len(orig) - 1} {
		bad := bytes.Clone(orig)
		bad[i] ^= 0x01
		if err := f.raw.Put(ctx, storageKey("alice"), bad); err != nil {
			t.Fatal(err)
		}
		f.k.Evict("alice")
		before := f.mk.unwrap.Load()
		_, err := f.k.Open(ctx, "alice", []byte("uid"), s)
		wantCrypto(t, err, msgPKEK)
		_, err = f.k.Seal(ctx, "alice", []byte("uid"), []byte("x"))
		wantCrypto(t, err, msgPKEK)
		if f.mk.unwrap.Load() != before {
			// The MAC covers the wrapped key and (through the split) its
			// length, so nothing tampered may reach Unwrap.
			t.Fatalf("byte %d: Unwrap called on a record whose MAC failed", i)
		}
		// A tampered record is refused, never replaced.
		if got := f.record("alice"); !bytes.Equal(got, bad) {
			t.Fatalf("byte %d: tampered record was overwritten", i)
		}
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "[ERROR] kek: pKEK record failed its integrity check") || !strings.Contains(logs, "owner=alice") {
		t.Fatalf("no loud log line naming the owner:\n%s", logs)
	}
	if strings.Contains(logs, fmt.Sprintf("%x", orig[3:10])) {
		t.Fatal("record bytes in the log")
	}
	if err := f.raw.Put(ctx, storageKey("alice"), orig); err != nil {
		t.Fatal(err)
	}
	if got, err := f.k.Open(ctx, "alice", []byte("uid"), s); err != nil || string(got) != "body" {
		t.Fatalf("restored record: %q, %v", got, err)
	}
}

func testMovedRecord(t *testing.T, mk MasterKeys) {
	f := newFixture(t, mk, Config{})
	ctx := context.Background()
	s := f.seal("alice", "uid", "alice's key")
	f.seal("bob", "uid", "bob's key")
	// Mallory copies alice's record over bob's, and to a fresh owner.
	for _, victim := range []string{"bob", "mallory"} {
		if err := f.raw.Put(ctx, storageKey(victim), f.record("alice")); err != nil {
			t.Fatal(err)
		}
		f.k.Evict(victim)
		before := f.mk.unwrap.Load()
		_, err := f.k.Seal(ctx, victim, []byte("uid"), []byte("x"))
		wantCrypto(t, err, msgPKEK)
		_, err = f.k.Open(ctx, victim, []byte("uid"), s)
		wantCrypto(t, err, msgPKEK)
		if f.mk.unwrap.Load() != before {
			t.Fatalf("%s: moved record reached Unwrap", victim)
		}
		if !strings.Contains(f.logs.String(), "owner="+victim) {
			t.Fatalf("no log line naming %s", victim)
		}
	}
}

func testConcurrentFirstUse(t *testing.T, mk MasterKeys) {
	f := newFixture(t, mk, Config{})
	ctx := context.Background()
	const goroutines = 50

	run := func(owner string, rings []*Keyring) [][]byte {
		var wg sync.WaitGroup
		start := make(chan struct{})
		sealed := make([][]byte, goroutines)
		errs := make([]error, goroutines)
		for i := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				sealed[i], errs[i] = rings[i%len(rings)].Seal(ctx, owner, []byte("uid"), []byte{byte(i)})
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("goroutine %d: %v", i, err)
			}
		}
		return sealed
	}

	// One Keyring: singleflight makes it a single HSM round trip.
	run("one-ring", []*Keyring{f.k})
	if r, w := f.mk.random.Load(), f.mk.wrap.Load(); r != 1 || w != 1 || f.st.creates.Load() != 1 {
		t.Fatalf("one keyring: %d Random, %d Wrap, %d Creates; want 1 each", r, w, f.st.creates.Load())
	}

	// Five Keyrings (separate caches) racing in the store: Create decides.
	rings := make([]*Keyring, 5)
	for i := range rings {
		rings[i] = f.keyring(f.mk, Config{})
	}
	before := f.st.creates.Load()
	sealed := run("many-rings", rings)
	var created uint64
	for _, r := range rings {
		created += r.Stats().Created
	}
	if n := f.st.creates.Load() - before; n != 1 || created != 1 {
		t.Fatalf("five keyrings: %d store Creates, %d Stats.Created; want exactly 1", n, created)
	}
	for i, s := range sealed {
		for _, r := range rings {
			if got, err := r.Open(ctx, "many-rings", []byte("uid"), s); err != nil || !bytes.Equal(got, []byte{byte(i)}) {
				t.Fatalf("blob %d does not open on every keyring: %v", i, err)
			}
		}
	}
}

func testCacheHitNoCalls(t *testing.T, mk MasterKeys) {
	f := newFixture(t, mk, Config{})
	ctx := context.Background()
	f.seal("alice", "uid", "warm")
	mkBefore, stBefore, st0 := f.mk.total(), f.st.calls.Load(), f.k.Stats()
	for i := range 1000 {
		s, err := f.k.Seal(ctx, "alice", []byte("uid"), []byte("payload"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.k.Open(ctx, "alice", []byte("uid"), s); err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
	}
	if d := f.mk.total() - mkBefore; d != 0 {
		t.Fatalf("cached Seal/Open made %d MasterKeys calls, want 0", d)
	}
	if d := f.st.calls.Load() - stBefore; d != 0 {
		t.Fatalf("cached Seal/Open made %d storage calls, want 0", d)
	}
	if st := f.k.Stats(); st.Hits-st0.Hits != 2000 || st.Misses != st0.Misses {
		t.Fatalf("stats %+v after %+v: want 2000 more hits, no misses", st, st0)
	}
}

// fakeClock drives the cache's TTL.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testTTLExpiry(t *testing.T, mk MasterKeys) {
	f := newFixture(t, mk, Config{CacheTTL: time.Minute})
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	f.k.cache.now = clk.now
	ctx := context.Background()
	s := f.seal("alice", "uid", "ttl")

	clk.add(59 * time.Second)
	if _, err := f.k.Open(ctx, "alice", []byte("uid"), s); err != nil {
		t.Fatal(err)
	}
	if n := f.mk.unwrap.Load(); n != 0 {
		t.Fatalf("within TTL: %d unwraps, want 0", n)
	}
	clk.add(time.Second) // exactly TTL after the load: expired
	if _, err := f.k.Open(ctx, "alice", []byte("uid"), s); err != nil {
		t.Fatal(err)
	}
	if u, v := f.mk.unwrap.Load(), f.mk.verify.Load(); u != 1 || v != 1 {
		t.Fatalf("after TTL: %d unwraps, %d MAC checks; want 1 each", u, v)
	}
	// The TTL is absolute from the load, not sliding with use.
	for range 3 {
		clk.add(30 * time.Second)
		if _, err := f.k.Open(ctx, "alice", []byte("uid"), s); err != nil {
			t.Fatal(err)
		}
	}
	if u := f.mk.unwrap.Load(); u != 2 {
		t.Fatalf("after 90s of use: %d unwraps, want 2", u)
	}
	if st := f.k.Stats(); st.Unwraps != 2 || st.Evictions != 2 {
		t.Fatalf("stats %+v, want 2 unwraps, 2 evictions", st)
	}
}

func testSizeBound(t *testing.T, mk MasterKeys) {
	f := newFixture(t, mk, Config{CacheSize: 3})
	ctx := context.Background()
	sealed := map[string][]byte{}
	for _, o := range []string{"o1", "o2", "o3", "o4", "o5"} {
		sealed[o] = f.seal(o, "uid", o)
	}
	if st := f.k.Stats(); st.Size != 3 || st.Evictions != 2 {
		t.Fatalf("stats %+v, want size 3, 2 evictions", st)
	}
	// o3..o5 are cached; o1 was evicted (least recently used).
	before := f.mk.total()
	for _, o := range []string{"o3", "o4", "o5"} {
		if _, err := f.k.Open(ctx, o, []byte("uid"), sealed[o]); err != nil {
			t.Fatal(err)
		}
	}
	if f.mk.total() != before {
		t.Fatal("cached owners made HSM calls")
	}
	if got, err := f.k.Open(ctx, "o1", []byte("uid"), sealed["o1"]); err != nil || string(got) != "o1" {
		t.Fatalf("evicted owner: %q, %v", got, err)
	}
	if u := f.mk.unwrap.Load(); u != 1 {
		t.Fatalf("evicted owner: %d unwraps, want 1", u)
	}
	// The Opens above left o3 least recently used, so loading o1 pushed it
	// out while o5 stayed.
	before = f.mk.total()
	if _, err := f.k.Open(ctx, "o5", []byte("uid"), sealed["o5"]); err != nil || f.mk.total() != before {
		t.Fatalf("o5 should be cached: %v", err)
	}
	if _, err := f.k.Open(ctx, "o3", []byte("uid"), sealed["o3"]); err != nil || f.mk.unwrap.Load() != 2 {
		t.Fatalf("o3 should have been evicted (unwraps %d): %v", f.mk.unwrap.Load(), err)
	}
}

func testHSMErrors(t *testing.T, mk MasterKeys) {
	ctx := context.Background()
	// An operational HSM failure, as the session pool reports one.
	busy := &hsm.Error{Op: "acquire session", Class: hsm.ClassBusy, Err: errors.New("no session")}
	for _, method := range []string{"Random", "Wrap", "VerifyMAC", "Unwrap"} {
		f := newFixture(t, mk, Config{})
		if method == "VerifyMAC" || method == "Unwrap" {
			f.seal("alice", "uid", "x") // a record to load
		}
		k := f.keyring(&failingMK{MasterKeys: f.mk, method: method, err: busy}, Config{})
		_, err := k.Seal(ctx, "alice", []byte("uid"), []byte("x"))
		var he *hsm.Error
		var ke *Error
		if !errors.As(err, &he) || !errors.As(err, &ke) {
			t.Fatalf("%s: error %v does not wrap both the HSM error and a kek.Error", method, err)
		}
		if ke.ResultReason() != kmip14.ResultReasonGeneralFailure || ke.ClientMessage() != "HSM busy" {
			t.Fatalf("%s: %v / %q, want GeneralFailure / HSM busy", method, ke.ResultReason(), ke.ClientMessage())
		}
		if k.Stats().Size != 0 {
			t.Fatalf("%s: a failed load was cached", method)
		}
		if strings.Contains(f.logs.String(), "integrity") {
			t.Fatalf("%s: a busy HSM was logged as an integrity failure", method)
		}
		if method == "Random" || method == "Wrap" {
			if _, err := f.raw.Get(ctx, storageKey("alice")); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("%s: record stored despite failure: %v", method, err)
			}
		}
	}
	f := newFixture(t, mk, Config{})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.k.Seal(cctx, "alice", nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Seal = %v, want context.Canceled", err)
	}
}

// blockingMK holds Random until released, to keep a load in flight.
type blockingMK struct {
	MasterKeys
	entered chan struct{}
	release chan struct{}
}

func (b *blockingMK) Random(ctx context.Context, n int) ([]byte, error) {
	close(b.entered)
	<-b.release
	return b.MasterKeys.Random(ctx, n)
}

func testWaiterContext(t *testing.T, mk MasterKeys) {
	f := newFixture(t, mk, Config{})
	b := &blockingMK{MasterKeys: f.mk, entered: make(chan struct{}), release: make(chan struct{})}
	k := f.keyring(b, Config{})
	ctx := context.Background()
	done := make(chan error)
	go func() { _, err := k.Seal(ctx, "alice", nil, []byte("x")); done <- err }()
	<-b.entered
	// A waiter whose context ends gives up without disturbing the leader.
	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := k.Seal(wctx, "alice", nil, []byte("y")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiter = %v, want DeadlineExceeded", err)
	}
	close(b.release)
	if err := <-done; err != nil {
		t.Fatalf("leader: %v", err)
	}
	if st := k.Stats(); st.Created != 1 || st.Size != 1 {
		t.Fatalf("stats %+v", st)
	}
}
