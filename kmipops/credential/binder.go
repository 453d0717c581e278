package credential

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"sync"
	"time"

	"github.com/kmipd/kmipd/storage"
)

// Prefix is where bindings are stored: cred/<owner>/<hex SHA-256 of the
// principal>.
const Prefix = "cred/"

// DefaultIterations is PBKDF2-HMAC-SHA256's iteration count for a new
// binding (OWASP's 2023 figure); a binding keeps the count it was made with.
const DefaultIterations = 600_000

// Binder verifies passwords by binding each credential identity to the
// password it first came with, per owner: the first request under a new
// identity stores a salted PBKDF2 hash of its password, every later one
// must match it or is refused (Authentication Not Successful). The record
// is not sealed under the owner's pKEK, so that a pKEK rotation, which
// reseals objects, need not know about it; it names the identity it binds,
// so that it cannot be moved to another. A missing
// password binds as the empty one. Verified passwords are remembered in
// memory as an HMAC under a per-process key, so the slow hash runs once
// per identity and process, not per request.
type Binder struct {
	st         storage.Store
	iterations int
	cacheKey   [32]byte
	ttl        time.Duration
	now        func() time.Time

	mu    sync.Mutex
	cache map[string]verified
	// first serialises concurrent first uses of one identity (bounded
	// stripes), so one slow hash serves them all.
	first [64]sync.Mutex
}

type verified struct {
	mac   [32]byte
	until time.Time
}

// maxCached bounds the verified-password cache; beyond it an arbitrary
// entry goes (it only costs a slow hash later).
const maxCached = 4096

// NewBinder returns a Binder over st and s; iterations <= 0 means
// DefaultIterations.
func NewBinder(st storage.Store, iterations int) *Binder {
	if iterations <= 0 {
		iterations = DefaultIterations
	}
	b := &Binder{st: st, iterations: iterations, ttl: 10 * time.Minute, now: time.Now, cache: map[string]verified{}}
	rand.Read(b.cacheKey[:]) // never fails (crypto/rand, Go 1.24+)
	return b
}

// bindingKey is where owner's binding of principal is stored, and what
// its record names: SHA-256 of both.
func bindingKey(owner, principal string) (key string, name [32]byte) {
	p := sha256.Sum256([]byte(principal))
	name = sha256.Sum256([]byte(owner + "\x00" + principal))
	return Prefix + owner + "/" + hex.EncodeToString(p[:]), name
}

// Verify checks c's password for owner, binding it on first use.
func (b *Binder) Verify(ctx context.Context, owner string, c *Credential) error {
	id := owner + "\x00" + c.Principal
	mac := b.mac(id, c.Password)
	if b.cached(id, mac) {
		return nil
	}
	key, name := bindingKey(owner, c.Principal)
	h := fnv.New32a()
	h.Write([]byte(id))
	stripe := &b.first[h.Sum32()%uint32(len(b.first))]
	stripe.Lock()
	defer stripe.Unlock()
	if b.cached(id, mac) { // a concurrent first use just verified it
		return nil
	}
	rec, err := b.load(ctx, key, name)
	if errors.Is(err, storage.ErrNotFound) {
		rec, err = b.bind(ctx, key, name, c.Password)
	}
	if err != nil {
		return err
	}
	if !rec.matches(c.Password) {
		return denied("authentication not successful")
	}
	b.remember(id, mac)
	return nil
}

func (b *Binder) mac(id string, password []byte) [32]byte {
	m := hmac.New(sha256.New, b.cacheKey[:])
	m.Write([]byte(id))
	m.Write([]byte{0})
	m.Write(password)
	var out [32]byte
	m.Sum(out[:0])
	return out
}

func (b *Binder) cached(id string, mac [32]byte) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.cache[id]
	return ok && b.now().Before(v.until) && subtle.ConstantTimeCompare(v.mac[:], mac[:]) == 1
}

func (b *Binder) remember(id string, mac [32]byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.cache) >= maxCached {
		for k := range b.cache {
			delete(b.cache, k)
			break
		}
	}
	b.cache[id] = verified{mac: mac, until: b.now().Add(b.ttl)}
}

// bind stores a new binding of password; if another replica or request
// bound the identity first, theirs is read back and rules.
func (b *Binder) bind(ctx context.Context, key string, name [32]byte, password []byte) (*record, error) {
	rec := &record{name: name, iterations: uint32(b.iterations)}
	if _, err := io.ReadFull(rand.Reader, rec.salt[:]); err != nil {
		return nil, fmt.Errorf("credential salt: %w", err)
	}
	if err := rec.derive(password); err != nil {
		return nil, err
	}
	err := b.st.Create(ctx, key, rec.encode())
	if errors.Is(err, storage.ErrExists) {
		return b.load(ctx, key, name)
	}
	if err != nil {
		return nil, fmt.Errorf("store credential binding: %w", err)
	}
	return rec, nil
}

func (b *Binder) load(ctx context.Context, key string, name [32]byte) (*record, error) {
	v, err := b.st.Get(ctx, key)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("read credential binding: %w", err)
	}
	r, err := decodeRecord(v)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(r.name[:], name[:]) != 1 {
		return nil, fmt.Errorf("credential binding at %s names another identity", key)
	}
	return r, nil
}

// record is a binding: version 1, the name of what it binds (bindingKey),
// PBKDF2-HMAC-SHA256 iterations, 16-byte salt, 32-byte hash.
type record struct {
	name       [32]byte
	iterations uint32
	salt       [16]byte
	hash       [32]byte
}

const recordV1 = 1
const recordLen = 1 + 32 + 4 + 16 + 32

// maxIterations bounds what a stored record may ask for.
const maxIterations = 100_000_000

func (r *record) derive(password []byte) error {
	h, err := pbkdf2.Key(sha256.New, string(password), r.salt[:], int(r.iterations), len(r.hash))
	if err != nil {
		return fmt.Errorf("credential hash: %w", err)
	}
	copy(r.hash[:], h)
	return nil
}

func (r *record) matches(password []byte) bool {
	h, err := pbkdf2.Key(sha256.New, string(password), r.salt[:], int(r.iterations), len(r.hash))
	return err == nil && subtle.ConstantTimeCompare(h, r.hash[:]) == 1
}

func (r *record) encode() []byte {
	out := make([]byte, 0, recordLen)
	out = append(out, recordV1)
	out = append(out, r.name[:]...)
	out = binary.BigEndian.AppendUint32(out, r.iterations)
	out = append(out, r.salt[:]...)
	return append(out, r.hash[:]...)
}

func decodeRecord(b []byte) (*record, error) {
	if len(b) != recordLen || b[0] != recordV1 {
		return nil, fmt.Errorf("credential binding: unknown record format")
	}
	r := &record{iterations: binary.BigEndian.Uint32(b[33:37])}
	if r.iterations == 0 || r.iterations > maxIterations {
		return nil, fmt.Errorf("credential binding: bad iteration count")
	}
	copy(r.name[:], b[1:33])
	copy(r.salt[:], b[37:53])
	copy(r.hash[:], b[53:])
	return r, nil
}
