package secp256k1

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "crypto/sha1"
	_ "crypto/sha3"
	_ "crypto/sha512"
)

// readVectors reads testdata/name: one vector a line, fields split by " | ".
func readVectors(t *testing.T, name string, fields int) [][]string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<16)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		v := strings.Split(line, " | ")
		if len(v) != fields {
			t.Fatalf("%s: %d fields in %q", name, len(v), line)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil || len(out) == 0 {
		t.Fatalf("%s: %v, %d vectors", name, err, len(out))
	}
	return out
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func derSig(r, s []byte) []byte {
	b, err := encodeSig(new(big.Int).SetBytes(r), new(big.Int).SetBytes(s))
	if err != nil {
		panic(err)
	}
	return b
}

func TestRFC6979Vectors(t *testing.T) {
	half := new(big.Int).Rsh(bigN, 1)
	for _, v := range readVectors(t, "rfc6979_sha256.txt", 5) {
		k, err := NewPrivateKey(unhex(t, v[0]))
		if err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256([]byte(v[1]))
		g := newRFC6979(crypto.SHA256, &k.d, digest[:])
		if nonce := g.next(); hex.EncodeToString(nonce[:]) != v[2] {
			t.Errorf("%q: nonce %x, want %s", v[1], nonce, v[2])
		}
		r, s, err := sign(k, crypto.SHA256, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		sl := new(big.Int).SetBytes(s[:])
		if sl.Cmp(half) > 0 {
			sl.Sub(bigN, sl)
		}
		if hex.EncodeToString(r[:]) != v[3] || hex.EncodeToString(sl.FillBytes(make([]byte, 32))) != v[4] {
			t.Errorf("%q: r, s = %x, %x; want %s, %s (low-S)", v[1], r, sl, v[3], v[4])
		}
		sig, err := SignASN1(k, crypto.SHA256, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		if !VerifyASN1(k.PublicKey(), digest[:], sig) {
			t.Errorf("%q: own signature does not verify", v[1])
		}
		// The published low-S form verifies too (ECDSA accepts both).
		if !VerifyASN1(k.PublicKey(), digest[:], derSig(unhex(t, v[3]), unhex(t, v[4]))) {
			t.Errorf("%q: published signature does not verify", v[1])
		}
		again, _ := SignASN1(k, crypto.SHA256, digest[:])
		if !bytes.Equal(sig, again) {
			t.Errorf("%q: signing twice gave two signatures", v[1])
		}
	}
}

func TestWycheproofVectors(t *testing.T) {
	for _, v := range readVectors(t, "wycheproof_ecdsa_secp256k1_sha256.txt", 5) {
		pub, err := NewPublicKey(unhex(t, v[2]))
		if err != nil {
			t.Fatalf("tcId %s: %v", v[0], err)
		}
		digest := sha256.Sum256(unhex(t, v[3]))
		rs := unhex(t, v[4])
		r, s := [32]byte(rs[:32]), [32]byte(rs[32:])
		if got := verify(pub, digest[:], &r, &s); got != (v[1] == "valid") {
			t.Errorf("tcId %s: verify = %v, want %s", v[0], got, v[1])
		}
		if got := VerifyASN1(pub, digest[:], derSig(r[:], s[:])); got != (v[1] == "valid") {
			t.Errorf("tcId %s: VerifyASN1 = %v, want %s", v[0], got, v[1])
		}
	}
}

// The key pair and signature of OASIS KMIP 1.4 test case TC-ECDSA-SIGN-1-14.
const (
	oasisECPrivateKey = "30740201010420db4d128c30ca309e62c4019758c00ba244dd64d9bf52a31078866b8a00c19c68a00706052b8104000aa14403420004dab5d3c253113db414abfc1c0ebf5a02559e656aa1c8b0aa8d870aa0324cda4899925ea1e6dbc259a6c7825cf46592ac7594cc40bd604b728d88b636f317d366"
	oasisSPKI         = "3056301006072a8648ce3d020106052b8104000a03420004dab5d3c253113db414abfc1c0ebf5a02559e656aa1c8b0aa8d870aa0324cda4899925ea1e6dbc259a6c7825cf46592ac7594cc40bd604b728d88b636f317d366"
	oasisSignature    = "30440220078ac91570286b4b35f2bf1da113c6e25e8c45dfc7a7dc7db07f7ff34ffc08d702200135d58e21d091e60b81a0e63db3d914af9fe56de9b3cf747cd8ecc74a75ee71"
	oasisData         = "01020304050607080910111213141516"
)

func TestOASISKeyAndSignature(t *testing.T) {
	priv, err := ParseECPrivateKey(unhex(t, oasisECPrivateKey))
	if err != nil {
		t.Fatal(err) // includes: the embedded public key is d·G
	}
	pub, err := ParsePKIXPublicKey(unhex(t, oasisSPKI))
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) {
		t.Fatal("the case's public key is not its private key's")
	}
	digest := sha256.Sum256(unhex(t, oasisData))
	sig := unhex(t, oasisSignature)
	if !VerifyASN1(pub, digest[:], sig) {
		t.Fatal("the case's known good signature does not verify")
	}
	bad := bytes.Clone(sig)
	bad[len(bad)-1] = 0xff // the case's known bad signature
	if VerifyASN1(pub, digest[:], bad) {
		t.Fatal("the case's known bad signature verifies")
	}
	// Round trips through every format give the same bytes back.
	if b, _ := MarshalECPrivateKey(priv); hex.EncodeToString(b) != oasisECPrivateKey {
		t.Errorf("ECPrivateKey re-encodes as %x", b)
	}
	if b, _ := MarshalPKIXPublicKey(pub); hex.EncodeToString(b) != oasisSPKI {
		t.Errorf("SubjectPublicKeyInfo re-encodes as %x", b)
	}
	p8, err := MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePKCS8PrivateKey(p8)
	if err != nil || !back.Equal(priv) {
		t.Fatalf("PKCS#8 round trip: %v", err)
	}
}

func TestEveryHash(t *testing.T) {
	k, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512,
		crypto.SHA512_224, crypto.SHA512_256, crypto.SHA3_224, crypto.SHA3_256, crypto.SHA3_384, crypto.SHA3_512} {
		hh := h.New()
		hh.Write([]byte("kmipd"))
		d := hh.Sum(nil)
		sig, err := SignASN1(k, h, d)
		if err != nil {
			t.Fatalf("%v: %v", h, err)
		}
		if !VerifyASN1(k.PublicKey(), d, sig) {
			t.Errorf("%v: signature does not verify", h)
		}
		d[0] ^= 1 // digests longer than 256 bits are truncated (SEC 1 §4.1.3)
		if VerifyASN1(k.PublicKey(), d, sig) {
			t.Errorf("%v: signature verifies another digest", h)
		}
	}
	if _, err := SignASN1(k, crypto.MD4, make([]byte, 16)); !errors.Is(err, ErrHash) {
		t.Errorf("unlinked hash: %v", err)
	}
}

func TestPointValidation(t *testing.T) {
	g := generator.encode()
	offCurve := bytes.Clone(g)
	offCurve[64] ^= 1
	xTooBig := append([]byte{4}, bytes.Repeat([]byte{0xff}, 64)...)
	notSquare := append([]byte{2}, make([]byte, 32)...)
	for x := int64(0); ; x++ { // the first x whose x³ + 7 is not a square mod p
		rhs := new(big.Int).Add(new(big.Int).Exp(big.NewInt(x), big.NewInt(3), nil), big.NewInt(7))
		if new(big.Int).ModSqrt(rhs, bigP) == nil {
			notSquare[32] = byte(x)
			break
		}
	}
	for name, b := range map[string][]byte{
		"infinity": {0}, "empty": nil, "off curve": offCurve, "coordinate ≥ p": xTooBig,
		"not a square": notSquare, "short": g[:64], "long": append(bytes.Clone(g), 0),
		"hybrid prefix": append([]byte{6}, g[1:]...), "compressed length": append([]byte{2}, g[1:]...),
	} {
		if _, err := NewPublicKey(b); !errors.Is(err, ErrPublicKey) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// x = p + small, the same point's x plus p, must not alias onto it.
	wrap := append([]byte{2}, bigP.FillBytes(make([]byte, 32))...)
	wrap[32] += 1
	if _, err := NewPublicKey(wrap); err == nil {
		t.Error("x ≥ p accepted in a compressed point")
	}
	nMinus1 := new(big.Int).Sub(bigN, big.NewInt(1))
	for name, d := range map[string][]byte{
		"zero": {0}, "n": bigN.Bytes(), "n+1": new(big.Int).Add(bigN, big.NewInt(1)).Bytes(),
		"33 bytes": append([]byte{1}, make([]byte, 32)...), "empty": nil,
	} {
		if _, err := NewPrivateKey(d); !errors.Is(err, ErrPrivateKey) {
			t.Errorf("private %s: %v", name, err)
		}
	}
	if _, err := NewPrivateKey(append([]byte{0, 0}, nMinus1.Bytes()...)); err != nil {
		t.Errorf("n−1 with leading zeros: %v", err)
	}
}

func TestDERRefusals(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec, _ := x509.MarshalECPrivateKey(p256)
	p8, _ := x509.MarshalPKCS8PrivateKey(p256)
	spki, _ := x509.MarshalPKIXPublicKey(&p256.PublicKey)
	if _, err := ParseECPrivateKey(ec); !errors.Is(err, ErrOtherKey) {
		t.Errorf("P-256 ECPrivateKey: %v", err)
	}
	if _, err := ParsePKCS8PrivateKey(p8); !errors.Is(err, ErrOtherKey) {
		t.Errorf("P-256 PKCS#8: %v", err)
	}
	if _, err := ParsePKIXPublicKey(spki); !errors.Is(err, ErrOtherKey) {
		t.Errorf("P-256 SPKI: %v", err)
	}
	// A secp256k1 ECPrivateKey whose public key is someone else's.
	other, _ := GenerateKey(rand.Reader)
	k, _ := ParseECPrivateKey(unhex(t, oasisECPrivateKey))
	e := ecPrivateKey{Version: 1, PrivateKey: k.Bytes(), Curve: OID,
		PublicKey: bitString(other.PublicKey().Bytes())}
	if _, err := ParseECPrivateKey(mustMarshal(t, e)); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("mismatched pair: %v", err)
	}
	e.PublicKey, e.Version = bitString(k.PublicKey().Bytes()), 2
	if _, err := ParseECPrivateKey(mustMarshal(t, e)); err == nil || errors.Is(err, ErrOtherKey) {
		t.Errorf("version 2: %v", err)
	}
	e.Version, e.PrivateKey = 1, bigN.Bytes()
	if _, err := ParseECPrivateKey(mustMarshal(t, e)); !errors.Is(err, ErrPrivateKey) {
		t.Errorf("d = n: %v", err)
	}
	// Signatures: BER length, r = 0, s = n, trailing bytes.
	digest := sha256.Sum256(unhex(t, oasisData))
	good := unhex(t, oasisSignature)
	for name, sig := range map[string][]byte{
		"BER length": append([]byte{0x30, 0x81, 0x44}, good[2:]...),
		"trailing":   append(bytes.Clone(good), 0),
		"r = 0":      derSig([]byte{0}, good[4+32+2:]),
		"s = n":      derSig(good[4:4+32], bigN.Bytes()),
		"empty":      nil,
	} {
		if VerifyASN1(k.PublicKey(), digest[:], sig) {
			t.Errorf("signature %s verifies", name)
		}
	}
}

func TestGenerateKeyRejectsOutOfRange(t *testing.T) {
	valid := bytes.Repeat([]byte{7}, 32)
	src := bytes.NewReader(append(append(bigN.Bytes(), make([]byte, 32)...), valid...))
	k, err := GenerateKey(src)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.Bytes(), valid) {
		t.Fatalf("GenerateKey kept an out-of-range draw: %x", k.Bytes())
	}
	if _, err := GenerateKey(bytes.NewReader(nil)); err == nil {
		t.Fatal("GenerateKey on an empty source succeeded")
	}
}

func bitString(b []byte) asn1.BitString { return asn1.BitString{Bytes: b, BitLength: 8 * len(b)} }

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
