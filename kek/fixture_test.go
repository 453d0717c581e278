package kek

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/storage"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	t    testing.TB
	base MasterKeys
	mk   *countingMK
	st   *countingStore
	raw  storage.Store
	logs *syncBuffer
	k    *Keyring
}

func newFixture(t testing.TB, mk MasterKeys, cfg Config) *fixture {
	t.Helper()
	st, err := storage.OpenBadger(t.TempDir(), storage.BadgerOptions{GCInterval: -1}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, base: mk, raw: st, logs: &syncBuffer{}}
	f.mk = &countingMK{MasterKeys: mk}
	f.st = &countingStore{Store: st}
	f.k = f.keyring(f.mk, cfg)
	return f
}

// keyring builds another Keyring (its own cache) over the fixture's store.
func (f *fixture) keyring(mk MasterKeys, cfg Config) *Keyring {
	log := hclog.New(&hclog.LoggerOptions{Name: "kek", Level: hclog.Debug, Output: f.logs})
	return New(mk, f.st, cfg, log)
}

func (f *fixture) seal(owner, aad, pt string) []byte {
	f.t.Helper()
	s, err := f.k.Seal(context.Background(), owner, []byte(aad), []byte(pt))
	if err != nil {
		f.t.Fatalf("Seal(%s): %v", owner, err)
	}
	return s
}

func (f *fixture) record(owner string) []byte {
	f.t.Helper()
	r, err := f.raw.Get(context.Background(), storageKey(owner))
	if err != nil {
		f.t.Fatalf("pKEK record for %s: %v", owner, err)
	}
	return r
}

// wantCrypto asserts err is a kek.Error with reason CryptographicFailure.
func wantCrypto(t testing.TB, err error, msg string) {
	t.Helper()
	var ke *Error
	if !errors.As(err, &ke) {
		t.Fatalf("error %v (%T) is not a *kek.Error", err, err)
	}
	if ke.ResultReason() != kmip14.ResultReasonCryptographicFailure || ke.ClientMessage() != msg {
		t.Fatalf("error = %v / %q, want CryptographicFailure / %q", ke.ResultReason(), ke.ClientMessage(), msg)
	}
}
