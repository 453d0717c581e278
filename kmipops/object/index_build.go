package object

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmipd/kmipd/storage"
)

// One rebuild of an owner's index (index_rebuild.go says when).
//
// Its memory is bounded by the owner's objects, not its entries: at a
// million objects with five entries each, holding every entry's key would
// take about a gigabyte. So it runs in two passes. The first opens each
// object, under its lock, and writes those of its entries that are missing
// (each looked up by key), keeping only a 64-bit hash of every entry due.
// The second walks the index's keys and, for each whose hash is not among
// those (a stale entry, or one written since the first pass looked), opens
// the object again under its lock and deletes the entry unless it is due
// now. A hash collision can only keep a stale entry, which Locate already
// tolerates: candidates are checked on the objects.

// progressEvery is how often (in objects) a rebuild reports progress.
const progressEvery = 1024

// pruneBatch bounds the entries the second pass holds before it settles
// them.
const pruneBatch = 256

// rebuild is RebuildIndex with owner's slot held; it counts its progress
// in run.
func (r *Repo) rebuild(ctx context.Context, owner string, run *rebuildRun, progress func(done, total int)) (RebuildStats, error) {
	start := time.Now()
	var stats RebuildStats
	if !r.indexed() {
		return stats, errors.New("rebuild index: the store keeps no index")
	}
	token := make([]byte, 16)
	if _, err := io.ReadFull(r.rand, token); err != nil {
		return stats, fmt.Errorf("rebuild index: %w", err)
	}
	fence, err := r.markBuilding(ctx, owner, token)
	if err != nil {
		return stats, err
	}
	var uids []string
	op := ownerPrefix(owner)
	err = r.listKeys(ctx, op, func(key string) error {
		uids = append(uids, strings.Clone(key[len(op):])) // not the whole key
		return nil
	})
	if err != nil {
		return stats, fmt.Errorf("rebuild index: %w", err)
	}
	run.total.Store(int64(len(uids)))
	seed := maphash.MakeSeed()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex // first, stats, due, done, progress
		first  error
		failed atomic.Bool
		due    []uint64 // hashes of the entries due, as the first pass saw them
		done   int
		next   = make(chan string)
	)
	for range min(rebuildWorkers, len(uids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for uid := range next {
				keys, n, err := r.indexObject(ctx, owner, uid)
				mu.Lock()
				if err != nil && first == nil {
					first = err
					failed.Store(true)
				}
				for _, k := range keys {
					due = append(due, maphash.String(seed, k))
				}
				stats.Objects += n.Objects
				stats.Written += n.Written
				done++
				run.objects.Store(int64(done))
				if progress != nil && done%progressEvery == 0 {
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
	uids = nil
	if first == nil {
		first = ctx.Err()
	}
	if first != nil {
		stats.Duration = time.Since(start)
		return stats, fmt.Errorf("rebuild index: %w", first)
	}
	if progress != nil && done%progressEvery != 0 {
		progress(done, done)
	}
	slices.Sort(due)
	removed, err := r.prune(ctx, owner, func(key string) bool {
		_, ok := slices.BinarySearch(due, maphash.String(seed, key))
		return ok
	})
	stats.Removed = removed
	if err != nil {
		stats.Duration = time.Since(start)
		return stats, fmt.Errorf("rebuild index: %w", err)
	}
	err = r.markBuilt(ctx, owner, token, fence)
	stats.Duration = time.Since(start)
	return stats, err
}

// listKeys lists the keys under prefix, without their values when the
// store can.
func (r *Repo) listKeys(ctx context.Context, prefix string, fn func(key string) error) error {
	if kl, ok := r.st.(storage.KeyLister); ok {
		return kl.ListKeys(ctx, prefix, fn)
	}
	return r.st.List(ctx, prefix, func(key string, _ []byte) error { return fn(key) })
}

// indexObject writes the entries of uid's record that the index lacks,
// under its lock, and returns all of its entries (none when it is gone);
// Objects is 1 when there is a record.
func (r *Repo) indexObject(ctx context.Context, owner, uid string) (keys []string, n RebuildStats, err error) {
	defer r.locks.lock(owner, uid)()
	s, o, err := r.openForIndex(ctx, owner, uid)
	if o == nil || err != nil {
		return nil, n, err
	}
	n.Objects = 1
	defer r.enter(owner)()
	want, err := s.dueKeys(ctx, o)
	if err != nil {
		return nil, n, err
	}
	var w []storage.Write
	for _, k := range want {
		_, err := r.st.Get(ctx, k)
		if errors.Is(err, storage.ErrNotFound) {
			w = append(w, storage.Write{Kind: storage.WritePut, Key: k})
			continue
		}
		if err != nil {
			return nil, n, fmt.Errorf("object %s: %w", uid, err)
		}
	}
	if len(w) > 0 {
		if err := r.batch.Apply(ctx, w); err != nil {
			return nil, n, fmt.Errorf("object %s: %w", uid, err)
		}
		n.Written = len(w)
	}
	return want, n, nil
}

// openForIndex opens uid's record as a rebuild indexes it, archived or
// not; nil when there is none. The caller holds uid's lock.
func (r *Repo) openForIndex(ctx context.Context, owner, uid string) (Scope, *Object, error) {
	s := r.Scope(owner, nil).WithArchived() // archived objects are indexed too
	o, err := s.Load(ctx, uid)
	if errors.Is(err, ErrNotFound) || (err == nil && !validUID(uid)) {
		return s, nil, nil
	}
	if err != nil {
		return s, nil, fmt.Errorf("object %s: %w", uid, err)
	}
	return s, o, nil
}

// dueKeys are the entries o is due (none for nil), for a rebuild to
// write or keep. The caller holds the gate, so that no rotation comes
// between the tags and their writes; during one it fails NoIndex and the
// rebuild stops (indexKeys alone would answer no entries).
func (s *Scope) dueKeys(ctx context.Context, o *Object) ([]string, error) {
	if _, err := s.r.index.BlindIndex(ctx, s.owner, nil); err != nil {
		return nil, err
	}
	return s.indexKeys(ctx, o)
}

// prune deletes owner's entries that no object is due: those keep does not
// know are settled by pruneUID, in batches.
func (r *Repo) prune(ctx context.Context, owner string, keep func(key string) bool) (removed int, err error) {
	p := indexPrefix(owner)
	var suspects []string
	settle := func() error {
		byUID := map[string][]string{}
		for _, k := range suspects {
			uid := k[strings.LastIndexByte(k, '/')+1:]
			byUID[uid] = append(byUID[uid], k)
		}
		suspects = suspects[:0]
		for uid, keys := range byUID {
			n, err := r.pruneUID(ctx, owner, uid, keys)
			removed += n
			if err != nil {
				return err
			}
		}
		return nil
	}
	err = r.listKeys(ctx, p, func(key string) error {
		// Every entry ends in /<uid> (a uid has no '/'); the markers have
		// no '/'.
		if !strings.Contains(key[len(p):], "/") || keep(key) {
			return nil
		}
		if suspects = append(suspects, key); len(suspects) >= pruneBatch {
			return settle()
		}
		return nil
	})
	if err == nil {
		err = settle()
	}
	return removed, err
}

// pruneUID deletes those of keys, entries of uid, that its record (if any)
// is not due now, under its lock.
func (r *Repo) pruneUID(ctx context.Context, owner, uid string, keys []string) (int, error) {
	defer r.locks.lock(owner, uid)()
	s, o, err := r.openForIndex(ctx, owner, uid)
	if err != nil {
		return 0, err
	}
	defer r.enter(owner)()
	want, err := s.dueKeys(ctx, o) // none when the record is gone
	if err != nil {
		return 0, err
	}
	var w []storage.Write
	for _, k := range keys {
		if !slices.Contains(want, k) {
			w = append(w, storage.Write{Kind: storage.WriteDelete, Key: k})
		}
	}
	if len(w) == 0 {
		return 0, nil
	}
	if err := r.batch.Apply(ctx, w); err != nil {
		return 0, fmt.Errorf("object %s: %w", uid, err)
	}
	return len(w), nil
}

// markBuilding records a rebuild under the gate, once no rotation holds
// the owner's index (BlindIndex answers), and returns the fence of the key
// it indexes under, on a store replicas share (fence.go).
func (r *Repo) markBuilding(ctx context.Context, owner string, token []byte) (fence string, err error) {
	defer r.enter(owner)()
	r.markers.forget(owner)
	if err := r.refresh(ctx, owner); err != nil {
		return "", fmt.Errorf("rebuild index: %w", err)
	}
	if _, err := r.index.BlindIndex(ctx, owner, nil); err != nil {
		return "", fmt.Errorf("rebuild index: %w", err)
	}
	if fence, err = r.indexFence(ctx, owner); err != nil {
		return "", fmt.Errorf("rebuild index: %w", err)
	}
	if err := r.st.Put(ctx, buildingMarker(owner), token); err != nil {
		return "", fmt.Errorf("rebuild index: %w", err)
	}
	return fence, nil
}

// markBuilt marks the index built if the rebuild's own marker is still
// there, under the gate: otherwise a rotation dropped what it wrote. The
// gate holds back only this process's rotations; another replica's, begun
// since markBuilding, fails the write through fence (it may drop the index
// between the look and the write).
func (r *Repo) markBuilt(ctx context.Context, owner string, token []byte, fence string) error {
	defer r.enter(owner)()
	got, err := r.st.Get(ctx, buildingMarker(owner))
	if errors.Is(err, storage.ErrNotFound) || (err == nil && string(got) != string(token)) {
		return fmt.Errorf("rebuild index: %w", errRebuildOverrun)
	}
	if err != nil {
		return fmt.Errorf("rebuild index: %w", err)
	}
	defer r.markers.forget(owner)
	err = r.batch.Apply(ctx, fenceWrites([]storage.Write{
		{Kind: storage.WritePut, Key: indexMarker(owner), Value: []byte(indexVersion)},
		{Kind: storage.WriteDelete, Key: buildingMarker(owner)},
	}, fence))
	if r.stale(ctx, owner, fence, err) {
		return fmt.Errorf("rebuild index: %w", errRebuildOverrun)
	}
	return err
}

// errRebuildOverrun: a pKEK rotation (or another rebuild) overtook this
// rebuild; it reads as NoIndex, so the caller scans and a later Locate
// rebuilds.
var errRebuildOverrun = noIndexErr("the index changed under the rebuild (a pKEK rotation dropped it); run it again")

type noIndexErr string

func (e noIndexErr) Error() string { return string(e) }
func (noIndexErr) NoIndex() bool   { return true }
