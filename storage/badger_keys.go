package storage

import "context"

// KeyLister is implemented by a Store that can list keys without reading
// their values: kmipops/object counts an owner's objects with it to decide
// whether a Locate's index candidates are worth fetching one by one.
type KeyLister interface {
	// ListKeys calls fn for every key under prefix, in ascending order, from
	// one snapshot; it stops at fn's first error and returns it unchanged.
	ListKeys(ctx context.Context, prefix string, fn func(key string) error) error
}

var _ KeyLister = (*Badger)(nil)

// ListKeys walks badger's keys only: no value is read or copied.
func (b *Badger) ListKeys(ctx context.Context, prefix string, fn func(key string) error) error {
	return b.scan(ctx, "list keys", prefix, false, func(key string, _ []byte) error { return fn(key) })
}
