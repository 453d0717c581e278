package kmipops

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"hash"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Sign and Signature Verify (KMIP 1.4 §4.31, §4.32): RSA with PKCS#1 v1.5
// or PSS, and ECDSA (ASN.1 DER signatures, as X.509 and PyKMIP use; on
// secp256k1 through keyformat_secp256k1.go). The data is hashed as it
// arrives, so a streamed signature holds no data.

var (
	signOp = &cryptoOp{op: kmip14.OperationSign, keyed: true, use: useSign, digested: true,
		start: func(p *Processor, ic *itemCtx, k *opKey, cp cryptoParams, req *tree.Node) (cryptoSession, []*tree.Node, error) {
			s, err := startSign(k, cp, req, false)
			return s, nil, err
		}}
	verifyOp = &cryptoOp{op: kmip14.OperationSignatureVerify, keyed: true, use: useVerify, digested: true,
		start: func(p *Processor, ic *itemCtx, k *opKey, cp cryptoParams, req *tree.Node) (cryptoSession, []*tree.Node, error) {
			s, err := startSign(k, cp, req, true)
			return s, nil, err
		}}
)

func opSign(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	return p.runCrypto(ic, payload, signOp)
}

func opSignatureVerify(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	return p.runCrypto(ic, payload, verifyOp)
}

// signSession kmipHashes the data (or takes Digested Data) and signs or
// verifies the digest at the end.
type signSession struct {
	h         hash.Hash // nil with Digested Data
	digest    []byte
	verifying bool
	// sign returns the signature; verify reports whether sig is valid.
	sign   func(digest []byte) ([]byte, error)
	verify func(digest, sig []byte) bool
}

func (s *signSession) update(data []byte) ([]byte, error) {
	if s.h != nil {
		s.h.Write(data)
	} else if len(data) > 0 {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Data and Digested Data are exclusive")
	}
	return nil, nil
}

func (s *signSession) final(req *tree.Node) ([]byte, []*tree.Node, error) {
	d := s.digest
	if s.h != nil {
		d = s.h.Sum(nil)
	}
	if !s.verifying {
		sig, err := s.sign(d)
		if err != nil {
			return nil, nil, &Error{Reason: kmip14.ResultReasonCryptographicFailure, Msg: "signing failed", Err: err}
		}
		return nil, []*tree.Node{tree.Bytes(kmip14.TagSignatureData, sig)}, nil
	}
	sig, ok, err := payloadBytes(req, kmip14.TagSignatureData)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing Signature Data")
	}
	// A signature that does not verify is a successful operation answering
	// Invalid (§4.32), not an error.
	v := kmip14.ValidityIndicatorInvalid
	if s.verify(d, sig) {
		v = kmip14.ValidityIndicatorValid
	}
	return nil, []*tree.Node{tree.Enum(kmip14.TagValidityIndicator, uint32(v))}, nil
}

func (s *signSession) held() int { return 0 }

func startSign(k *opKey, cp cryptoParams, req *tree.Node, verify bool) (cryptoSession, error) {
	if k.pub == nil {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "signatures need an asymmetric key")
	}
	padding, hname, err := cp.signatureScheme()
	if err != nil {
		return nil, err
	}
	family := kmip14.CryptographicAlgorithmECDSA
	if k.isRSA() {
		family = kmip14.CryptographicAlgorithmRSA
	}
	want := cp.alg
	if want == kmip14.CryptographicAlgorithmEC {
		want = kmip14.CryptographicAlgorithmECDSA
	}
	if s, ok := sigSchemes[cp.sigAlg]; ok && s.alg != family {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Digital Signature Algorithm %s does not match the key", cp.sigAlg)
	}
	if want != 0 && want != family {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Algorithm %s does not match the key", cp.alg)
	}
	if !verify && k.priv == nil {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Sign needs a private key")
	}
	h, err := goHash(hname, "Hashing Algorithm (or Digital Signature Algorithm)")
	if err != nil {
		return nil, err
	}
	s := &signSession{verifying: verify}
	digest, hasDigest, err := payloadBytes(req, kmip14.TagDigestedData)
	switch {
	case err != nil:
		return nil, err
	case !hasDigest:
		s.h = h.New()
	case req.Child(kmip14.TagData) != nil || opensStream(req):
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Digested Data is for a single request without Data")
	case len(digest) != h.Size():
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Digested Data is not a %s digest", hname)
	default:
		s.digest = digest
	}
	if family == kmip14.CryptographicAlgorithmRSA {
		if err := rsaSigner(s, k, cp, padding, h); err != nil {
			return nil, err
		}
		return s, nil
	}
	if padding != 0 && padding != kmip14.PaddingMethodNone {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Padding Method %s does not apply to ECDSA", padding)
	}
	if s.sign, s.verify = ecSigner(k, h); s.sign == nil {
		return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "%T keys cannot sign", k.pub)
	}
	return s, nil
}

// rsaSigner fills in RSA signing or verification for the padding. PSS salt
// defaults to the hash length when signing; when verifying without a Salt
// Length any salt is accepted, as CS-AC-M-2 (salt 222, none given) needs.
func rsaSigner(s *signSession, k *opKey, cp cryptoParams, padding kmip14.PaddingMethod, h crypto.Hash) error {
	pub := k.pub.(*rsa.PublicKey)
	priv, _ := k.priv.(*rsa.PrivateKey)
	switch padding {
	case kmip14.PaddingMethodPSS:
		if cp.mgf != 0 && cp.mgf != kmip14.MaskGeneratorMGF1 {
			return Errorf(kmip14.ResultReasonFeatureNotSupported, "Mask Generator %s not supported", cp.mgf)
		}
		if mh, ok := kmipHashes[cp.mgfHash]; cp.mgfHash != 0 && (!ok || mh != h) {
			return Errorf(kmip14.ResultReasonFeatureNotSupported, "PSS with a Mask Generator Hashing Algorithm other than the Hashing Algorithm is not supported")
		}
		signSalt, verifySalt := rsa.PSSSaltLengthEqualsHash, rsa.PSSSaltLengthAuto
		if cp.hasSalt {
			if cp.salt < 0 || int(cp.salt) > pub.Size() {
				return Errorf(kmip14.ResultReasonInvalidField, "Salt Length %d not valid", cp.salt)
			}
			signSalt, verifySalt = int(cp.salt), int(cp.salt)
		}
		s.sign = func(d []byte) ([]byte, error) {
			return rsa.SignPSS(rand.Reader, priv, h, d, &rsa.PSSOptions{SaltLength: signSalt, Hash: h})
		}
		s.verify = func(d, sig []byte) bool {
			return rsa.VerifyPSS(pub, h, d, sig, &rsa.PSSOptions{SaltLength: verifySalt, Hash: h}) == nil
		}
	case kmip14.PaddingMethodPKCS1V1_5:
		s.sign = func(d []byte) ([]byte, error) { return rsa.SignPKCS1v15(nil, priv, h, d) }
		s.verify = func(d, sig []byte) bool { return rsa.VerifyPKCS1v15(pub, h, d, sig) == nil }
	case 0:
		return Errorf(kmip14.ResultReasonInvalidMessage, "Padding Method (or Digital Signature Algorithm) is required for RSA")
	default:
		return Errorf(kmip14.ResultReasonFeatureNotSupported, "Padding Method %s not supported for RSA signatures", padding)
	}
	return nil
}
