package object

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// What the index rebuilds (index_rebuild.go) show operators: kmipd admin
// status and the kmipd_index_rebuilds_* metrics. Owners, times and counts
// only: a rebuild's failure is shown as the error it logs, which names
// records by uid and never holds a value (the index's own keys are blind
// tags).

// rebuildRun is one rebuild running.
type rebuildRun struct {
	finished   chan struct{} // closed when it ends
	started    time.Time
	background bool         // started by a Locate; otherwise by an operator
	objects    atomic.Int64 // records done so far (first pass)
	total      atomic.Int64 // records to do, once listed
}

// rebuildFailure is an owner's last failed rebuild.
type rebuildFailure struct {
	at, retry time.Time
	err       string
}

// outcome is how a rebuild ended.
type outcome int

const (
	rebuildCompleted outcome = iota // the index is marked built
	rebuildFailed                   // an error: no background rebuild of the owner for rebuildRetryAfter
	rebuildStopped                  // Close, a cancelled request, or a pKEK rotation overtook it
	numOutcomes
)

// String names the outcome as IndexStatus.Ended keys it.
func (o outcome) String() string {
	return [...]string{"completed", "failed", "stopped"}[o]
}

// end records how owner's rebuild, run under ctx, ended with err, and
// returns that. The caller still holds owner's slot, so the rebuild is
// never missing from both the running and the failed.
func (b *rebuilds) end(ctx context.Context, owner string, err error) outcome {
	o := rebuildFailed
	switch {
	case err == nil:
		o = rebuildCompleted
	case ctx.Err() != nil || noIndex(err):
		o = rebuildStopped
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.outcomes[o]++
	switch o {
	case rebuildCompleted:
		delete(b.failed, owner)
	case rebuildFailed:
		if b.failed == nil || len(b.failed) >= maxBuiltOwners {
			b.failed = map[string]rebuildFailure{}
		}
		now := time.Now()
		b.failed[owner] = rebuildFailure{at: now, retry: now.Add(rebuildRetryAfter), err: err.Error()}
	}
	return o
}

// IndexRebuild is a rebuild of one owner's index that is running.
type IndexRebuild struct {
	Owner      string
	Started    time.Time
	Objects    int  // records done so far
	Total      int  // records to do (0 until they are listed)
	Background bool // started by a Locate; otherwise by an operator (kmipd admin reindex)
}

// IndexFailure is an owner's last failed rebuild, kept until one succeeds.
type IndexFailure struct {
	Owner string
	At    time.Time
	// RetryAt: no Locate starts another before it (an operator may).
	RetryAt time.Time
	Err     string
}

// IndexStatus is what the repository's index rebuilds are doing and have
// done since it was made.
type IndexStatus struct {
	Running  []IndexRebuild // by owner
	Failures []IndexFailure // by owner
	// Ended counts the rebuilds that ended, by outcome (each present):
	// "completed",
	// "failed", "stopped" (closing, a cancelled request, or a pKEK
	// rotation overtook it: not a failure, the next Locate starts another).
	Ended map[string]uint64
}

// IndexStatus reports the rebuilds running, the owners whose last rebuild
// failed, and how the rebuilds that ended did.
func (r *Repo) IndexStatus() IndexStatus {
	b := &r.rb
	b.mu.Lock()
	defer b.mu.Unlock()
	st := IndexStatus{Ended: map[string]uint64{}}
	for o := range numOutcomes {
		st.Ended[o.String()] = b.outcomes[o]
	}
	for owner, run := range b.running {
		st.Running = append(st.Running, IndexRebuild{Owner: owner, Started: run.started, Background: run.background,
			Objects: int(run.objects.Load()), Total: int(run.total.Load())})
	}
	for owner, f := range b.failed {
		st.Failures = append(st.Failures, IndexFailure{Owner: owner, At: f.at, RetryAt: f.retry, Err: f.err})
	}
	slices.SortFunc(st.Running, func(a, b IndexRebuild) int { return strings.Compare(a.Owner, b.Owner) })
	slices.SortFunc(st.Failures, func(a, b IndexFailure) int { return strings.Compare(a.Owner, b.Owner) })
	return st
}
