package kek

import (
	"context"
	"errors"
	"strconv"

	"github.com/kmipd/kmipd/storage"
)

// Replicas sharing one store.
//
// Replicas that share a store (PostgreSQL) each cache an owner's pKEK, and
// one replica's rotation evicts only its own cache. Left alone, another
// replica would go on sealing under the generation the rotation retires
// (objects no one could open once the record drops it) and computing index
// tags under a key the rebuilt index no longer uses (a Locate finding
// nothing). So:
//
//   - A rotation marks the generation it retires (retiredKey) after the
//     record names the new one and before it lists the records to reseal.
//     A writer puts a Create and a Delete of the mark of the generation it
//     sealed under (Fence) in its write's transaction: once the mark
//     exists the transaction fails with storage.ErrExists and the writer
//     evicts the owner's pKEK and seals again; a write that committed
//     before the mark is seen by the rotation's listing, which comes after
//     it. Marks are never deleted: a replica may cache a pKEK across
//     several rotations.
//   - A lookup in the index first has the cached pKEK checked against the
//     stored record (Refresh): one read, no HSM call unless it changed.
//   - Writes index under the newest generation even while a rotation runs
//     (WriteTags), so a replica whose cache still shows a rotation that
//     another replica has finished indexes what it writes.
//   - The rotation writes each resealed record back only if it still holds
//     what the rotation read (storage.WriteIfUnchanged), and reads it again
//     otherwise: the gate holds back this process's writers only, and a
//     plain write would undo another replica's update (rotate.go).
//
// A store one process owns (storage.Exclusive) needs none of this: the
// rotation evicts the only cache, and the gate orders writes against it.
const retiredPrefix = "pkek-retired/"

func retiredKey(owner string, gen uint32) string {
	return retiredPrefix + owner + "/" + strconv.FormatUint(uint64(gen), 10)
}

// Fence returns the key whose Create and Delete, in the transaction that
// writes sealed (a record Seal made for owner), make that transaction fail
// with storage.ErrExists once a rotation has retired the generation that
// sealed it. The caller then Evicts the owner and seals again.
func (k *Keyring) Fence(owner string, sealed []byte) (string, error) {
	if err := checkOwner(owner); err != nil {
		return "", err
	}
	gen, _, err := sealedGen(sealed)
	if err != nil {
		return "", integrityError(err)
	}
	return retiredKey(owner, gen), nil
}

// markRetired records that nothing may be sealed under owner's generation
// gen any more (see above). Idempotent, for a resumed rotation.
func (k *Keyring) markRetired(ctx context.Context, owner string, gen uint32) error {
	err := k.st.Create(ctx, retiredKey(owner, gen), nil)
	if err != nil && !errors.Is(err, storage.ErrExists) {
		return passThrough("mark pKEK generation retired", err)
	}
	return nil
}

// Refresh makes sure the pKEK cached for owner, if any, holds the
// generations its stored record holds, and evicts it otherwise: another
// replica sharing the store may have rotated it. It reads the record but
// calls the HSM only through a later load, when something changed.
func (k *Keyring) Refresh(ctx context.Context, owner string) error {
	if err := checkOwner(owner); err != nil {
		return err
	}
	ks := k.cache.peek(owner)
	if ks == nil {
		return nil // the next use reads the record anyway
	}
	rec, err := k.st.Get(ctx, storageKey(owner))
	if errors.Is(err, storage.ErrNotFound) {
		k.cache.evict(owner)
		return nil
	}
	if err != nil {
		return passThrough("read pKEK record", err)
	}
	es, err := decodeRecord(rec)
	if err != nil || len(es) != len(ks.gens) {
		k.cache.evict(owner) // a broken record is refused by the load
		return nil
	}
	for i, e := range es {
		if e.gen != ks.gens[i] {
			k.cache.evict(owner)
			return nil
		}
	}
	return nil
}

// IndexFence is Fence for index entries: the mark of the generation whose
// key BlindIndex and WriteTags use for owner now; "" when owner has no
// pKEK. A rebuild puts it in the write that marks the index built, which
// then fails if a rotation began meanwhile (the rotation drops what the
// rebuild wrote when it ends, perhaps after the rebuild's last look).
func (k *Keyring) IndexFence(ctx context.Context, owner string) (string, error) {
	if err := checkOwner(owner); err != nil {
		return "", err
	}
	ks, err := k.aead(ctx, owner, false)
	if isNoPKEK(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return retiredKey(owner, ks.gens[0]), nil
}
