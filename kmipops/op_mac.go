package kmipops

import (
	"crypto/aes"
	"crypto/hmac"
	"hash"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/internal/aesmodes"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// MAC and MAC Verify (KMIP 1.4 §4.33, §4.34): HMAC with SHA-1, SHA-2 and
// SHA-3, and AES-CMAC. The algorithm is the Cryptographic Algorithm of the
// parameters, else the key's: CS-AC-M-4 computes HMAC-SHA256 with a key
// registered as AES.

var (
	macOp = &cryptoOp{op: kmip14.OperationMAC, keyed: true, use: useMAC,
		start: func(p *Processor, ic *itemCtx, k *opKey, cp cryptoParams, req *tree.Node) (cryptoSession, []*tree.Node, error) {
			s, err := startMAC(k, cp, false)
			return s, nil, err
		}}
	macVerifyOp = &cryptoOp{op: kmip14.OperationMACVerify, keyed: true, use: useMACVerify,
		start: func(p *Processor, ic *itemCtx, k *opKey, cp cryptoParams, req *tree.Node) (cryptoSession, []*tree.Node, error) {
			s, err := startMAC(k, cp, true)
			return s, nil, err
		}}
)

func opMAC(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	return p.runCrypto(ic, payload, macOp)
}

func opMACVerify(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	return p.runCrypto(ic, payload, macVerifyOp)
}

func startMAC(k *opKey, cp cryptoParams, verify bool) (cryptoSession, error) {
	if k.o.Type() != kmip14.ObjectTypeSymmetricKey {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "MAC needs a symmetric key")
	}
	alg := cp.alg
	if alg == 0 {
		alg = k.alg
	}
	if h, ok := macHashes[alg]; ok {
		if cp.mode != 0 {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Block Cipher Mode does not apply to %s", alg)
		}
		return &macSession{m: hmac.New(h.New, k.sym), verifying: verify}, nil
	}
	if alg == kmip14.CryptographicAlgorithmAES && (cp.mode == 0 || cp.mode == kmip14.BlockCipherModeCMAC) {
		b, err := aes.NewCipher(k.sym)
		if err != nil {
			return nil, Errorf(kmip14.ResultReasonCryptographicFailure, "AES key must be 16, 24 or 32 bytes")
		}
		m, err := aesmodes.NewCMAC(b)
		if err != nil {
			return nil, err
		}
		return &macSession{m: m, verifying: verify}, nil
	}
	if alg == 0 {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "Cryptographic Algorithm is required for MAC")
	}
	return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "MAC with %s %s not supported", alg, cp.mode)
}

// macSession feeds the data to the MAC and answers MAC Data, or compares
// it (in constant time) with the request's for MAC Verify.
type macSession struct {
	m         hash.Hash
	verifying bool
}

func (s *macSession) update(data []byte) ([]byte, error) {
	s.m.Write(data)
	return nil, nil
}

func (s *macSession) final(req *tree.Node) ([]byte, []*tree.Node, error) {
	sum := s.m.Sum(nil)
	if !s.verifying {
		return nil, []*tree.Node{tree.Bytes(kmip14.TagMACData, sum)}, nil
	}
	mac, ok, err := payloadBytes(req, kmip14.TagMACData)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing MAC Data")
	}
	// A MAC that does not match is a successful Invalid answer (§4.34).
	v := kmip14.ValidityIndicatorInvalid
	if hmac.Equal(sum, mac) {
		v = kmip14.ValidityIndicatorValid
	}
	return nil, []*tree.Node{tree.Enum(kmip14.TagValidityIndicator, uint32(v))}, nil
}

func (s *macSession) held() int { return 0 }
