package kek

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/storage"
)

// keyset is an owner's unwrapped pKEK generations, the current (sealing)
// one first; a second only while a rotation is moving objects.
type keyset struct {
	gens  []uint32
	aeads []cipher.AEAD
}

func (ks *keyset) current() (uint32, cipher.AEAD) { return ks.gens[0], ks.aeads[0] }

func (ks *keyset) get(gen uint32) cipher.AEAD {
	for i, g := range ks.gens {
		if g == gen {
			return ks.aeads[i]
		}
	}
	return nil
}

func sealWith(ks *keyset, owner string, aad, plaintext []byte) ([]byte, error) {
	gen, aead := ks.current()
	hdr := 1
	if gen != 0 {
		hdr = 5
	}
	out := make([]byte, hdr+nonceLen, hdr+nonceLen+len(plaintext)+tagLen)
	out[0] = sealV1
	if gen != 0 {
		out[0] = sealV2
		binary.BigEndian.PutUint32(out[1:], gen)
	}
	// The nonce comes from the OS, not the HSM: steady state makes no HSM
	// call. Random 96-bit nonces are safe for far more than the 2^32
	// objects one owner could plausibly seal under one pKEK.
	if _, err := rand.Read(out[hdr:]); err != nil {
		return nil, passThrough("nonce", err)
	}
	return aead.Seal(out, out[hdr:hdr+nonceLen], plaintext, objectAD(owner, gen, aad)), nil
}

// sealedGen reads a sealed object's header: the pKEK generation that sealed
// it and where the nonce starts.
func sealedGen(sealed []byte) (gen uint32, hdr int, err error) {
	switch {
	case len(sealed) >= 1+nonceLen+tagLen && sealed[0] == sealV1:
		return 0, 1, nil
	case len(sealed) >= 5+nonceLen+tagLen && sealed[0] == sealV2:
		return binary.BigEndian.Uint32(sealed[1:]), 5, nil
	}
	return 0, 0, errors.New("sealed object too short or of unknown version")
}

// SealedGeneration is the pKEK generation a sealed object names (no key
// needed; for rotation and status).
func SealedGeneration(sealed []byte) (uint32, error) {
	g, _, err := sealedGen(sealed)
	return g, err
}

// gate orders readers and writers of sealed records against a pKEK
// rotation, per owner (striped, so memory stays bounded).
type gate struct{ stripes [256]sync.RWMutex }

func (g *gate) stripe(owner string) *sync.RWMutex {
	h := fnv.New32a()
	h.Write([]byte(owner))
	return &g.stripes[h.Sum32()%uint32(len(g.stripes))]
}

// Enter is held by whoever reads a sealed record and then opens it, or
// seals one and then writes it (kmipops/object.Repo): a rotation step waits
// for those in flight and holds later ones back, so each sees the owner's
// keys either before or after the step, never a record sealed under a
// generation that has meanwhile been dropped. Call the returned func to
// leave.
func (k *Keyring) Enter(owner string) (leave func()) {
	m := k.gate.stripe(owner)
	m.RLock()
	return m.RUnlock
}

// exclusive holds every reader and writer of owner's records out.
func (k *Keyring) exclusive(owner string) (unlock func()) {
	m := k.gate.stripe(owner)
	m.Lock()
	return m.Unlock
}

// ErrRotationRunning: a rotation of this owner's pKEK is already running.
var ErrRotationRunning = errors.New("a pKEK rotation of this owner is already running")

// Sealed names the records sealed under one owner's pKEK: every key under
// Prefix, each sealed with AAD(key) as its additional data.
type Sealed struct {
	Prefix string
	AAD    func(key string) []byte
	// Derived, if set, is the prefix of records derived from the pKEK (the
	// blind index, idx/<owner>/): they are deleted, under the gate, before
	// the old generation goes, and their owner rebuilds them under the new
	// key (kmipops/object rebuilds an index that has no built marker).
	Derived string
}

// RotateResult says what RotatePKEK did.
type RotateResult struct {
	Owner    string
	From, To uint32 // generations
	Resealed int
	Resumed  bool // a rotation interrupted earlier was finished
}

// rotateBatch bounds the records resealed while readers and writers of one
// owner are held out.
const rotateBatch = 32

// RotatePKEK gives owner a new pKEK and reseals every record in recs under
// it, online. It is resumable: the record holds the new generation beside
// the old while the objects move, and a later call finishes what a crash
// left. progress, if not nil, is called after each batch.
//
// Ordering: (1) holding the gate, the record becomes [new, old], the old
// generation is marked retired (for other replicas' writers, shared.go)
// and the cache forgets the owner, so from then on every seal uses the new
// generation; (2) the records still under the old one are resealed in
// batches, each holding the gate, each written back only if unchanged (for
// other replicas' writers, resealOne); (3) holding the gate, a last pass
// confirms none is left and the record becomes [new]. Readers and writers
// wait at most one batch.
func (k *Keyring) RotatePKEK(ctx context.Context, owner string, recs Sealed, progress func(done, total int)) (RotateResult, error) {
	res := RotateResult{Owner: owner}
	if err := checkOwner(owner); err != nil {
		return res, err
	}
	k.rotMu.Lock()
	if k.rotating[owner] {
		k.rotMu.Unlock()
		return res, ErrRotationRunning
	}
	k.rotating[owner] = true
	k.rotMu.Unlock()
	defer func() {
		k.rotMu.Lock()
		delete(k.rotating, owner)
		k.rotMu.Unlock()
	}()

	ks, err := k.beginRotation(ctx, owner, &res)
	if err != nil || ks == nil {
		return res, err
	}
	k.log.Info("pKEK rotation: resealing objects", "owner", owner, "from", res.From, "to", res.To, "resumed", res.Resumed)
	var keys []string
	if err := k.st.List(ctx, recs.Prefix, func(key string, v []byte) error {
		if g, err := SealedGeneration(v); err != nil || g != res.To {
			keys = append(keys, key)
		}
		return nil
	}); err != nil {
		return res, passThrough("list sealed records", err)
	}
	for i := 0; i < len(keys); i += rotateBatch {
		n, err := k.resealBatch(ctx, owner, recs, ks, keys[i:min(i+rotateBatch, len(keys))])
		res.Resealed += n
		if err != nil {
			return res, err
		}
		if progress != nil {
			progress(min(i+rotateBatch, len(keys)), len(keys))
		}
	}
	if err := k.finishRotation(ctx, owner, recs, ks, &res); err != nil {
		return res, err
	}
	k.log.Info("pKEK rotated", "owner", owner, "generation", res.To, "resealed", res.Resealed)
	return res, nil
}

// beginRotation makes the record [new, old], or finds it so (a resumed
// rotation), and returns the key set with both. A nil key set: the owner
// has no pKEK, so nothing to rotate.
func (k *Keyring) beginRotation(ctx context.Context, owner string, res *RotateResult) (*keyset, error) {
	unlock := k.exclusive(owner)
	defer unlock()
	rec, err := k.st.Get(ctx, storageKey(owner))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, passThrough("read pKEK record", err)
	}
	entries, err := decodeRecord(rec)
	if err != nil {
		return nil, k.refuse(owner, "decode", err)
	}
	if len(entries) > 1 {
		res.Resumed = true
	} else {
		_, ent, err := k.newPKEK(ctx, owner, entries[0].gen+1)
		if err != nil {
			return nil, err
		}
		entries = []pkekEntry{ent, entries[0]}
		b, err := encodeRecord(entries)
		if err != nil {
			return nil, passThrough("encode pKEK record", err)
		}
		if err := k.st.Put(ctx, storageKey(owner), b); err != nil {
			return nil, passThrough("write pKEK record", err)
		}
		rec = b
	}
	res.To, res.From = entries[0].gen, entries[1].gen
	// Before the reseal lists the records: a replica still sealing under
	// the old generation either committed already, and is listed, or is
	// refused (shared.go).
	if err := k.markRetired(ctx, owner, res.From); err != nil {
		return nil, err
	}
	k.cache.evict(owner)
	return k.openRecord(ctx, owner, rec)
}

// resealBatch moves keys to the current generation while the owner's
// readers and writers in this process are held out. A record gone or
// already moved meanwhile is skipped.
func (k *Keyring) resealBatch(ctx context.Context, owner string, recs Sealed, ks *keyset, keys []string) (int, error) {
	unlock := k.exclusive(owner)
	defer unlock()
	n := 0
	for _, key := range keys {
		moved, err := k.resealOne(ctx, owner, recs, ks, key)
		if err != nil {
			return n, err
		}
		if moved {
			n++
		}
	}
	return n, nil
}

// resealRetries bounds how often one record is read and resealed again
// because another replica changed it between the read and the write-back.
const resealRetries = 8

// resealOne moves one record to the current generation. The gate holds
// back only this process's writers: another replica sharing the store may
// modify the record between the read and the write-back, so the write is
// a compare-and-set, and on a change the record is read again (most often
// to find it already under the current generation, the other replica
// having sealed it again after the fence turned it away).
func (k *Keyring) resealOne(ctx context.Context, owner string, recs Sealed, ks *keyset, key string) (bool, error) {
	cur, _ := ks.current()
	aad := recs.AAD(key)
	for try := 0; ; try++ {
		v, err := k.st.Get(ctx, key)
		if errors.Is(err, storage.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, passThrough("read sealed record", err)
		}
		if g, err := SealedGeneration(v); err == nil && g == cur {
			return false, nil
		}
		pt, err := openWith(ks, owner, aad, v)
		if err != nil {
			return false, fmt.Errorf("reseal %s: %w", key, err)
		}
		out, err := sealWith(ks, owner, aad, pt)
		clear(pt)
		if err != nil {
			return false, err
		}
		err = k.writeBack(ctx, key, v, out)
		if errors.Is(err, storage.ErrConflict) && try < resealRetries {
			continue
		}
		if err != nil {
			return false, passThrough("write resealed record", err)
		}
		return true, nil
	}
}

// writeBack stores out at key if key still holds old, else fails with
// storage.ErrConflict. A store that is no storage.Batcher (none of
// kmipd's) gets a Put, which only the gate orders.
func (k *Keyring) writeBack(ctx context.Context, key string, old, out []byte) error {
	if b, ok := k.st.(storage.Batcher); ok {
		return b.Apply(ctx, []storage.Write{{Kind: storage.WriteIfUnchanged, Key: key, Expect: old, Value: out}})
	}
	return k.st.Put(ctx, key, out)
}

// finishRotation checks, holding the gate, that no record is left under an
// older generation (resealing any straggler), then drops the old one.
func (k *Keyring) finishRotation(ctx context.Context, owner string, recs Sealed, ks *keyset, res *RotateResult) error {
	unlock := k.exclusive(owner)
	defer unlock()
	cur, _ := ks.current()
	var left []string
	if err := k.st.List(ctx, recs.Prefix, func(key string, v []byte) error {
		if g, err := SealedGeneration(v); err != nil || g != cur {
			left = append(left, key)
		}
		return nil
	}); err != nil {
		return passThrough("list sealed records", err)
	}
	if len(left) > 0 {
		unlock()
		n, err := k.resealBatch(ctx, owner, recs, ks, left)
		res.Resealed += n
		unlock = k.exclusive(owner)
		if err != nil {
			return err
		}
		if err := k.dropDerived(ctx, recs); err != nil {
			return err
		}
		return k.dropOld(ctx, owner, recs, cur)
	}
	if err := k.dropDerived(ctx, recs); err != nil {
		return err
	}
	return k.dropOldLocked(ctx, owner)
}

// dropDerived deletes the records derived from the old pKEK; the caller
// holds the gate, so no writer adds one meanwhile.
func (k *Keyring) dropDerived(ctx context.Context, recs Sealed) error {
	if recs.Derived == "" {
		return nil
	}
	var keys []string
	if err := k.st.List(ctx, recs.Derived, func(key string, _ []byte) error {
		keys = append(keys, key)
		return nil
	}); err != nil {
		return passThrough("list derived records", err)
	}
	for _, key := range keys {
		if err := k.st.Delete(ctx, key); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return passThrough("delete derived record", err)
		}
	}
	return nil
}

// dropOld re-checks from scratch (the gate was let go to reseal
// stragglers) before dropping; the caller holds the gate.
func (k *Keyring) dropOld(ctx context.Context, owner string, recs Sealed, cur uint32) error {
	bad := 0
	if err := k.st.List(ctx, recs.Prefix, func(key string, v []byte) error {
		if g, err := SealedGeneration(v); err != nil || g != cur {
			bad++
		}
		return nil
	}); err != nil {
		return passThrough("list sealed records", err)
	}
	if bad > 0 {
		return &Error{Reason: kmip14.ResultReasonGeneralFailure, Msg: "pKEK rotation incomplete", Err: fmt.Errorf("%d records still under an older generation; run the rotation again", bad)}
	}
	return k.dropOldLocked(ctx, owner)
}

func (k *Keyring) dropOldLocked(ctx context.Context, owner string) error {
	rec, err := k.st.Get(ctx, storageKey(owner))
	if err != nil {
		return passThrough("read pKEK record", err)
	}
	entries, err := decodeRecord(rec)
	if err != nil {
		return k.refuse(owner, "decode", err)
	}
	b, err := encodeRecord(entries[:1])
	if err != nil {
		return passThrough("encode pKEK record", err)
	}
	if err := k.st.Put(ctx, storageKey(owner), b); err != nil {
		return passThrough("write pKEK record", err)
	}
	k.cache.evict(owner)
	return nil
}

func openWith(ks *keyset, owner string, aad, sealed []byte) ([]byte, error) {
	gen, hdr, err := sealedGen(sealed)
	if err != nil {
		return nil, integrityError(err)
	}
	aead := ks.get(gen)
	if aead == nil {
		return nil, integrityError(fmt.Errorf("sealed under pKEK generation %d, which the owner's record does not hold", gen))
	}
	pt, err := aead.Open(nil, sealed[hdr:hdr+nonceLen], sealed[hdr+nonceLen:], objectAD(owner, gen, aad))
	if err != nil {
		return nil, integrityError(err)
	}
	return pt, nil
}

// VerifyRecord checks a stored pKEK record for owner through mk (every
// generation's MAC and unwrap) without keeping anything: a restore proves
// this HSM can open a backup before writing any of it.
func VerifyRecord(ctx context.Context, mk MasterKeys, owner string, rec []byte) error {
	if err := checkOwner(owner); err != nil {
		return err
	}
	ops := masterOps{mk: mk}
	if lk, ok := mk.(LabeledKeys); ok {
		ops.base.MKEK, ops.base.HMAC = lk.ConfiguredLabels()
	}
	_, err := openRecordWith(ctx, ops, owner, rec, func() {}, func(owner, check string, err error) *Error {
		return &Error{Reason: kmip14.ResultReasonCryptographicFailure, Msg: msgPKEK, Err: fmt.Errorf("pKEK record for owner %q failed %s check: %w", owner, check, err)}
	})
	return err
}

// Reseal returns sealed as it is when the owner's current pKEK sealed it,
// else opened and sealed again under the current one: for a writer putting
// back a record read earlier (an undone batch's before-image), which a
// rotation may have moved past meanwhile. Call it holding Enter.
func (k *Keyring) Reseal(ctx context.Context, owner string, aad, sealed []byte) ([]byte, error) {
	gen, _, err := sealedGen(sealed)
	if err != nil {
		return nil, integrityError(err)
	}
	ks, err := k.aead(ctx, owner, false)
	if err != nil {
		return nil, err
	}
	if cur, _ := ks.current(); cur == gen {
		return sealed, nil
	}
	pt, err := k.Open(ctx, owner, aad, sealed)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return sealWith(ks, owner, aad, pt)
}
