package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/kmipd/kmipd/admin"
	"github.com/kmipd/kmipd/backup"
	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/storage"
)

// The keyring orders object reads and writes against pKEK rotation.
var _ object.Gate = (*kek.Keyring)(nil)

// Version is reported by `kmipd admin status` and written into backups;
// cmd/kmipd sets it from its build version.
var Version = "dev"

// objPrefix is where kmipops/object.Repo keeps an owner's objects:
// obj/<owner>/<uid>, each sealed with its uid as additional data.
const objPrefix = "obj/"

// adminState is what the admin handlers share.
type adminState struct {
	d        *Daemon
	mu       sync.Mutex
	rotation string // the rotation running, "" if none
}

// startAdmin opens the admin socket the admin block names.
func (d *Daemon) startAdmin() error {
	st := &adminState{d: d}
	s, err := admin.Listen(d.cfg.Admin.Socket, map[string]admin.Handler{
		"status":      st.status,
		"backup":      st.backup,
		"rotate-pkek": st.rotatePKEK,
		"rotate-mkek": st.rotateMKEK,
		"rotate-hmac": st.rotateHMAC,
		"reindex":     st.reindex,
	}, d.log.Named("admin"))
	if err != nil {
		return err
	}
	d.admin = s
	return nil
}

func (a *adminState) status(ctx context.Context, _ json.RawMessage, _ *admin.Responder) (any, error) {
	d := a.d
	ti, hs, ks := d.hsm.TokenInfo(), d.hsm.Stats(), d.keyring.Stats()
	s := &admin.Status{
		Version:  Version,
		Token:    admin.Token{Label: ti.Label, Serial: ti.Serial, Model: ti.Model, Slot: ti.Slot},
		Sessions: admin.Sessions{Open: hs.Open, InUse: hs.InUse, Idle: hs.Idle, Cap: hs.EffectiveCap, Max: hs.MaxSessions, Ready: hs.Ready},
		Cache:    admin.CacheStatus{PKEKs: ks.Size, PKEKHits: ks.Hits, PKEKMisses: ks.Misses, Unwraps: ks.Unwraps},
		Store:    admin.StoreStatus{Path: d.cfg.Storage.Path},
	}
	// What only the embedded store can tell (Badger's value cache and files).
	if c, ok := d.store.(interface{ CacheBytes() int }); ok {
		s.Cache.ValueBytes = c.CacheBytes()
	}
	if z, ok := d.store.(interface{ Sizes() (lsm, vlog int64) }); ok {
		s.Store.LSMBytes, s.Store.VLogBytes = z.Sizes()
	}
	s.MKEKLabel, s.HMACLabel = d.hsm.CurrentLabels()
	a.mu.Lock()
	s.Rotation = a.rotation
	a.mu.Unlock()
	s.Index = indexStatus(d.processor)
	if rot, err := readRotation(ctx, d.store); err != nil {
		return nil, err
	} else if rot != nil {
		from, to := rot.From.MKEK, rot.To.MKEK
		if rot.Kind == "hmac" {
			from, to = rot.From.HMAC, rot.To.HMAC
		}
		s.Pending = fmt.Sprintf("rotate-%s %s -> %s", rot.Kind, from, to)
	}
	owners := map[string]*admin.OwnerStatus{}
	get := func(o string) *admin.OwnerStatus {
		if owners[o] == nil {
			owners[o] = &admin.OwnerStatus{Owner: o}
		}
		return owners[o]
	}
	count := func(key string, v []byte) error {
		if owner, ok := kek.IsRecordKey(key); ok {
			o := get(owner)
			o.Generation, o.Pending, _ = kek.RecordInfo(v)
			return nil
		}
		if owner, _, ok := strings.Cut(strings.TrimPrefix(key, objPrefix), "/"); ok {
			get(owner).Objects++
		}
		return nil
	}
	var err error
	if sn, ok := d.store.(storage.Snapshotter); ok {
		err = sn.Snapshot(ctx, []string{kek.RecordPrefix, objPrefix}, count)
	} else { // counts for people: a moving store is fine here
		for _, p := range []string{kek.RecordPrefix, objPrefix} {
			if err = d.store.List(ctx, p, count); err != nil {
				break
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading the store: %w", err)
	}
	for _, o := range owners {
		s.Owners = append(s.Owners, *o)
	}
	return s, nil
}

// backup streams a consistent backup of the sealed records.
func (a *adminState) backup(ctx context.Context, _ json.RawMessage, r *admin.Responder) (any, error) {
	d := a.d
	snap, ok := d.store.(storage.Snapshotter)
	if !ok {
		return nil, fmt.Errorf("the %s store takes no consistent snapshot", d.cfg.Storage.Backend)
	}
	// The current keys: the check value is under the current HMAC key, which
	// a rotation may have moved past the configured one.
	mkekLabel, hmacLabel := d.hsm.CurrentLabels()
	hdr, err := backup.NewHeader(ctx, d.hsm, Version, mkekLabel, hmacLabel)
	if err != nil {
		return nil, err
	}
	w, err := r.Stream()
	if err != nil {
		return nil, err
	}
	n, err := backup.Write(ctx, w, snap, hdr)
	if err == nil {
		d.log.Named("admin").Info("backup written", "records", n)
	}
	return nil, err
}

// OwnerArgs are the arguments of a command over pKEK owners: one owner, or all.
type OwnerArgs struct {
	Owner string `json:"owner,omitempty"`
	All   bool   `json:"all,omitempty"`
}

// RotatePKEKArgs are rotate-pkek's arguments.
type RotatePKEKArgs = OwnerArgs

// decodeOwnerArgs decodes and checks the arguments of a command over owners.
func decodeOwnerArgs(raw json.RawMessage) (OwnerArgs, error) {
	var args OwnerArgs
	if err := admin.DecodeArgs(raw, &args); err != nil {
		return args, err
	}
	if (args.Owner == "") == !args.All {
		return args, fmt.Errorf("name one owner or all of them")
	}
	if strings.Contains(args.Owner, "/") {
		return args, fmt.Errorf("owner %q is not an owner identity", args.Owner)
	}
	return args, nil
}

// pkekOwners names the owners args selects: every owner with a pKEK, or the
// one named once it is known to have one.
func (d *Daemon) pkekOwners(ctx context.Context, args OwnerArgs) ([]string, error) {
	if !args.All {
		if _, err := d.store.Get(ctx, kek.RecordPrefix+args.Owner); errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("owner %q has no pKEK: %w", args.Owner, err)
		} else if err != nil {
			return nil, fmt.Errorf("owner %q: %w", args.Owner, err)
		}
		return []string{args.Owner}, nil
	}
	var owners []string
	err := d.store.List(ctx, kek.RecordPrefix, func(key string, _ []byte) error {
		if o, ok := kek.IsRecordKey(key); ok {
			owners = append(owners, o)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing owners: %w", err)
	}
	return owners, nil
}

// RotatePKEKResult is rotate-pkek's answer.
type RotatePKEKResult struct {
	Owners []kek.RotateResult `json:"owners"`
}

func (a *adminState) rotatePKEK(ctx context.Context, raw json.RawMessage, r *admin.Responder) (any, error) {
	args, err := decodeOwnerArgs(raw)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	if a.rotation != "" {
		running := a.rotation
		a.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", admin.ErrBusy, running)
	}
	a.rotation = "rotate-pkek"
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.rotation = ""
		a.mu.Unlock()
	}()
	d := a.d
	owners, err := d.pkekOwners(ctx, args)
	if err != nil {
		return nil, err
	}
	var res RotatePKEKResult
	for i, owner := range owners {
		prefix := objPrefix + owner + "/"
		rr, err := d.keyring.RotatePKEK(ctx, owner, kek.Sealed{
			Prefix: prefix,
			AAD:    func(key string) []byte { return []byte(strings.TrimPrefix(key, prefix)) },
			// The blind index is derived from the pKEK: rebuilt under the new one.
			Derived: object.IndexPrefix(owner),
		}, func(done, total int) { r.Progress("owner "+owner, int64(done), int64(total)) })
		if err != nil {
			return nil, fmt.Errorf("owner %q (%d of %d): %w", owner, i+1, len(owners), err)
		}
		res.Owners = append(res.Owners, rr)
		r.Progress("owners", int64(i+1), int64(len(owners)))
	}
	return res, nil
}
