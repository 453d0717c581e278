package kmipops

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Encrypt and Decrypt (KMIP 1.4 §4.29, §4.30). The key is opened from the
// owner's sealed object (cached pKEK, no HSM call) and the cipher runs in
// Go's crypto packages.

var (
	encryptOp = &cryptoOp{op: kmip14.OperationEncrypt, keyed: true, use: useEncrypt, emitsData: true,
		start: func(p *Processor, ic *itemCtx, k *opKey, cp cryptoParams, req *tree.Node) (cryptoSession, []*tree.Node, error) {
			return startCipher(p, ic, k, cp, req, false)
		}}
	decryptOp = &cryptoOp{op: kmip14.OperationDecrypt, keyed: true, use: useDecrypt, emitsData: true,
		start: func(p *Processor, ic *itemCtx, k *opKey, cp cryptoParams, req *tree.Node) (cryptoSession, []*tree.Node, error) {
			return startCipher(p, ic, k, cp, req, true)
		}}
)

func opEncrypt(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	return p.runCrypto(ic, payload, encryptOp)
}

func opDecrypt(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	return p.runCrypto(ic, payload, decryptOp)
}

func startCipher(p *Processor, ic *itemCtx, k *opKey, cp cryptoParams, req *tree.Node, decrypt bool) (cryptoSession, []*tree.Node, error) {
	switch {
	case k.o.Type() == kmip14.ObjectTypeSymmetricKey:
		return startSymmetric(p, ic, k, cp, req, decrypt)
	case k.isRSA():
		s, err := startRSA(k, cp, req, decrypt)
		return s, nil, err
	}
	return nil, nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "%s keys cannot be used for Encrypt or Decrypt", k.alg)
}

// startRSA sets up RSA encryption (public key; a private key's public half
// also serves) or decryption (private key) with OAEP or PKCS#1 v1.5.
func startRSA(k *opKey, cp cryptoParams, req *tree.Node, decrypt bool) (cryptoSession, error) {
	if cp.alg != 0 && cp.alg != kmip14.CryptographicAlgorithmRSA {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Algorithm %s does not match the RSA key", cp.alg)
	}
	if cp.mode != 0 || req.Child(kmip14.TagIVCounterNonce) != nil || req.Child(kmip14.TagAuthenticatedEncryptionAdditionalData) != nil {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "block cipher fields do not apply to RSA")
	}
	pub := k.pub.(*rsa.PublicKey)
	priv, _ := k.priv.(*rsa.PrivateKey)
	if decrypt && priv == nil {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Decrypt needs the RSA private key")
	}
	var fn func(data []byte) ([]byte, error)
	switch cp.padding {
	case kmip14.PaddingMethodOAEP:
		opts, err := oaepOptions(cp)
		if err != nil {
			return nil, err
		}
		if decrypt {
			fn = func(c []byte) ([]byte, error) { return priv.Decrypt(nil, c, opts) }
		} else {
			fn = func(m []byte) ([]byte, error) { return rsa.EncryptOAEPWithOptions(rand.Reader, pub, m, opts) }
		}
	case kmip14.PaddingMethodPKCS1V1_5:
		// Deprecated in Go, and a padding oracle when decrypting, but
		// KMIP clients (and CS-AC profiles) still use it. Every failure
		// gives the same answer; the oracle is inherent to the operation.
		if decrypt {
			fn = func(c []byte) ([]byte, error) { return rsa.DecryptPKCS1v15(nil, priv, c) }
		} else {
			fn = func(m []byte) ([]byte, error) { return rsa.EncryptPKCS1v15(rand.Reader, pub, m) }
		}
	case 0:
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "Padding Method is required for RSA (in the request or the key's Cryptographic Parameters)")
	default:
		return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "Padding Method %s not supported for RSA", cp.padding)
	}
	return &bufferedSession{fn: func(data []byte, _ *tree.Node) ([]byte, []*tree.Node, error) {
		if len(data) > pub.Size() {
			return nil, nil, Errorf(kmip14.ResultReasonInvalidField, "data is longer than the RSA modulus")
		}
		out, err := fn(data)
		if err != nil && decrypt {
			return nil, nil, errDecrypt
		}
		if err != nil {
			// Too long for the padding: the only failure of RSA encryption.
			return nil, nil, &Error{Reason: kmip14.ResultReasonInvalidField, Msg: "data too long for the key and padding", Err: err}
		}
		return out, nil, nil
	}}, nil
}

// oaepOptions reads OAEP's kmipHashes and label. Both kmipHashes default to SHA-1,
// as PKCS#1 and KMIP 1.4 §2.1.5 (Mask Generator Hashing Algorithm) say.
func oaepOptions(cp cryptoParams) (*rsa.OAEPOptions, error) {
	if cp.mgf != 0 && cp.mgf != kmip14.MaskGeneratorMGF1 {
		return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "Mask Generator %s not supported", cp.mgf)
	}
	h, mh := crypto.SHA1, crypto.SHA1
	var err error
	if cp.hash != 0 {
		if h, err = goHash(cp.hash, "Hashing Algorithm"); err != nil {
			return nil, err
		}
	}
	if cp.mgfHash != 0 {
		if mh, err = goHash(cp.mgfHash, "Mask Generator Hashing Algorithm"); err != nil {
			return nil, err
		}
	}
	return &rsa.OAEPOptions{Hash: h, MGFHash: mh, Label: cp.pSource}, nil
}
