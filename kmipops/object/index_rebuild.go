package object

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/storage"
)

// Rebuilding the blind index (index.go).
//
// An owner's index is rebuilt from its records when its built marker is
// missing or of another version (records from before the index or before
// the current version's entries, a restore, which carries no index, a pKEK
// rotation, which drops it), and when an operator asks (kmipd admin
// reindex). A rebuild opens every record of the owner: minutes at a
// million objects. So a Locate never waits for one: finding the index not
// current, it starts a rebuild in the background and is answered by the
// scan, as every Locate is until the marker is current. One rebuild per
// owner runs at a time (an operator's waits for a running one, then runs
// its own), at most maxBackgroundRebuilds in the background, and Close
// stops them. A rebuild stopped half way (Close, a failure) leaves the
// marker as it was, and one that a pKEK rotation overtook cannot mark the
// index built (the building marker, markBuilt).

// RebuildStats is what one rebuild did.
type RebuildStats struct {
	Objects  int // records indexed
	Written  int // entries added
	Removed  int // entries deleted (stale, or of objects gone)
	Duration time.Duration
}

// rebuildWorkers bounds the writes a rebuild has in flight: enough for the
// store to commit them in groups.
const rebuildWorkers = 16

// maxBackgroundRebuilds bounds the owners rebuilt in the background at
// once (each has rebuildWorkers in flight); the Locates of another owner
// scan meanwhile, and one of them starts its rebuild later.
const maxBackgroundRebuilds = 2

// rebuildRetryAfter is how long a failed background rebuild is not tried
// again for its owner, so that a fault does not have every Locate open
// every record a second time.
const rebuildRetryAfter = 30 * time.Second

// rebuilds are the rebuilds running, one per owner. The zero value is
// ready; Repo.Close stops the background ones.
type rebuilds struct {
	mu         sync.Mutex
	running    map[string]chan struct{} // owner → closed when its rebuild ends
	background int
	failed     map[string]time.Time // owner → no background rebuild before
	ctx        context.Context      // the background rebuilds'; nil until the first
	cancel     context.CancelFunc
	closed     bool
	wg         sync.WaitGroup
	log        hclog.Logger
}

// acquire makes owner's slot the caller's, once no rebuild of owner runs.
func (b *rebuilds) acquire(ctx context.Context, owner string) (release func(), err error) {
	for {
		b.mu.Lock()
		ch, busy := b.running[owner]
		if !busy {
			release = b.take(owner)
			b.mu.Unlock()
			return release, nil
		}
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// take marks owner's rebuild running; the caller holds mu.
func (b *rebuilds) take(owner string) (release func()) {
	if b.running == nil {
		b.running = map[string]chan struct{}{}
	}
	ch := make(chan struct{})
	b.running[owner] = ch
	return func() {
		b.mu.Lock()
		delete(b.running, owner)
		b.mu.Unlock()
		close(ch)
	}
}

// tryBackground takes owner's slot for a background rebuild and counts it
// in wg, unless one runs, maxBackgroundRebuilds do, the repository is
// closed or owner's last one failed lately.
func (b *rebuilds) tryBackground(owner string) (ctx context.Context, release func(), ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.background >= maxBackgroundRebuilds || b.running[owner] != nil {
		return nil, nil, false
	}
	if t, ok := b.failed[owner]; ok {
		if time.Now().Before(t) {
			return nil, nil, false
		}
		delete(b.failed, owner)
	}
	if b.ctx == nil {
		b.ctx, b.cancel = context.WithCancel(context.Background())
	}
	b.background++
	b.wg.Add(1)
	rel := b.take(owner)
	return b.ctx, func() {
		b.mu.Lock()
		b.background--
		b.mu.Unlock()
		rel()
		b.wg.Done()
	}, true
}

// failedNow keeps owner from a background rebuild for rebuildRetryAfter.
func (b *rebuilds) failedNow(owner string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failed == nil || len(b.failed) >= maxBuiltOwners {
		b.failed = map[string]time.Time{}
	}
	b.failed[owner] = time.Now().Add(rebuildRetryAfter)
}

func (b *rebuilds) logger() hclog.Logger {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.log == nil {
		return hclog.NewNullLogger()
	}
	return b.log
}

// done is closed when no rebuild of owner runs (tests).
func (b *rebuilds) done(owner string) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ch := b.running[owner]; ch != nil {
		return ch
	}
	ch := make(chan struct{})
	close(ch)
	return ch
}

// SetLogger sets where background rebuilds report (a named sub-logger,
// logger.Named("index")); the default discards.
func (r *Repo) SetLogger(log hclog.Logger) {
	r.rb.mu.Lock()
	defer r.rb.mu.Unlock()
	r.rb.log = log
}

// Close stops the background rebuilds and waits for them; none starts
// after it. The repository serves on, its Locates by the scan while an
// owner's index is not current.
func (r *Repo) Close() {
	r.rb.mu.Lock()
	r.rb.closed = true
	if r.rb.cancel != nil {
		r.rb.cancel()
	}
	r.rb.mu.Unlock()
	r.rb.wg.Wait()
}

// errIndexBuilding: the owner's index is not current yet; it reads as
// NoIndex, so the caller scans.
var errIndexBuilding = noIndexErr("the index is being rebuilt")

// ensureIndex returns nil when owner's index is marked complete at this
// version; otherwise it starts a rebuild in the background and returns
// errIndexBuilding.
func (r *Repo) ensureIndex(ctx context.Context, owner string) error {
	v, err := r.st.Get(ctx, indexMarker(owner))
	if err == nil && builtMarker(v) {
		return nil
	}
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("index marker: %w", err)
	}
	r.rebuildInBackground(owner)
	return errIndexBuilding
}

// rebuildInBackground starts a rebuild of owner's index unless tryBackground
// refuses one. It logs its start and end, with counts.
func (r *Repo) rebuildInBackground(owner string) {
	ctx, release, ok := r.rb.tryBackground(owner)
	if !ok {
		return
	}
	log := r.rb.logger().With("owner", owner)
	go func() {
		defer release()
		log.Info("index rebuild started: Locate scans until it ends")
		st, err := r.rebuild(ctx, owner, nil)
		counts := []any{"objects", st.Objects, "written", st.Written, "removed", st.Removed, "seconds", st.Duration.Seconds()}
		switch {
		case err == nil:
			log.Info("index rebuild finished", counts...)
		case ctx.Err() != nil:
			log.Info("index rebuild stopped: closing", counts...)
		case noIndex(err):
			log.Info("index rebuild stopped; the next Locate starts another", append(counts, "reason", err)...)
		default:
			r.rb.failedNow(owner)
			log.Error("index rebuild failed; Locate scans until one succeeds", append(counts, "error", err, "retry_after", rebuildRetryAfter)...)
		}
	}()
}

// RebuildIndex derives owner's index from the records again (kmipd admin
// reindex): every entry not due to a stored object goes, every due one is
// written, then the owner is marked indexed. It waits for a rebuild of
// owner that runs, then runs its own. progress, if not nil, sees how many
// of the objects and entries are done, from one goroutine at a time. It is
// safe while the server runs: each object is fixed under its own lock, in
// one transaction. During a pKEK rotation of owner it fails, NoIndex, and
// marks nothing.
func (r *Repo) RebuildIndex(ctx context.Context, owner string, progress func(done, total int)) (RebuildStats, error) {
	if !r.indexed() {
		return RebuildStats{}, errors.New("rebuild index: the store keeps no index")
	}
	release, err := r.rb.acquire(ctx, owner)
	if err != nil {
		return RebuildStats{}, fmt.Errorf("rebuild index: %w", err)
	}
	defer release()
	return r.rebuild(ctx, owner, progress)
}

// progressEvery is how often (in objects) a rebuild reports progress.
const progressEvery = 1024

// rebuild is RebuildIndex with owner's slot held.
func (r *Repo) rebuild(ctx context.Context, owner string, progress func(done, total int)) (RebuildStats, error) {
	start := time.Now()
	var stats RebuildStats
	if !r.indexed() {
		return stats, errors.New("rebuild index: the store keeps no index")
	}
	token := make([]byte, 16)
	if _, err := io.ReadFull(r.rand, token); err != nil {
		return stats, fmt.Errorf("rebuild index: %w", err)
	}
	if err := r.markBuilding(ctx, owner, token); err != nil {
		return stats, err
	}
	// What the index holds now, by uid, and which objects exist. Every
	// entry ends in /<uid> (a uid has no '/'); the markers have no '/'.
	have := map[string][]string{}
	p := indexPrefix(owner)
	err := r.st.List(ctx, p, func(key string, _ []byte) error {
		rest := key[len(p):]
		if i := strings.LastIndexByte(rest, '/'); i > 0 {
			have[rest[i+1:]] = append(have[rest[i+1:]], key)
		}
		return nil
	})
	if err != nil {
		return stats, fmt.Errorf("rebuild index: %w", err)
	}
	uids := make([]string, 0, len(have))
	for u := range have {
		uids = append(uids, u)
	}
	op := ownerPrefix(owner)
	err = r.st.List(ctx, op, func(key string, _ []byte) error {
		if u := key[len(op):]; have[u] == nil {
			uids = append(uids, u)
		}
		return nil
	})
	if err != nil {
		return stats, fmt.Errorf("rebuild index: %w", err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex // first, stats, progress
		first  error
		failed atomic.Bool
		done   int
		next   = make(chan string)
	)
	for range min(rebuildWorkers, len(uids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for uid := range next {
				n, err := r.reindex(ctx, owner, uid, have[uid])
				mu.Lock()
				if err != nil && first == nil {
					first = err
					failed.Store(true)
				}
				stats.Objects += n.Objects
				stats.Written += n.Written
				stats.Removed += n.Removed
				if done++; progress != nil && done%progressEvery == 0 {
					progress(done, len(uids))
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, u := range uids {
		if failed.Load() {
			break
		}
		select {
		case next <- u:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	stats.Duration = time.Since(start)
	if first == nil {
		first = ctx.Err()
	}
	if first != nil {
		return stats, fmt.Errorf("rebuild index: %w", first)
	}
	if progress != nil && done%progressEvery != 0 {
		progress(done, len(uids))
	}
	err = r.markBuilt(ctx, owner, token)
	stats.Duration = time.Since(start)
	return stats, err
}

// markBuilding records a rebuild under the gate, once no rotation holds
// the owner's index (BlindIndex answers).
func (r *Repo) markBuilding(ctx context.Context, owner string, token []byte) error {
	defer r.enter(owner)()
	if _, err := r.index.BlindIndex(ctx, owner, nil); err != nil {
		return fmt.Errorf("rebuild index: %w", err)
	}
	if err := r.st.Put(ctx, buildingMarker(owner), token); err != nil {
		return fmt.Errorf("rebuild index: %w", err)
	}
	return nil
}

// markBuilt marks the index built if the rebuild's own marker is still
// there, under the gate: otherwise a rotation dropped what it wrote.
func (r *Repo) markBuilt(ctx context.Context, owner string, token []byte) error {
	defer r.enter(owner)()
	got, err := r.st.Get(ctx, buildingMarker(owner))
	if errors.Is(err, storage.ErrNotFound) || (err == nil && string(got) != string(token)) {
		return fmt.Errorf("rebuild index: %w", errRebuildOverrun)
	}
	if err != nil {
		return fmt.Errorf("rebuild index: %w", err)
	}
	return r.batch.Apply(ctx, []storage.Write{
		{Kind: storage.WritePut, Key: indexMarker(owner), Value: []byte(indexVersion)},
		{Kind: storage.WriteDelete, Key: buildingMarker(owner)},
	})
}

// errRebuildOverrun: a pKEK rotation (or another rebuild) overtook this
// rebuild; it reads as NoIndex, so the caller scans and a later Locate
// rebuilds.
var errRebuildOverrun = noIndexErr("the index changed under the rebuild (a pKEK rotation dropped it); run it again")

type noIndexErr string

func (e noIndexErr) Error() string { return string(e) }
func (noIndexErr) NoIndex() bool   { return true }

// reindex makes uid's entries those of its record, under its lock; have
// is what the index held for it when the rebuild began (any it gained since
// came from a write under this lock, for the record as it now is). It
// counts the record (Objects 1 when there is one) and the entries it wrote.
func (r *Repo) reindex(ctx context.Context, owner, uid string, have []string) (n RebuildStats, err error) {
	defer r.locks.lock(owner, uid)()
	s := r.Scope(owner, nil).WithArchived() // archived objects are indexed too
	o, err := s.Load(ctx, uid)
	if errors.Is(err, ErrNotFound) || (err == nil && !validUID(uid)) {
		o, err = nil, nil
	}
	if err != nil {
		return n, fmt.Errorf("object %s: %w", uid, err)
	}
	// Tags computed and written under the gate, so a rotation cannot come
	// between them; during one, the rebuild stops (NoIndex).
	defer r.enter(owner)()
	if _, err := r.index.BlindIndex(ctx, owner, nil); err != nil {
		return n, err
	}
	want, err := s.indexKeys(ctx, o)
	if err != nil {
		return n, err
	}
	var w []storage.Write
	for _, k := range have {
		if !slices.Contains(want, k) {
			w = append(w, storage.Write{Kind: storage.WriteDelete, Key: k})
			n.Removed++
		}
	}
	for _, k := range want {
		// One the index held at the start is there still: a write since
		// that dropped it made a record without it, or put it back.
		if !slices.Contains(have, k) {
			w = append(w, storage.Write{Kind: storage.WritePut, Key: k})
			n.Written++
		}
	}
	if o != nil {
		n.Objects = 1
	}
	if len(w) == 0 {
		return n, nil
	}
	if err := r.batch.Apply(ctx, w); err != nil {
		return RebuildStats{}, err
	}
	return n, nil
}
