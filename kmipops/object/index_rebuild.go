package object

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// rebuildRetryAfter is how long after a failed rebuild (in the background
// or an operator's) no Locate starts another for its owner, so that a
// fault does not have every Locate open every record a second time.
const rebuildRetryAfter = 30 * time.Second

// rebuilds are the rebuilds running, one per owner, and what the ended
// ones came to (index_status.go shows both). The zero value is ready;
// Repo.Close stops the background ones.
type rebuilds struct {
	mu         sync.Mutex
	running    map[string]*rebuildRun // owner → its rebuild
	background int
	failed     map[string]rebuildFailure // owner → its last failure, until a rebuild succeeds
	outcomes   [numOutcomes]uint64       // rebuilds ended, by outcome
	ctx        context.Context           // the background rebuilds'; nil until the first
	cancel     context.CancelFunc
	closed     bool
	wg         sync.WaitGroup
	log        hclog.Logger
}

// acquire makes owner's slot the caller's (an operator's rebuild), once no
// rebuild of owner runs.
func (b *rebuilds) acquire(ctx context.Context, owner string) (run *rebuildRun, release func(), err error) {
	for {
		b.mu.Lock()
		cur, busy := b.running[owner]
		if !busy {
			run, release = b.take(owner, false)
			b.mu.Unlock()
			return run, release, nil
		}
		b.mu.Unlock()
		select {
		case <-cur.finished:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// take marks owner's rebuild running; the caller holds mu.
func (b *rebuilds) take(owner string, background bool) (run *rebuildRun, release func()) {
	if b.running == nil {
		b.running = map[string]*rebuildRun{}
	}
	run = &rebuildRun{finished: make(chan struct{}), started: time.Now(), background: background}
	b.running[owner] = run
	return run, func() {
		b.mu.Lock()
		delete(b.running, owner)
		b.mu.Unlock()
		close(run.finished)
	}
}

// tryBackground takes owner's slot for a background rebuild and counts it
// in wg, unless one runs, maxBackgroundRebuilds do, the repository is
// closed or owner's last rebuild failed less than rebuildRetryAfter ago.
func (b *rebuilds) tryBackground(owner string) (ctx context.Context, run *rebuildRun, release func(), ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.background >= maxBackgroundRebuilds || b.running[owner] != nil {
		return nil, nil, nil, false
	}
	if f, ok := b.failed[owner]; ok && time.Now().Before(f.retry) {
		return nil, nil, nil, false
	}
	if b.ctx == nil {
		b.ctx, b.cancel = context.WithCancel(context.Background())
	}
	b.background++
	b.wg.Add(1)
	run, rel := b.take(owner, true)
	return b.ctx, run, func() {
		b.mu.Lock()
		b.background--
		b.mu.Unlock()
		rel()
		b.wg.Done()
	}, true
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
	if run := b.running[owner]; run != nil {
		return run.finished
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
// errIndexBuilding. What it reads is cached (index_marker.go).
func (r *Repo) ensureIndex(ctx context.Context, owner string) error {
	seen := r.markers.begin(owner)
	if seen.current() {
		return nil
	}
	v, err := r.st.Get(ctx, indexMarker(owner))
	if err == nil && builtMarker(v) {
		r.markers.built(owner, seen)
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
	ctx, run, release, ok := r.rb.tryBackground(owner)
	if !ok {
		return
	}
	log := r.rb.logger().With("owner", owner)
	go func() {
		defer release()
		log.Info("index rebuild started: Locate scans until it ends")
		st, err := r.rebuild(ctx, owner, run, nil)
		counts := []any{"objects", st.Objects, "written", st.Written, "removed", st.Removed, "seconds", st.Duration.Seconds()}
		switch r.rb.end(ctx, owner, err) {
		case rebuildCompleted:
			log.Info("index rebuild finished", counts...)
		case rebuildStopped:
			if ctx.Err() != nil {
				log.Info("index rebuild stopped: closing", counts...)
			} else {
				log.Info("index rebuild stopped; the next Locate starts another", append(counts, "reason", err)...)
			}
		default:
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
	run, release, err := r.rb.acquire(ctx, owner)
	if err != nil {
		return RebuildStats{}, fmt.Errorf("rebuild index: %w", err)
	}
	defer release()
	st, err := r.rebuild(ctx, owner, run, progress)
	r.rb.end(ctx, owner, err)
	return st, err
}
