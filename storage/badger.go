package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/go-hclog"
)

// BadgerOptions configures OpenBadger. The zero value is the production
// default.
type BadgerOptions struct {
	// SyncWrites makes every Put/Create/Delete fsync before returning. nil
	// means true: a KMS must not acknowledge a key it could lose. Set it to
	// false only for throwaway dev/test stores.
	SyncWrites *bool

	// GCInterval is how often value-log GC runs; 0 means 5 minutes, negative
	// disables it.
	GCInterval time.Duration
}

const (
	defaultGCInterval = 5 * time.Minute
	gcDiscardRatio    = 0.7
	// maxConflictRetries bounds the retries of a Create/Delete transaction
	// that lost a race; each retry re-reads, so a loser normally settles on
	// the first retry.
	maxConflictRetries = 16
)

// Badger is a Store on github.com/dgraph-io/badger/v4. Badger's own value
// encryption stays off: kmipd seals material above this layer.
type Badger struct {
	db  *badger.DB
	log hclog.Logger

	// Close waits for in-flight operations (badger is not safe to use while
	// closing); once closing is set new operations get ErrClosed, so a Get
	// nested inside a List callback cannot deadlock Close.
	mu       sync.Mutex
	drained  *sync.Cond
	closing  bool
	inflight int

	stopGC    chan struct{}
	gcDone    sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var _ Store = (*Badger)(nil)

// OpenBadger opens (creating if needed) a Badger store in directory path.
// log should be a named sub-logger (e.g. logger.Named("storage")); badger's own
// messages go to log.Named("badger").
func OpenBadger(path string, opts BadgerOptions, log hclog.Logger) (*Badger, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	syncWrites := opts.SyncWrites == nil || *opts.SyncWrites
	bo := badger.DefaultOptions(path).
		WithSyncWrites(syncWrites).
		WithNumVersionsToKeep(1).
		WithLogger(badgerLogger{log.Named("badger")})
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("storage: open badger at %q: %w", path, err)
	}
	b := &Badger{db: db, log: log, stopGC: make(chan struct{})}
	b.drained = sync.NewCond(&b.mu)
	if !syncWrites {
		log.Warn("badger opened with sync_writes=false: acknowledged writes may be lost on crash", "path", path)
	}
	interval := opts.GCInterval
	if interval == 0 {
		interval = defaultGCInterval
	}
	if interval > 0 {
		b.gcDone.Add(1)
		go b.gcLoop(interval)
	}
	log.Debug("badger store open", "path", path, "sync_writes", syncWrites, "gc_interval", interval)
	return b, nil
}

// gcLoop runs value-log GC until Close. RunValueLogGC rewrites at most one
// file per call, so each tick loops until it reports nothing to do.
func (b *Badger) gcLoop(interval time.Duration) {
	defer b.gcDone.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stopGC:
			return
		case <-t.C:
		}
		n := 0
		for {
			err := b.db.RunValueLogGC(gcDiscardRatio)
			if err == nil {
				n++
				select {
				case <-b.stopGC:
					return
				default:
				}
				continue
			}
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				b.log.Warn("value log GC failed", "error", err)
			}
			break
		}
		if n > 0 {
			b.log.Debug("value log GC rewrote files", "files", n)
		}
	}
}

// enter registers an in-flight operation; every successful enter is paired
// with leave.
func (b *Badger) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		return ErrClosed
	}
	b.inflight++
	return nil
}

func (b *Badger) leave() {
	b.mu.Lock()
	b.inflight--
	if b.closing && b.inflight == 0 {
		b.drained.Broadcast()
	}
	b.mu.Unlock()
}

// begin is enter plus key validation.
func (b *Badger) begin(ctx context.Context, key string) error {
	if key == "" {
		return ErrInvalidKey
	}
	return b.enter(ctx)
}

// wrap maps badger errors onto the storage sentinels.
func (b *Badger) wrap(op, key string, err error) error {
	switch {
	case err == nil, errors.Is(err, ErrNotFound), errors.Is(err, ErrExists):
		return err
	case errors.Is(err, badger.ErrDBClosed):
		return ErrClosed
	case errors.Is(err, badger.ErrKeyNotFound):
		return ErrNotFound
	}
	return fmt.Errorf("storage: %s %q: %w", op, key, err)
}

// Get returns the value at key, or ErrNotFound.
func (b *Badger) Get(ctx context.Context, key string) ([]byte, error) {
	if err := b.begin(ctx, key); err != nil {
		return nil, err
	}
	defer b.leave()
	var v []byte
	err := b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(key))
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, b.wrap("get", key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// Put stores value at key; with SyncWrites it is on disk when Put returns.
func (b *Badger) Put(ctx context.Context, key string, value []byte) error {
	if err := b.begin(ctx, key); err != nil {
		return err
	}
	defer b.leave()
	err := b.db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(key), value)
	})
	return b.wrap("put", key, err)
}

// Create stores value at key unless it exists (ErrExists). The read and the
// write are one transaction; badger's conflict detection turns a lost race
// into ErrConflict, and the retry then sees the winner's key.
func (b *Badger) Create(ctx context.Context, key string, value []byte) error {
	if err := b.begin(ctx, key); err != nil {
		return err
	}
	defer b.leave()
	k := []byte(key)
	return b.retry(ctx, "create", key, func(txn *badger.Txn) error {
		_, err := txn.Get(k)
		switch {
		case err == nil:
			return ErrExists
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		return txn.Set(k, value)
	})
}

// Delete removes key, or returns ErrNotFound.
func (b *Badger) Delete(ctx context.Context, key string) error {
	if err := b.begin(ctx, key); err != nil {
		return err
	}
	defer b.leave()
	k := []byte(key)
	return b.retry(ctx, "delete", key, func(txn *badger.Txn) error {
		if _, err := txn.Get(k); err != nil {
			return err
		}
		return txn.Delete(k)
	})
}

func (b *Badger) retry(ctx context.Context, op, key string, fn func(*badger.Txn) error) error {
	var err error
	for range maxConflictRetries {
		err = b.db.Update(fn)
		if !errors.Is(err, badger.ErrConflict) {
			return b.wrap(op, key, err)
		}
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("storage: %w", cerr)
		}
	}
	return b.wrap(op, key, err)
}

// List calls fn for each key under prefix in ascending order, with copied
// values, from one read snapshot.
func (b *Badger) List(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	if err := b.enter(ctx); err != nil {
		return err
	}
	defer b.leave()
	p := []byte(prefix)
	var fnErr error
	err := b.db.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.Prefix = p
		// Values are copied one at a time; prefetching would copy ahead of fn.
		io.PrefetchValues = false
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Seek(p); it.ValidForPrefix(p); it.Next() {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("storage: %w", err)
			}
			item := it.Item()
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if v == nil {
				v = []byte{}
			}
			if err := fn(string(item.Key()), v); err != nil {
				fnErr = err
				return err
			}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr // the caller's own error, unchanged
	}
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return b.wrap("list", prefix, err)
	}
	return err
}

// Close stops value-log GC and closes the database. It is idempotent.
func (b *Badger) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closing = true
		for b.inflight > 0 {
			b.drained.Wait()
		}
		b.mu.Unlock()
		close(b.stopGC)
		b.gcDone.Wait()
		if err := b.db.Close(); err != nil {
			b.closeErr = fmt.Errorf("storage: close badger: %w", err)
		}
	})
	return b.closeErr
}
