package kek

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/kmipd/kmipd/storage"
)

// softMK is a software MasterKeys with real crypto under random in-memory
// keys (AES-256-GCM wrap, HMAC-SHA256), for developing without an HSM.
type softMK struct {
	wrap   cipher.AEAD
	macKey []byte
}

var _ MasterKeys = (*softMK)(nil)

func newSoftMK(t testing.TB) *softMK {
	k := make([]byte, 32)
	m := make([]byte, 32)
	rand.Read(k)
	rand.Read(m)
	b, err := aes.NewCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return &softMK{wrap: g, macKey: m}
}

func (s *softMK) Random(ctx context.Context, n int) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	_, err := rand.Read(b)
	return b, err
}

func (s *softMK) Wrap(ctx context.Context, pt, aad []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	nonce := make([]byte, s.wrap.NonceSize())
	rand.Read(nonce)
	return s.wrap.Seal(nonce, nonce, pt, aad), nil
}

func (s *softMK) Unwrap(ctx context.Context, w, aad []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n := s.wrap.NonceSize()
	if len(w) < n {
		return nil, errors.New("softmk: short wrapped key")
	}
	return s.wrap.Open(nil, w[:n], w[n:], aad)
}

func (s *softMK) MAC(ctx context.Context, data []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h := hmac.New(sha256.New, s.macKey)
	h.Write(data)
	return h.Sum(nil), nil
}

func (s *softMK) VerifyMAC(ctx context.Context, data, mac []byte) error {
	want, err := s.MAC(ctx, data)
	if err != nil {
		return err
	}
	if !hmac.Equal(want, mac) {
		return errors.New("softmk: MAC mismatch")
	}
	return nil
}

// countingMK counts calls through to any MasterKeys.
type countingMK struct {
	MasterKeys
	random, wrap, unwrap, mac, verify atomic.Int64
}

func (c *countingMK) Random(ctx context.Context, n int) ([]byte, error) {
	c.random.Add(1)
	return c.MasterKeys.Random(ctx, n)
}

func (c *countingMK) Wrap(ctx context.Context, p, a []byte) ([]byte, error) {
	c.wrap.Add(1)
	return c.MasterKeys.Wrap(ctx, p, a)
}

func (c *countingMK) Unwrap(ctx context.Context, w, a []byte) ([]byte, error) {
	c.unwrap.Add(1)
	return c.MasterKeys.Unwrap(ctx, w, a)
}

func (c *countingMK) MAC(ctx context.Context, d []byte) ([]byte, error) {
	c.mac.Add(1)
	return c.MasterKeys.MAC(ctx, d)
}

func (c *countingMK) VerifyMAC(ctx context.Context, d, m []byte) error {
	c.verify.Add(1)
	return c.MasterKeys.VerifyMAC(ctx, d, m)
}

func (c *countingMK) total() int64 {
	return c.random.Load() + c.wrap.Load() + c.unwrap.Load() + c.mac.Load() + c.verify.Load()
}

// countingStore counts calls and successful Creates.
type countingStore struct {
	storage.Store
	calls, creates atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, k string) ([]byte, error) {
	c.calls.Add(1)
	return c.Store.Get(ctx, k)
}

func (c *countingStore) Put(ctx context.Context, k string, v []byte) error {
	c.calls.Add(1)
	return c.Store.Put(ctx, k, v)
}

func (c *countingStore) Create(ctx context.Context, k string, v []byte) error {
	c.calls.Add(1)
	err := c.Store.Create(ctx, k, v)
	if err == nil {
		c.creates.Add(1)
	}
	return err
}

// failingMK fails one method with err and passes the rest through.
type failingMK struct {
	MasterKeys
	method string
	err    error
}

func (f *failingMK) Random(ctx context.Context, n int) ([]byte, error) {
	if f.method == "Random" {
		return nil, f.err
	}
	return f.MasterKeys.Random(ctx, n)
}

func (f *failingMK) Wrap(ctx context.Context, p, a []byte) ([]byte, error) {
	if f.method == "Wrap" {
		return nil, f.err
	}
	return f.MasterKeys.Wrap(ctx, p, a)
}

func (f *failingMK) Unwrap(ctx context.Context, w, a []byte) ([]byte, error) {
	if f.method == "Unwrap" {
		return nil, f.err
	}
	return f.MasterKeys.Unwrap(ctx, w, a)
}

func (f *failingMK) VerifyMAC(ctx context.Context, d, m []byte) error {
	if f.method == "VerifyMAC" {
		return f.err
	}
	return f.MasterKeys.VerifyMAC(ctx, d, m)
}
