package secp256k1

import (
	"crypto"
	"crypto/sha256"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// OpenSSL, an independent implementation, generates a key (its embedded
// public key must be our d·G), verifies our signatures and signs for us.
func TestOpenSSLInterop(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed: the OpenSSL cross-check is skipped")
	}
	dir := t.TempDir()
	run := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
		return out
	}
	keyFile, pubFile := filepath.Join(dir, "k.pem"), filepath.Join(dir, "pub.pem")
	digestFile, sigFile := filepath.Join(dir, "digest"), filepath.Join(dir, "sig")
	for i := range 4 {
		run("ecparam", "-name", "secp256k1", "-genkey", "-noout", "-out", keyFile)
		run("pkey", "-in", keyFile, "-pubout", "-out", pubFile)
		kp, _ := os.ReadFile(keyFile)
		blk, _ := pem.Decode(kp)
		if blk == nil {
			t.Fatal("openssl wrote no PEM")
		}
		k, err := ParseECPrivateKey(blk.Bytes)
		if err != nil {
			t.Fatalf("OpenSSL's key: %v", err) // includes the d·G check
		}
		pp, _ := os.ReadFile(pubFile)
		if blk, _ = pem.Decode(pp); blk == nil {
			t.Fatal("openssl wrote no public PEM")
		}
		if pub, err := ParsePKIXPublicKey(blk.Bytes); err != nil || !pub.Equal(k.Public()) {
			t.Fatalf("OpenSSL's public key: %v", err)
		}
		d := sha256.Sum256([]byte{byte(i), 'k', 'm', 'i', 'p'})
		if err := os.WriteFile(digestFile, d[:], 0o600); err != nil {
			t.Fatal(err)
		}
		sig, err := SignASN1(k, crypto.SHA256, d[:])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(sigFile, sig, 0o600); err != nil {
			t.Fatal(err)
		}
		run("pkeyutl", "-verify", "-pubin", "-inkey", pubFile, "-in", digestFile, "-sigfile", sigFile)
		theirs := run("pkeyutl", "-sign", "-inkey", keyFile, "-in", digestFile)
		if !VerifyASN1(k.PublicKey(), d[:], theirs) {
			t.Fatalf("OpenSSL's signature %x does not verify", theirs)
		}
	}
}
