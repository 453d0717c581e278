package object

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// The object model's tests run on real parts except the HSM: Badger in a
// temporary directory and a real kek.Keyring, whose master keys are
// software (softMasterKeys) so the tests need no token.

var (
	_ kek.MasterKeys = (*softMasterKeys)(nil)
	// The keyring is the repository's Sealer in kmipd (cmd/kmipd checks
	// the same), and reports the generations the cache follows.
	_ Sealer         = (*kek.Keyring)(nil)
	_ KeyGenerations = (*kek.Keyring)(nil)
	// Over a store replicas share it fences writes and refreshes lookups
	// (fence.go).
	_ Fencer    = (*kek.Keyring)(nil)
	_ Refresher = (*kek.Keyring)(nil)
)

// softMasterKeys are kek master keys in software: AES-256-GCM wrapping and
// HMAC-SHA256 under random keys.
type softMasterKeys struct {
	wrap   cipher.AEAD
	macKey []byte
}

func newSoftMasterKeys(t testing.TB) *softMasterKeys {
	k, m := make([]byte, 32), make([]byte, 32)
	rand.Read(k)
	rand.Read(m)
	b, err := aes.NewCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return &softMasterKeys{wrap: g, macKey: m}
}

func (s *softMasterKeys) Random(ctx context.Context, n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := rand.Read(b)
	return b, err
}

func (s *softMasterKeys) Wrap(ctx context.Context, pt, aad []byte) ([]byte, error) {
	nonce := make([]byte, s.wrap.NonceSize())
	rand.Read(nonce)
	return s.wrap.Seal(nonce, nonce, pt, aad), nil
}

func (s *softMasterKeys) Unwrap(ctx context.Context, w, aad []byte) ([]byte, error) {
	n := s.wrap.NonceSize()
	if len(w) < n {
		return nil, errors.New("short wrapped key")
	}
	return s.wrap.Open(nil, w[:n], w[n:], aad)
}

func (s *softMasterKeys) MAC(ctx context.Context, data []byte) ([]byte, error) {
	h := hmac.New(sha256.New, s.macKey)
	h.Write(data)
	return h.Sum(nil), nil
}

func (s *softMasterKeys) VerifyMAC(ctx context.Context, data, mac []byte) error {
	want, _ := s.MAC(ctx, data)
	if !hmac.Equal(want, mac) {
		return errors.New("MAC mismatch")
	}
	return nil
}

const alice = "a11ce0000000000000000000000000000000000000000000000000000000000a"

type fixture struct {
	t  testing.TB
	st *storage.Badger
	kr *kek.Keyring
	r  *Repo
	s  Scope // alice's objects, no undo
}

func newFixture(t testing.TB, cacheBytes int) *fixture {
	t.Helper()
	st, err := storage.OpenBadger(t.TempDir(), storage.BadgerOptions{GCInterval: -1}, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("OpenBadger: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	kr := kek.New(newSoftMasterKeys(t), st, kek.Config{}, hclog.NewNullLogger())
	r := NewRepo(st, kr, rand.Reader, cacheBytes)
	return &fixture{t: t, st: st, kr: kr, r: r, s: r.Scope(alice, nil)}
}

var ctx = context.Background()

// keyMaterial is the key testObject holds.
var keyMaterial = bytes.Repeat([]byte{7}, 32)

// testObject has the attribute shapes a record holds: enumerations, dates,
// structures, several instances of one name, custom names, and a key body.
func testObject() *Object {
	now := time.Unix(1700000000, 0)
	o := &Object{uid: "uid-1", typ: kmip14.ObjectTypeSymmetricKey}
	o.Set(AttrState, tree.Enum(0, uint32(kmip14.StatePreActive)))
	o.Set(AttrCryptoLength, tree.Int(0, 256))
	o.Set(AttrInitialDate, tree.Time(0, now))
	o.Set(AttrFresh, tree.Bool(0, true))
	o.Add(AttrName, nameValue("a"))
	o.Add(AttrName, nameValue("b"))
	o.Add("x-custom", tree.Bytes(0, []byte{}))
	o.Add("y-ünïcode", tree.Text(0, "v"))
	o.Add("x-bytes", tree.Bytes(0, []byte{1, 2, 3}))
	o.body = tree.Struct(kmip14.TagSymmetricKey, tree.Struct(kmip14.TagKeyBlock,
		tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)),
		tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, bytes.Clone(keyMaterial)))))
	return o
}

func nameValue(s string) *tree.Node {
	return tree.Struct(0, tree.Text(kmip14.TagNameValue, s), tree.Enum(kmip14.TagNameType, 1))
}

// insert stores a fresh copy of testObject under a new uid.
func (f *fixture) insert() string {
	f.t.Helper()
	o := testObject()
	o.uid = ""
	if err := f.s.Insert(ctx, o); err != nil {
		f.t.Fatal(err)
	}
	return o.UID()
}

func (f *fixture) load(uid string) *Object {
	f.t.Helper()
	o, err := f.s.Load(ctx, uid)
	if err != nil {
		f.t.Fatal(err)
	}
	return o
}

// opens counts the records the keyring has opened (or sealed) so far.
func (f *fixture) opens() uint64 {
	s := f.kr.Stats()
	return s.Hits + s.Misses
}

// cached returns the cache's own entry for uid (nil if none).
func (f *fixture) cached(uid string) *Object {
	c := f.r.cache
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e := c.m[objectKey(alice, uid)]; e != nil {
		return e.o
	}
	return nil
}

// encoded is o's record, for comparing objects byte for byte.
func encoded(t testing.TB, o *Object) []byte {
	t.Helper()
	b, err := o.encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
