package hsm

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/pkcs11"
)

// fakeHSM is a session source that refuses sessions beyond limit with
// CKR_SESSION_COUNT, as a shared HSM does when other clients use it.
type fakeHSM struct {
	mu     sync.Mutex
	limit  int
	open   int
	peak   int
	next   pkcs11.SessionHandle
	refuse atomic.Int64
}

func (f *fakeHSM) openFn(context.Context) (*session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.open >= f.limit {
		f.refuse.Add(1)
		return nil, &Error{Op: "C_OpenSession", Code: pkcs11.CKR_SESSION_COUNT, Class: ClassCapacity, Err: pkcs11.Error(pkcs11.CKR_SESSION_COUNT)}
	}
	f.open++
	f.peak = max(f.peak, f.open)
	f.next++
	return &session{h: f.next, gen: 1}, nil
}

func (f *fakeHSM) closeFn(*session) {
	f.mu.Lock()
	f.open--
	f.mu.Unlock()
}

func TestPoolSessionCountLowersCapAndRecovers(t *testing.T) {
	f := &fakeHSM{limit: 2, open: 1}
	cfg, err := Config{ModulePath: "x", TokenLabel: "t", MaxSessions: 6, WaitTimeout: 5 * time.Second}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	p := newPool(hclog.NewNullLogger(), cfg, cfg.MaxSessions, &session{h: 1000, gen: 1})
	p.openFn, p.closeFn = f.openFn, f.closeFn
	p.raiseEvery, p.raiseInterval = 1, 0

	var wg sync.WaitGroup
	var failures atomic.Int64
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				s, err := p.take(context.Background(), false)
				if err != nil {
					failures.Add(1)
					return
				}
				time.Sleep(100 * time.Microsecond)
				p.put(s, true)
			}
		}()
	}
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d callers failed; capacity errors must be absorbed", failures.Load())
	}
	if f.refuse.Load() == 0 || p.capLowered == 0 {
		t.Fatalf("the HSM never refused a session (refusals %d, lowered %d)", f.refuse.Load(), p.capLowered)
	}
	if f.peak > 2 {
		t.Fatalf("fake HSM peak %d > its limit", f.peak)
	}
	// Refusals are bounded: once lowered the cap is only probed +1 at a time.
	if r := f.refuse.Load(); r > int64(p.capLowered)+16 {
		t.Fatalf("%d refusals for %d lowerings: the pool keeps hammering the HSM", r, p.capLowered)
	}

	// The HSM frees up: additive increase brings the cap back to the max.
	f.mu.Lock()
	f.limit = 100
	f.mu.Unlock()
	for i := 0; i < 50; i++ {
		var ss []*session
		for j := 0; j < 6; j++ {
			if s, err := p.take(context.Background(), false); err == nil {
				ss = append(ss, s)
			} else if !errors.Is(err, ErrBusy) {
				t.Fatal(err)
			}
			if len(ss) == p.maxCap {
				break
			}
		}
		for _, s := range ss {
			p.put(s, true)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.effCap != 6 || p.open > 6 {
		t.Fatalf("cap %d open %d after the HSM freed up, want cap 6", p.effCap, p.open)
	}
}

func TestClassify(t *testing.T) {
	for code, want := range map[uint]Class{
		pkcs11.CKR_SESSION_HANDLE_INVALID:   ClassBroken,
		pkcs11.CKR_SESSION_CLOSED:           ClassBroken,
		pkcs11.CKR_USER_NOT_LOGGED_IN:       ClassBroken,
		pkcs11.CKR_SESSION_READ_ONLY:        ClassBroken,
		pkcs11.CKR_SESSION_COUNT:            ClassCapacity,
		pkcs11.CKR_DEVICE_MEMORY:            ClassCapacity,
		pkcs11.CKR_HOST_MEMORY:              ClassCapacity,
		pkcs11.CKR_DEVICE_ERROR:             ClassDevice,
		pkcs11.CKR_DEVICE_REMOVED:           ClassDevice,
		pkcs11.CKR_TOKEN_NOT_PRESENT:        ClassDevice,
		pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED: ClassDevice,
		pkcs11.CKR_GENERAL_ERROR:            ClassDevice,
		pkcs11.CKR_TOKEN_NOT_RECOGNIZED:     ClassDevice,
		pkcs11.CKR_SLOT_ID_INVALID:          ClassDevice,
		pkcs11.CKR_SIGNATURE_INVALID:        ClassCrypto,
		pkcs11.CKR_ENCRYPTED_DATA_INVALID:   ClassCrypto,
		pkcs11.CKR_ARGUMENTS_BAD:            ClassOther,
		pkcs11.CKR_MECHANISM_INVALID:        ClassOther,
	} {
		if got := classify(code); got != want {
			t.Errorf("%s: %v, want %v", ckrName(code), got, want)
		}
	}
	if ckrName(pkcs11.CKR_SESSION_COUNT) != "CKR_SESSION_COUNT" {
		t.Fatal(ckrName(pkcs11.CKR_SESSION_COUNT))
	}
}

// A session being closed still counts toward the cap until C_CloseSession
// returns. Before, discard (and the reaper, and put over a lowered cap)
// uncounted it first: a waiter was let open a session in its place while
// the HSM still had it, so a full HSM refused, and openFailed lowered the
// cap to what the pool thought was open, one below what the HSM allowed.
func TestPoolCountsSessionsUntilClosed(t *testing.T) {
	f := &fakeHSM{limit: 2, open: 1}
	cfg, err := Config{ModulePath: "x", TokenLabel: "t", MaxSessions: 2, WaitTimeout: time.Second}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	p := newPool(hclog.NewNullLogger(), cfg, cfg.MaxSessions, &session{h: 1000, gen: 1})
	inClose, release := make(chan struct{}), make(chan struct{})
	p.openFn = f.openFn
	p.closeFn = func(s *session) {
		close(inClose)
		<-release // C_CloseSession is slow: the HSM still has s meanwhile
		f.closeFn(s)
	}
	ctx := context.Background()
	login, err := p.take(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	broken, err := p.take(ctx, false) // opened: the HSM is now full
	if err != nil {
		t.Fatal(err)
	}
	discarded := make(chan struct{})
	go func() {
		p.discard(broken, true)
		close(discarded)
	}()
	<-inClose
	got := make(chan error, 1)
	go func() {
		s, err := p.take(ctx, false)
		if err == nil {
			p.put(s, true)
		}
		got <- err
	}()
	// The taker either queues for the slot (right) or opens and is refused.
	queued := func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.waiters.Len() == 1 || f.refuse.Load() > 0
	}
	for end := time.Now().Add(5 * time.Second); !queued(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the taker neither queued nor opened")
		}
	}
	close(release)
	<-discarded
	if err := <-got; err != nil {
		p.mu.Lock()
		capNow := p.effCap
		p.mu.Unlock()
		// Refused and the cap lowered to 1 while this test holds the
		// other session: the taker waited out WaitTimeout for nothing.
		t.Fatalf("taker: %v (%d refusals, cap lowered to %d; the HSM allows 2)", err, f.refuse.Load(), capNow)
	}
	p.put(login, true)
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := f.refuse.Load(); r != 0 || p.capLowered != 0 || p.effCap != 2 {
		t.Fatalf("opened over a session still being closed: %d refusals, cap lowered %d times to %d (HSM allows 2)",
			r, p.capLowered, p.effCap)
	}
	if f.peak > 2 || p.open != f.open {
		t.Fatalf("HSM peak %d, pool open %d vs HSM open %d", f.peak, p.open, f.open)
	}
}
