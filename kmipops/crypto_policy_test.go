package kmipops

import (
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Malformed, contradictory and unsupported parameters get a precise reason,
// never a panic or a General Failure (except where the OASIS case asks).
func TestEncryptRefusals(t *testing.T) {
	e := newEnv(t, Options{})
	aes := e.crSym(alice, kmip14.CryptographicAlgorithmAES, crHex(t, aesOASIS))
	hm := e.crSym(alice, kmip14.CryptographicAlgorithmHMAC_SHA256, make([]byte, 32), crMask(kmip14.CryptographicUsageMaskEncrypt))
	priv, pub := e.crRSAPair(alice, []*tree.Node{crMask(kmip14.CryptographicUsageMaskDecrypt)}, []*tree.Node{crMask(kmip14.CryptographicUsageMaskEncrypt)})
	ecb := crParams(crMode(kmip14.BlockCipherModeECB))
	cbc := crParams(crMode(kmip14.BlockCipherModeCBC))
	gcm := crParams(crMode(kmip14.BlockCipherModeGCM))
	iv16, d16 := crIV(make([]byte, 16)), crData(make([]byte, 16))
	oaep := crParams(crPad(kmip14.PaddingMethodOAEP))
	for _, c := range []struct {
		name   string
		op     kmip14.Operation
		fields []*tree.Node
		reason kmip14.ResultReason
	}{
		{"unknown key", kmip14.OperationEncrypt, []*tree.Node{uidF("nope"), ecb, d16}, kmip14.ResultReasonItemNotFound},
		{"no Data", kmip14.OperationEncrypt, []*tree.Node{uidF(aes), ecb}, kmip14.ResultReasonInvalidMessage},
		{"Data as text", kmip14.OperationEncrypt, []*tree.Node{uidF(aes), ecb, tree.Text(kmip14.TagData, "x")}, kmip14.ResultReasonInvalidField},
		{"parameters not a structure", kmip14.OperationEncrypt, []*tree.Node{uidF(aes), tree.Int(kmip14.TagCryptographicParameters, 1), d16}, kmip14.ResultReasonInvalidField},
		{"mode as integer", kmip14.OperationEncrypt, []*tree.Node{uidF(aes), crParams(tree.Int(kmip14.TagBlockCipherMode, 1)), d16}, kmip14.ResultReasonInvalidField},
		{"no mode anywhere", kmip14.OperationEncrypt, []*tree.Node{uidF(aes), d16}, kmip14.ResultReasonInvalidMessage},
		{"XTS", kmip14.OperationEncrypt, []*tree.Node{uidF(aes), crParams(crMode(kmip14.BlockCipherModeXTS)), d16}, kmip14.ResultReasonFeatureNotSupported},
		{"ISO 10126 padding", kmip14.OperationEncrypt, []*tree.Node{uidF(aes), crParams(crMode(kmip14.BlockCipherModeCBC), crPad(kmip14.PaddingMethodISO10126)), d16}, kmip14.ResultReasonFeatureNotSupported},
		{"padding on GCM", kmip14.OperationEncrypt, []*tree.Node{uidF(aes), crParams(crMode(kmip14.BlockCipherModeGCM), crPad(kmip14.PaddingMethodPKCS5)), d16}, kmip14.ResultReasonInvalidField},
		{"IV with ECB", kmip14.OperationEncrypt, []*tree.Node{uidF(aes), ecb, d16, iv16}, kmip14.ResultReasonInvalidField},
		{"short CBC IV", kmip14.OperationEncrypt, []*tree.Node{uidF(aes), cbc, d16, crIV(make([]byte, 8))}, kmip14.ResultReasonInvalidField},
		{"Random IV and an IV", kmip14.OperationEncrypt, []*tree.Node{uidF(aes), crParams(crMode(kmip14.BlockCipherModeCBC), tree.Bool(kmip14.TagRandomIV, true)), d16, iv16}, kmip14.ResultReasonInvalidField},
		{"CBC Decrypt without IV", kmip14.OperationDecrypt, []*tree.Node{uidF(aes), cbc, d16}, kmip14.ResultReasonInvalidMessage},
		{"unpadded partial block", kmip14.OperationEncrypt, []*tree.Node{uidF(aes), ecb, crData(make([]byte, 15))}, kmip14.ResultReasonInvalidField},
		{"bad PKCS5 padding", kmip14.OperationDecrypt, []*tree.Node{uidF(aes), crParams(crMode(kmip14.BlockCipherModeECB), crPad(kmip14.PaddingMethodPKCS5)), d16}, kmip14.ResultReasonCryptographicFailure},
		{"ciphertext not whole blocks", kmip14.OperationDecrypt, []*tree.Node{uidF(aes), cbc, iv16, crData(make([]byte, 20))}, kmip14.ResultReasonCryptographicFailure},
		{"AAD with CBC", kmip14.OperationEncrypt, []*tree.Node{uidF(aes), cbc, d16, iv16, tree.Bytes(kmip14.TagAuthenticatedEncryptionAdditionalData, []byte{1})}, kmip14.ResultReasonInvalidField},
		{"GCM tag length 4", kmip14.OperationEncrypt, []*tree.Node{uidF(aes), crParams(crMode(kmip14.BlockCipherModeGCM), tree.Int(kmip14.TagTagLength, 4)), d16}, kmip14.ResultReasonGeneralFailure},
		{"GCM Decrypt without tag", kmip14.OperationDecrypt, []*tree.Node{uidF(aes), gcm, d16, crIV(make([]byte, 12))}, kmip14.ResultReasonInvalidMessage},
		{"GCM wrong tag", kmip14.OperationDecrypt, []*tree.Node{uidF(aes), gcm, d16, crIV(make([]byte, 12)), tree.Bytes(kmip14.TagAuthenticatedEncryptionTag, make([]byte, 16))}, kmip14.ResultReasonCryptographicFailure},
		{"GCM tag shorter than Tag Length", kmip14.OperationDecrypt, []*tree.Node{uidF(aes), crParams(crMode(kmip14.BlockCipherModeGCM), tree.Int(kmip14.TagTagLength, 16)), d16, crIV(make([]byte, 12)), tree.Bytes(kmip14.TagAuthenticatedEncryptionTag, make([]byte, 12))}, kmip14.ResultReasonInvalidField},
		{"Initial Counter Value", kmip14.OperationEncrypt, []*tree.Node{uidF(aes), crParams(crMode(kmip14.BlockCipherModeCTR), tree.Int(kmip14.TagInitialCounterValue, 1)), d16}, kmip14.ResultReasonFeatureNotSupported},
		{"algorithm contradicts key", kmip14.OperationEncrypt, []*tree.Node{uidF(aes), crParams(crMode(kmip14.BlockCipherModeECB), crAlg(kmip14.CryptographicAlgorithmDES3)), d16}, kmip14.ResultReasonInvalidField},
		{"HMAC key", kmip14.OperationEncrypt, []*tree.Node{uidF(hm), ecb, d16}, kmip14.ResultReasonFeatureNotSupported},
		{"RSA without padding", kmip14.OperationEncrypt, []*tree.Node{uidF(pub), d16}, kmip14.ResultReasonInvalidMessage},
		{"RSA with a mode", kmip14.OperationEncrypt, []*tree.Node{uidF(pub), crParams(crPad(kmip14.PaddingMethodOAEP), crMode(kmip14.BlockCipherModeCBC)), d16}, kmip14.ResultReasonInvalidField},
		{"RSA raw", kmip14.OperationEncrypt, []*tree.Node{uidF(pub), crParams(crPad(kmip14.PaddingMethodNone)), d16}, kmip14.ResultReasonFeatureNotSupported},
		{"RSA too long", kmip14.OperationEncrypt, []*tree.Node{uidF(pub), oaep, crData(make([]byte, 250))}, kmip14.ResultReasonInvalidField},
		{"RSA MD5 OAEP", kmip14.OperationEncrypt, []*tree.Node{uidF(pub), crParams(crPad(kmip14.PaddingMethodOAEP), crHash(kmip14.HashingAlgorithmMD5)), d16}, kmip14.ResultReasonFeatureNotSupported},
		{"RSA garbage ciphertext", kmip14.OperationDecrypt, []*tree.Node{uidF(priv), oaep, crData(make([]byte, 256))}, kmip14.ResultReasonCryptographicFailure},
		{"Decrypt with a public key", kmip14.OperationDecrypt, []*tree.Node{uidF(pub), oaep, crData(make([]byte, 256))}, kmip14.ResultReasonPermissionDenied},
		{"Init Indicator as integer", kmip14.OperationEncrypt, []*tree.Node{uidF(aes), ecb, d16, tree.Int(kmip14.TagInitIndicator, 1)}, kmip14.ResultReasonInvalidField},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantFail(t, e.do(alice, item(c.op, c.fields...)), 0, c.reason)
		})
	}
	// GCM needs the Authenticated Encryption Tag field of KMIP 1.4.
	e.v = version{1, 2}
	wantFail(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(aes), gcm, d16), 0, kmip14.ResultReasonFeatureNotSupported)
	okPayload(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(aes), ecb, d16), 0)
}

// KMIP 1.4 §3.22 and the date attributes decide whether a key may protect
// (Encrypt) or only process (Decrypt).
func TestCryptoKeyStates(t *testing.T) {
	clock := &fixedClock{t: time.Now().UTC().Truncate(time.Second)}
	e := newEnv(t, Options{Now: clock.Now})
	ecb := crParams(crMode(kmip14.BlockCipherModeECB))
	d16 := crData(make([]byte, 16))
	enc := func(uid string) *tree.Node { return e.crOne(alice, kmip14.OperationEncrypt, uidF(uid), ecb, d16) }
	dec := func(uid string) *tree.Node { return e.crOne(alice, kmip14.OperationDecrypt, uidF(uid), ecb, d16) }
	denied := kmip14.ResultReasonPermissionDenied

	pre := e.create(alice) // Pre-Active: no use at all
	wantFail(t, enc(pre), 0, denied)
	wantFail(t, dec(pre), 0, denied)
	okPayload(t, e.crOne(alice, kmip14.OperationActivate, uidF(pre)), 0)
	okPayload(t, enc(pre), 0)

	// Deactivated and Compromised keys still decrypt, never encrypt.
	for _, code := range []kmip14.RevocationReasonCode{kmip14.RevocationReasonCodeCessationOfOperation, kmip14.RevocationReasonCodeKeyCompromise} {
		uid := e.create(alice, crActive())
		okPayload(t, e.do(alice, revoke(uid, code)), 0)
		wantFail(t, enc(uid), 0, denied)
		okPayload(t, dec(uid), 0)
		okPayload(t, e.crOne(alice, kmip14.OperationDestroy, uidF(uid)), 0)
		wantFail(t, dec(uid), 0, kmip14.ResultReasonItemNotFound)
	}

	// The usage mask is enforced per operation.
	dOnly := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16), crMask(kmip14.CryptographicUsageMaskDecrypt))
	wantFail(t, enc(dOnly), 0, denied)
	okPayload(t, dec(dOnly), 0)

	// Protect Stop Date ends Encrypt; Process Start Date gates Decrypt.
	dates := e.create(alice, crActive(),
		attrNode("Process Start Date", tree.Time(0, clock.Now().Add(time.Hour))),
		attrNode("Protect Stop Date", tree.Time(0, clock.Now().Add(2*time.Hour))))
	okPayload(t, enc(dates), 0)
	wantFail(t, dec(dates), 0, denied)
	clock.Add(90 * time.Minute)
	okPayload(t, enc(dates), 0)
	okPayload(t, dec(dates), 0)
	clock.Add(time.Hour)
	wantFail(t, enc(dates), 0, denied)
	okPayload(t, dec(dates), 0)

	// A Deactivation Date reached deactivates the key on the hot path too.
	dd := e.create(alice, crActive(), attrNode("Deactivation Date", tree.Time(0, clock.Now().Add(time.Minute))))
	okPayload(t, enc(dd), 0)
	clock.Add(2 * time.Minute)
	wantFail(t, enc(dd), 0, denied)
	okPayload(t, dec(dd), 0)
	if s := e.state(alice, dd); s != kmip14.StateDeactivated {
		t.Fatalf("state %s", s)
	}
}

// Usage Limits (KMIP 1.4 §3.21) count protection, by bytes or by object.
func TestCryptoUsageLimits(t *testing.T) {
	e := newEnv(t, Options{})
	limits := func(total int64, unit kmip14.UsageLimitsUnit) *tree.Node {
		return attrNode("Usage Limits", tree.Struct(0, tree.Long(kmip14.TagUsageLimitsTotal, total), tree.Enum(kmip14.TagUsageLimitsUnit, uint32(unit))))
	}
	ecb := crParams(crMode(kmip14.BlockCipherModeECB))
	byBytes := e.crSym(alice, kmip14.CryptographicAlgorithmAES, crHex(t, aesOASIS),
		crMask(kmip14.CryptographicUsageMaskEncrypt, kmip14.CryptographicUsageMaskDecrypt), limits(48, kmip14.UsageLimitsUnitByte))
	okPayload(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(byBytes), ecb, crData(make([]byte, 32))), 0)
	wantFail(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(byBytes), ecb, crData(make([]byte, 32))), 0, kmip14.ResultReasonPermissionDenied)
	okPayload(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(byBytes), ecb, crData(make([]byte, 16))), 0)
	// Decrypt is processing, not protection: not counted.
	okPayload(t, e.crOne(alice, kmip14.OperationDecrypt, uidF(byBytes), ecb, crData(make([]byte, 32))), 0)
	ul := e.getAttrs(alice, byBytes, "Usage Limits")["Usage Limits"][0]
	if n, _ := ul.Child(kmip14.TagUsageLimitsCount).LongValue(); n != 0 {
		t.Fatalf("Usage Limits %s", ul)
	}

	byObject := e.crSym(alice, kmip14.CryptographicAlgorithmAES, crHex(t, aesOASIS),
		crMask(kmip14.CryptographicUsageMaskEncrypt), limits(2, kmip14.UsageLimitsUnitObject))
	for range 2 {
		okPayload(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(byObject), ecb, crData(make([]byte, 64))), 0)
	}
	wantFail(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(byObject), ecb, crData(make([]byte, 16))), 0, kmip14.ResultReasonPermissionDenied)
}

// Another owner's key is not found, for every operation, and nothing about
// it leaks through the answer.
func TestCryptoCrossOwner(t *testing.T) {
	e := newEnv(t, Options{})
	aes := e.crSym(alice, kmip14.CryptographicAlgorithmAES, crHex(t, aesOASIS),
		crMask(kmip14.CryptographicUsageMaskEncrypt, kmip14.CryptographicUsageMaskDecrypt, kmip14.CryptographicUsageMaskMACGenerate, kmip14.CryptographicUsageMaskMACVerify))
	priv, pub := e.crRSAPair(alice, []*tree.Node{crMask(kmip14.CryptographicUsageMaskSign)}, []*tree.Node{crMask(kmip14.CryptographicUsageMaskVerify)})
	ecb := crParams(crMode(kmip14.BlockCipherModeECB))
	pss := crParams(crPad(kmip14.PaddingMethodPSS), crHash(kmip14.HashingAlgorithmSHA_256))
	d := crData(make([]byte, 16))
	for _, it := range []*tree.Node{
		item(kmip14.OperationEncrypt, uidF(aes), ecb, d),
		item(kmip14.OperationDecrypt, uidF(aes), ecb, d),
		item(kmip14.OperationMAC, uidF(aes), d),
		item(kmip14.OperationMACVerify, uidF(aes), d, tree.Bytes(kmip14.TagMACData, make([]byte, 16))),
		item(kmip14.OperationSign, uidF(priv), pss, d),
		item(kmip14.OperationSignatureVerify, uidF(pub), pss, d, tree.Bytes(kmip14.TagSignatureData, make([]byte, 256))),
	} {
		msg := wantFail(t, e.do(bob, it), 0, kmip14.ResultReasonItemNotFound)
		okPayload(t, e.do(alice, it), 0)
		if want := wantFail(t, e.do(bob, item(kmip14.OperationEncrypt, uidF("no-such-key"), ecb, d)), 0, kmip14.ResultReasonItemNotFound); msg != want {
			t.Fatalf("bob can tell alice's key (%q) from a missing one (%q)", msg, want)
		}
	}
}
