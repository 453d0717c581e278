package kek

import (
	"context"
	"errors"
	"fmt"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/storage"
)

// Labels names a pair of master keys: the MKEK and the HMAC key.
type Labels struct {
	MKEK string `json:"mkek"`
	HMAC string `json:"hmac"`
}

// LabeledKeys is MasterKeys addressing its keys by label, which a
// master-key rotation needs (the old and the new key side by side);
// *hsm.HSM satisfies it.
type LabeledKeys interface {
	MasterKeys
	ConfiguredLabels() (mkek, hmac string)
	WrapLabel(ctx context.Context, label string, plaintext, aad []byte) ([]byte, error)
	UnwrapLabel(ctx context.Context, label string, wrapped, aad []byte) ([]byte, error)
	MACLabel(ctx context.Context, label string, data []byte) ([]byte, error)
	VerifyMACLabel(ctx context.Context, label string, data, mac []byte) error
}

// masterState is which master keys a record entry without labels means
// (base: the configured ones, or a rotation's source after a restart) and
// which ones new entries are written under (cur).
type masterState struct{ base, cur Labels }

// masterOps runs master-key operations for a record entry's labels: ""
// is base's key, and a base of "" is mk's configured key.
type masterOps struct {
	mk   MasterKeys
	base Labels
}

func or(l, def string) string {
	if l != "" {
		return l
	}
	return def
}

func (o masterOps) labeled(label string) (LabeledKeys, error) {
	lk, ok := o.mk.(LabeledKeys)
	if !ok {
		return nil, passThrough("master keys", fmt.Errorf("these master keys cannot be addressed by label (%q)", label))
	}
	return lk, nil
}

func (o masterOps) wrap(ctx context.Context, label string, pt, aad []byte) ([]byte, error) {
	if label = or(label, o.base.MKEK); label == "" {
		return o.mk.Wrap(ctx, pt, aad)
	}
	lk, err := o.labeled(label)
	if err != nil {
		return nil, err
	}
	return lk.WrapLabel(ctx, label, pt, aad)
}

func (o masterOps) unwrap(ctx context.Context, label string, w, aad []byte) ([]byte, error) {
	if label = or(label, o.base.MKEK); label == "" {
		return o.mk.Unwrap(ctx, w, aad)
	}
	lk, err := o.labeled(label)
	if err != nil {
		return nil, err
	}
	return lk.UnwrapLabel(ctx, label, w, aad)
}

func (o masterOps) mac(ctx context.Context, label string, data []byte) ([]byte, error) {
	if label = or(label, o.base.HMAC); label == "" {
		return o.mk.MAC(ctx, data)
	}
	lk, err := o.labeled(label)
	if err != nil {
		return nil, err
	}
	return lk.MACLabel(ctx, label, data)
}

func (o masterOps) verify(ctx context.Context, label string, data, mac []byte) error {
	if label = or(label, o.base.HMAC); label == "" {
		return o.mk.VerifyMAC(ctx, data, mac)
	}
	lk, err := o.labeled(label)
	if err != nil {
		return err
	}
	return lk.VerifyMACLabel(ctx, label, data, mac)
}

func (k *Keyring) ops() (masterOps, masterState) {
	st := k.master.Load()
	return masterOps{mk: k.mk, base: st.base}, *st
}

// stored is the label an entry records for key cur: none while it is the
// base key, so records of a never-rotated hierarchy keep their form.
func stored(cur, base string) string {
	if cur == base {
		return ""
	}
	return cur
}

// MasterLabels reports the base and current master-key labels ("" is the
// configured key).
func (k *Keyring) MasterLabels() (base, cur Labels) {
	st := k.master.Load()
	return st.base, st.cur
}

// SetMasterLabels sets what unlabelled record entries mean (base) and
// which master keys new entries are wrapped and MACed under (cur). A
// rotation sets cur to its target before moving any record; a restarted
// kmipd resuming one sets base to the rotation's source. Empty fields keep
// their value.
func (k *Keyring) SetMasterLabels(base, cur Labels) {
	old := k.master.Load()
	n := &masterState{base: old.base, cur: old.cur}
	n.base.MKEK, n.base.HMAC = or(base.MKEK, n.base.MKEK), or(base.HMAC, n.base.HMAC)
	n.cur.MKEK, n.cur.HMAC = or(cur.MKEK, n.cur.MKEK), or(cur.HMAC, n.cur.HMAC)
	k.master.Store(n)
}

// NeedsMaster counts the pKEK record entries that still name a master key
// other than the current ones.
func (k *Keyring) NeedsMaster(ctx context.Context) (int, error) {
	_, st := k.ops()
	n := 0
	err := k.st.List(ctx, recordPrefix, func(key string, v []byte) error {
		es, err := decodeRecord(v)
		if err != nil {
			return nil // a broken record is no rotation's business
		}
		for _, e := range es {
			if or(e.mkek, st.base.MKEK) != st.cur.MKEK || or(e.hmac, st.base.HMAC) != st.cur.HMAC {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, passThrough("list pKEK records", err)
	}
	return n, nil
}

// RewrapAll moves every pKEK record entry to the current master keys,
// online: per owner, holding the owner's gate, each entry's MAC is
// checked under its HMAC key, the pKEK unwrapped under its MKEK and
// wrapped under the current one inside the HSM, and MACed under the
// current HMAC key. The pKEK itself does not change, so cached keys and
// sealed objects stay valid. Safe to run again (entries already moved are
// skipped). progress, if not nil, is called after each owner.
func (k *Keyring) RewrapAll(ctx context.Context, progress func(done, total int)) (moved int, err error) {
	var owners []string
	if err := k.st.List(ctx, recordPrefix, func(key string, _ []byte) error {
		if o, ok := IsRecordKey(key); ok {
			owners = append(owners, o)
		}
		return nil
	}); err != nil {
		return 0, passThrough("list pKEK records", err)
	}
	for i, owner := range owners {
		if err := ctx.Err(); err != nil {
			return moved, err
		}
		n, err := k.rewrapOwner(ctx, owner)
		moved += n
		if err != nil {
			return moved, fmt.Errorf("owner %q: %w", owner, err)
		}
		if progress != nil {
			progress(i+1, len(owners))
		}
	}
	return moved, nil
}

func (k *Keyring) rewrapOwner(ctx context.Context, owner string) (int, error) {
	unlock := k.exclusive(owner)
	defer unlock()
	ops, st := k.ops()
	rec, err := k.st.Get(ctx, storageKey(owner))
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, passThrough("read pKEK record", err)
	}
	entries, err := decodeRecord(rec)
	if err != nil {
		return 0, k.refuse(owner, "decode", err)
	}
	n := 0
	for i, e := range entries {
		mkek, hmac := or(e.mkek, st.base.MKEK), or(e.hmac, st.base.HMAC)
		if mkek == st.cur.MKEK && hmac == st.cur.HMAC {
			continue
		}
		if err := ops.verify(ctx, e.hmac, macData(owner, e.gen, e.wrapped), e.mac); err != nil {
			if isIntegrityFailure(err) {
				return n, k.refuse(owner, "MAC", err)
			}
			return n, passThrough("HSM verify pKEK MAC", err)
		}
		ne := pkekEntry{gen: e.gen, wrapped: e.wrapped, mkek: stored(st.cur.MKEK, st.base.MKEK), hmac: stored(st.cur.HMAC, st.base.HMAC)}
		if mkek != st.cur.MKEK {
			raw, err := ops.unwrap(ctx, e.mkek, e.wrapped, pkekAAD(owner, e.gen))
			if err != nil {
				if isIntegrityFailure(err) {
					return n, k.refuse(owner, "unwrap", err)
				}
				return n, passThrough("HSM unwrap pKEK", err)
			}
			ne.wrapped, err = ops.wrap(ctx, st.cur.MKEK, raw, pkekAAD(owner, e.gen))
			clear(raw)
			if err != nil {
				return n, passThrough("HSM wrap pKEK", err)
			}
		}
		if ne.mac, err = ops.mac(ctx, st.cur.HMAC, macData(owner, e.gen, ne.wrapped)); err != nil {
			return n, passThrough("HSM MAC pKEK", err)
		}
		entries[i] = ne
		n++
	}
	if n == 0 {
		return 0, nil
	}
	b, err := encodeRecord(entries)
	if err != nil {
		return 0, passThrough("encode pKEK record", err)
	}
	if err := k.st.Put(ctx, storageKey(owner), b); err != nil {
		return 0, &Error{Reason: kmip14.ResultReasonGeneralFailure, Msg: "write pKEK record", Err: err}
	}
	return n, nil
}
