package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kmipd/kmipd/admin"
)

// ReindexArgs are reindex's arguments.
type ReindexArgs = OwnerArgs

// ReindexOwner is what the rebuild of one owner's blind index did.
type ReindexOwner struct {
	Owner   string  `json:"owner"`
	Objects int     `json:"objects"` // records indexed
	Written int     `json:"written"` // index entries added
	Removed int     `json:"removed"` // index entries deleted
	Seconds float64 `json:"seconds"`
}

// ReindexResult is reindex's answer.
type ReindexResult struct {
	Owners []ReindexOwner `json:"owners"`
}

// reindex rebuilds the blind index of one owner, or of every owner with a
// pKEK, while the server runs (object.Repo.RebuildIndex: a rebuild a
// Locate started in the background is waited for, then this one runs).
// An owner whose pKEK rotates fails the command, naming it, with nothing
// marked: its index is dropped and rebuilt when the rotation ends anyway.
func (a *adminState) reindex(ctx context.Context, raw json.RawMessage, r *admin.Responder) (any, error) {
	args, err := decodeOwnerArgs(raw)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	running := a.rotation
	a.mu.Unlock()
	if running == "rotate-pkek" {
		// Each owner it reaches drops its index: rebuilding now would be
		// undone. The rotated owners are rebuilt at their next Locate.
		return nil, fmt.Errorf("%w: %s (its owners' indexes are rebuilt after it; run reindex when it has finished)", admin.ErrBusy, running)
	}
	d := a.d
	owners, err := d.pkekOwners(ctx, args)
	if err != nil {
		return nil, err
	}
	log := d.log.Named("admin")
	res := ReindexResult{Owners: []ReindexOwner{}}
	for i, owner := range owners {
		st, err := d.processor.RebuildIndex(ctx, owner, func(done, total int) { r.Progress("owner "+owner, int64(done), int64(total)) })
		if err != nil {
			return nil, fmt.Errorf("owner %q (%d of %d): %w", owner, i+1, len(owners), err)
		}
		o := ReindexOwner{Owner: owner, Objects: st.Objects, Written: st.Written, Removed: st.Removed,
			Seconds: st.Duration.Round(time.Millisecond).Seconds()}
		log.Info("index rebuilt", "owner", owner, "objects", o.Objects, "written", o.Written, "removed", o.Removed, "seconds", o.Seconds)
		res.Owners = append(res.Owners, o)
		r.Progress("owners", int64(i+1), int64(len(owners)))
	}
	return res, nil
}
