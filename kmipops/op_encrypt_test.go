package kmipops

import (
	"bytes"
	"crypto"
	"crypto/cipher"
	"crypto/des"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

const (
	aesOASIS = "0123456789abcdef0123456789abcdef" // the CS-BC cases' AES-128 key
	pt17     = "010203040506070809101112131415160102030405060708091011121314151601"
)

// encDec encrypts pt with key uid and parameters, decrypts the result and
// checks the round trip; it returns the ciphertext and the response.
func (e *env) encDec(uid string, params *tree.Node, pt []byte, extra ...*tree.Node) ([]byte, *tree.Node) {
	e.t.Helper()
	f := append([]*tree.Node{uidF(uid), params, crData(pt)}, extra...)
	r := okPayload(e.t, e.crOne(alice, kmip14.OperationEncrypt, f...), 0)
	ct := crBytes(e.t, r, kmip14.TagData)
	// The request's IV and additional data, or the IV the server made, and
	// the tag.
	d := append([]*tree.Node{uidF(uid), params, crData(ct)}, extra...)
	d = append(d, r.Child(kmip14.TagIVCounterNonce), r.Child(kmip14.TagAuthenticatedEncryptionTag))
	got := crBytes(e.t, okPayload(e.t, e.crOne(alice, kmip14.OperationDecrypt, d...), 0), kmip14.TagData)
	if !bytes.Equal(got, pt) {
		e.t.Fatalf("round trip gave %x, want %x", got, pt)
	}
	return ct, r
}

func TestEncryptKnownAnswers(t *testing.T) {
	e := newEnv(t, Options{})
	key := crHex(t, aesOASIS)
	uid := e.crSym(alice, kmip14.CryptographicAlgorithmAES, key)
	for _, c := range []struct {
		name   string
		params *tree.Node
		iv, pt string
		ct     string
	}{
		{"ECB (CS-BC-M-4)", crParams(crMode(kmip14.BlockCipherModeECB)), "", "01020304050607080910111213141516", "d9bcce11b0b437b90239552df3a360c9"},
		{"ECB PKCS5 (CS-BC-M-8)", crParams(crMode(kmip14.BlockCipherModeECB), crPad(kmip14.PaddingMethodPKCS5)), "", "01020304050607080910111213141516",
			"d9bcce11b0b437b90239552df3a360c90efb6bfed93b4d1ea2123ba4db075ff6"},
		{"CBC PKCS5 (CS-BC-M-10)", crParams(crMode(kmip14.BlockCipherModeCBC), crPad(kmip14.PaddingMethodPKCS5)), "01020304050607080910111213141516", pt17,
			"79abc5c23868ad84d388ce61110a62742bda19d694bbcb757dd06617c0d80fb1df2e71864ad9633d7d797e30860df00d"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var extra []*tree.Node
			if c.iv != "" {
				extra = append(extra, crIV(crHex(t, c.iv)))
			}
			ct, r := e.encDec(uid, c.params, crHex(t, c.pt), extra...)
			if !bytes.Equal(ct, crHex(t, c.ct)) {
				t.Fatalf("ciphertext %x, want %s", ct, c.ct)
			}
			if r.Child(kmip14.TagIVCounterNonce) != nil || text(t, r, kmip14.TagUniqueIdentifier) != uid {
				t.Fatalf("response %s", r)
			}
		})
	}
	// CTR: NIST SP 800-38A F.5.1.
	ctrKey := e.crSym(alice, kmip14.CryptographicAlgorithmAES, crHex(t, "2b7e151628aed2a6abf7158809cf4f3c"))
	ct, _ := e.encDec(ctrKey, crParams(crMode(kmip14.BlockCipherModeCTR)), crHex(t, "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"),
		crIV(crHex(t, "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")))
	if !bytes.Equal(ct, crHex(t, "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff")) {
		t.Fatalf("CTR %x", ct)
	}
	// GCM: McGrew–Viega test cases 2 (CS-BC-M-GCM-1) and 6 (60-byte IV,
	// tag truncated to 12 bytes as in CS-BC-M-GCM-2).
	zero := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16))
	ct, r := e.encDec(zero, crParams(crMode(kmip14.BlockCipherModeGCM), tree.Int(kmip14.TagTagLength, 16)), make([]byte, 16), crIV(make([]byte, 12)))
	if !bytes.Equal(ct, crHex(t, "0388dace60b6a392f328c2b971b2fe78")) ||
		!bytes.Equal(crBytes(t, r, kmip14.TagAuthenticatedEncryptionTag), crHex(t, "ab6e47d42cec13bdf53a67b21257bddf")) {
		t.Fatalf("GCM test case 2: %s", r)
	}
	k6 := e.crSym(alice, kmip14.CryptographicAlgorithmAES, crHex(t, "feffe9928665731c6d6a8f9467308308"))
	ct, r = e.encDec(k6, crParams(crMode(kmip14.BlockCipherModeGCM), tree.Int(kmip14.TagTagLength, 12)),
		crHex(t, "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"),
		crIV(crHex(t, "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b")),
		tree.Bytes(kmip14.TagAuthenticatedEncryptionAdditionalData, crHex(t, "feedfacedeadbeeffeedfacedeadbeefabaddad2")))
	if got := crBytes(t, r, kmip14.TagAuthenticatedEncryptionTag); !bytes.Equal(got, crHex(t, "619cc5aefffe0bfa462af43c")) ||
		!bytes.Equal(ct, crHex(t, "8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca701e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5")) {
		t.Fatalf("GCM test case 6: %x tag %x", ct, got)
	}
}

func TestEncryptGeneratedIVAndDefaults(t *testing.T) {
	e := newEnv(t, Options{})
	// The key's Cryptographic Parameters apply when the request has none.
	uid := e.crSym(alice, kmip14.CryptographicAlgorithmAES, crHex(t, aesOASIS),
		crMask(kmip14.CryptographicUsageMaskEncrypt, kmip14.CryptographicUsageMaskDecrypt),
		attrNode("Cryptographic Parameters", tree.Struct(0, crMode(kmip14.BlockCipherModeCBC), crPad(kmip14.PaddingMethodPKCS5),
			tree.Bool(kmip14.TagRandomIV, true))))
	r := okPayload(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(uid), crData([]byte("attack at dawn"))), 0)
	iv := crBytes(t, r, kmip14.TagIVCounterNonce)
	ct := crBytes(t, r, kmip14.TagData)
	if len(iv) != 16 || len(ct) != 16 {
		t.Fatalf("iv %x ct %x", iv, ct)
	}
	got := crBytes(t, okPayload(t, e.crOne(alice, kmip14.OperationDecrypt, uidF(uid), crData(ct), crIV(iv)), 0), kmip14.TagData)
	if string(got) != "attack at dawn" {
		t.Fatalf("decrypted %q", got)
	}
	// Two encryptions never share a generated IV; GCM IVs are 96 bits.
	g := crParams(crMode(kmip14.BlockCipherModeGCM))
	a := okPayload(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(uid), g, crData([]byte("x"))), 0)
	b := okPayload(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(uid), g, crData([]byte("x"))), 0)
	ia, ib := crBytes(t, a, kmip14.TagIVCounterNonce), crBytes(t, b, kmip14.TagIVCounterNonce)
	if len(ia) != 12 || bytes.Equal(ia, ib) || len(crBytes(t, a, kmip14.TagAuthenticatedEncryptionTag)) != 16 {
		t.Fatalf("GCM answers %s / %s", a, b)
	}
	// The ID Placeholder: Encrypt right after Create in one batch.
	resp := e.do(alice, createAES(128, crActive()), item(kmip14.OperationEncrypt, g, crData([]byte("y"))))
	if okPayload(t, resp, 1).Child(kmip14.TagUniqueIdentifier).Text != text(t, okPayload(t, resp, 0), kmip14.TagUniqueIdentifier) {
		t.Fatal("placeholder not used")
	}
}

func TestEncryptTripleDES(t *testing.T) {
	e := newEnv(t, Options{})
	for _, klen := range []int{24, 16} {
		key := bytes.Repeat([]byte{0x13, 0x57, 0x9b, 0xdf, 0x24, 0x68, 0xac, 0xe0}, klen/8)
		key[8] ^= 0xff
		uid := e.crSym(alice, kmip14.CryptographicAlgorithmDES3, key)
		iv := []byte("8bytesIV")
		pt := []byte("Triple DES is still asked for by payment systems")
		ct, _ := e.encDec(uid, crParams(crMode(kmip14.BlockCipherModeCBC), crPad(kmip14.PaddingMethodPKCS5)), pt, crIV(iv))
		full := key
		if klen == 16 {
			full = append(append([]byte{}, key...), key[:8]...)
		}
		b, _ := des.NewTripleDESCipher(full)
		padded := append(append([]byte{}, pt...), bytes.Repeat([]byte{8 - byte(len(pt)%8)}, 8-len(pt)%8)...)
		want := make([]byte, len(padded))
		cipher.NewCBCEncrypter(b, iv).CryptBlocks(want, padded)
		if !bytes.Equal(ct, want) {
			t.Fatalf("%d-byte key: %x, want %x", klen, ct, want)
		}
		e.encDec(uid, crParams(crMode(kmip14.BlockCipherModeECB)), pt[:16])
	}
}

func TestEncryptRSA(t *testing.T) {
	e := newEnv(t, Options{})
	rk, _ := crKeys(t)
	enc := crMask(kmip14.CryptographicUsageMaskEncrypt)
	dec := crMask(kmip14.CryptographicUsageMaskDecrypt)
	priv, pub := e.crRSAPair(alice, []*tree.Node{dec}, []*tree.Node{enc})
	msg := []byte("a data key, wrapped for transport")
	for name, params := range map[string]*tree.Node{
		"OAEP SHA-256": crParams(crPad(kmip14.PaddingMethodOAEP), crHash(kmip14.HashingAlgorithmSHA_256),
			tree.Enum(kmip14.TagMaskGenerator, uint32(kmip14.MaskGeneratorMGF1)), tree.Enum(kmip14.TagMaskGeneratorHashingAlgorithm, uint32(kmip14.HashingAlgorithmSHA_256))),
		"OAEP SHA-1 default":       crParams(crPad(kmip14.PaddingMethodOAEP), crAlg(kmip14.CryptographicAlgorithmRSA)),
		"OAEP SHA-384 label MGF-1": crParams(crPad(kmip14.PaddingMethodOAEP), crHash(kmip14.HashingAlgorithmSHA_384), tree.Bytes(kmip14.TagPSource, []byte("Kilroy was here"))),
		"PKCS1v15":                 crParams(crPad(kmip14.PaddingMethodPKCS1V1_5)),
	} {
		t.Run(name, func(t *testing.T) {
			r := okPayload(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(pub), params, crData(msg)), 0)
			ct := crBytes(t, r, kmip14.TagData)
			if len(ct) != 256 {
				t.Fatalf("ciphertext of %d bytes", len(ct))
			}
			got := crBytes(t, okPayload(t, e.crOne(alice, kmip14.OperationDecrypt, uidF(priv), params, crData(ct)), 0), kmip14.TagData)
			if !bytes.Equal(got, msg) {
				t.Fatalf("decrypted %q", got)
			}
		})
	}
	// Interoperates with Go's OAEP, the MGF1 hash defaulting to SHA-1 (KMIP 1.4).
	ct, err := rsa.EncryptOAEPWithOptions(rand.Reader, &rk.PublicKey, msg, &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA1})
	if err != nil {
		t.Fatal(err)
	}
	got := okPayload(t, e.crOne(alice, kmip14.OperationDecrypt, uidF(priv), crParams(crPad(kmip14.PaddingMethodOAEP), crHash(kmip14.HashingAlgorithmSHA_256)), crData(ct)), 0)
	if !bytes.Equal(crBytes(t, got, kmip14.TagData), msg) {
		t.Fatal("Go OAEP ciphertext not decrypted")
	}
}
