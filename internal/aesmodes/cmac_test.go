package aesmodes

import (
	"bytes"
	"crypto/des"
	"errors"
	"testing"
)

// The message of RFC 4493 §4 and SP 800-38B appendix D; examples use its
// first 0, 16, 40 and 64 bytes.
const cmacMsg = "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51" +
	"30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710"

func TestCMACVectors(t *testing.T) {
	msg := unhex(t, cmacMsg)
	for _, c := range []struct {
		name, key, k1, k2 string
		tags              [4]string // for 0, 16, 40, 64 bytes
	}{
		{"RFC 4493 §4 (SP 800-38B D.1, AES-128)", "2b7e1516 28aed2a6 abf71588 09cf4f3c",
			"fbeed618357133667c85e08f7236a8de", "f7ddac306ae266ccf90bc11ee46d513b",
			[4]string{"bb1d6929e95937287fa37d129b756746", "070a16b46b4d4144f79bdd9dd04a287c",
				"dfa66747de9ae63030ca32611497c827", "51f0bebf7e3b9d92fc49741779363cfe"}},
		{"SP 800-38B D.2 (AES-192)", "8e73b0f7 da0e6452 c810f32b 809079e5 62f8ead2 522c6b7b",
			"448a5b1c93514b273ee6439dd4daa296", "8914b63926a2964e7dcc873ba9b5452c",
			[4]string{"d17ddf46adaacde531cac483de7a9367", "9e99a7bf31e710900662f65e617c5184",
				"8a1de5be2eb31aad089a82e6ee908b0e", "a1d5df0eed790f794d77589659f39a11"}},
		{"SP 800-38B D.3 (AES-256)", "603deb10 15ca71be 2b73aef0 857d7781 1f352c07 3b6108d7 2d9810a3 0914dff4", "", "",
			[4]string{"028962f61b7bf89efc6b551f4667d983", "28a7023f452e8f82bd4bf28d8c37c35c",
				"aaf3d8f1de5640c232f5b169b9c911e6", "e1992190549f6ed5696a2c056c315410"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := NewCMAC(newAES(t, unhex(t, c.key)))
			if err != nil {
				t.Fatal(err)
			}
			if c.k1 != "" && (!bytes.Equal(m.k1, unhex(t, c.k1)) || !bytes.Equal(m.k2, unhex(t, c.k2))) {
				t.Fatalf("subkeys %x %x", m.k1, m.k2)
			}
			for i, n := range []int{0, 16, 40, 64} {
				want := unhex(t, c.tags[i])
				// Whole, then byte by byte: the held last block must not
				// depend on how the data was split.
				m.Reset()
				m.Write(msg[:n])
				if got := m.Sum(nil); !bytes.Equal(got, want) {
					t.Errorf("%d bytes: %x, want %x", n, got, want)
				}
				m.Reset()
				for j := range n {
					m.Write(msg[j : j+1])
				}
				if got := m.Sum(nil); !bytes.Equal(got, want) {
					t.Errorf("%d bytes, bytewise: %x", n, got)
				}
			}
		})
	}
	// 64-bit blocks use R64: SP 800-38B D.4 (TDEA, three keys), example 2.
	tb, err := des.NewTripleDESCipher(unhex(t, "8aa83bf8cbda1062 0bc1bf19fbb6cd58 bc313d4a371ca8b5"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewCMAC(tb)
	if err != nil {
		t.Fatal(err)
	}
	m.Write(unhex(t, "6bc1bee22e409f96"))
	if got := m.Sum(nil); !bytes.Equal(got, unhex(t, "8e8f293136283797")) {
		t.Errorf("TDEA CMAC %x", got)
	}
}

// Sum leaves the state alone (hash.Hash), so writing on extends the message.
func TestCMACSumThenWrite(t *testing.T) {
	msg := unhex(t, cmacMsg)
	m, _ := NewCMAC(newAES(t, unhex(t, "2b7e151628aed2a6abf7158809cf4f3c")))
	m.Write(msg[:16])
	first := m.Sum([]byte("prefix"))
	if string(first[:6]) != "prefix" || !bytes.Equal(first[6:], unhex(t, "070a16b46b4d4144f79bdd9dd04a287c")) {
		t.Fatalf("Sum with a prefix: %x", first)
	}
	m.Write(msg[16:40])
	if got := m.Sum(nil); !bytes.Equal(got, unhex(t, "dfa66747de9ae63030ca32611497c827")) {
		t.Fatalf("after Sum and more data: %x", got)
	}
	if m.Size() != 16 || m.BlockSize() != 16 {
		t.Fatalf("Size %d BlockSize %d", m.Size(), m.BlockSize())
	}
}

func TestCMACRefusesOtherBlockSizes(t *testing.T) {
	for _, bs := range []int{0, 4, 12, 32} {
		if m, err := NewCMAC(oddBlock(bs)); !errors.Is(err, ErrLength) || m != nil {
			t.Errorf("%d-byte block: %v, %v", bs, m, err)
		}
	}
}
