package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/storage"
)

// masterKey holds the master keys the store's pKEK records are under since
// the last completed master-key rotation. After a rotation the store, not
// kmipd.hcl, is the source of truth: the configured labels may still name
// a key that was retired (or destroyed) online.
const masterKey = "meta/master"

// MasterRecord is the record at masterKey.
type MasterRecord struct {
	MKEK string `json:"mkek"`
	HMAC string `json:"hmac"`
	// MKEKGeneration and HMACGeneration count the completed rotations of
	// each key.
	MKEKGeneration int       `json:"mkek_generation"`
	HMACGeneration int       `json:"hmac_generation"`
	Rotated        time.Time `json:"rotated"`
}

func (r *MasterRecord) labels() kek.Labels { return kek.Labels{MKEK: r.MKEK, HMAC: r.HMAC} }

func readMaster(ctx context.Context, st storage.Store) (*MasterRecord, error) {
	b, err := st.Get(ctx, masterKey)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", masterKey, err)
	}
	var r MasterRecord
	if err := json.Unmarshal(b, &r); err != nil || r.MKEK == "" || r.HMAC == "" {
		return nil, fmt.Errorf("%s is damaged: %q", masterKey, b)
	}
	return &r, nil
}

// recordMaster notes that rot finished. Run again after a crash (the
// rotation resumed), it counts the rotation once.
func recordMaster(ctx context.Context, st storage.Store, rot *MasterRotation) error {
	r, err := readMaster(ctx, st)
	if err != nil {
		return err
	}
	if r == nil {
		r = &MasterRecord{}
	}
	switch rot.Kind {
	case "hmac":
		if r.HMAC != rot.To.HMAC {
			r.HMACGeneration++
		}
	default:
		if r.MKEK != rot.To.MKEK {
			r.MKEKGeneration++
		}
	}
	r.MKEK, r.HMAC, r.Rotated = rot.To.MKEK, rot.To.HMAC, time.Now().UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return st.Put(ctx, masterKey, b)
}

// loadMaster makes the master keys the store records current (at start,
// before an unfinished rotation is applied over them), and says so when
// kmipd.hcl names others.
func (d *Daemon) loadMaster(ctx context.Context) error {
	r, err := readMaster(ctx, d.store)
	if err != nil || r == nil {
		return err
	}
	cfg := kek.Labels{MKEK: d.cfg.HSM.MKEKLabel, HMAC: d.cfg.HSM.HMACLabel}
	log := d.log.Named("kek")
	if cfg != r.labels() {
		log.Warn("the store's pKEK records are under other master keys than the hsm block names (rotated since); using the store's: set mkek_label and hmac_label to them",
			"store_mkek", r.MKEK, "store_hmac", r.HMAC, "config_mkek", cfg.MKEK, "config_hmac", cfg.HMAC)
	}
	log.Info("master keys from the store", "mkek", r.MKEK, "mkek_generation", r.MKEKGeneration,
		"hmac", r.HMAC, "hmac_generation", r.HMACGeneration, "rotated", r.Rotated)
	d.keyring.SetMasterLabels(r.labels(), r.labels())
	if err := d.useMasterKeys(ctx, r.labels()); err != nil {
		if errors.Is(err, hsm.ErrNoKey) {
			return fmt.Errorf("the store's pKEK records are under MKEK %q and HMAC key %q (rotated %s), which are not both on this token: "+
				"no object can be opened without them; check that the hsm block selects the token this store was used with "+
				"(`kmipd hsm init` would make new keys, which cannot open these records): %w",
				r.MKEK, r.HMAC, r.Rotated.Format(time.RFC3339), err)
		}
		return err
	}
	return nil
}

// openHSMKeys opens the HSM on hc's master keys. When they are missing it
// looks at what the store records: after a rotation with the old key
// destroyed, kmipd.hcl may still name it, and the store knows the current
// keys; with no record it says what the store holds instead of suggesting
// new keys that could not open it.
func (d *Daemon) openHSMKeys(ctx context.Context, c *Config, hc hsm.Config, opts []hsm.Option) (*hsm.HSM, error) {
	h, err := hsm.Open(ctx, hc, d.log.Named("hsm"), opts...)
	if err == nil || !errors.Is(err, hsm.ErrNoKey) {
		return h, err
	}
	st, serr := openStore(ctx, c, d.log.Named("storage"))
	if serr != nil {
		return nil, fmt.Errorf("%w (the store, which may name the current master keys, did not open either: %v)", err, serr)
	}
	r, rerr := readMaster(ctx, st)
	owners := 0
	if rerr == nil && r == nil {
		rerr = st.List(ctx, kek.RecordPrefix, func(string, []byte) error { owners++; return nil })
	}
	if cerr := st.Close(); cerr != nil && rerr == nil {
		rerr = cerr
	}
	switch {
	case rerr != nil:
		return nil, fmt.Errorf("%w (and reading the store's master-key record failed: %v)", err, rerr)
	case r == nil && owners == 0:
		return nil, err // a new store: creating the keys is the right advice
	case r == nil:
		return nil, fmt.Errorf("the store holds the pKEK records of %d owners, and the master keys the hsm block names are not on the token; "+
			"`kmipd hsm init` would make new keys, which cannot open these records: check the hsm block's token and labels: %w", owners, err)
	case r.labels() == kek.Labels{MKEK: hc.MKEKLabel, HMAC: hc.HMACLabel}:
		return nil, fmt.Errorf("the store's pKEK records are under MKEK %q and HMAC key %q, as configured, and they are not both on the token "+
			"(`kmipd hsm init` would make new keys, which cannot open these records): %w", r.MKEK, r.HMAC, err)
	}
	d.log.Named("hsm").Warn("the master keys the hsm block names are not on the token; the store records the current ones (rotated since): opening those",
		"config_mkek", hc.MKEKLabel, "config_hmac", hc.HMACLabel, "store_mkek", r.MKEK, "store_hmac", r.HMAC)
	hc.MKEKLabel, hc.HMACLabel = r.MKEK, r.HMAC
	h, err2 := hsm.Open(ctx, hc, d.log.Named("hsm"), opts...)
	if err2 != nil {
		return nil, fmt.Errorf("the configured master keys %q and %q are not on the token, and neither are the store's current ones %q and %q (rotated %s): %w",
			c.HSM.MKEKLabel, c.HSM.HMACLabel, r.MKEK, r.HMAC, r.Rotated.Format(time.RFC3339), err2)
	}
	return h, nil
}
