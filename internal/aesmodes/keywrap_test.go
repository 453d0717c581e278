package aesmodes

import (
	"bytes"
	"crypto/aes"
	"encoding/binary"
	"errors"
	"testing"
)

const (
	kek128 = "000102030405060708090A0B0C0D0E0F"
	kek192 = kek128 + "1011121314151617"
	kek256 = kek128 + "101112131415161718191A1B1C1D1E1F"
	data16 = "00112233445566778899AABBCCDDEEFF"
	data24 = data16 + "0001020304050607"
	data32 = data16 + "000102030405060708090A0B0C0D0E0F"
	// RFC 5649 §6 uses one 192-bit KEK for both examples.
	kwpKEK = "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8"
)

var kwVectors = []struct {
	name, kek, in, out string
	pad                bool
}{
	{"RFC 3394 4.1", kek128, data16, "1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5", false},
	{"RFC 3394 4.2", kek192, data16, "96778B25AE6CA435 F92B5B97C050AED2 468AB8A17AD84E5D", false},
	{"RFC 3394 4.3", kek256, data16, "64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7", false},
	{"RFC 3394 4.4", kek192, data24, "031D33264E15D332 68F24EC260743EDC E1C6C7DDEE725A93 6BA814915C6762D2", false},
	{"RFC 3394 4.5", kek256, data24, "A8F9BC1612C68B3F F6E6F4FBE30E71E4 769C8B80A32CB895 8CD5D17D6B254DA1", false},
	{"RFC 3394 4.6", kek256, data32,
		"28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21", false},
	{"RFC 5649 §6, 20 octets", kwpKEK, "c37b7e6492584340bed12207808941155068f738",
		"138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a", true},
	{"RFC 5649 §6, 7 octets", kwpKEK, "466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f", true},
}

func TestKeyWrapVectors(t *testing.T) {
	for _, c := range kwVectors {
		t.Run(c.name, func(t *testing.T) {
			wrap, unwrap, other := Wrap, Unwrap, UnwrapPad
			if c.pad {
				wrap, unwrap, other = WrapPad, UnwrapPad, Unwrap
			}
			kek, in, out := unhex(t, c.kek), unhex(t, c.in), unhex(t, c.out)
			got, err := wrap(kek, in)
			if err != nil || !bytes.Equal(got, out) {
				t.Fatalf("wrap = %x, %v", got, err)
			}
			back, err := unwrap(kek, out)
			if err != nil || !bytes.Equal(back, in) {
				t.Fatalf("unwrap = %x, %v", back, err)
			}
			// Every flipped bit of the wrapped key is caught.
			for i := range 8 * len(out) {
				out[i/8] ^= 1 << (i % 8)
				if p, err := unwrap(kek, out); !errors.Is(err, ErrAuth) || p != nil {
					t.Fatalf("bit %d flipped: %x, %v", i, p, err)
				}
				out[i/8] ^= 1 << (i % 8)
			}
			// So are another key, and the other algorithm's unwrap.
			wrong := bytes.Clone(kek)
			wrong[0] ^= 1
			if p, err := unwrap(wrong, out); !errors.Is(err, ErrAuth) || p != nil {
				t.Fatalf("wrong key: %x, %v", p, err)
			}
			if p, err := other(kek, out); err == nil || p != nil {
				t.Fatalf("unwrapped by the other algorithm: %x", p)
			}
		})
	}
}

func TestKeyWrapRoundTrip(t *testing.T) {
	for _, kl := range []int{16, 24, 32} {
		kek := bytes.Repeat([]byte{byte(kl)}, kl)
		for n := 1; n <= 72; n++ {
			in := make([]byte, n)
			for i := range in {
				in[i] = byte(i*7 + n)
			}
			w, err := WrapPad(kek, in)
			if err != nil || len(w) != (n+7)/8*8+8 {
				t.Fatalf("WrapPad %d bytes: %d bytes, %v", n, len(w), err)
			}
			if back, err := UnwrapPad(kek, w); err != nil || !bytes.Equal(back, in) {
				t.Fatalf("UnwrapPad %d bytes: %v", n, err)
			}
			if n < 16 || n%8 != 0 {
				continue
			}
			w, err = Wrap(kek, in)
			if err != nil || len(w) != n+8 {
				t.Fatalf("Wrap %d bytes: %v", n, err)
			}
			if back, err := Unwrap(kek, w); err != nil || !bytes.Equal(back, in) {
				t.Fatalf("Unwrap %d bytes: %v", n, err)
			}
		}
	}
}

func TestKeyWrapRefusesBadLengths(t *testing.T) {
	kek := make([]byte, 16)
	for _, n := range []int{0, 1, 8, 15, 17, 20, 23} {
		if w, err := Wrap(kek, make([]byte, n)); !errors.Is(err, ErrLength) || w != nil {
			t.Errorf("Wrap %d bytes: %v", n, err)
		}
	}
	if w, err := WrapPad(kek, nil); !errors.Is(err, ErrLength) || w != nil {
		t.Errorf("WrapPad of nothing: %v", err)
	}
	for _, n := range []int{0, 8, 16, 23, 25, 31} {
		if p, err := Unwrap(kek, make([]byte, n)); !errors.Is(err, ErrLength) || p != nil {
			t.Errorf("Unwrap %d bytes: %v", n, err)
		}
	}
	for _, n := range []int{0, 7, 8, 15, 17, 23} {
		if p, err := UnwrapPad(kek, make([]byte, n)); !errors.Is(err, ErrLength) || p != nil {
			t.Errorf("UnwrapPad %d bytes: %v", n, err)
		}
	}
	// A key-encryption key that is no AES key.
	for _, kl := range []int{0, 8, 15, 33} {
		var kse aes.KeySizeError
		if _, err := Wrap(make([]byte, kl), make([]byte, 16)); !errors.As(err, &kse) {
			t.Errorf("Wrap with a %d-byte key: %v", kl, err)
		}
		if _, err := WrapPad(make([]byte, kl), make([]byte, 5)); !errors.As(err, &kse) {
			t.Errorf("WrapPad with a %d-byte key: %v", kl, err)
		}
		if _, err := Unwrap(make([]byte, kl), make([]byte, 24)); !errors.As(err, &kse) {
			t.Errorf("Unwrap with a %d-byte key: %v", kl, err)
		}
		if _, err := UnwrapPad(make([]byte, kl), make([]byte, 16)); !errors.As(err, &kse) {
			t.Errorf("UnwrapPad with a %d-byte key: %v", kl, err)
		}
	}
}

// UnwrapPad checks each part of RFC 5649's initial value and the padding,
// on both the one-block and the many-block form. The inputs are encrypted
// properly, so only those checks can refuse them.
func TestUnwrapPadChecks(t *testing.T) {
	kek := unhex(t, kwpKEK)
	b := newAES(t, kek)
	seal := func(magic, mli uint32, padded []byte) []byte {
		var aiv [8]byte
		binary.BigEndian.PutUint32(aiv[:4], magic)
		binary.BigEndian.PutUint32(aiv[4:], mli)
		if len(padded) == 8 {
			out := append(aiv[:], padded...)
			b.Encrypt(out, out)
			return out
		}
		return kwRounds(b, aiv, padded)
	}
	for _, c := range []struct {
		name   string
		magic  uint32
		mli    uint32
		padded []byte
		want   []byte // nil: refused
	}{
		{"one block, good", kwpMagic, 7, []byte("1234567\x00"), []byte("1234567")},
		{"one block, whole", kwpMagic, 8, []byte("12345678"), []byte("12345678")},
		{"one block, length 0", kwpMagic, 0, make([]byte, 8), nil},
		{"one block, length 9", kwpMagic, 9, []byte("12345678"), nil},
		{"one block, padding not zero", kwpMagic, 6, []byte("123456\x00\x01"), nil},
		{"one block, RFC 3394 IV", 0xa6a6a6a6, 8, []byte("12345678"), nil},
		{"three blocks, good", kwpMagic, 17, []byte("12345678abcdefgh!\x00\x00\x00\x00\x00\x00\x00"), []byte("12345678abcdefgh!")},
		{"three blocks, length in block two", kwpMagic, 16, []byte("12345678abcdefgh\x00\x00\x00\x00\x00\x00\x00\x00"), nil},
		{"three blocks, length past the end", kwpMagic, 25, []byte("12345678abcdefgh!\x00\x00\x00\x00\x00\x00\x00"), nil},
		{"three blocks, huge length", kwpMagic, 0xffffffff, []byte("12345678abcdefgh!\x00\x00\x00\x00\x00\x00\x00"), nil},
		{"three blocks, padding not zero", kwpMagic, 17, []byte("12345678abcdefgh!\x00\x00\x00\x00\x00\x00\x80"), nil},
		{"three blocks, wrong magic", kwpMagic ^ 1, 17, []byte("12345678abcdefgh!\x00\x00\x00\x00\x00\x00\x00"), nil},
	} {
		got, err := UnwrapPad(kek, seal(c.magic, c.mli, c.padded))
		if c.want == nil {
			if !errors.Is(err, ErrAuth) || got != nil {
				t.Errorf("%s: %q, %v; want ErrAuth", c.name, got, err)
			}
		} else if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s: %q, %v", c.name, got, err)
		}
	}
}
