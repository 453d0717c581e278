// Package kek is kmipd's key hierarchy. The HSM holds the master keys (MKEK
// and an HMAC key) and never releases them. Each owner has a pKEK: 32 random
// bytes wrapped by the HSM and stored, MACed, at "pkek/<owner>". Objects are
// sealed in software with AES-256-GCM under the owner's pKEK, so once a pKEK
// is cached Seal and Open make no HSM call.
package kek

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/storage"
)

// MasterKeys is what kek needs from the HSM; *hsm.HSM satisfies it.
type MasterKeys interface {
	Random(ctx context.Context, n int) ([]byte, error)
	Wrap(ctx context.Context, plaintext, aad []byte) ([]byte, error)
	Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error)
	MAC(ctx context.Context, data []byte) ([]byte, error)
	VerifyMAC(ctx context.Context, data, mac []byte) error
}

// Config tunes the pKEK cache.
type Config struct {
	// CacheTTL bounds how long an unwrapped pKEK is used before it is
	// unwrapped (and its MAC checked) again. Default 15m.
	CacheTTL time.Duration
	// CacheSize bounds the number of owners cached. Default 10000.
	CacheSize int
}

const (
	defaultTTL  = 15 * time.Minute
	defaultSize = 10000

	sealV1   byte = 1 // version | nonce | ciphertext | tag: generation 0
	sealV2   byte = 2 // version | generation (uint32 BE) | nonce | ciphertext | tag
	nonceLen      = 12
	tagLen        = 16
)

// Stats are counters since New; Size is the current number of cached owners.
type Stats struct {
	Hits      uint64 // Seal/Open served from the cache
	Misses    uint64 // Seal/Open that had to load (or wait for a load)
	Created   uint64 // pKEKs this Keyring created
	Unwraps   uint64 // HSM Unwrap calls made
	Evictions uint64 // entries dropped by TTL, size bound or Evict
	Size      int
}

// Keyring seals and opens objects under per-owner pKEKs.
type Keyring struct {
	mk    MasterKeys
	st    storage.Store
	log   hclog.Logger
	cache *cache
	gate  gate

	master atomic.Pointer[masterState]

	rotMu    sync.Mutex
	rotating map[string]bool

	hits, misses, created, unwraps atomic.Uint64
}

// New returns a Keyring. log should be a named sub-logger
// (logger.Named("kek")).
func New(mk MasterKeys, st storage.Store, cfg Config, log hclog.Logger) *Keyring {
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = defaultTTL
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = defaultSize
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	k := &Keyring{mk: mk, st: st, log: log, cache: newCache(cfg.CacheTTL, cfg.CacheSize), rotating: map[string]bool{}}
	var l Labels
	if lk, ok := mk.(LabeledKeys); ok {
		l.MKEK, l.HMAC = lk.ConfiguredLabels()
	}
	k.master.Store(&masterState{base: l, cur: l})
	return k
}

// Stats returns the Keyring's counters.
func (k *Keyring) Stats() Stats {
	n, ev := k.cache.len()
	return Stats{
		Hits: k.hits.Load(), Misses: k.misses.Load(),
		Created: k.created.Load(), Unwraps: k.unwraps.Load(),
		Evictions: ev, Size: n,
	}
}

// Evict drops owner's pKEK from the cache; the next use unwraps it again.
func (k *Keyring) Evict(owner string) { k.cache.evict(owner) }

// KeyGeneration names the cached unwrapping of owner's pKEK: the number
// changes whenever the pKEK is unwrapped again (after its TTL, an Evict, or
// an eviction by the size bound), and ok is false while none is cached and
// fresh. It never calls the HSM. kmipops reuses an object it opened only
// while the unwrapping that opened it is the cached one
// (kmipops/object.KeyGenerations).
func (k *Keyring) KeyGeneration(owner string) (gen uint64, ok bool) {
	return k.cache.generation(owner)
}

// objectAD binds a sealed object to its owner, its aad (uid) and, from
// generation 1 on, the pKEK generation that sealed it.
func objectAD(owner string, gen uint32, aad []byte) []byte {
	b := make([]byte, 0, 18+len(owner)+len(aad))
	if gen == 0 {
		b = append(b, "kmipd/obj/v1\x00"...)
		b = append(b, owner...)
	} else {
		b = append(b, "kmipd/obj/v2\x00"...)
		b = append(b, owner...)
		b = append(b, 0)
		b = append(b, genBytes(gen)...)
	}
	b = append(b, 0)
	return append(b, aad...)
}

// checkOwner rejects owners that would make the NUL-separated AAD and MAC
// inputs ambiguous.
func checkOwner(owner string) error {
	if owner == "" || strings.IndexByte(owner, 0) >= 0 {
		return &Error{Reason: kmip14.ResultReasonGeneralFailure, Msg: "invalid owner identity"}
	}
	return nil
}

// Seal encrypts plaintext for owner, binding aad (the object's uid), and
// returns version || nonce || ciphertext || tag. It creates the owner's pKEK
// on first use.
func (k *Keyring) Seal(ctx context.Context, owner string, aad, plaintext []byte) ([]byte, error) {
	if err := checkOwner(owner); err != nil {
		return nil, err
	}
	ks, err := k.aead(ctx, owner, true)
	if err != nil {
		return nil, err
	}
	return sealWith(ks, owner, aad, plaintext)
}

// Open reverses Seal. Any failure to authenticate — wrong owner, wrong aad,
// a flipped byte, an unknown version — is a CryptographicFailure kek.Error.
func (k *Keyring) Open(ctx context.Context, owner string, aad, sealed []byte) ([]byte, error) {
	return k.open(ctx, owner, aad, sealed, false)
}

// OpenInPlace is Open for a caller that owns sealed and is done with it: the
// plaintext is decrypted into sealed's own memory (and returned as a slice
// of it), which saves every object read a copy. sealed is overwritten
// whether or not it opens.
func (k *Keyring) OpenInPlace(ctx context.Context, owner string, aad, sealed []byte) ([]byte, error) {
	return k.open(ctx, owner, aad, sealed, true)
}

// open decrypts into a new slice, or in place: into the start of the
// ciphertext (the only overlap cipher.AEAD allows).
func (k *Keyring) open(ctx context.Context, owner string, aad, sealed []byte, inPlace bool) ([]byte, error) {
	if err := checkOwner(owner); err != nil {
		return nil, err
	}
	gen, hdr, err := sealedGen(sealed)
	if err != nil {
		return nil, integrityError(err)
	}
	// Opening never creates a pKEK: an object whose owner has none cannot
	// be genuine.
	ks, err := k.aead(ctx, owner, false)
	if err == nil && ks.get(gen) == nil {
		// Sealed under a generation this key set lacks: the record may have
		// changed since it was cached (another replica rotated). Look once
		// more.
		k.cache.evict(owner)
		ks, err = k.aead(ctx, owner, false)
	}
	if err != nil {
		if isNoPKEK(err) {
			return nil, integrityError(err)
		}
		return nil, err
	}
	aead := ks.get(gen)
	if aead == nil {
		return nil, integrityError(fmt.Errorf("sealed under pKEK generation %d, which the owner's record does not hold", gen))
	}
	var dst []byte
	if inPlace {
		dst = sealed[hdr+nonceLen : hdr+nonceLen]
	}
	pt, err := aead.Open(dst, sealed[hdr:hdr+nonceLen], sealed[hdr+nonceLen:], objectAD(owner, gen, aad))
	if err != nil {
		return nil, integrityError(err)
	}
	return pt, nil
}

func (k *Keyring) aead(ctx context.Context, owner string, create bool) (*keyset, error) {
	a, hit, err := k.cache.get(ctx, owner, create, func(ctx context.Context, create bool) (*keyset, error) {
		return k.load(ctx, owner, create)
	})
	if hit {
		k.hits.Add(1)
	} else {
		k.misses.Add(1)
	}
	return a, err
}

// errNoPKEK: the owner has no pKEK record and the caller may not create one.
var errNoPKEK = errors.New("owner has no pKEK")

func isNoPKEK(err error) bool { return errors.Is(err, errNoPKEK) }

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// load reads (or, if create, makes) owner's pKEK and returns its AEAD.
func (k *Keyring) load(ctx context.Context, owner string, create bool) (*keyset, error) {
	key := storageKey(owner)
	rec, err := k.st.Get(ctx, key)
	switch {
	case err == nil:
		return k.openRecord(ctx, owner, rec)
	case !errors.Is(err, storage.ErrNotFound):
		return nil, passThrough("read pKEK record", err)
	case !create:
		return nil, &Error{Reason: kmip14.ResultReasonGeneralFailure, Msg: "key hierarchy unavailable", Err: errNoPKEK}
	}

	aead, ent, err := k.newPKEK(ctx, owner, 0)
	if err != nil {
		return nil, err
	}
	rec, err = encodeRecord([]pkekEntry{ent})
	if err != nil {
		return nil, passThrough("encode pKEK record", err)
	}
	switch err := k.st.Create(ctx, key, rec); {
	case err == nil:
		k.created.Add(1)
		k.log.Info("created pKEK", "owner", owner)
		return &keyset{gens: []uint32{0}, aeads: []cipher.AEAD{aead}}, nil
	case errors.Is(err, storage.ErrExists):
		// Another writer won the race; theirs is the owner's pKEK.
		rec, err := k.st.Get(ctx, key)
		if err != nil {
			return nil, passThrough("re-read pKEK record", err)
		}
		return k.openRecord(ctx, owner, rec)
	default:
		return nil, passThrough("store pKEK record", err)
	}
}

// newPKEK draws, wraps and MACs a fresh pKEK of generation gen, all inside
// the HSM.
func (k *Keyring) newPKEK(ctx context.Context, owner string, gen uint32) (cipher.AEAD, pkekEntry, error) {
	raw, err := k.mk.Random(ctx, pkekLen)
	if err != nil {
		return nil, pkekEntry{}, passThrough("HSM random", err)
	}
	defer clear(raw)
	if len(raw) != pkekLen {
		return nil, pkekEntry{}, passThrough("HSM random", fmt.Errorf("got %d bytes, want %d", len(raw), pkekLen))
	}
	ops, st := k.ops()
	wrapped, err := ops.wrap(ctx, st.cur.MKEK, raw, pkekAAD(owner, gen))
	if err != nil {
		return nil, pkekEntry{}, passThrough("HSM wrap pKEK", err)
	}
	mac, err := ops.mac(ctx, st.cur.HMAC, macData(owner, gen, wrapped))
	if err != nil {
		return nil, pkekEntry{}, passThrough("HSM MAC pKEK", err)
	}
	aead, err := newAEAD(raw)
	if err != nil {
		return nil, pkekEntry{}, err
	}
	return aead, pkekEntry{gen: gen, wrapped: wrapped, mac: mac,
		mkek: stored(st.cur.MKEK, st.base.MKEK), hmac: stored(st.cur.HMAC, st.base.HMAC)}, nil
}

// openRecord verifies every generation in a stored record, MAC first so a
// tampered or moved record never reaches the unwrap, then unwraps it.
func (k *Keyring) openRecord(ctx context.Context, owner string, rec []byte) (*keyset, error) {
	ops, _ := k.ops()
	return openRecordWith(ctx, ops, owner, rec, func() { k.unwraps.Add(1) }, k.refuse)
}

func openRecordWith(ctx context.Context, mk masterOps, owner string, rec []byte, counted func(),
	refuse func(owner, check string, err error) *Error,
) (*keyset, error) {
	entries, err := decodeRecord(rec)
	if err != nil {
		return nil, refuse(owner, "decode", err)
	}
	ks := &keyset{}
	for _, e := range entries {
		if err := mk.verify(ctx, e.hmac, macData(owner, e.gen, e.wrapped), e.mac); err != nil {
			if !isIntegrityFailure(err) {
				return nil, passThrough("HSM verify pKEK MAC", err)
			}
			return nil, refuse(owner, "MAC", err)
		}
		counted()
		raw, err := mk.unwrap(ctx, e.mkek, e.wrapped, pkekAAD(owner, e.gen))
		if err != nil {
			if !isIntegrityFailure(err) {
				return nil, passThrough("HSM unwrap pKEK", err)
			}
			return nil, refuse(owner, "unwrap", err)
		}
		if len(raw) != pkekLen {
			clear(raw)
			return nil, refuse(owner, "length", fmt.Errorf("unwrapped pKEK is %d bytes", len(raw)))
		}
		aead, err := newAEAD(raw)
		clear(raw)
		if err != nil {
			return nil, err
		}
		ks.gens = append(ks.gens, e.gen)
		ks.aeads = append(ks.aeads, aead)
	}
	return ks, nil
}

// refuse reports a pKEK record that failed a check: a security event (the
// store was tampered with or corrupted), so it is logged at error level and
// the record is never used.
func (k *Keyring) refuse(owner, check string, err error) *Error {
	k.log.Error("pKEK record failed its integrity check; refusing to use it",
		"owner", owner, "record", storageKey(owner), "check", check, "error", err)
	return &Error{
		Reason: kmip14.ResultReasonCryptographicFailure,
		Msg:    msgPKEK,
		Err:    fmt.Errorf("pKEK record for owner %q failed %s check: %w", owner, check, err),
	}
}

// newAEAD builds what the cache keeps of a pKEK: its AES-GCM AEAD and the
// blind-index key derived from it (ownerKey). The caller clears key.
func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, passThrough("AES key", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, passThrough("GCM", err)
	}
	return &ownerKey{AEAD: aead, index: deriveIndexKey(key)}, nil
}
