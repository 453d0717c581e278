package kmipops

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"os"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/internal/aesmodes"
	"github.com/kmipd/kmipd/kmipops/tree"
)

func TestSignAndVerify(t *testing.T) {
	e := newEnv(t, Options{})
	rk, ek := crKeys(t)
	signM, verifyM := []*tree.Node{crMask(kmip14.CryptographicUsageMaskSign)}, []*tree.Node{crMask(kmip14.CryptographicUsageMaskVerify)}
	rPriv, rPub := e.crRSAPair(alice, signM, verifyM)
	ePriv, ePub := e.crECPair(alice, signM, verifyM)
	msg := []byte("pay 100 to bob")
	sum := sha256.Sum256(msg)
	sigAlg := func(a kmip14.DigitalSignatureAlgorithm) *tree.Node {
		return tree.Enum(kmip14.TagDigitalSignatureAlgorithm, uint32(a))
	}
	for _, c := range []struct {
		name        string
		priv, pub   string
		params      *tree.Node
		checkWithGo func(sig []byte) bool
	}{
		{"RSA PSS SHA-256", rPriv, rPub, crParams(crPad(kmip14.PaddingMethodPSS), crHash(kmip14.HashingAlgorithmSHA_256)),
			func(sig []byte) bool { return rsa.VerifyPSS(&rk.PublicKey, crypto.SHA256, sum[:], sig, nil) == nil }},
		{"RSA PSS salt 222", rPriv, rPub, crParams(crPad(kmip14.PaddingMethodPSS), crHash(kmip14.HashingAlgorithmSHA_256), tree.Int(kmip14.TagSaltLength, 222)),
			func(sig []byte) bool {
				return rsa.VerifyPSS(&rk.PublicKey, crypto.SHA256, sum[:], sig, &rsa.PSSOptions{SaltLength: 222}) == nil
			}},
		{"RSA SHA256WithRSAEncryption", rPriv, rPub, crParams(sigAlg(kmip14.DigitalSignatureAlgorithmSHA_256WithRSAEncryption)),
			func(sig []byte) bool { return rsa.VerifyPKCS1v15(&rk.PublicKey, crypto.SHA256, sum[:], sig) == nil }},
		{"ECDSA SHA-256", ePriv, ePub, crParams(crHash(kmip14.HashingAlgorithmSHA_256)),
			func(sig []byte) bool { return ecdsa.VerifyASN1(&ek.PublicKey, sum[:], sig) }},
		{"ECDSAWithSHA256", ePriv, ePub, crParams(sigAlg(kmip14.DigitalSignatureAlgorithmECDSAWithSHA256), crAlg(kmip14.CryptographicAlgorithmEC)),
			func(sig []byte) bool { return ecdsa.VerifyASN1(&ek.PublicKey, sum[:], sig) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := okPayload(t, e.crOne(alice, kmip14.OperationSign, uidF(c.priv), c.params, crData(msg)), 0)
			sig := crBytes(t, r, kmip14.TagSignatureData)
			if !c.checkWithGo(sig) {
				t.Fatal("Go does not accept the signature")
			}
			verify := func(data, sig []byte) kmip14.ValidityIndicator {
				return crValidity(t, okPayload(t, e.crOne(alice, kmip14.OperationSignatureVerify, uidF(c.pub), c.params, crData(data),
					tree.Bytes(kmip14.TagSignatureData, sig)), 0))
			}
			if v := verify(msg, sig); v != kmip14.ValidityIndicatorValid {
				t.Fatalf("own signature %s", v)
			}
			bad := bytes.Clone(sig)
			bad[len(bad)/2] ^= 1
			// A wrong signature is a successful Invalid answer, whatever its shape.
			for _, s := range [][]byte{bad, sig[:10], {}, bytes.Repeat([]byte{0xff}, 600)} {
				if v := verify(msg, s); v != kmip14.ValidityIndicatorInvalid {
					t.Fatalf("tampered signature %s", v)
				}
			}
			if v := verify([]byte("pay 900 to bob"), sig); v != kmip14.ValidityIndicatorInvalid {
				t.Fatalf("other data %s", v)
			}
		})
	}
	// Digested Data signs a digest the client made.
	r := okPayload(t, e.crOne(alice, kmip14.OperationSign, uidF(ePriv), crParams(crHash(kmip14.HashingAlgorithmSHA_256)),
		tree.Bytes(kmip14.TagDigestedData, sum[:])), 0)
	if !ecdsa.VerifyASN1(&ek.PublicKey, sum[:], crBytes(t, r, kmip14.TagSignatureData)) {
		t.Fatal("Digested Data signature")
	}

	pss := crParams(crPad(kmip14.PaddingMethodPSS), crHash(kmip14.HashingAlgorithmSHA_256))
	for _, c := range []struct {
		name   string
		op     kmip14.Operation
		fields []*tree.Node
		reason kmip14.ResultReason
	}{
		{"no hash", kmip14.OperationSign, []*tree.Node{uidF(rPriv), crParams(crPad(kmip14.PaddingMethodPSS)), crData(msg)}, kmip14.ResultReasonInvalidMessage},
		{"no padding", kmip14.OperationSign, []*tree.Node{uidF(rPriv), crParams(crHash(kmip14.HashingAlgorithmSHA_256)), crData(msg)}, kmip14.ResultReasonInvalidMessage},
		{"MD5", kmip14.OperationSign, []*tree.Node{uidF(rPriv), crParams(crPad(kmip14.PaddingMethodPSS), crHash(kmip14.HashingAlgorithmMD5)), crData(msg)}, kmip14.ResultReasonFeatureNotSupported},
		{"scheme contradicts hash", kmip14.OperationSign, []*tree.Node{uidF(rPriv), crParams(sigAlg(kmip14.DigitalSignatureAlgorithmSHA_256WithRSAEncryption), crHash(kmip14.HashingAlgorithmSHA_1)), crData(msg)}, kmip14.ResultReasonInvalidField},
		{"ECDSA scheme on RSA key", kmip14.OperationSign, []*tree.Node{uidF(rPriv), crParams(sigAlg(kmip14.DigitalSignatureAlgorithmECDSAWithSHA256)), crData(msg)}, kmip14.ResultReasonInvalidField},
		{"PSS on EC key", kmip14.OperationSign, []*tree.Node{uidF(ePriv), pss, crData(msg)}, kmip14.ResultReasonInvalidField},
		{"short digest", kmip14.OperationSign, []*tree.Node{uidF(ePriv), crParams(crHash(kmip14.HashingAlgorithmSHA_256)), tree.Bytes(kmip14.TagDigestedData, sum[:16])}, kmip14.ResultReasonInvalidField},
		{"Data and Digested Data", kmip14.OperationSign, []*tree.Node{uidF(ePriv), crParams(crHash(kmip14.HashingAlgorithmSHA_256)), crData(msg), tree.Bytes(kmip14.TagDigestedData, sum[:])}, kmip14.ResultReasonInvalidField},
		{"Sign without Sign in the mask", kmip14.OperationSign, []*tree.Node{uidF(rPub), pss, crData(msg)}, kmip14.ResultReasonPermissionDenied},
		{"Verify without signature", kmip14.OperationSignatureVerify, []*tree.Node{uidF(rPub), pss, crData(msg)}, kmip14.ResultReasonInvalidMessage},
		{"no data", kmip14.OperationSign, []*tree.Node{uidF(rPriv), pss}, kmip14.ResultReasonInvalidMessage},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantFail(t, e.do(alice, item(c.op, c.fields...)), 0, c.reason)
		})
	}
	// A symmetric key cannot sign even with Sign in its mask.
	sym := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16), crMask(kmip14.CryptographicUsageMaskSign))
	wantFail(t, e.crOne(alice, kmip14.OperationSign, uidF(sym), pss, crData(msg)), 0, kmip14.ResultReasonInvalidField)
}

func TestMAC(t *testing.T) {
	e := newEnv(t, Options{})
	m := crMask(kmip14.CryptographicUsageMaskMACGenerate, kmip14.CryptographicUsageMaskMACVerify)
	key := crHex(t, aesOASIS)
	data := crHex(t, "01020304050607080910111213141516")
	// CS-AC-M-4: HMAC-SHA256 named by the parameters on a key registered as AES.
	asAES := e.crSym(alice, kmip14.CryptographicAlgorithmAES, key, m,
		attrNode("Cryptographic Parameters", tree.Struct(0, crAlg(kmip14.CryptographicAlgorithmHMAC_SHA256))))
	got := crBytes(t, okPayload(t, e.crOne(alice, kmip14.OperationMAC, uidF(asAES), crData(data)), 0), kmip14.TagMACData)
	if !bytes.Equal(got, crHex(t, "c911e78196d64c30f631bb079ea37b97a95936d4da764d6a171df030c895ecf9")) {
		t.Fatalf("HMAC-SHA256 %x", got)
	}
	for alg, h := range map[kmip14.CryptographicAlgorithm]crypto.Hash{
		kmip14.CryptographicAlgorithmHMAC_SHA1: crypto.SHA1, kmip14.CryptographicAlgorithmHMAC_SHA224: crypto.SHA224,
		kmip14.CryptographicAlgorithmHMAC_SHA384: crypto.SHA384, kmip14.CryptographicAlgorithmHMAC_SHA512: crypto.SHA512,
		kmip14.CryptographicAlgorithmHMAC_SHA3_256: crypto.SHA3_256,
	} {
		uid := e.crSym(alice, alg, key, m) // the key's own algorithm
		mac := hmac.New(h.New, key)
		mac.Write(data)
		want := mac.Sum(nil)
		got := crBytes(t, okPayload(t, e.crOne(alice, kmip14.OperationMAC, uidF(uid), crData(data)), 0), kmip14.TagMACData)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: %x", alg, got)
		}
		v := crValidity(t, okPayload(t, e.crOne(alice, kmip14.OperationMACVerify, uidF(uid), crData(data), tree.Bytes(kmip14.TagMACData, got)), 0))
		if v != kmip14.ValidityIndicatorValid {
			t.Fatalf("%s verify %s", alg, v)
		}
	}
	// AES-CMAC (RFC 4493 example 2) for an AES key by default or by mode.
	cmacKey := e.crSym(alice, kmip14.CryptographicAlgorithmAES, crHex(t, "2b7e151628aed2a6abf7158809cf4f3c"), m)
	rfc := crHex(t, "6bc1bee22e409f96e93d7e117393172a")
	for _, params := range []*tree.Node{nil, crParams(crMode(kmip14.BlockCipherModeCMAC))} {
		got := crBytes(t, okPayload(t, e.crOne(alice, kmip14.OperationMAC, uidF(cmacKey), params, crData(rfc)), 0), kmip14.TagMACData)
		if !bytes.Equal(got, crHex(t, "070a16b46b4d4144f79bdd9dd04a287c")) {
			t.Fatalf("CMAC %x", got)
		}
	}
	// A wrong or truncated MAC is a successful Invalid.
	for _, mac := range [][]byte{make([]byte, 16), crHex(t, "070a16b46b4d4144f79bdd9dd04a28"), {}} {
		v := crValidity(t, okPayload(t, e.crOne(alice, kmip14.OperationMACVerify, uidF(cmacKey), crData(rfc), tree.Bytes(kmip14.TagMACData, mac)), 0))
		if v != kmip14.ValidityIndicatorInvalid {
			t.Fatalf("MAC %x: %s", mac, v)
		}
	}
	wantFail(t, e.crOne(alice, kmip14.OperationMACVerify, uidF(cmacKey), crData(rfc)), 0, kmip14.ResultReasonInvalidMessage)
	wantFail(t, e.crOne(alice, kmip14.OperationMAC, uidF(cmacKey), crParams(crMode(kmip14.BlockCipherModeCBC_MAC)), crData(rfc)), 0, kmip14.ResultReasonFeatureNotSupported)
	wantFail(t, e.crOne(alice, kmip14.OperationMAC, uidF(cmacKey), crParams(crAlg(kmip14.CryptographicAlgorithmHMAC_MD5)), crData(rfc)), 0, kmip14.ResultReasonFeatureNotSupported)
	enc := e.crSym(alice, kmip14.CryptographicAlgorithmHMAC_SHA256, key)
	wantFail(t, e.crOne(alice, kmip14.OperationMAC, uidF(enc), crData(rfc)), 0, kmip14.ResultReasonPermissionDenied)
	// Sanity: CMAC matches a direct computation for a long message.
	b, _ := aes.NewCipher(crHex(t, "2b7e151628aed2a6abf7158809cf4f3c"))
	long := bytes.Repeat([]byte("0123456789"), 100)
	c, err := aesmodes.NewCMAC(b)
	if err != nil {
		t.Fatal(err)
	}
	c.Write(long)
	got = crBytes(t, okPayload(t, e.crOne(alice, kmip14.OperationMAC, uidF(cmacKey), crData(long)), 0), kmip14.TagMACData)
	if !bytes.Equal(got, c.Sum(nil)) {
		t.Fatal("CMAC of a long message")
	}
}

func TestHash(t *testing.T) {
	e := newEnv(t, Options{})
	data := crHex(t, "01020304050607080910111213141516")
	hashOf := func(params *tree.Node) []byte {
		return crBytes(t, okPayload(t, e.crOne(alice, kmip14.OperationHash, params, crData(data)), 0), kmip14.TagData)
	}
	// CS-AC-M-7's answers.
	if got := hashOf(crParams(crHash(kmip14.HashingAlgorithmSHA_256))); !bytes.Equal(got, crHex(t, "ad41233d22cf9322e3a7ff49a13da434797abed3bab80950a1a0d4e582b7ea72")) {
		t.Fatalf("SHA-256 %x", got)
	}
	s512 := sha512.Sum512(data)
	if got := hashOf(crParams(crHash(kmip14.HashingAlgorithmSHA_512))); !bytes.Equal(got, s512[:]) {
		t.Fatalf("SHA-512 %x", got)
	}
	s3 := sha3.Sum256(data)
	for _, p := range []*tree.Node{crParams(crHash(kmip14.HashingAlgorithmSHA_3_256)), crParams(crAlg(kmip14.CryptographicAlgorithmSHA3_256))} {
		if got := hashOf(p); !bytes.Equal(got, s3[:]) {
			t.Fatalf("SHA3-256 %x", got)
		}
	}
	wantFail(t, e.crOne(alice, kmip14.OperationHash, crData(data)), 0, kmip14.ResultReasonInvalidMessage)
	wantFail(t, e.crOne(alice, kmip14.OperationHash, crParams(crHash(kmip14.HashingAlgorithmMD5)), crData(data)), 0, kmip14.ResultReasonFeatureNotSupported)
	wantFail(t, e.crOne(alice, kmip14.OperationHash, crParams(crHash(kmip14.HashingAlgorithmSHA_256))), 0, kmip14.ResultReasonInvalidMessage)
	wantFail(t, e.crOne(alice, kmip14.OperationHash, crParams(crHash(kmip14.HashingAlgorithmSHA_256), crAlg(kmip14.CryptographicAlgorithmSHA3_256)), crData(data)), 0, kmip14.ResultReasonInvalidField)
	// Hash acts on no object: the ID Placeholder survives it.
	resp := e.do(alice, createAES(128), item(kmip14.OperationHash, crParams(crHash(kmip14.HashingAlgorithmSHA_256)), crData(data)),
		item(kmip14.OperationActivate))
	okPayload(t, resp, 2)
}

func TestRNG(t *testing.T) {
	e := newEnv(t, Options{})
	get := func(n int32) []byte {
		return crBytes(t, okPayload(t, e.crOne(alice, kmip14.OperationRNGRetrieve, tree.Int(kmip14.TagDataLength, n)), 0), kmip14.TagData)
	}
	a, b := get(32), get(32)
	if len(a) != 32 || bytes.Equal(a, b) {
		t.Fatalf("random %x %x", a, b)
	}
	if len(get(maxRNGRetrieve)) != maxRNGRetrieve {
		t.Fatal("max length")
	}
	for _, f := range []*tree.Node{tree.Int(kmip14.TagDataLength, 0), tree.Int(kmip14.TagDataLength, -1),
		tree.Int(kmip14.TagDataLength, maxRNGRetrieve+1), tree.Long(kmip14.TagDataLength, 8)} {
		wantFail(t, e.crOne(alice, kmip14.OperationRNGRetrieve, f), 0, kmip14.ResultReasonInvalidField)
	}
	wantFail(t, e.crOne(alice, kmip14.OperationRNGRetrieve), 0, kmip14.ResultReasonInvalidMessage)

	// RNG Seed reports what reached the kernel pool (capped per request).
	seeded := func(n int) int32 {
		v, _ := okPayload(t, e.crOne(alice, kmip14.OperationRNGSeed, crData(bytes.Repeat([]byte{0x5a}, n))), 0).Child(kmip14.TagDataLength).IntValue()
		return v
	}
	f, err := os.OpenFile(seedPath, os.O_WRONLY, 0)
	if err == nil {
		f.Close()
		if got := seeded(32); got != 32 {
			t.Fatalf("seeded %d of 32", got)
		}
		if got := seeded(maxRNGSeed + 100); got != maxRNGSeed {
			t.Fatalf("seeded %d, cap %d", got, maxRNGSeed)
		}
	} else if got := seeded(32); got != 0 {
		t.Fatalf("no writable %s, yet %d bytes reported", seedPath, got)
	}
	if got := seeded(0); got != 0 {
		t.Fatalf("empty seed: %d", got)
	}
	wantFail(t, e.crOne(alice, kmip14.OperationRNGSeed), 0, kmip14.ResultReasonInvalidMessage)
	wantFail(t, e.crOne(alice, kmip14.OperationRNGSeed, tree.Text(kmip14.TagData, "x")), 0, kmip14.ResultReasonInvalidField)
}
