package object

import (
	"context"
	"errors"
	"fmt"

	"github.com/kmipd/kmipd/storage"
)

// Writes from replicas that share a store.
//
// Another replica may rotate an owner's key while this one still caches
// the old one (kek/shared.go). A record sealed under a key the rotation
// has retired, once committed, could not be opened after the rotation
// drops that key, so on a store that is not storage.Exclusive every write
// of a sealed record carries its Fence: a Create and a Delete of a key
// that exists once the sealing key is retired, in the same transaction.
// The transaction then fails (storage.ErrExists), nothing is written, and
// the write is made again after the keyring forgets the owner's key.

// Fencer is implemented by a Sealer whose keys another process may retire
// while this one caches them (*kek.Keyring).
type Fencer interface {
	// Fence is the key whose presence means sealed's key is retired.
	Fence(owner string, sealed []byte) (string, error)
	// Evict forgets owner's cached key: the next use reads it again.
	Evict(owner string)
	// IndexFence is the fence of the key index tags are computed under
	// now ("" when owner has none).
	IndexFence(ctx context.Context, owner string) (string, error)
}

// staleRetries bounds how often one write is made again after its key was
// found retired: each retry reads the owner's key afresh, so a second
// failure needs a second rotation in between.
const staleRetries = 3

// fenced appends sealed's fence to w, when the repository fences writes,
// and returns the fence's key ("" when it does not).
func (r *Repo) fenced(owner string, w []storage.Write, sealed []byte) ([]storage.Write, string, error) {
	if r.fence == nil || sealed == nil {
		return w, "", nil
	}
	key, err := r.fence.Fence(owner, sealed)
	if err != nil {
		return nil, "", fmt.Errorf("fence: %w", err)
	}
	return fenceWrites(w, key), key, nil
}

// fence appends the fence key's Create and Delete to w ("" appends none).
func fenceWrites(w []storage.Write, key string) []storage.Write {
	if key == "" {
		return w
	}
	return append(w,
		storage.Write{Kind: storage.WriteCreate, Key: key},
		storage.Write{Kind: storage.WriteDelete, Key: key})
}

// indexFence is the fence of the key owner's index entries are computed
// under now, when the repository fences writes.
func (r *Repo) indexFence(ctx context.Context, owner string) (string, error) {
	if r.fence == nil {
		return "", nil
	}
	key, err := r.fence.IndexFence(ctx, owner)
	if err != nil {
		return "", fmt.Errorf("fence: %w", err)
	}
	return key, nil
}

// stale reports whether err, from a write fenced by fence, failed because
// the key that sealed it is retired; the keyring then forgets the owner's
// key, and the caller seals again. (An ErrExists can also be a WriteCreate
// of the record finding it present, so the fence is looked at.)
func (r *Repo) stale(ctx context.Context, owner, fence string, err error) bool {
	if fence == "" || !errors.Is(err, storage.ErrExists) {
		return false
	}
	if _, gerr := r.st.Get(ctx, fence); gerr != nil {
		return false
	}
	r.fence.Evict(owner)
	return true
}

// refresh has the owner's cached key checked against the store before a
// lookup, on a store replicas share (kek.Keyring.Refresh).
func (r *Repo) refresh(ctx context.Context, owner string) error {
	if r.refresher == nil {
		return nil
	}
	if err := r.refresher.Refresh(ctx, owner); err != nil {
		return fmt.Errorf("index lookup: %w", err)
	}
	return nil
}

// Refresher is implemented by an Indexer whose cached keys another process
// may rotate (*kek.Keyring): Refresh drops owner's cached key unless it is
// the stored one.
type Refresher interface {
	Refresh(ctx context.Context, owner string) error
}
