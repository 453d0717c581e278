package secp256k1

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"testing"
)

// FuzzParse feeds every decoder the same bytes: none may panic, and what
// one accepts must re-encode to something it accepts again as the same key.
func FuzzParse(f *testing.F) {
	for _, s := range []string{oasisECPrivateKey, oasisSPKI, oasisSignature} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	k, _ := ParseECPrivateKey(mustHex(oasisECPrivateKey))
	p8, _ := MarshalPKCS8PrivateKey(k)
	f.Add(p8)
	f.Add(k.PublicKey().Bytes())
	f.Add(generator.encode()[:33])
	f.Add([]byte{0})
	digest := sha256.Sum256(mustHex(oasisData))
	good := mustHex(oasisSignature)
	twin, _ := encodeSig(new(big.Int).SetBytes(good[4:36]), new(big.Int).Sub(bigN, new(big.Int).SetBytes(good[38:])))
	f.Add(twin)
	f.Fuzz(func(t *testing.T, b []byte) {
		if priv, err := ParseECPrivateKey(b); err == nil {
			again, err := MarshalECPrivateKey(priv)
			if back, err2 := ParseECPrivateKey(again); err != nil || err2 != nil || !back.Equal(priv) {
				t.Fatalf("ECPrivateKey does not round-trip: %v %v", err, err2)
			}
		}
		if priv, err := ParsePKCS8PrivateKey(b); err == nil {
			again, err := MarshalPKCS8PrivateKey(priv)
			if back, err2 := ParsePKCS8PrivateKey(again); err != nil || err2 != nil || !back.Equal(priv) {
				t.Fatalf("PKCS#8 does not round-trip: %v %v", err, err2)
			}
		}
		if pub, err := ParsePKIXPublicKey(b); err == nil {
			again, err := MarshalPKIXPublicKey(pub)
			if back, err2 := ParsePKIXPublicKey(again); err != nil || err2 != nil || !back.Equal(pub) {
				t.Fatalf("SubjectPublicKeyInfo does not round-trip: %v %v", err, err2)
			}
		}
		if pub, err := NewPublicKey(b); err == nil {
			if back, err := NewPublicKey(pub.Bytes()); err != nil || !back.Equal(pub) {
				t.Fatalf("point does not round-trip: %v", err)
			}
		}
		// Strict DER: the only byte strings that verify are the known
		// signature and its one ECDSA twin (r, n − s).
		if VerifyASN1(k.PublicKey(), digest[:], b) && !bytes.Equal(b, good) && !bytes.Equal(b, twin) {
			t.Fatalf("another encoding verifies: %x", b)
		}
	})
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// The reference is P-256 in crypto/ecdsa (assembly, precomputed tables),
// measured in the same run: read the ratio, not the absolute numbers.
func BenchmarkSign(b *testing.B) {
	k, _ := GenerateKey(rand.Reader)
	d := sha256.Sum256([]byte("kmipd"))
	for b.Loop() {
		if _, err := SignASN1(k, crypto.SHA256, d[:]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	k, _ := GenerateKey(rand.Reader)
	d := sha256.Sum256([]byte("kmipd"))
	sig, _ := SignASN1(k, crypto.SHA256, d[:])
	for b.Loop() {
		if !VerifyASN1(k.PublicKey(), d[:], sig) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkSignP256Reference(b *testing.B) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := sha256.Sum256([]byte("kmipd"))
	for b.Loop() {
		if _, err := ecdsa.SignASN1(rand.Reader, k, d[:]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyP256Reference(b *testing.B) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := sha256.Sum256([]byte("kmipd"))
	sig, _ := ecdsa.SignASN1(rand.Reader, k, d[:])
	for b.Loop() {
		if !ecdsa.VerifyASN1(&k.PublicKey, d[:], sig) {
			b.Fatal("invalid")
		}
	}
}
