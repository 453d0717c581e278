package kmipops

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Join Split Key, on the parts the OASIS KMIP 1.2 cases record.

// The four 2-of-4 GF(2^8) parts of 0102…10 that TC-SJ-2-12 reads back and
// TC-SJ-3-12 registers and joins, and TC-SJ-4-12's four XOR parts.
var (
	oasisGF8Parts = []string{
		"66C46A7754F94DE420C7B1A7FFF5EC56", "CF93D1E2A7E593CD5B8D6247F4E5D49C",
		"A855B891F61AD9217240D8EC061E37DA", "803DBAD55CDD329FAD19D99AE2C5A415",
	}
	oasisXORParts = []string{
		"d4b92c299199298e30dee13b967e6dda", "35ea4f615686230c7b11538693674e89",
		"3478ddd2e1f89f2005011d26d9fff37c", "d429bd9e23e192aa47c4a497d1e8df3f",
	}
)

// regPart registers a Split Key part as TC-SJ-3-12 does: no algorithm or
// length anywhere.
func (e *env) regPart(c Caller, n, id, k int32, m kmip14.SplitKeyMethod, key []byte, kbExtra ...*tree.Node) string {
	e.t.Helper()
	kb := tree.Struct(kmip14.TagKeyBlock, tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)),
		tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, key)))
	body := tree.Struct(kmip14.TagSplitKey, tree.Int(kmip14.TagSplitKeyParts, n), tree.Int(kmip14.TagKeyPartIdentifier, id),
		tree.Int(kmip14.TagSplitKeyThreshold, k), tree.Enum(kmip14.TagSplitKeyMethod, uint32(m)), kb.Add(kbExtra...))
	return text(e.t, okPayload(e.t, e.do(c, register(kmip14.ObjectTypeSplitKey, body, attrNode("x-ID", tree.Text(0, "TC-SJ-3-12")))), 0), kmip14.TagUniqueIdentifier)
}

// TestJoinOASISParts is TC-SJ-3-12 and TC-SJ-4-12's joins, on their bytes.
func TestJoinOASISParts(t *testing.T) {
	e := newEnv(t, Options{})
	e.v = version{1, 2}
	aes := []*tree.Node{dvAlg(kmip14.CryptographicAlgorithmAES), dvLength(128), nameAttr("TC-SJ-3-12-join1")}
	var gf8 []string
	for i, k := range oasisGF8Parts {
		gf8 = append(gf8, e.regPart(alice, 4, int32(i+1), 2, kmip14.SplitKeyMethodPolynomialSharingGF2_8, crHex(t, k)))
	}
	resp := e.do(alice, joinItem(kmip14.ObjectTypeSymmetricKey, []string{gf8[0], gf8[2]}, aes...), item(kmip14.OperationGet))
	p := okPayload(t, resp, 0)
	joined := text(t, p, kmip14.TagUniqueIdentifier)
	if len(p.Children) != 1 {
		t.Errorf("response payload %s, want the Unique Identifier only", p)
	}
	if got := text(t, okPayload(t, resp, 1), kmip14.TagUniqueIdentifier); got != joined {
		t.Errorf("placeholder %s, want the joined key %s", got, joined)
	}
	kb := okPayload(t, resp, 1).Path(kmip14.TagSymmetricKey, kmip14.TagKeyBlock)
	if got := crBytes(t, kb.Child(kmip14.TagKeyValue), kmip14.TagKeyMaterial); !bytes.Equal(got, crHex(t, sjSecret)) {
		t.Errorf("joined %x, want %s", got, sjSecret)
	}
	if l, _ := kb.Child(kmip14.TagCryptographicLength).IntValue(); l != 128 {
		t.Errorf("length %d", l)
	}
	if l := e.linkMap(alice, joined); len(l[kmip14.LinkTypeParentLink]) != 2 {
		t.Errorf("joined key's links %v, want a Parent Link to each part", l)
	}
	// TC-SJ-3-12 step 6: one part of a 2-of-4 split, no template.
	wantFail(t, e.do(alice, joinItem(kmip14.ObjectTypeSymmetricKey, gf8[1:2])), 0, kmip14.ResultReasonCryptographicFailure)

	var xor []string
	for i, k := range oasisXORParts {
		xor = append(xor, e.regPart(alice, 4, int32(i+1), 4, kmip14.SplitKeyMethodXOR, crHex(t, k)))
	}
	joined = text(t, okPayload(t, e.do(alice, joinItem(kmip14.ObjectTypeSymmetricKey, xor, aes...)), 0), kmip14.TagUniqueIdentifier)
	if got := e.material(alice, joined); !bytes.Equal(got, crHex(t, sjSecret)) {
		t.Errorf("XOR joined %x, want %s", got, sjSecret)
	}
	wantFail(t, e.do(alice, joinItem(kmip14.ObjectTypeSymmetricKey, xor[:3], aes...)), 0, kmip14.ResultReasonCryptographicFailure)

	// The same parts join into Secret Data, of the type asked.
	sd := text(t, okPayload(t, e.do(alice, item(kmip14.OperationJoinSplitKey, tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSecretData)),
		tree.Enum(kmip14.TagSecretDataType, uint32(kmip14.SecretDataTypePassword)), uidF(gf8[3]), uidF(gf8[0]))), 0), kmip14.TagUniqueIdentifier)
	got := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(sd))), 0).Child(kmip14.TagSecretData)
	if st, _ := got.Child(kmip14.TagSecretDataType).EnumValue(); kmip14.SecretDataType(st) != kmip14.SecretDataTypePassword {
		t.Errorf("Secret Data Type %s", kmip14.SecretDataType(st))
	}
	if b := crBytes(t, got.Path(kmip14.TagKeyBlock, kmip14.TagKeyValue), kmip14.TagKeyMaterial); !bytes.Equal(b, crHex(t, sjSecret)) {
		t.Errorf("Secret Data %x", b)
	}
}

// TestJoinSplitKeyRefusals: parts that cannot form a key, and bad requests.
func TestJoinSplitKeyRefusals(t *testing.T) {
	e := newEnv(t, Options{})
	gf8 := kmip14.SplitKeyMethodPolynomialSharingGF2_8
	p1 := e.regPart(alice, 4, 1, 2, gf8, crHex(t, oasisGF8Parts[0]))
	p2 := e.regPart(alice, 4, 2, 2, gf8, crHex(t, oasisGF8Parts[1]))
	other := e.regPart(alice, 5, 2, 2, gf8, crHex(t, oasisGF8Parts[1]))
	short := e.regPart(alice, 4, 3, 2, gf8, crHex(t, oasisGF8Parts[2])[:8])
	key := e.regAES(alice, crHex(t, sjSecret))
	compromised := e.regPart(alice, 4, 3, 2, gf8, crHex(t, oasisGF8Parts[2]), tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmAES)))
	okPayload(t, e.do(alice, item(kmip14.OperationRevoke, uidF(compromised), tree.Struct(kmip14.TagRevocationReason,
		tree.Enum(kmip14.TagRevocationReasonCode, uint32(kmip14.RevocationReasonCodeKeyCompromise)),
		tree.Time(kmip14.TagCompromiseOccurrenceDate, e.p.opts.Now())))), 0)
	aes := []*tree.Node{dvAlg(kmip14.CryptographicAlgorithmAES), dvLength(128)}
	sym := kmip14.ObjectTypeSymmetricKey
	before := countObjects(t, e, alice)
	for _, c := range []struct {
		name, why string
		it        *tree.Node
		want      kmip14.ResultReason
	}{
		{"no parts", "needs the Unique Identifiers", joinItem(sym, nil, aes...), kmip14.ResultReasonInvalidMessage},
		{"makes a certificate", "cannot make a Certificate", joinItem(kmip14.ObjectTypeCertificate, []string{p1, p2}), kmip14.ResultReasonInvalidField},
		{"makes a private key", "Private Key is not supported", joinItem(kmip14.ObjectTypePrivateKey, []string{p1, p2}), kmip14.ResultReasonFeatureNotSupported},
		{"Secret Data Type for a key", "for Secret Data only", item(kmip14.OperationJoinSplitKey, tree.Enum(kmip14.TagObjectType, uint32(sym)),
			tree.Enum(kmip14.TagSecretDataType, uint32(kmip14.SecretDataTypeSeed)), uidF(p1), uidF(p2)), kmip14.ResultReasonInvalidField},
		{"not a split key", "not a Split Key", joinItem(sym, []string{p1, key}, aes...), kmip14.ResultReasonInvalidField},
		{"different splits", "different splits", joinItem(sym, []string{p1, other}, aes...), kmip14.ResultReasonInvalidField},
		{"a part twice", "given twice", joinItem(sym, []string{p1, p1}, aes...), kmip14.ResultReasonInvalidField},
		{"different lengths", "different lengths", joinItem(sym, []string{p1, short}), kmip14.ResultReasonInvalidField},
		{"length mismatch", "16-byte parts for a 32-byte secret", joinItem(sym, []string{p1, p2}, dvAlg(kmip14.CryptographicAlgorithmAES), dvLength(256)), kmip14.ResultReasonInvalidField},
		{"no algorithm", "Cryptographic Algorithm is required", joinItem(sym, []string{p1, p2}), kmip14.ResultReasonInvalidField},
		{"compromised part", "Compromised", joinItem(sym, []string{p1, compromised}, aes...), kmip14.ResultReasonPermissionDenied},
		{"unknown part", "", joinItem(sym, []string{p1, "no-such-part"}, aes...), kmip14.ResultReasonItemNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			if m := wantFail(t, e.do(alice, c.it), 0, c.want); !strings.Contains(m, c.why) {
				t.Errorf("refused for %q, want %q", m, c.why)
			}
		})
	}
	if n := countObjects(t, e, alice); n != before {
		t.Errorf("%d objects after refused joins, %d before", n, before)
	}
	// Bob cannot join Alice's parts; Alice's parts and Bob's do not mix.
	wantFail(t, e.do(bob, joinItem(sym, []string{p1, p2}, aes...)), 0, kmip14.ResultReasonItemNotFound)
	e.v = version{1, 1}
	wantFail(t, e.do(alice, joinItem(sym, []string{p1, p2}, aes...)), 0, kmip14.ResultReasonOperationNotSupported)
}

// TestRegisterSplitKeyChecks: Register refuses Split Key structures Join
// could not use.
func TestRegisterSplitKeyChecks(t *testing.T) {
	e := newEnv(t, Options{})
	kb := func() *tree.Node {
		return tree.Struct(kmip14.TagKeyBlock, tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)),
			tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, make([]byte, 16))))
	}
	gf8 := tree.Enum(kmip14.TagSplitKeyMethod, uint32(kmip14.SplitKeyMethodPolynomialSharingGF2_8))
	for _, c := range []struct {
		name string
		body *tree.Node
		want kmip14.ResultReason
	}{
		{"part 0", tree.Struct(kmip14.TagSplitKey, tree.Int(kmip14.TagSplitKeyParts, 4), tree.Int(kmip14.TagKeyPartIdentifier, 0),
			tree.Int(kmip14.TagSplitKeyThreshold, 2), gf8, kb()), kmip14.ResultReasonInvalidField},
		{"part beyond the count", tree.Struct(kmip14.TagSplitKey, tree.Int(kmip14.TagSplitKeyParts, 4), tree.Int(kmip14.TagKeyPartIdentifier, 5),
			tree.Int(kmip14.TagSplitKeyThreshold, 2), gf8, kb()), kmip14.ResultReasonInvalidField},
		{"no threshold", tree.Struct(kmip14.TagSplitKey, tree.Int(kmip14.TagSplitKeyParts, 4), tree.Int(kmip14.TagKeyPartIdentifier, 1),
			gf8, kb()), kmip14.ResultReasonInvalidMessage},
		{"method as integer", tree.Struct(kmip14.TagSplitKey, tree.Int(kmip14.TagSplitKeyParts, 4), tree.Int(kmip14.TagKeyPartIdentifier, 1),
			tree.Int(kmip14.TagSplitKeyThreshold, 2), tree.Int(kmip14.TagSplitKeyMethod, 4), kb()), kmip14.ResultReasonInvalidField},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantFail(t, e.do(alice, register(kmip14.ObjectTypeSplitKey, c.body)), 0, c.want)
		})
	}
}
