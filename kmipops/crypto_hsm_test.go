package kmipops

import (
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Steady state, cryptographic operations make no PKCS#11 call: the key is
// opened with the owner's cached pKEK and the cipher runs in Go.
func TestCryptoMakesNoHSMCalls(t *testing.T) {
	e := newRealEnv(t, Options{})
	h := sharedHSM(t)
	all := crMask(kmip14.CryptographicUsageMaskEncrypt, kmip14.CryptographicUsageMaskDecrypt,
		kmip14.CryptographicUsageMaskMACGenerate, kmip14.CryptographicUsageMaskMACVerify)
	key := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 32), all)
	priv, _ := e.crECPair(alice, []*tree.Node{crMask(kmip14.CryptographicUsageMaskSign)}, []*tree.Node{crMask(kmip14.CryptographicUsageMaskVerify)})
	gcm := crParams(crMode(kmip14.BlockCipherModeGCM))
	items := []*tree.Node{
		item(kmip14.OperationEncrypt, uidF(key), gcm, crData([]byte("hot path"))),
		item(kmip14.OperationEncrypt, uidF(key), crParams(crMode(kmip14.BlockCipherModeCBC), crPad(kmip14.PaddingMethodPKCS5)), crData([]byte("hot path"))),
		item(kmip14.OperationMAC, uidF(key), crData([]byte("hot path"))),
		item(kmip14.OperationSign, uidF(priv), crParams(crHash(kmip14.HashingAlgorithmSHA_256)), crData([]byte("hot path"))),
		item(kmip14.OperationHash, crParams(crHash(kmip14.HashingAlgorithmSHA_256)), crData([]byte("hot path"))),
		item(kmip14.OperationRNGRetrieve, tree.Int(kmip14.TagDataLength, 32)),
	}
	for _, it := range items { // warm: the owner's pKEK is cached after this
		okPayload(t, e.do(alice, it), 0)
	}
	before := h.Stats().Calls
	for range 50 {
		for _, it := range items {
			okPayload(t, e.do(alice, it), 0)
		}
		r := okPayload(t, e.do(alice, items[0]), 0)
		okPayload(t, e.crOne(alice, kmip14.OperationDecrypt, uidF(key), gcm, r.Child(kmip14.TagData),
			r.Child(kmip14.TagIVCounterNonce), r.Child(kmip14.TagAuthenticatedEncryptionTag)), 0)
	}
	if after := h.Stats().Calls; after != before {
		t.Fatalf("%d PKCS#11 calls during steady-state cryptographic operations", after-before)
	}
}
