package storage

import (
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Group commit.
//
// With SyncWrites, badger v4 syncs its memtable WAL once per transaction it
// writes (and the value log once per batch of transactions), and a new
// read-write transaction first waits for every commit in flight. So N
// concurrent Creates used to cost N serialised syncs: about 2 ms each on
// the benchmark VM, whatever the concurrency.
//
// Instead every Put, Create and Delete is handed to one committer goroutine.
// It takes whatever has queued up while its previous commit was syncing, runs
// those operations in arrival order inside one badger transaction (Create's
// existence check and Delete's presence check see the earlier operations of
// the same group, so the outcome is exactly that of running them one after
// another), and commits once: one WAL sync and one value-log sync for the
// whole group. Each caller gets its own result only after that commit has
// returned, so "nil means durable" holds exactly as before. A caller alone
// is not delayed: the committer waits for nothing but the queue, and for
// stragglers only when writers are concurrent (below).
//
// Being the only writer also means a group can never lose a conflict, so
// badger's conflict detection is off: Create's existence check, Delete's
// presence check and a batch's compare-and-set read a transaction begun after every earlier commit was
// written, and nothing can write between that read and the commit. Any
// other writer (a second committer, badger's Update or a WriteBatch) would
// break this, and must not be added.

const (
	// A group stays well inside badger's per-transaction limits (about 15%
	// of the 64 MiB memtable); a transaction that still reports
	// ErrTxnTooBig is split.
	maxGroupOps   = 256
	maxGroupBytes = 4 << 20
	// writeQueue lets callers enqueue without waiting for the committer.
	writeQueue = 1024
)

type writeKind uint8

const (
	opPut writeKind = iota
	opCreate
	opDelete
	opBatch // batch: Batcher.Apply's writes, all or none
)

type writeOp struct {
	kind  writeKind
	key   []byte
	value []byte     // owned by the caller, who is blocked until done
	batch []Write    // opBatch's writes, owned like value
	done  chan error // buffered: the committer never blocks on a caller
	err   error      // the op's outcome before commit; nil means it wrote
	wrote bool

	answered bool // done has been sent to
}

// write queues one operation and waits until it is durable (or failed). The
// caller has already entered.
func (b *Badger) write(kind writeKind, key string, value []byte) error {
	start := time.Now()
	op := &writeOp{kind: kind, key: []byte(key), value: value, done: make(chan error, 1)}
	b.writes <- op
	err := <-op.done
	b.wm.wait.Observe(since(start))
	return err
}

// commitLoop is the committer goroutine; it ends when Close closes writes,
// which it does only once no caller is in flight.
func (b *Badger) commitLoop() {
	defer close(b.commitDone)
	var group []*writeOp
	for op := range b.writes {
		group = append(group[:0], op)
		size := op.size()
	drain:
		for len(group) < maxGroupOps && size < maxGroupBytes {
			select {
			case op, ok := <-b.writes:
				if !ok {
					break drain
				}
				group = append(group, op)
				size += op.size()
			default:
				break drain
			}
		}
		group, size = b.stragglers.gather(b.writes, group, size)
		start := time.Now()
		b.safeCommitGroup(group)
		b.stragglers.record(len(group), time.Since(start))
		clear(group) // drop references to finished callers' buffers
		// A commit may have filled the memtable and opened a new WAL.
		b.advisor.poke(size)
	}
}

// Waiting for stragglers.
//
// A commit costs much the same CPU however many writes it carries: the
// syncs, a badger transaction, the page faults of the WAL, the hand-offs
// between the committer, badger's writer and the callers (on the 2-core
// benchmark VM, where system calls and faults are dear). Concurrent writers
// come back with their next write soon after a commit has answered them,
// but a commit that starts at once carries only those already queued: 16
// writers made groups of about 7, in two cohorts taking turns. So when
// recent commits carried more writes than are queued now, the committer
// waits for the rest, at most maxStragglerWait and never longer than the
// previous commit took (the time the callers already wait for a sync). A
// lone writer makes groups of one and is never delayed; after a burst, the
// wait stops within stragglerWindow commits.
//
// Measured (README, Durable writes against memory): kmipd's CPU per
// create-get-destroy request fell by about a fifth, and 16 writers straight
// on the store made groups of 15 instead of 8 and 10-92% more writes per
// second; what it does to kmipd's requests per second was within the
// benchmark's noise.
const (
	stragglerWindow  = 16
	maxStragglerWait = 500 * time.Microsecond
)

type stragglers struct {
	sizes [stragglerWindow]int // of the last commits, a ring
	next  int
	last  time.Duration // the last commit's duration
	timer *time.Timer
}

// gather adds to group the writes that arrive within the wait, until it is
// as large as the largest recent group (or full).
func (s *stragglers) gather(writes <-chan *writeOp, group []*writeOp, size int) ([]*writeOp, int) {
	want := 0
	for _, n := range s.sizes {
		want = max(want, n)
	}
	want = min(want, maxGroupOps)
	if len(group) >= want || size >= maxGroupBytes {
		return group, size
	}
	wait := min(maxStragglerWait, s.last)
	if wait <= 0 {
		return group, size
	}
	if s.timer == nil {
		s.timer = time.NewTimer(wait)
	} else {
		s.timer.Reset(wait)
	}
	defer s.timer.Stop()
	for len(group) < want && size < maxGroupBytes {
		select {
		case op, ok := <-writes:
			if !ok {
				return group, size
			}
			group = append(group, op)
			size += op.size()
		case <-s.timer.C:
			return group, size
		}
	}
	return group, size
}

// record notes a commit of n writes that took d.
func (s *stragglers) record(n int, d time.Duration) {
	s.sizes[s.next] = n
	s.next = (s.next + 1) % len(s.sizes)
	s.last = d
}

// safeCommitGroup keeps a panic inside badger from killing the committer
// (and with it every later write) or leaving callers waiting: as when each
// caller ran its own transaction, the operations fail and the server goes on.
func (b *Badger) safeCommitGroup(ops []*writeOp) {
	defer func() {
		if r := recover(); r != nil {
			b.log.Error("panic while committing writes", "panic", r, "stack", string(debug.Stack()))
			for _, op := range ops {
				if op == nil {
					continue
				}
				op.forKeys(func(key string, _ []byte, _ bool) { b.cache.remove(key) })
				if !op.answered {
					op.done <- fmt.Errorf("storage: internal error committing write: %v", r)
				}
			}
		}
	}()
	b.commitGroup(ops)
}

// commitGroup commits ops, in as few transactions as badger allows, and
// answers every one of them.
func (b *Badger) commitGroup(ops []*writeOp) {
	for len(ops) > 0 {
		start := time.Now()
		// Badger's conflict detection is off (badger.go): the checks of
		// Create and Delete are exact because nothing else writes.
		n, err := b.commitPrefix(ops)
		b.wm.commit.Observe(since(start))
		// The cache learns the outcome before any caller does (cache.go).
		for _, op := range ops[:n] {
			if !op.wrote {
				continue
			}
			op.forKeys(func(key string, value []byte, del bool) {
				if err != nil || del {
					b.cache.remove(key)
				} else {
					b.cache.set(key, value)
				}
			})
		}
		// Counted before anyone is answered, so that a caller who has its
		// answer also sees its commit in the counters (tests, telemetry).
		b.groups.Add(1)
		b.grouped.Add(uint64(n))
		for _, op := range ops[:n] {
			op.answered = true
			switch {
			case !op.wrote:
				op.done <- op.err
			case err != nil:
				op.done <- err
			default:
				op.done <- nil
			}
		}
		ops = ops[n:]
	}
}

// commitPrefix applies the longest prefix of ops that fits one transaction
// (at least one op) and commits it, returning how many ops it covered and
// the commit's error. A batch that fails part way through (too big for what
// is left of the transaction, or a badger error) has left some of its
// writes in the transaction: the transaction is dropped and the ops before
// it are run again without it, so a batch is written whole or not at all.
func (b *Badger) commitPrefix(ops []*writeOp) (int, error) {
	for {
		txn := b.db.NewTransaction(true)
		n, redo := 0, false
		for _, op := range ops {
			partial, err := op.apply(txn)
			if partial {
				txn.Discard()
				if n == 0 {
					// Alone in its transaction and still failing:
					// it fails, and nothing is committed.
					op.err, op.wrote = err, false
					return 1, nil
				}
				ops, redo = ops[:n], true
				break
			}
			if errors.Is(err, badger.ErrTxnTooBig) && n > 0 {
				break // this op starts the next transaction
			}
			op.err, op.wrote = err, err == nil
			n++
		}
		if redo {
			continue
		}
		err := txn.Commit()
		txn.Discard()
		return n, err
	}
}

// size is what op adds to a group's bytes.
func (op *writeOp) size() int {
	n := len(op.key) + len(op.value)
	for _, w := range op.batch {
		n += len(w.Key) + len(w.Value)
	}
	return n
}

// forKeys calls fn with each key op writes: its value, or del for a delete.
func (op *writeOp) forKeys(fn func(key string, value []byte, del bool)) {
	if op.kind != opBatch {
		fn(string(op.key), op.value, op.kind == opDelete)
		return
	}
	for _, w := range op.batch {
		v := w.Value
		if v == nil {
			v = []byte{}
		}
		fn(w.Key, v, w.deletes())
	}
}

// apply performs op inside txn: nil means it added its writes; ErrExists
// or ErrNotFound mean it decided not to; anything else is a failure.
// partial reports a failure after some of op's writes entered txn.
func (op *writeOp) apply(txn *badger.Txn) (partial bool, err error) {
	switch op.kind {
	case opCreate:
		_, err := txn.Get(op.key)
		switch {
		case err == nil:
			return false, ErrExists
		case !errors.Is(err, badger.ErrKeyNotFound):
			return false, err
		}
	case opDelete:
		if _, err := txn.Get(op.key); err != nil {
			return false, err
		}
		return false, txn.Delete(op.key)
	case opBatch:
		return op.applyBatch(txn)
	case opPut:
	default:
		return false, fmt.Errorf("storage: unknown write kind %d", op.kind)
	}
	return false, txn.Set(op.key, op.value)
}

// applyBatch checks every Create and compare-and-set of the batch before
// it writes anything (against the transaction, which reads its own pending
// writes, and the batch's earlier writes), then makes them all. The
// committer is the only writer (above), so a value compared here cannot
// change before the commit.
func (op *writeOp) applyBatch(txn *badger.Txn) (partial bool, err error) {
	st := batchState{}
	get := func(key string) ([]byte, bool, error) {
		item, err := txn.Get([]byte(key))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			return nil, false, nil
		case err != nil:
			return nil, false, err
		}
		// Copied only when found: for a Create (a fence) that is its
		// failure, so ordinary batches read no value.
		v, err := item.ValueCopy(nil)
		return v, err == nil, err
	}
	for _, w := range op.batch {
		if err := st.check(w, get); err != nil {
			return false, err
		}
	}
	for i, w := range op.batch {
		var err error
		if w.deletes() {
			err = txn.Delete([]byte(w.Key))
		} else {
			v := w.Value
			if v == nil {
				v = []byte{}
			}
			err = txn.Set([]byte(w.Key), v)
		}
		if err != nil {
			return i > 0, err
		}
	}
	return false, nil
}
