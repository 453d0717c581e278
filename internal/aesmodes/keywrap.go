package aesmodes

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"math/bits"
)

// AES Key Wrap (RFC 3394; SP 800-38F KW) and AES Key Wrap with Padding
// (RFC 5649; SP 800-38F KWP). kek is the AES key (16, 24 or 32 bytes; else
// the aes.KeySizeError, wrapped); a wrapped key that fails its integrity
// check is ErrAuth.

// kwIV is the default initial value of AES Key Wrap (RFC 3394 §2.2.3.1).
var kwIV = [8]byte{0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6}

// kwpMagic is the high half of RFC 5649's alternative initial value (§3).
const kwpMagic = 0xa65959a6

// maxKWP is the longest input RFC 5649 takes: its length must fit 32 bits.
const maxKWP = 1<<32 - 1

func newKEK(kek []byte) (cipher.Block, error) {
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("aesmodes: key wrap: %w", err)
	}
	return b, nil
}

// Wrap is AES Key Wrap: plain is whole 64-bit blocks, at least two (else
// ErrLength).
func Wrap(kek, plain []byte) ([]byte, error) {
	if len(plain) < 16 || len(plain)%8 != 0 {
		return nil, fmt.Errorf("%w: key wrap needs a multiple of 8 bytes, at least 16, not %d", ErrLength, len(plain))
	}
	b, err := newKEK(kek)
	if err != nil {
		return nil, err
	}
	return kwRounds(b, kwIV, plain), nil
}

// Unwrap undoes Wrap. Anything but a multiple of 8 bytes, at least 24, is
// ErrLength.
func Unwrap(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped) < 24 || len(wrapped)%8 != 0 {
		return nil, fmt.Errorf("%w: a wrapped key is a multiple of 8 bytes, at least 24, not %d", ErrLength, len(wrapped))
	}
	b, err := newKEK(kek)
	if err != nil {
		return nil, err
	}
	a, plain := kwUnrounds(b, wrapped)
	if subtle.ConstantTimeCompare(a[:], kwIV[:]) != 1 {
		clear(plain)
		return nil, ErrAuth
	}
	return plain, nil
}

// WrapPad is AES Key Wrap with Padding: plain is 1 to 2^32-1 bytes (else
// ErrLength).
func WrapPad(kek, plain []byte) ([]byte, error) {
	if len(plain) == 0 || uint64(len(plain)) > maxKWP {
		return nil, fmt.Errorf("%w: key wrap with padding needs 1 to 2^32-1 bytes", ErrLength)
	}
	b, err := newKEK(kek)
	if err != nil {
		return nil, err
	}
	var aiv [8]byte // RFC 5649 §3: A65959A6 then the 32-bit message length
	binary.BigEndian.PutUint32(aiv[:4], kwpMagic)
	binary.BigEndian.PutUint32(aiv[4:], uint32(len(plain)))
	padded := make([]byte, (len(plain)+7)/8*8)
	copy(padded, plain)
	defer clear(padded)
	if len(padded) == 8 {
		// A single padded block is encrypted once, AIV first (§4.1).
		out := make([]byte, 16)
		copy(out, aiv[:])
		copy(out[8:], padded)
		b.Encrypt(out, out)
		return out, nil
	}
	return kwRounds(b, aiv, padded), nil
}

// UnwrapPad undoes WrapPad. Anything but a multiple of 8 bytes, at least 16,
// is ErrLength. The initial value, the length it carries and the zero
// padding are all checked (RFC 5649 §3), and any mismatch is ErrAuth.
func UnwrapPad(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped) < 16 || len(wrapped)%8 != 0 {
		return nil, fmt.Errorf("%w: a padded wrapped key is a multiple of 8 bytes, at least 16, not %d", ErrLength, len(wrapped))
	}
	b, err := newKEK(kek)
	if err != nil {
		return nil, err
	}
	var a [8]byte
	var padded []byte
	if len(wrapped) == 16 {
		buf := make([]byte, 16)
		b.Decrypt(buf, wrapped)
		copy(a[:], buf[:8])
		padded = buf[8:]
	} else {
		a, padded = kwUnrounds(b, wrapped)
	}
	// Every check runs whatever the others found, so the time taken does
	// not say which failed.
	n := uint64(len(padded))
	mli := uint64(binary.BigEndian.Uint32(a[4:]))
	ok := subtle.ConstantTimeEq(int32(binary.BigEndian.Uint32(a[:4])^kwpMagic), 0)
	// 8(n-1) < MLI <= 8n for n 64-bit blocks, that is len-7 <= MLI <= len.
	_, below := bits.Sub64(mli, n-7, 0)
	_, above := bits.Sub64(n, mli, 0)
	ok &= int((below | above) ^ 1)
	end := min(mli, n) // keeps the slice in range when the length is wrong
	var nonzero byte
	for _, c := range padded[end:] {
		nonzero |= c
	}
	ok &= subtle.ConstantTimeByteEq(nonzero, 0)
	if ok != 1 {
		clear(padded)
		return nil, ErrAuth
	}
	return padded[:mli], nil
}

// kwRounds is the wrapping function W of RFC 3394 §2.2.1 (index form), which
// RFC 5649 reuses with its own initial value.
func kwRounds(b cipher.Block, iv [8]byte, plain []byte) []byte {
	n := len(plain) / 8
	out := make([]byte, 8+len(plain))
	copy(out[8:], plain)
	a := iv
	var buf [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			copy(buf[:8], a[:])
			copy(buf[8:], out[8*i:8*i+8])
			b.Encrypt(buf[:], buf[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(buf[:8])^t)
			copy(out[8*i:8*i+8], buf[8:])
		}
	}
	clear(buf[:])
	copy(out[:8], a[:])
	return out
}

// kwUnrounds is the unwrapping function W⁻¹ of RFC 3394 §2.2.2 (index
// form): it returns the recovered initial value and the plaintext blocks,
// for the caller to check.
func kwUnrounds(b cipher.Block, wrapped []byte) (a [8]byte, plain []byte) {
	n := len(wrapped)/8 - 1
	copy(a[:], wrapped[:8])
	plain = make([]byte, 8*n)
	copy(plain, wrapped[8:])
	var buf [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(buf[:8], binary.BigEndian.Uint64(a[:])^t)
			copy(buf[8:], plain[8*(i-1):8*i])
			b.Decrypt(buf[:], buf[:])
			copy(a[:], buf[:8])
			copy(plain[8*(i-1):8*i], buf[8:])
		}
	}
	clear(buf[:])
	return a, plain
}
