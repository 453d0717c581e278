package aesmodes

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"strings"
	"testing"
)

// unhex decodes a vector as printed in its document: spaces are ignored.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad vector %q: %v", s, err)
	}
	return b
}

func newAES(t testing.TB, key []byte) cipher.Block {
	t.Helper()
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// oddBlock is a cipher.Block of a size no mode here takes, for the
// refusals; it never encrypts.
type oddBlock int

func (o oddBlock) BlockSize() int          { return int(o) }
func (o oddBlock) Encrypt(dst, src []byte) { panic("oddBlock used") }
func (o oddBlock) Decrypt(dst, src []byte) { panic("oddBlock used") }
