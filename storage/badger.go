package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
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

	// CacheBytes bounds the in-memory cache of stored values that serves
	// repeated Gets (cache.go); 0 means 32 MiB, negative disables it.
	CacheBytes int

	// Badger's own memory. Its defaults (five 64 MiB memtables, a 256 MiB
	// block cache) do not fit a small VM; zero means kmipd's defaults
	// below. A memtable costs its size twice over while it fills: the
	// skiplist arena and the pages of its memory-mapped WAL.
	//
	// Badger keeps blocks and table indexes in its caches only to spare
	// decompressing or decrypting them, and kmipd's tables are neither
	// compressed nor encrypted (by badger): a block and an index are then
	// slices of the memory-mapped table file (page cache), which the block
	// cache only tracks. Its cost counts the rest of the mapping after the
	// block, so at 16 MiB it admitted almost nothing (2% hits on a store of
	// 10,000 objects) while its bookkeeping cost 4% of the server's CPU on
	// Gets at a million objects. The index cache is consulted only for
	// encrypted tables. (Tables of older stores written with Snappy are
	// decompressed at each read until compactions rewrite them.)
	MemTableBytes   int64 // each memtable (and L0 table); 0: 64 MiB; at least 16 MiB: a transaction may take 15% of it, and one batch must fit one
	NumMemtables    int   // memtables held, the one being written included; 0: 2
	BlockCacheBytes int64 // table blocks; 0: none (the default), positive: that many bytes
	IndexCacheBytes int64 // indexes of encrypted tables; 0: 64 MiB, negative: unbounded (badger's own)
}

const (
	DefaultMemTableBytes   = 64 << 20
	DefaultNumMemtables    = 2
	DefaultBlockCacheBytes = 0 // none: see BadgerOptions
	DefaultIndexCacheBytes = 64 << 20
)

// badgerMemory applies opts' memory bounds to bo.
func badgerMemory(bo badger.Options, opts BadgerOptions) badger.Options {
	pick := func(v, def int64) int64 {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	mt := opts.MemTableBytes
	if mt <= 0 {
		mt = DefaultMemTableBytes
	}
	nm := opts.NumMemtables
	if nm <= 0 {
		nm = DefaultNumMemtables
	}
	// Compactions build each new table in memory before writing it: with
	// badger's growing table sizes (64 MiB at the last level of a million
	// objects) and four compactors splitting work into parallel
	// subcompactions, that reached 600 MiB. Tables of one size, and two
	// compactors, keep it to tens of MiB.
	bo.TableSizeMultiplier = 1
	return bo.WithNumCompactors(2).
		WithBaseTableSize(8 << 20).
		WithMemTableSize(mt).
		WithNumMemtables(nm).
		WithBlockCacheSize(pick(opts.BlockCacheBytes, DefaultBlockCacheBytes)).
		WithIndexCacheSize(pick(opts.IndexCacheBytes, DefaultIndexCacheBytes))
}

const (
	defaultGCInterval = 5 * time.Minute
	DefaultCacheBytes = 32 << 20
	gcDiscardRatio    = 0.7
)

// Badger is a Store on github.com/dgraph-io/badger/v4. Badger's own value
// encryption stays off: kmipd seals material above this layer.
type Badger struct {
	db    *badger.DB
	log   hclog.Logger
	cache *valueCache // nil when disabled

	// Close waits for in-flight operations (badger is not safe to use while
	// closing); once closing is set new operations get ErrClosed, so a Get
	// nested inside a List callback cannot deadlock Close.
	mu       sync.Mutex
	drained  *sync.Cond
	closing  bool
	inflight int

	// Writes go through one committer goroutine (commit.go).
	writes     chan *writeOp
	commitDone chan struct{}
	groups     atomic.Uint64 // transactions committed by the committer
	grouped    atomic.Uint64 // operations they carried
	wm         *writeMetrics
	stragglers stragglers // the committer's: how long to wait for a group (commit.go)

	advisor *walAdvisor   // keeps WAL syncs small (waladvice_linux.go)
	advised atomic.Uint64 // WAL mappings it has advised

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
	return openBadger(path, opts, log, nil)
}

// openBadger lets tests adjust badger's own options (tune may be nil).
func openBadger(path string, opts BadgerOptions, log hclog.Logger, tune func(badger.Options) badger.Options) (*Badger, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	syncWrites := opts.SyncWrites == nil || *opts.SyncWrites
	bo := badger.DefaultOptions(path).
		WithSyncWrites(syncWrites).
		WithNumVersionsToKeep(1).
		// Every value kmipd stores is AES-GCM ciphertext, which does not
		// compress: Snappy (badger's default) only cost CPU in every
		// flush and compaction. Tables record their own compression, so
		// stores written with it still open.
		WithCompression(options.None).
		// The committer (commit.go) is badger's only writer and commits
		// one transaction at a time, each begun after the last one was
		// written, so no transaction can conflict with another. Badger's
		// detection would only hash every key written and, while any read
		// (a List, a backup's Snapshot) stays open, keep each commit's
		// key set in memory until it ends.
		WithDetectConflicts(false).
		WithLogger(badgerLogger{log.Named("badger")})
	bo = badgerMemory(bo, opts)
	if tune != nil {
		bo = tune(bo)
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("storage: open badger at %q: %w", path, err)
	}
	b := &Badger{db: db, log: log, stopGC: make(chan struct{}),
		writes: make(chan *writeOp, writeQueue), commitDone: make(chan struct{}), wm: newWriteMetrics()}
	b.drained = sync.NewCond(&b.mu)
	b.advisor = startWALAdvisor(path, bo.MemTableSize, &b.advised, log)
	switch {
	case opts.CacheBytes == 0:
		b.cache = newValueCache(DefaultCacheBytes)
	case opts.CacheBytes > 0:
		b.cache = newValueCache(opts.CacheBytes)
	}
	go b.commitLoop()
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
	if v, ok := b.cache.get(key); ok {
		return v, nil
	}
	return b.read(key, false)
}

var (
	_ Viewer    = (*Badger)(nil)
	_ Exclusive = (*Badger)(nil)
)

// ExclusiveToProcess marks Badger Exclusive: its directory lock keeps every
// other process out while it is open.
func (*Badger) ExclusiveToProcess() {}

// View calls fn with the value at key: the cached slice itself when the
// value cache holds it, else the copy read from badger, which the cache
// then holds too (a Get copies twice).
func (b *Badger) View(ctx context.Context, key string, fn func(value []byte) error) error {
	if err := b.begin(ctx, key); err != nil {
		return err
	}
	defer b.leave()
	v, ok := b.cache.peek(key)
	if !ok {
		var err error
		if v, err = b.read(key, true); err != nil {
			return err
		}
	}
	return fn(v)
}

// read gets key's value from badger, filling the cache; the caller has
// entered. The value is the caller's own, or with shared, the cache's
// too, and then never written (View).
func (b *Badger) read(key string, shared bool) ([]byte, error) {
	gen := b.cache.generation()
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
	if shared {
		b.cache.keep(key, v, gen)
	} else {
		b.cache.fill(key, v, gen)
	}
	return v, nil
}

// Put stores value at key; with SyncWrites it is on disk when Put returns.
func (b *Badger) Put(ctx context.Context, key string, value []byte) error {
	if err := b.begin(ctx, key); err != nil {
		return err
	}
	defer b.leave()
	return b.wrap("put", key, b.write(opPut, key, value))
}

// Create stores value at key unless it exists (ErrExists). The committer is
// the only writer and runs the check and the write in one transaction, so
// of concurrent Creates of one key exactly one wins.
func (b *Badger) Create(ctx context.Context, key string, value []byte) error {
	if err := b.begin(ctx, key); err != nil {
		return err
	}
	defer b.leave()
	return b.wrap("create", key, b.write(opCreate, key, value))
}

// Delete removes key, or returns ErrNotFound.
func (b *Badger) Delete(ctx context.Context, key string) error {
	if err := b.begin(ctx, key); err != nil {
		return err
	}
	defer b.leave()
	return b.wrap("delete", key, b.write(opDelete, key, nil))
}

// List calls fn for each key under prefix in ascending order, with copied
// values, from one read snapshot.
func (b *Badger) List(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	return b.scan(ctx, "list", prefix, true, fn)
}

// scan walks the keys under prefix in ascending order from one read
// snapshot, calling fn with each key and, if values is set, a copy of its
// value (nil otherwise). fn's first error stops the walk and is returned
// unchanged; badger's own errors are wrapped as op's.
func (b *Badger) scan(ctx context.Context, op, prefix string, values bool, fn func(key string, value []byte) error) error {
	if err := b.enter(ctx); err != nil {
		return err
	}
	defer b.leave()
	p := []byte(prefix)
	var fnErr error
	err := b.db.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.Prefix = p
		// Values are copied one at a time, if at all; prefetching would copy
		// ahead of fn.
		io.PrefetchValues = false
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Seek(p); it.ValidForPrefix(p); it.Next() {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("storage: %w", err)
			}
			item := it.Item()
			var v []byte
			if values {
				var err error
				if v, err = item.ValueCopy(nil); err != nil {
					return err
				}
				if v == nil {
					v = []byte{}
				}
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
		return b.wrap(op, prefix, err)
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
		// No caller is in flight and none can enter, so the queue is
		// empty and nothing will send on it again.
		close(b.writes)
		<-b.commitDone
		b.advisor.close()
		close(b.stopGC)
		b.gcDone.Wait()
		if err := b.db.Close(); err != nil {
			b.closeErr = fmt.Errorf("storage: close badger: %w", err)
		}
	})
	return b.closeErr
}

var _ Batcher = (*Badger)(nil)

// Apply writes a batch through the committer as one operation: it goes
// into one badger transaction whole (commit.go), and is durable with it.
func (b *Badger) Apply(ctx context.Context, writes []Write) error {
	if err := checkWrites(writes); err != nil {
		return err
	}
	if err := b.enter(ctx); err != nil {
		return err
	}
	defer b.leave()
	if len(writes) == 0 {
		return nil
	}
	start := time.Now()
	op := &writeOp{kind: opBatch, batch: writes, done: make(chan error, 1)}
	b.writes <- op
	err := <-op.done
	b.wm.wait.Observe(since(start))
	return b.wrap("apply", writes[0].Key, err)
}
