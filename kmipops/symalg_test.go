package kmipops

import (
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// TestCreateAnySymmetricAlgorithm: Create generates keys for algorithms
// kmipd cannot compute with (PyKMIP's suite creates IDEA keys), at the
// lengths each algorithm allows, and refuses other lengths as Invalid Field.
func TestCreateAnySymmetricAlgorithm(t *testing.T) {
	e := newEnv(t, Options{})
	create := func(alg kmip14.CryptographicAlgorithm, length int32) *tree.Node {
		attrs := []*tree.Node{attrNode("Cryptographic Algorithm", tree.Enum(0, uint32(alg)))}
		if length != 0 {
			attrs = append(attrs, attrNode("Cryptographic Length", tree.Int(0, length)))
		}
		return e.do(alice, item(kmip14.OperationCreate,
			tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)),
			template(kmip14.TagTemplateAttribute, attrs...)))
	}
	for _, c := range []struct {
		alg          kmip14.CryptographicAlgorithm
		length       int32 // 0: none given
		bytes        int
		recordedBits int64
	}{
		{kmip14.CryptographicAlgorithmIDEA, 128, 16, 128},
		{kmip14.CryptographicAlgorithmIDEA, 0, 16, 128},
		{kmip14.CryptographicAlgorithmBlowfish, 32, 4, 32},
		{kmip14.CryptographicAlgorithmBlowfish, 448, 56, 448},
		{kmip14.CryptographicAlgorithmCamellia, 192, 24, 192},
		{kmip14.CryptographicAlgorithmCAST5, 40, 5, 40},
		{kmip14.CryptographicAlgorithmRC4, 2048, 256, 2048},
		{kmip14.CryptographicAlgorithmRC2, 8, 1, 8},
		{kmip14.CryptographicAlgorithmMARS, 160, 20, 160},
		{kmip14.CryptographicAlgorithmSKIPJACK, 0, 10, 80},
		{kmip14.CryptographicAlgorithmTwofish, 256, 32, 256},
		{kmip14.CryptographicAlgorithmChaCha20, 0, 32, 256},
		{kmip14.CryptographicAlgorithmChaCha20Poly1305, 256, 32, 256},
		{kmip14.CryptographicAlgorithmDES, 56, 8, 56},
		{kmip14.CryptographicAlgorithmDES3, 112, 16, 112},
		{kmip14.CryptographicAlgorithmHMAC_MD5, 0, 16, 128},
		{kmip14.CryptographicAlgorithmHMAC_SHA3_384, 0, 48, 384},
		{kmip14.CryptographicAlgorithmHMAC_SHA256, 8, 1, 8},
		{kmip14.CryptographicAlgorithmOneTimePad, 1024, 128, 1024},
	} {
		uid := text(t, okPayload(t, create(c.alg, c.length), 0), kmip14.TagUniqueIdentifier)
		a := e.getAttrs(alice, uid, "Cryptographic Algorithm", "Cryptographic Length")
		if kmip14.CryptographicAlgorithm(a["Cryptographic Algorithm"][0].Int) != c.alg || a["Cryptographic Length"][0].Int != c.recordedBits {
			t.Errorf("%s %d: attributes %v", c.alg, c.length, a)
		}
		g := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0)
		kb := g.Path(kmip14.TagSymmetricKey, kmip14.TagKeyBlock)
		if n := len(kb.Path(kmip14.TagKeyValue, kmip14.TagKeyMaterial).Bytes); n != c.bytes {
			t.Errorf("%s %d: %d bytes, want %d", c.alg, c.length, n, c.bytes)
		}
		if kb.Child(kmip14.TagCryptographicLength).Int != c.recordedBits {
			t.Errorf("%s %d: key block length %d", c.alg, c.length, kb.Child(kmip14.TagCryptographicLength).Int)
		}
	}
	for _, c := range []struct {
		alg    kmip14.CryptographicAlgorithm
		length int32
	}{
		{kmip14.CryptographicAlgorithmIDEA, 256},
		{kmip14.CryptographicAlgorithmBlowfish, 24},
		{kmip14.CryptographicAlgorithmBlowfish, 456},
		{kmip14.CryptographicAlgorithmBlowfish, 33},
		{kmip14.CryptographicAlgorithmCAST5, 136},
		{kmip14.CryptographicAlgorithmMARS, 136},
		{kmip14.CryptographicAlgorithmChaCha20, 128},
		{kmip14.CryptographicAlgorithmSKIPJACK, 128},
		{kmip14.CryptographicAlgorithmCamellia, 0},
		{kmip14.CryptographicAlgorithmRC4, 4096},
		{kmip14.CryptographicAlgorithmDES, 168},
		{kmip14.CryptographicAlgorithmHMAC_SHA1, maxAnyLength + 8},
		{kmip14.CryptographicAlgorithmOneTimePad, 0},
		{kmip14.CryptographicAlgorithmSHA3_256, 256}, // a hash: no key
		{kmip14.CryptographicAlgorithmSHAKE_128, 128},
		{kmip14.CryptographicAlgorithmECDSA, 256},
		{kmip14.CryptographicAlgorithm(0x80000001), 128}, // an extension kmipd does not know
	} {
		wantFail(t, create(c.alg, c.length), 0, kmip14.ResultReasonInvalidField)
	}

	// A key of an algorithm kmipd cannot compute with is refused at use.
	uid := text(t, okPayload(t, e.do(alice, item(kmip14.OperationCreate,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)),
		template(kmip14.TagTemplateAttribute,
			attrNode("Cryptographic Algorithm", tree.Enum(0, uint32(kmip14.CryptographicAlgorithmIDEA))),
			crMask(kmip14.CryptographicUsageMaskEncrypt), crActive()))), 0), kmip14.TagUniqueIdentifier)
	wantFail(t, e.crOne(alice, kmip14.OperationEncrypt, uidF(uid), crParams(crMode(kmip14.BlockCipherModeCBC)), crData(make([]byte, 8))), 0, kmip14.ResultReasonFeatureNotSupported)
}

// TestSymAlgTable: every symmetric key algorithm of KMIP 1.4 has an entry
// whose default length (if any) is legal and whose lengths come in bytes.
func TestSymAlgTable(t *testing.T) {
	notSymmetric := map[kmip14.CryptographicAlgorithm]bool{
		kmip14.CryptographicAlgorithmRSA: true, kmip14.CryptographicAlgorithmDSA: true, kmip14.CryptographicAlgorithmECDSA: true,
		kmip14.CryptographicAlgorithmDH: true, kmip14.CryptographicAlgorithmECDH: true, kmip14.CryptographicAlgorithmECMQV: true,
		kmip14.CryptographicAlgorithmEC: true, kmip14.CryptographicAlgorithmSHA3_224: true, kmip14.CryptographicAlgorithmSHA3_256: true,
		kmip14.CryptographicAlgorithmSHA3_384: true, kmip14.CryptographicAlgorithmSHA3_512: true,
		kmip14.CryptographicAlgorithmSHAKE_128: true, kmip14.CryptographicAlgorithmSHAKE_256: true,
	}
	for a := kmip14.CryptographicAlgorithmDES; a <= kmip14.CryptographicAlgorithmSHAKE_256; a++ {
		s, ok := symAlgs[a]
		if ok == notSymmetric[a] {
			t.Errorf("%s: in the table %v, symmetric %v", a, ok, !notSymmetric[a])
			continue
		}
		if !ok {
			continue
		}
		if s.ref == "" || s.mask == 0 {
			t.Errorf("%s: no reference or mask", a)
		}
		if s.def != 0 && !s.legal(s.def) {
			t.Errorf("%s: default %d is not legal", a, s.def)
		}
		for _, l := range append(append([]int32(nil), s.lengths...), s.min, s.max) {
			if _, ok := keyBytes(a, l); l != 0 && !ok {
				t.Errorf("%s: length %d is not whole bytes", a, l)
			}
		}
	}
}
