package kmipops

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipmsg"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// Key material of the OASIS KMIP 1.0–1.2 TC-ECC cases: a secp256k1 key pair
// (ECPrivateKey, SubjectPublicKeyInfo; TC-ECC-1-12, and TC-ECDSA-SIGN-1-14)
// and a P-256 private key in an encrypted PKCS#8 EncryptedPrivateKeyInfo
// (TC-ECC-2-10).
const (
	k1Private    = "30740201010420db4d128c30ca309e62c4019758c00ba244dd64d9bf52a31078866b8a00c19c68a00706052b8104000aa14403420004dab5d3c253113db414abfc1c0ebf5a02559e656aa1c8b0aa8d870aa0324cda4899925ea1e6dbc259a6c7825cf46592ac7594cc40bd604b728d88b636f317d366"
	k1Public     = "3056301006072a8648ce3d020106052b8104000a03420004dab5d3c253113db414abfc1c0ebf5a02559e656aa1c8b0aa8d870aa0324cda4899925ea1e6dbc259a6c7825cf46592ac7594cc40bd604b728d88b636f317d366"
	p256PKCS8Enc = "3081b1301c060a2a864886f70d010c0103300e04082f2656a33657313902020800048190eadf76e9cee21053b01c53e175b0e8c4d627c17da1b2df47d8cfb35a0d7252a9a6488660d61235be735178d0ca8548871567c22803d8f6f6009f05c26429c83ab72d0f2e7e7870befc3ec746f52d0eccafe34b72a791e9535b34f584b96dc124034e8a82df0b5c3e70018f2d4745d66ae6da9398234ebda2ca4d02992613cb377b9651282c4f3fd0c5a3c5bc33cc3ae0"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Keys kmipd cannot use are registered, served back byte for byte, and
// refused where they would have to be used or converted.
func TestRegisterKeysKeptWithoutUse(t *testing.T) {
	e := newEnv(t, Options{})
	for _, c := range []struct {
		name string
		ot   kmip14.ObjectType
		tag  ttlv.Tag
		f    kmip14.KeyFormatType
		alg  kmip14.CryptographicAlgorithm
		mat  string
	}{
		{"brainpoolP256r1 ECPrivateKey", kmip14.ObjectTypePrivateKey, kmip14.TagPrivateKey, kmip14.KeyFormatTypeECPrivateKey, kmip14.CryptographicAlgorithmEC, brainpoolPrivate(t)},
		{"brainpoolP256r1 X.509", kmip14.ObjectTypePublicKey, kmip14.TagPublicKey, kmip14.KeyFormatTypeX_509, kmip14.CryptographicAlgorithmEC, brainpoolPublic(t)},
		{"encrypted PKCS#8", kmip14.ObjectTypePrivateKey, kmip14.TagPrivateKey, kmip14.KeyFormatTypePKCS_8, kmip14.CryptographicAlgorithmECDSA, p256PKCS8Enc},
	} {
		t.Run(c.name, func(t *testing.T) {
			mat := mustHex(t, c.mat)
			body := keyBody(c.tag, c.f, c.alg, 256, mat)
			uid := text(t, okPayload(t, e.do(alice, register(c.ot, body,
				attrNode("Cryptographic Usage Mask", tree.Int(0, int32(kmip14.CryptographicUsageMaskSign|kmip14.CryptographicUsageMaskVerify))))), 0), kmip14.TagUniqueIdentifier)
			okPayload(t, e.do(alice, item(kmip14.OperationActivate, uidF(uid))), 0)
			g := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0)
			if !g.Child(c.tag).View().Equal(body.View()) {
				t.Fatalf("served %s, registered %s", g.Child(c.tag), body)
			}
			other := kmip14.KeyFormatTypePKCS_8
			if c.f == kmip14.KeyFormatTypePKCS_8 {
				other = kmip14.KeyFormatTypeECPrivateKey
			}
			wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(uid), tree.Enum(kmip14.TagKeyFormatType, uint32(other)))), 0,
				kmip14.ResultReasonKeyFormatTypeNotSupported)
			op := kmip14.OperationSign
			if c.ot == kmip14.ObjectTypePublicKey {
				op = kmip14.OperationSignatureVerify
			}
			wantFail(t, e.do(alice, item(op, uidF(uid), crParams(crHash(kmip14.HashingAlgorithmSHA_256)),
				crData([]byte("m")), tree.Bytes(kmip14.TagSignatureData, make([]byte, 64)))), 0, kmip14.ResultReasonKeyFormatTypeNotSupported)
		})
	}
}

// brainpoolP256r1 (RFC 5639, OID 1.3.36.3.3.2.8.1.1.7), a curve kmipd does
// not implement: the structures of the secp256k1 pair with the other curve
// named. Its points are not brainpool points, which kmipd, not reading the
// curve, cannot tell.
var oidBrainpoolP256r1 = asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 7}

func brainpoolPrivate(t *testing.T) string {
	var k ecPrivateKey
	if !unmarshalWhole(mustHex(t, k1Private), &k) {
		t.Fatal("k1Private does not parse")
	}
	k.Curve = oidBrainpoolP256r1
	b, err := asn1.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func brainpoolPublic(t *testing.T) string {
	var k subjectPublicKeyInfo
	if !unmarshalWhole(mustHex(t, k1Public), &k) {
		t.Fatal("k1Public does not parse")
	}
	curve, _ := asn1.Marshal(oidBrainpoolP256r1)
	k.Algorithm.Parameters = asn1.RawValue{FullBytes: curve}
	b, err := asn1.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Damaged material is stored as registered (KMIP 1.4 §4.3: Register keeps
// what the client gives; register_test.go's TestRegisterStoresWhatUseRefuses),
// served back byte for byte, and refused by every operation that would use it.
func TestRegisterKeepsDamagedKeysUnused(t *testing.T) {
	e := newEnv(t, Options{})
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(k)
	spki, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(k)
	damage := func(b []byte) []byte {
		c := bytes.Clone(b)
		if i := bytes.Index(c, k.D.FillBytes(make([]byte, 32))); i >= 0 {
			copy(c[i:i+32], bytes.Repeat([]byte{0xff}, 32)) // a scalar above the group order
		} else {
			c[len(c)-1] ^= 0xff // the public point is off the curve
		}
		return c
	}
	k1 := mustHex(t, k1Private)
	for name, c := range map[string]struct {
		ot  kmip14.ObjectType
		tag ttlv.Tag
		f   kmip14.KeyFormatType
		mat []byte
	}{
		"P-256 SEC1, bad scalar":    {kmip14.ObjectTypePrivateKey, kmip14.TagPrivateKey, kmip14.KeyFormatTypeECPrivateKey, damage(sec1)},
		"P-256 X.509, bad point":    {kmip14.ObjectTypePublicKey, kmip14.TagPublicKey, kmip14.KeyFormatTypeX_509, damage(spki)},
		"P-256 PKCS#8, bad scalar":  {kmip14.ObjectTypePrivateKey, kmip14.TagPrivateKey, kmip14.KeyFormatTypePKCS_8, damage(pkcs8)},
		"secp256k1 SEC1, truncated": {kmip14.ObjectTypePrivateKey, kmip14.TagPrivateKey, kmip14.KeyFormatTypeECPrivateKey, k1[:len(k1)-1]},
		"secp256k1 SEC1, trailing":  {kmip14.ObjectTypePrivateKey, kmip14.TagPrivateKey, kmip14.KeyFormatTypeECPrivateKey, append(bytes.Clone(k1), 0)},
		"secp256k1 as PKCS#1":       {kmip14.ObjectTypePrivateKey, kmip14.TagPrivateKey, kmip14.KeyFormatTypePKCS_1, k1},
		"junk X.509":                {kmip14.ObjectTypePublicKey, kmip14.TagPublicKey, kmip14.KeyFormatTypeX_509, []byte("junk")},
	} {
		t.Run(name, func(t *testing.T) {
			uid := text(t, okPayload(t, e.do(alice, register(c.ot, keyBody(c.tag, c.f, kmip14.CryptographicAlgorithmEC, 256, c.mat))), 0), kmip14.TagUniqueIdentifier)
			g := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0)
			if m := g.Path(c.tag, kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial); m == nil || !bytes.Equal(m.Bytes, c.mat) {
				t.Fatal("Get did not serve the registered bytes")
			}
			op := kmip14.OperationSign
			if c.ot == kmip14.ObjectTypePublicKey {
				op = kmip14.OperationSignatureVerify
			}
			r := kmipmsg.Results(e.do(alice, item(op, uidF(uid), crParams(crHash(kmip14.HashingAlgorithmSHA_256)),
				crData([]byte("m")), tree.Bytes(kmip14.TagSignatureData, make([]byte, 64)))))
			if len(r) != 1 || r[0].OK() {
				t.Fatalf("%s with damaged key material: %v", op, r)
			}
		})
	}
}
