package kmipops

import (
	"hash"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Hash (KMIP 1.4 §4.37): SHA-1, SHA-2 and SHA-3 over the data, streamable.

var hashOp = &cryptoOp{op: kmip14.OperationHash, start: startHash}

func opHash(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	return p.runCrypto(ic, payload, hashOp)
}

// sha3Algs lets a client name SHA-3 by Cryptographic Algorithm, which KMIP
// 1.4 also lists, instead of Hashing Algorithm.
var sha3Algs = map[kmip14.CryptographicAlgorithm]kmip14.HashingAlgorithm{
	kmip14.CryptographicAlgorithmSHA3_224: kmip14.HashingAlgorithmSHA_3_224,
	kmip14.CryptographicAlgorithmSHA3_256: kmip14.HashingAlgorithmSHA_3_256,
	kmip14.CryptographicAlgorithmSHA3_384: kmip14.HashingAlgorithmSHA_3_384,
	kmip14.CryptographicAlgorithmSHA3_512: kmip14.HashingAlgorithmSHA_3_512,
}

func startHash(_ *Processor, _ *itemCtx, _ *opKey, cp cryptoParams, _ *tree.Node) (cryptoSession, []*tree.Node, error) {
	ha := cp.hash
	if alt, ok := sha3Algs[cp.alg]; ok {
		if ha != 0 && ha != alt {
			return nil, nil, Errorf(kmip14.ResultReasonInvalidField, "Hashing Algorithm %s contradicts Cryptographic Algorithm %s", ha, cp.alg)
		}
		ha = alt
	}
	h, err := goHash(ha, "Cryptographic Parameters with a Hashing Algorithm")
	if err != nil {
		return nil, nil, err
	}
	return hashSession{h.New()}, nil, nil
}

type hashSession struct{ h hash.Hash }

func (s hashSession) update(data []byte) ([]byte, error) {
	s.h.Write(data)
	return nil, nil
}

func (s hashSession) final(*tree.Node) ([]byte, []*tree.Node, error) {
	return nil, []*tree.Node{tree.Bytes(kmip14.TagData, s.h.Sum(nil))}, nil
}

func (hashSession) held() int { return 0 }
