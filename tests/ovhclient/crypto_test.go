package ovhclient

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"
)

// testCrypto: the KMIP 1.2 cryptographic operations (§4.29–4.35), at 1.4
// (the negotiated version) and pinned to 1.2.
func (s *server) testCrypto(t *testing.T) {
	for _, v := range []kmip.ProtocolVersion{kmip.V1_4, kmip.V1_2} {
		t.Run("v"+v.String(), func(t *testing.T) {
			c := s.dial(t, "crypto", kmipclient.EnforceVersion(v))
			t.Run("EncryptDecrypt", func(t *testing.T) { checkEncryptDecrypt(t, c) })
			t.Run("SignVerify", func(t *testing.T) { checkSignVerify(t, c) })
			t.Run("Hash", func(t *testing.T) { checkHash(t, c) })
		})
	}
}

func activeAES(t *testing.T, c *kmipclient.Client, bits int) (string, []byte) {
	t.Helper()
	cr, err := c.Create().AES(bits, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).Exec()
	if err != nil {
		t.Fatalf("Create AES-%d: %v", bits, err)
	}
	if _, err := c.Activate(cr.UniqueIdentifier).Exec(); err != nil {
		t.Fatalf("Activate: %v", err)
	}
	return cr.UniqueIdentifier, getSymmetric(t, c, cr.UniqueIdentifier, 0)
}

// checkEncryptDecrypt: decrypt(encrypt(x)) == x for AES-GCM (with AAD and tag)
// and AES-CBC with PKCS#5 padding (server-drawn IV), and a tampered GCM tag
// is refused.
func checkEncryptDecrypt(t *testing.T, c *kmipclient.Client) {
	id, _ := activeAES(t, c, 256)
	plain := []byte("attack at dawn, bring the ovh client")

	cbc := kmip.CryptographicParameters{BlockCipherMode: kmip.BlockCipherModeCBC, PaddingMethod: kmip.PaddingMethodPKCS5,
		CryptographicAlgorithm: kmip.CryptographicAlgorithmAES}
	if minor(c) >= 2 {
		rnd := true
		cbc.RandomIV = &rnd
	}
	enc, err := c.Encrypt(id).WithCryptographicParameters(cbc).Data(plain).Exec()
	if err != nil {
		t.Fatalf("Encrypt CBC: %v", err)
	}
	if len(enc.IVCounterNonce) != 16 || len(enc.Data) != 48 || bytes.Contains(enc.Data, plain[:16]) {
		t.Fatalf("Encrypt CBC: IV %d bytes, %d bytes of ciphertext", len(enc.IVCounterNonce), len(enc.Data))
	}
	dec, err := c.Decrypt(id).WithCryptographicParameters(cbc).WithIvCounterNonce(enc.IVCounterNonce).Data(enc.Data).Exec()
	if err != nil {
		t.Fatalf("Decrypt CBC: %v", err)
	}
	if !bytes.Equal(dec.Data, plain) {
		t.Errorf("CBC: decrypt(encrypt(x)) != x")
	}

	// A key without the Encrypt usage bit is refused (§3.19).
	cr, err := c.Create().AES(128, kmip.CryptographicUsageDecrypt).Exec()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Activate(cr.UniqueIdentifier).Exec(); err != nil {
		t.Fatal(err)
	}
	if r := reasonOf(t, c, &payloads.EncryptRequestPayload{UniqueIdentifier: cr.UniqueIdentifier,
		CryptographicParameters: &cbc, Data: plain}); r != kmip.ResultReasonPermissionDenied {
		t.Errorf("Encrypt with a Decrypt-only key: reason %v, want Permission Denied (1.x has no Incompatible Cryptographic Usage Mask)", r)
	}

	if minor(c) < 4 {
		// KMIP 1.2 and 1.3 have GCM as a mode but no field to carry the
		// tag or the additional data (1.4 §4.29 added Authenticated
		// Encryption Additional Data and Tag); the client drops them below
		// 1.4, and kmipd refuses GCM rather than produce an unverifiable
		// ciphertext.
		gcm := kmip.CryptographicParameters{BlockCipherMode: kmip.BlockCipherModeGCM, CryptographicAlgorithm: kmip.CryptographicAlgorithmAES}
		if bi := failure(t, c, &payloads.EncryptRequestPayload{UniqueIdentifier: id, CryptographicParameters: &gcm,
			Data: plain, IVCounterNonce: randBytes(t, 12)}); bi.ResultReason == 0 {
			t.Errorf("GCM at %v refused without a reason", c.Version())
		}
		return
	}
	gcm := kmip.CryptographicParameters{BlockCipherMode: kmip.BlockCipherModeGCM,
		CryptographicAlgorithm: kmip.CryptographicAlgorithmAES, TagLength: 16}
	nonce := randBytes(t, 12)
	aad := []byte("header")
	enc, err = c.Encrypt(id).WithCryptographicParameters(gcm).WithIvCounterNonce(nonce).WithAAD(aad).Data(plain).Exec()
	if err != nil {
		t.Fatalf("Encrypt GCM: %v", err)
	}
	if len(enc.AuthenticatedEncryptionTag) != 16 || len(enc.Data) != len(plain) {
		t.Fatalf("Encrypt GCM: %d bytes, tag %d bytes", len(enc.Data), len(enc.AuthenticatedEncryptionTag))
	}
	dec, err = c.Decrypt(id).WithCryptographicParameters(gcm).WithIvCounterNonce(nonce).WithAAD(aad).
		WithAuthTag(enc.AuthenticatedEncryptionTag).Data(enc.Data).Exec()
	if err != nil {
		t.Fatalf("Decrypt GCM: %v", err)
	}
	if !bytes.Equal(dec.Data, plain) {
		t.Errorf("GCM: decrypt(encrypt(x)) != x")
	}
	bad := bytes.Clone(enc.AuthenticatedEncryptionTag)
	bad[0] ^= 1
	bi := failure(t, c, &payloads.DecryptRequestPayload{UniqueIdentifier: id, CryptographicParameters: &gcm,
		Data: enc.Data, IVCounterNonce: nonce, AuthenticatedEncryptionAdditionalData: aad, AuthenticatedEncryptionTag: bad})
	if bi.ResultReason != kmip.ResultReasonCryptographicFailure {
		t.Errorf("Decrypt with a bad GCM tag: reason %v, want Cryptographic Failure", bi.ResultReason)
	}

}

// checkSignVerify: RSA PKCS#1 v1.5 and PSS and ECDSA signatures made by kmipd
// verify with Go's crypto and with kmipd's Signature Verify; at 1.4 through
// the client's crypto.Signer (Digested Data, 1.4 §4.31).
func checkSignVerify(t *testing.T, c *kmipclient.Client) {
	msg := []byte("the message to be signed")
	digest := sha256.Sum256(msg)
	for _, kp := range []struct {
		name string
		ex   kmipclient.ExecCreateKeyPairAttr
		cp   kmip.CryptographicParameters
	}{
		{"RSA-PKCS1v15", c.CreateKeyPair().RSA(2048, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify),
			kmip.CryptographicParameters{PaddingMethod: kmip.PaddingMethodPKCS1V1_5, HashingAlgorithm: kmip.HashingAlgorithmSHA_256,
				CryptographicAlgorithm: kmip.CryptographicAlgorithmRSA}},
		{"RSA-PSS", c.CreateKeyPair().RSA(2048, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify),
			kmip.CryptographicParameters{PaddingMethod: kmip.PaddingMethodPSS, HashingAlgorithm: kmip.HashingAlgorithmSHA_256,
				CryptographicAlgorithm: kmip.CryptographicAlgorithmRSA}},
		{"ECDSA-P256", c.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_256, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify),
			kmip.CryptographicParameters{HashingAlgorithm: kmip.HashingAlgorithmSHA_256, CryptographicAlgorithm: kmip.CryptographicAlgorithmECDSA}},
	} {
		t.Run(kp.name, func(t *testing.T) {
			r, err := kp.ex.Exec()
			if err != nil {
				t.Fatalf("Create Key Pair: %v", err)
			}
			priv, pub := r.PrivateKeyUniqueIdentifier, r.PublicKeyUniqueIdentifier
			for _, id := range []string{priv, pub} {
				if _, err := c.Activate(id).Exec(); err != nil {
					t.Fatalf("Activate %s: %v", id, err)
				}
			}
			pk := getPublic(t, c, pub)
			sig, err := c.Sign(priv).WithCryptographicParameters(kp.cp).Data(msg).Exec()
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if err := verifyGo(pk, kp.cp.PaddingMethod, digest[:], sig.SignatureData); err != nil {
				t.Errorf("Go rejects kmipd's signature: %v", err)
			}
			v, err := c.SignatureVerify(pub).WithCryptographicParameters(kp.cp).Data(msg).Signature(sig.SignatureData).Exec()
			if err != nil {
				t.Fatalf("Signature Verify: %v", err)
			}
			if v.ValidityIndicator != kmip.ValidityIndicatorValid {
				t.Errorf("Signature Verify of a good signature: %v", v.ValidityIndicator)
			}
			v, err = c.SignatureVerify(pub).WithCryptographicParameters(kp.cp).Data([]byte("another message")).Signature(sig.SignatureData).Exec()
			if err != nil {
				t.Fatalf("Signature Verify: %v", err)
			}
			if v.ValidityIndicator != kmip.ValidityIndicatorInvalid {
				t.Errorf("Signature Verify of another message: %v, want Invalid", v.ValidityIndicator)
			}
			if minor(c) < 4 {
				return
			}
			signer, err := c.Signer(t.Context(), priv, "")
			if err != nil {
				t.Fatalf("kmipclient.Signer: %v", err)
			}
			var opts crypto.SignerOpts = crypto.SHA256
			if kp.cp.PaddingMethod == kmip.PaddingMethodPSS {
				opts = &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash}
			}
			sig2, err := signer.Sign(nil, digest[:], opts)
			if err != nil {
				t.Fatalf("crypto.Signer over KMIP (Digested Data): %v", err)
			}
			if err := verifyGo(signer.Public(), kp.cp.PaddingMethod, digest[:], sig2); err != nil {
				t.Errorf("Go rejects the Digested Data signature: %v", err)
			}
			if kp.cp.PaddingMethod == kmip.PaddingMethodPSS {
				// Salt Length left to the server: Go's verifier finds it.
				sig3, err := signer.Sign(nil, digest[:], &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthAuto})
				if err != nil {
					t.Fatalf("PSS with the server's salt length: %v", err)
				}
				if err := rsa.VerifyPSS(signer.Public().(*rsa.PublicKey), crypto.SHA256, digest[:], sig3, nil); err != nil {
					t.Errorf("Go rejects the PSS signature with the server's salt length: %v", err)
				}
			}
		})
	}
}

func verifyGo(pk any, pad kmip.PaddingMethod, digest, sig []byte) error {
	switch k := pk.(type) {
	case *rsa.PublicKey:
		if pad == kmip.PaddingMethodPSS {
			return rsa.VerifyPSS(k, crypto.SHA256, digest, sig, nil)
		}
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errBadSig
		}
		return nil
	}
	return errBadSig
}

type sigError string

func (e sigError) Error() string { return string(e) }

const errBadSig = sigError("signature does not verify")

// checkHash: Hash (1.2 §4.35) of SHA-256 and SHA-512 equals Go's.
func checkHash(t *testing.T, c *kmipclient.Client) {
	data := []byte("hash me, kmipd")
	for _, h := range []struct {
		alg  kmip.HashingAlgorithm
		want []byte
	}{
		{kmip.HashingAlgorithmSHA_256, func() []byte { s := sha256.Sum256(data); return s[:] }()},
		{kmip.HashingAlgorithmSHA_512, func() []byte { s := sha512.Sum512(data); return s[:] }()},
	} {
		r, err := c.Hash().WithCryptographicParameters(kmip.CryptographicParameters{HashingAlgorithm: h.alg}).Data(data).Exec()
		if err != nil {
			t.Fatalf("Hash %v: %v", h.alg, err)
		}
		if !bytes.Equal(r.Data, h.want) {
			t.Errorf("Hash %v differs from Go's", h.alg)
		}
	}
}
