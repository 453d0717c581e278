package object

import (
	"bytes"
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

// Repo stores objects: each one record at obj/<owner>/<uid>, sealed whole
// under the owner's key with the uid as additional data, so nothing about
// an object, not even its name, is on disk in the clear. It is safe for
// concurrent use: read-modify-write goes through Update, which holds the
// object's lock.
type Repo struct {
	st    storage.Store
	seal  Sealer
	rand  io.Reader
	locks lockMap
	cache *cache // nil when off
}

// NewRepo returns a repository over st, sealing with s and drawing uids
// from rand. cacheBytes bounds the cache of opened objects, kept when s
// implements KeyGenerations: zero means DefaultCacheBytes, negative turns
// it off, so that every read opens its record.
func NewRepo(st storage.Store, s Sealer, rand io.Reader, cacheBytes int) *Repo {
	return &Repo{st: st, seal: s, rand: rand, cache: newCache(s, cacheBytes)}
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
	o, err := s.load(ctx, uid)
	if err == nil && !s.archived && o.Archived() {
		return nil, ErrArchived
	}
	return o, err
}

func (s *Scope) load(ctx context.Context, uid string) (*Object, error) {
	if !validUID(uid) {
		return nil, ErrNotFound
	}
	r, key := s.r, objectKey(s.owner, uid)
	read := r.cache.begin(s.owner)
	o, sealed, err := r.cache.fetch(ctx, r.st, read, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read object: %w", err)
	}
	if o != nil {
		return o, nil
	}
	keep := r.cache.mayKeep(read)
	var record []byte
	if keep {
		record = bytes.Clone(sealed) // opening overwrites sealed
	}
	plain, err := r.seal.OpenInPlace(ctx, s.owner, []byte(uid), sealed)
	if err != nil {
		return nil, fmt.Errorf("open object: %w", err)
	}
	o, err = decodeObject(uid, plain)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("decode object record: %w", err)
	}
	if !keep {
		return o, nil
	}
	r.cache.put(read, s.owner, key, record, o)
	return o.clone(), nil
}

// Each opens every one of the owner's objects and calls fn with each, for
// a search (Locate). Each object is opened for this call alone.
func (s *Scope) Each(ctx context.Context, fn func(o *Object) error) error {
	prefix := ownerPrefix(s.owner)
	return s.r.st.List(ctx, prefix, func(key string, sealed []byte) error {
		uid := strings.TrimPrefix(key, prefix)
		plain, err := s.r.seal.OpenInPlace(ctx, s.owner, []byte(uid), sealed)
		if err != nil {
			return fmt.Errorf("open object: %w", err)
		}
		o, err := decodeObject(uid, plain)
		clear(plain)
		if err != nil {
			return fmt.Errorf("decode object record: %w", err)
		}
		return fn(o)
	})
}

// Update runs fn on object uid under its lock and saves the result when fn
// reports a change. It returns the object as fn left it.
func (s *Scope) Update(ctx context.Context, uid string, fn func(o *Object) (changed bool, err error)) (*Object, error) {
	if !validUID(uid) {
		return nil, ErrNotFound
	}
	defer s.r.locks.lock(s.owner, uid)()
	o, err := s.Load(ctx, uid)
	if err != nil {
		return nil, err
	}
	changed, err := fn(o)
	if err != nil {
		return nil, err
	}
	if changed {
		if err := s.save(ctx, o); err != nil {
			return nil, err
		}
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

// save overwrites an existing object (the caller holds its lock).
func (s *Scope) save(ctx context.Context, o *Object) error {
	sealed, err := s.sealObject(ctx, o)
	if err != nil {
		return err
	}
	if err := s.undoBefore(ctx, o.uid, false); err != nil {
		return err
	}
	key := objectKey(s.owner, o.uid)
	defer s.r.cache.drop(key) // also after a failed write, whose outcome is unknown
	if err := s.r.st.Put(ctx, key, sealed); err != nil {
		return fmt.Errorf("write object: %w", err)
	}
	s.undoAfter(o.uid, sealed)
	return nil
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
	sealed, err := s.sealObject(ctx, o)
	if err != nil {
		return err
	}
	if err := s.undoBefore(ctx, o.uid, true); err != nil {
		return err
	}
	err = s.r.st.Create(ctx, objectKey(s.owner, o.uid), sealed)
	if err != nil {
		return fmt.Errorf("create object: %w", err)
	}
	s.undoAfter(o.uid, sealed)
	return nil
}

// Remove deletes a stored object (used to roll back half a key pair).
func (s *Scope) Remove(ctx context.Context, uid string) error {
	if err := s.undoBefore(ctx, uid, false); err != nil {
		return err
	}
	key := objectKey(s.owner, uid)
	defer s.r.cache.drop(key)
	if err := s.r.st.Delete(ctx, key); err != nil {
		return err
	}
	s.undoAfter(uid, nil)
	return nil
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
