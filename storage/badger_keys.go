package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

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
	if err := b.enter(ctx); err != nil {
		return err
	}
	defer b.leave()
	p := []byte(prefix)
	var fnErr error
	err := b.db.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.Prefix = p
		io.PrefetchValues = false
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Seek(p); it.ValidForPrefix(p); it.Next() {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("storage: %w", err)
			}
			if err := fn(string(it.Item().Key())); err != nil {
				fnErr = err
				return err
			}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return b.wrap("list keys", prefix, err)
	}
	return err
}
