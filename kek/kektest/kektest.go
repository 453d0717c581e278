// Package kektest provides software master keys for tests above the HSM:
// kek's own, and kmipops's tests of KMIP semantics, which then need no
// SoftHSM token. The cryptography is real (AES-256-GCM wrap, HMAC-SHA256)
// under random keys that live in memory, where kmipd keeps the MKEK and the
// HMAC key inside the HSM; never use it outside tests.
//
// It satisfies kek.MasterKeys without importing kek, so that kek's own
// (internal) tests can use it; kektest_test.go checks the fit at compile
// time.
package kektest

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
)

// MasterKeys is kek.MasterKeys in software. It is safe for concurrent use.
type MasterKeys struct {
	wrap   cipher.AEAD
	macKey []byte
}

// Its errors are plain: kek treats an error without a reason as a failed
// integrity check, as it does the HSM's CryptographicFailure.
var (
	errShort = errors.New("kektest: wrapped key too short")
	errMAC   = errors.New("kektest: MAC mismatch")
)

// NewMasterKeys returns master keys under fresh random keys: what one
// instance wraps or MACs, no other can unwrap or verify.
func NewMasterKeys() *MasterKeys {
	k := make([]byte, 32)
	m := make([]byte, 32)
	rand.Read(k) // never fails (crypto/rand)
	rand.Read(m)
	b, err := aes.NewCipher(k)
	if err != nil {
		panic(err) // a 32-byte key is always an AES key
	}
	clear(k)
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err) // AES is a 128-bit block cipher
	}
	return &MasterKeys{wrap: g, macKey: m}
}

// Random returns n random bytes.
func (s *MasterKeys) Random(ctx context.Context, n int) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	rand.Read(b)
	return b, nil
}

// Wrap seals plaintext with AES-256-GCM under the wrapping key, aad bound:
// nonce ‖ ciphertext ‖ tag.
func (s *MasterKeys) Wrap(ctx context.Context, plaintext, aad []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	nonce := make([]byte, s.wrap.NonceSize())
	rand.Read(nonce)
	return s.wrap.Seal(nonce, nonce, plaintext, aad), nil
}

// Unwrap opens what Wrap sealed with the same aad, or fails.
func (s *MasterKeys) Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n := s.wrap.NonceSize()
	if len(wrapped) < n {
		return nil, errShort
	}
	return s.wrap.Open(nil, wrapped[:n], wrapped[n:], aad)
}

// MAC is HMAC-SHA256 of data under the MAC key.
func (s *MasterKeys) MAC(ctx context.Context, data []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h := hmac.New(sha256.New, s.macKey)
	h.Write(data)
	return h.Sum(nil), nil
}

// VerifyMAC checks mac against data in constant time.
func (s *MasterKeys) VerifyMAC(ctx context.Context, data, mac []byte) error {
	want, err := s.MAC(ctx, data)
	if err != nil {
		return err
	}
	if !hmac.Equal(want, mac) {
		return errMAC
	}
	return nil
}
