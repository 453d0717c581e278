package admin

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Status is what `kmipd admin status` shows.
type Status struct {
	Version   string        `json:"version"`
	Token     Token         `json:"token"`
	Sessions  Sessions      `json:"sessions"`
	MKEKLabel string        `json:"mkek_label"` // the current keys (a rotation's target once it starts)
	HMACLabel string        `json:"hmac_label"`
	Owners    []OwnerStatus `json:"owners"`
	Store     StoreStatus   `json:"store"`
	Cache     CacheStatus   `json:"cache"`
	Rotation  string        `json:"rotation,omitempty"` // the one running, if any
	// Pending is an unfinished master-key rotation recorded in the store
	// (running, or interrupted: run it again to finish), e.g.
	// "rotate-mkek kmipd-mkek -> kmipd-mkek/gen-2".
	Pending string `json:"pending_rotation,omitempty"`
	// Index is what the blind index's rebuilds are doing.
	Index IndexStatus `json:"index"`
}

// IndexStatus is the blind index's rebuilds: those running, each owner's
// last failure until a rebuild of it succeeds, and how many ended since
// the server started, by outcome ("completed", "failed", "stopped": by
// shutdown, a cancelled request or a pKEK rotation, to be started again).
type IndexStatus struct {
	Running []IndexRebuild    `json:"running"`
	Failed  []IndexFailure    `json:"failed"`
	Ended   map[string]uint64 `json:"ended"`
}

// IndexRebuild is one owner's rebuild running.
type IndexRebuild struct {
	Owner   string    `json:"owner"`
	Started time.Time `json:"started"`
	Objects int       `json:"objects_done"`
	Total   int       `json:"objects_total"` // 0 until the objects are listed
	By      string    `json:"started_by"`    // "locate" (in the background) or "admin" (reindex)
}

// IndexFailure is one owner's last failed rebuild: no Locate starts
// another before RetryAt (reindex may).
type IndexFailure struct {
	Owner   string    `json:"owner"`
	At      time.Time `json:"failed_at"`
	RetryAt time.Time `json:"retry_at"`
	Error   string    `json:"error"`
}

type Token struct {
	Label  string `json:"label"`
	Serial string `json:"serial"`
	Model  string `json:"model"`
	Slot   uint   `json:"slot"`
}

type Sessions struct {
	Open  int  `json:"open"`
	InUse int  `json:"in_use"`
	Idle  int  `json:"idle"`
	Cap   int  `json:"cap"` // the cap in force now
	Max   int  `json:"max"` // the configured cap
	Ready bool `json:"ready"`
}

// OwnerStatus is one owner's objects and pKEK: Generation is the pKEK's
// number (0 until its first rotation); Pending is true while a rotation
// left objects under an older one.
type OwnerStatus struct {
	Owner      string `json:"owner"`
	Objects    int    `json:"objects"`
	Generation uint32 `json:"pkek_generation"`
	Pending    bool   `json:"rotation_pending,omitempty"`
}

type StoreStatus struct {
	Path      string `json:"path"`
	LSMBytes  int64  `json:"lsm_bytes"`
	VLogBytes int64  `json:"vlog_bytes"`
}

type CacheStatus struct {
	PKEKs      int    `json:"pkeks"`
	PKEKHits   uint64 `json:"pkek_hits"`
	PKEKMisses uint64 `json:"pkek_misses"`
	Unwraps    uint64 `json:"hsm_unwraps"`
	ValueBytes int    `json:"store_cache_bytes"`
}

// Render writes s for people.
func (s *Status) Render(w io.Writer) {
	fmt.Fprintf(w, "kmipd %s\n", s.Version)
	fmt.Fprintf(w, "token:     %q serial %s (%s), slot %d\n", s.Token.Label, s.Token.Serial, strings.TrimSpace(s.Token.Model), s.Token.Slot)
	fmt.Fprintf(w, "sessions:  %d open (%d in use, %d idle), cap %d of %d, ready %t\n",
		s.Sessions.Open, s.Sessions.InUse, s.Sessions.Idle, s.Sessions.Cap, s.Sessions.Max, s.Sessions.Ready)
	fmt.Fprintf(w, "MKEK:      %s\nHMAC key:  %s\n", s.MKEKLabel, s.HMACLabel)
	fmt.Fprintf(w, "store:     %s (LSM %d bytes, value log %d bytes)\n", s.Store.Path, s.Store.LSMBytes, s.Store.VLogBytes)
	fmt.Fprintf(w, "caches:    %d pKEKs (%d hits, %d misses, %d HSM unwraps), store cache %d bytes\n",
		s.Cache.PKEKs, s.Cache.PKEKHits, s.Cache.PKEKMisses, s.Cache.Unwraps, s.Cache.ValueBytes)
	if s.Rotation != "" {
		fmt.Fprintf(w, "rotation:  %s running\n", s.Rotation)
	}
	if s.Pending != "" {
		fmt.Fprintf(w, "pending:   %s (unfinished until it completes)\n", s.Pending)
	}
	s.Index.render(w)
	owners := append([]OwnerStatus(nil), s.Owners...)
	sort.Slice(owners, func(i, j int) bool { return owners[i].Owner < owners[j].Owner })
	fmt.Fprintf(w, "owners:    %d\n", len(owners))
	if len(owners) > 0 {
		fmt.Fprintf(w, "  %-66s %8s %4s\n", "OWNER", "OBJECTS", "PKEK")
	}
	for _, o := range owners {
		p := ""
		if o.Pending {
			p = " (rotation pending)"
		}
		fmt.Fprintf(w, "  %-66s %8d %4d%s\n", o.Owner, o.Objects, o.Generation, p)
	}
}

func (x *IndexStatus) render(w io.Writer) {
	fmt.Fprintf(w, "index:     rebuilds running %d; since start %d completed, %d failed, %d stopped\n",
		len(x.Running), x.Ended["completed"], x.Ended["failed"], x.Ended["stopped"])
	if len(x.Running) > 0 {
		fmt.Fprintf(w, "  %-66s %-20s %-17s %s\n", "REBUILDING", "STARTED", "OBJECTS", "BY")
	}
	for _, r := range x.Running {
		total := "?"
		if r.Total > 0 {
			total = fmt.Sprint(r.Total)
		}
		fmt.Fprintf(w, "  %-66s %-20s %-17s %s\n", r.Owner, r.Started.UTC().Format(time.RFC3339), fmt.Sprintf("%d/%s", r.Objects, total), r.By)
	}
	for _, f := range x.Failed {
		fmt.Fprintf(w, "  failed:  %s at %s, retried from %s: %s\n", f.Owner,
			f.At.UTC().Format(time.RFC3339), f.RetryAt.UTC().Format(time.RFC3339), f.Error)
	}
}
