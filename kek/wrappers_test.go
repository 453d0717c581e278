package kek

import (
	"context"
	"sync/atomic"

	"github.com/kmipd/kmipd/kek/kektest"
	"github.com/kmipd/kmipd/storage"
)

// Software master keys for kek's tests live in kektest, beside kek.
var _ MasterKeys = (*kektest.MasterKeys)(nil)

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
