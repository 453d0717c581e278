package object

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"sync"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// Sealer is what the repository needs from kek (*kek.Keyring satisfies it):
// AEAD sealing under the owner's key, with aad bound into the tag.
// OpenInPlace may overwrite sealed (the repository opens only the copies
// storage hands it).
type Sealer interface {
	Seal(ctx context.Context, owner string, aad, plaintext []byte) ([]byte, error)
	OpenInPlace(ctx context.Context, owner string, aad, sealed []byte) ([]byte, error)
}

// Gate is implemented by a Sealer whose keys may change while the
// repository is in use (kek.Keyring rotates an owner's pKEK online). The
// repository holds Enter from reading a sealed record to opening it, and
// from sealing one to writing it, and never holds two at once; Reseal
// brings a record read earlier (an undo's before-image) under the owner's
// current key before it is written back.
type Gate interface {
	Enter(owner string) (leave func())
	Reseal(ctx context.Context, owner string, aad, sealed []byte) ([]byte, error)
}

// enter holds the Sealer's Gate for owner, if it has one.
func (r *Repo) enter(owner string) func() {
	if g, ok := r.seal.(Gate); ok {
		return g.Enter(owner)
	}
	return func() {}
}

// Repo stores objects: each one record at obj/<owner>/<uid>, sealed whole
// under the owner's key with the uid as additional data, so nothing about
// an object, not even its name, is on disk in the clear. It is safe for
// concurrent use: read-modify-write goes through Update, which holds the
// object's lock and, on a store replicas share, writes with a
// compare-and-set (update.go).
type Repo struct {
	st    storage.Store
	seal  Sealer
	rand  io.Reader
	locks lockMap
	cache *cache // nil when off
	stamp stampClock

	// The blind index (index.go), kept when st is a storage.Batcher and
	// s an Indexer; both nil otherwise.
	batch   storage.Batcher
	index   Indexer
	built   builtOwners  // owners whose index is known complete (markFirst)
	markers indexMarkers // built markers seen (ensureIndex, index_marker.go)
	rb      rebuilds     // index rebuilds running (index_rebuild.go)
	// On a store replicas share (fence.go): writes carry the fence of
	// their sealing key, lookups refresh the owner's key first; nil
	// otherwise.
	fence     Fencer
	refresher Refresher
	// On a store replicas share: every read-modify-write of a record is a
	// compare-and-set against the record read (update.go); nil otherwise.
	shared storage.Batcher
	// candidateCap replaces maxCandidates when set (tests).
	candidateCap int
}

// NewRepo returns a repository over st, sealing with s and drawing uids
// from rand. cacheBytes bounds the cache of opened objects, kept when s
// implements KeyGenerations: zero means DefaultCacheBytes, negative turns
// it off, so that every read opens its record.
// An index of attribute values (index.go) is kept when st is a
// storage.Batcher and s an Indexer; its built markers are remembered when
// st is also storage.Exclusive and s implements KeyGenerations.
func NewRepo(st storage.Store, s Sealer, rand io.Reader, cacheBytes int) *Repo {
	r := &Repo{st: st, seal: s, rand: rand, cache: newCache(s, cacheBytes)}
	b, isBatcher := st.(storage.Batcher)
	_, exclusive := st.(storage.Exclusive)
	if isBatcher && !exclusive {
		r.shared = b
	}
	ix, isIndexer := s.(Indexer)
	if isBatcher && isIndexer {
		r.batch, r.index = b, ix
		if kg, ok := s.(KeyGenerations); ok && exclusive {
			r.markers.keys = kg
		}
		if f, ok := s.(Fencer); ok && !exclusive {
			r.fence = f
		}
		if rf, ok := s.(Refresher); ok && !exclusive {
			r.refresher = rf
		}
	}
	return r
}

// Scope is one owner's objects as one batch sees them: another owner's uid
// is simply not under this owner's prefix, so it is not found either.
// Writes are logged in undo when the batch may be undone (nil otherwise).
type Scope struct {
	r     *Repo
	owner string
	undo  *UndoLog
	// archived lets Load return archived objects; otherwise they are
	// ErrArchived, so that no operation uses one by accident.
	archived bool
	// The credential identity the scope acts for, once bound (access.go).
	principal      string
	bound, reading bool
}

// Scope returns owner's objects, logging writes in undo if it is not nil.
// owner must be non-empty and free of '/'.
func (r *Repo) Scope(owner string, undo *UndoLog) Scope {
	return Scope{r: r, owner: owner, undo: undo}
}

// WithArchived returns the same objects, archived ones included: for the
// few operations that work on an off-line object (its attributes, Recover).
func (s Scope) WithArchived() Scope {
	s.archived = true
	return s
}

// validUID bounds what a client-supplied identifier may be before it goes
// into a storage key; anything else simply does not exist.
func validUID(uid string) bool {
	if uid == "" || len(uid) > 128 {
		return false
	}
	for _, r := range uid {
		if r < 0x21 || r > 0x7e || r == '/' {
			return false
		}
	}
	return true
}

// Load reads and opens object uid (ErrNotFound if there is none;
// ErrArchived if it is archived, unless the scope is WithArchived). The
// object is the caller's to change through its methods; its body and
// values may be shared (see the package comment).
func (s *Scope) Load(ctx context.Context, uid string) (*Object, error) {
	o, _, err := s.loadRaw(ctx, uid, false)
	return o, err
}

// loadRaw is Load that also returns, with want, the record as read (for a
// compare-and-set write of what replaces it, update.go).
func (s *Scope) loadRaw(ctx context.Context, uid string, want bool) (*Object, []byte, error) {
	o, raw, err := s.read(ctx, uid, want)
	if err == nil && !s.allowed(o) {
		return nil, nil, ErrDenied
	}
	if err == nil && !s.archived && o.Archived() {
		return nil, nil, ErrArchived
	}
	return o, raw, err
}

func (s *Scope) load(ctx context.Context, uid string) (*Object, error) {
	o, _, err := s.read(ctx, uid, false)
	return o, err
}

// read opens object uid, and with want returns the record it opened too.
func (s *Scope) read(ctx context.Context, uid string, want bool) (*Object, []byte, error) {
	if !validUID(uid) {
		return nil, nil, ErrNotFound
	}
	r, key := s.r, objectKey(s.owner, uid)
	defer r.enter(s.owner)()
	read := r.cache.begin(s.owner)
	o, sealed, scratch, record, raw, err := r.cache.fetch(ctx, r.st, read, key, want)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read object: %w", err)
	}
	if o != nil {
		return o, raw, nil
	}
	if scratch != nil {
		defer putScratch(scratch)
	}
	plain, err := r.seal.OpenInPlace(ctx, s.owner, []byte(uid), sealed)
	if err != nil {
		return nil, nil, fmt.Errorf("open object: %w", err)
	}
	o, err = decodeObject(uid, plain)
	clear(plain)
	if err != nil {
		return nil, nil, fmt.Errorf("decode object record: %w", err)
	}
	if record == nil {
		return o, raw, nil
	}
	r.cache.put(read, s.owner, key, record, o)
	return o.clone(), raw, nil
}

// Each opens every one of the owner's objects that the scope may use
// (access.go) and calls fn with each, for a search (Locate). Each object is opened for this call alone.
func (s *Scope) Each(ctx context.Context, fn func(o *Object) error) error {
	prefix := ownerPrefix(s.owner)
	return s.r.st.List(ctx, prefix, func(key string, sealed []byte) error {
		uid := strings.TrimPrefix(key, prefix)
		o, err := s.openListed(ctx, uid, key, sealed)
		if err != nil || o == nil || !s.allowed(o) {
			return err
		}
		return fn(o)
	})
}

// openListed opens a record List read. A rotation may have resealed it
// since (the listing is a snapshot), so on failure it is read again, with
// the gate held; nil, nil when it is gone by then.
func (s *Scope) openListed(ctx context.Context, uid, key string, sealed []byte) (*Object, error) {
	leave := s.r.enter(s.owner)
	defer leave()
	plain, err := s.r.seal.OpenInPlace(ctx, s.owner, []byte(uid), sealed)
	if err != nil {
		if _, gated := s.r.seal.(Gate); !gated {
			return nil, fmt.Errorf("open object: %w", err)
		}
		fresh, gerr := s.r.st.Get(ctx, key)
		if errors.Is(gerr, storage.ErrNotFound) {
			return nil, nil
		}
		if gerr != nil {
			return nil, fmt.Errorf("open object: %w", err)
		}
		if plain, err = s.r.seal.OpenInPlace(ctx, s.owner, []byte(uid), fresh); err != nil {
			return nil, fmt.Errorf("open object: %w", err)
		}
	}
	o, err := decodeObject(uid, plain)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("decode object record: %w", err)
	}
	return o, nil
}

func (s *Scope) sealObject(ctx context.Context, o *Object) ([]byte, error) {
	plain, err := o.encode()
	if err != nil {
		return nil, fmt.Errorf("encode object record: %w", err)
	}
	defer clear(plain)
	sealed, err := s.r.seal.Seal(ctx, s.owner, []byte(o.uid), plain)
	if err != nil {
		return nil, fmt.Errorf("seal object: %w", err)
	}
	return sealed, nil
}

// AssignUID gives a new object a fresh random uid, for callers that need
// it before Insert (each key of a pair links to the other).
func (r *Repo) AssignUID(o *Object) error {
	if o.uid != "" {
		return fmt.Errorf("object already has a uid")
	}
	uid, err := r.newUID()
	if err != nil {
		return err
	}
	o.uid = uid
	return nil
}

// Insert stores a new object, under a fresh random uid unless AssignUID
// gave it one. A uid is fresh: with 122 random bits a collision means a
// broken RNG, so an existing record is an error.
func (s *Scope) Insert(ctx context.Context, o *Object) error {
	if o.uid == "" {
		if err := s.r.AssignUID(o); err != nil {
			return err
		}
	}
	o.Set(AttrUniqueIdentifier, tree.Text(0, o.uid))
	if s.bound && o.creator == "" {
		o.creator = s.principal
	}
	if o.stamp == 0 {
		o.stamp = s.r.stamp.next()
	}
	return s.create(ctx, o)
}

// create writes o, which has its uid and stamp, as a new record with its
// index entries (storage.ErrExists, wrapped, if the record exists).
func (s *Scope) create(ctx context.Context, o *Object) error {
	defer s.r.enter(s.owner)()
	for try := 0; ; try++ {
		logged := s.undoLogged(o.uid)
		sealed, keys, fence, err := s.insertOnce(ctx, o)
		if s.r.stale(ctx, s.owner, fence, err) && try < staleRetries {
			if !logged {
				s.undoForget(o.uid)
			}
			continue
		}
		if err != nil {
			return err
		}
		s.undoAfter(o.uid, sealed, keys)
		return nil
	}
}

// insertOnce seals o and creates its record with its index entries, once.
func (s *Scope) insertOnce(ctx context.Context, o *Object) (sealed []byte, keys []string, fence string, err error) {
	if sealed, err = s.sealObject(ctx, o); err != nil {
		return nil, nil, "", err
	}
	if keys, err = s.indexKeys(ctx, o); err != nil {
		return nil, nil, "", err
	}
	if err := s.undoBefore(ctx, o.uid, true, nil); err != nil {
		return nil, nil, "", err
	}
	key := objectKey(s.owner, o.uid)
	if s.r.indexed() {
		w := append(make([]storage.Write, 0, 10), storage.Write{Kind: storage.WriteCreate, Key: key, Value: sealed})
		if keys != nil {
			if w, err = s.markFirst(ctx, w); err != nil {
				return nil, nil, "", err
			}
		}
		if w, fence, err = s.r.fenced(s.owner, w, sealed); err != nil {
			return nil, nil, "", err
		}
		err = s.r.batch.Apply(ctx, indexWrites(w, nil, keys))
	} else {
		err = s.r.st.Create(ctx, key, sealed)
	}
	if err != nil {
		return nil, nil, fence, fmt.Errorf("create object: %w", err)
	}
	return sealed, keys, "", nil
}

// newUID returns a random 128-bit identifier in UUID form.
func (r *Repo) newUID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r.rand, b[:]); err != nil {
		return "", fmt.Errorf("random uid: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// lockMap serialises read-modify-write operations per object with a fixed
// set of stripes, so memory stays bounded however many objects exist.
type lockMap struct{ stripes [256]sync.Mutex }

func (l *lockMap) lock(owner, uid string) func() {
	m := &l.stripes[l.stripe(owner, uid)]
	m.Lock()
	return m.Unlock
}

func (l *lockMap) stripe(owner, uid string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(owner))
	h.Write([]byte{0})
	h.Write([]byte(uid))
	return h.Sum32() % uint32(len(l.stripes))
}
