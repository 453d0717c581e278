package kmipops

import (
	"bytes"
	"math/big"
	"strings"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Create Split Key. The known answer of a split is the key it joins back
// to: the tests split keys whose bytes they chose, never kmipd's output.

// sjSecret is the key TC-SJ-2-12 registers and splits.
const sjSecret = "0102030405060708090a0b0c0d0e0f10"

func splitItem(uid string, parts, threshold int32, m kmip14.SplitKeyMethod, extra ...*tree.Node) *tree.Node {
	f := []*tree.Node{tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSplitKey))}
	if uid != "" {
		f = append(f, uidF(uid))
	}
	f = append(f, tree.Int(kmip14.TagSplitKeyParts, parts), tree.Int(kmip14.TagSplitKeyThreshold, threshold),
		tree.Enum(kmip14.TagSplitKeyMethod, uint32(m)))
	return item(kmip14.OperationCreateSplitKey, append(f, extra...)...)
}

func joinItem(ot kmip14.ObjectType, uids []string, tmpl ...*tree.Node) *tree.Node {
	f := []*tree.Node{tree.Enum(kmip14.TagObjectType, uint32(ot))}
	for _, u := range uids {
		f = append(f, uidF(u))
	}
	if tmpl != nil {
		f = append(f, template(kmip14.TagTemplateAttribute, tmpl...))
	}
	return item(kmip14.OperationJoinSplitKey, f...)
}

func respUIDs(t testing.TB, p *tree.Node) []string {
	t.Helper()
	var out []string
	for _, n := range p.All(kmip14.TagUniqueIdentifier) {
		s, _ := n.TextValue()
		out = append(out, s)
	}
	return out
}

// regAES registers a Pre-Active AES key with the given bytes, as TC-SJ-2-12.
func (e *env) regAES(c Caller, key []byte, attrs ...*tree.Node) string {
	e.t.Helper()
	attrs = append(attrs, crMask(kmip14.CryptographicUsageMaskEncrypt, kmip14.CryptographicUsageMaskDecrypt))
	body := keyBody(kmip14.TagSymmetricKey, kmip14.KeyFormatTypeRaw, kmip14.CryptographicAlgorithmAES, int32(8*len(key)), key)
	return text(e.t, okPayload(e.t, e.do(c, register(kmip14.ObjectTypeSymmetricKey, body, attrs...)), 0), kmip14.TagUniqueIdentifier)
}

// TestCreateSplitKeyMethods splits a chosen key with each method, checks
// the parts' Split Key structures, that enough parts join back to it and
// fewer are Cryptographic Failure.
func TestCreateSplitKeyMethods(t *testing.T) {
	e := newEnv(t, Options{})
	e.v = version{1, 2}
	// 2^130 - 5, the Poly1305 prime: above 2^128.
	p1305 := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 130), big.NewInt(5))
	for _, c := range []struct {
		name      string
		m         kmip14.SplitKeyMethod
		n, k      int32
		prime     *big.Int
		partBytes int
	}{
		{"XOR", kmip14.SplitKeyMethodXOR, 3, 3, nil, 16},
		{"GF(2^8)", kmip14.SplitKeyMethodPolynomialSharingGF2_8, 5, 3, nil, 16},
		{"GF(2^16)", kmip14.SplitKeyMethodPolynomialSharingGF2_16, 4, 2, nil, 16},
		{"prime field", kmip14.SplitKeyMethodPolynomialSharingPrimeField, 4, 3, p1305, 17},
	} {
		t.Run(c.name, func(t *testing.T) {
			orig := e.regAES(alice, crHex(t, sjSecret))
			var extra []*tree.Node
			if c.prime != nil {
				extra = append(extra, tree.Big(kmip14.TagPrimeFieldSize, c.prime))
			}
			resp := e.do(alice, splitItem(orig, c.n, c.k, c.m, append(extra, template(kmip14.TagTemplateAttribute))...), item(kmip14.OperationGet))
			parts := respUIDs(t, okPayload(t, resp, 0))
			if len(parts) != int(c.n) {
				t.Fatalf("%d parts, want %d", len(parts), c.n)
			}
			// The ID Placeholder is part 1.
			if got := text(t, okPayload(t, resp, 1), kmip14.TagUniqueIdentifier); got != parts[0] {
				t.Errorf("placeholder %s, want part 1 %s", got, parts[0])
			}
			for i, uid := range parts {
				sk := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0).Child(kmip14.TagSplitKey)
				for tag, want := range map[string]int64{"parts": int64(c.n), "id": int64(i + 1), "threshold": int64(c.k)} {
					n := map[string]*tree.Node{"parts": sk.Child(kmip14.TagSplitKeyParts), "id": sk.Child(kmip14.TagKeyPartIdentifier),
						"threshold": sk.Child(kmip14.TagSplitKeyThreshold)}[tag]
					if v, ok := n.IntValue(); !ok || int64(v) != want {
						t.Errorf("part %d: %s %v, want %d", i+1, tag, n, want)
					}
				}
				if m, _ := sk.Child(kmip14.TagSplitKeyMethod).EnumValue(); kmip14.SplitKeyMethod(m) != c.m {
					t.Errorf("part %d: method %s", i+1, kmip14.SplitKeyMethod(m))
				}
				if q := sk.Child(kmip14.TagPrimeFieldSize); (q != nil) != (c.prime != nil) || (q != nil && q.Big.Cmp(c.prime) != 0) {
					t.Errorf("part %d: Prime Field Size %v", i+1, q)
				}
				kb := sk.Child(kmip14.TagKeyBlock)
				if a, _ := kb.Child(kmip14.TagCryptographicAlgorithm).EnumValue(); kmip14.CryptographicAlgorithm(a) != kmip14.CryptographicAlgorithmAES {
					t.Errorf("part %d: algorithm %s", i+1, kmip14.CryptographicAlgorithm(a))
				}
				if l, _ := kb.Child(kmip14.TagCryptographicLength).IntValue(); l != 128 {
					t.Errorf("part %d: length %d", i+1, l)
				}
				if k := crBytes(t, kb.Child(kmip14.TagKeyValue), kmip14.TagKeyMaterial); len(k) != c.partBytes || bytes.Equal(k, crHex(t, sjSecret)) {
					t.Errorf("part %d: key material of %d bytes (equal to the secret: %v)", i+1, len(k), bytes.Equal(k, crHex(t, sjSecret)))
				}
				if l := e.linkMap(alice, uid); len(l[kmip14.LinkTypeParentLink]) != 1 || l[kmip14.LinkTypeParentLink][0] != orig {
					t.Errorf("part %d: links %v, want a Parent Link to the original", i+1, l)
				}
			}
			if l := e.linkMap(alice, orig); len(l[kmip14.LinkTypeChildLink]) != len(parts) {
				t.Errorf("original's links %v, want a Child Link per part", l)
			}
			// The last k parts join back (any k do; these are not the first).
			aes := []*tree.Node{dvAlg(kmip14.CryptographicAlgorithmAES), dvLength(128)}
			joined := text(t, okPayload(t, e.do(alice, joinItem(kmip14.ObjectTypeSymmetricKey, parts[c.n-c.k:], aes...)), 0), kmip14.TagUniqueIdentifier)
			if got := e.material(alice, joined); !bytes.Equal(got, crHex(t, sjSecret)) {
				t.Errorf("joined %x, want %s", got, sjSecret)
			}
			wantFail(t, e.do(alice, joinItem(kmip14.ObjectTypeSymmetricKey, parts[:c.k-1], aes...)), 0, kmip14.ResultReasonCryptographicFailure)
		})
	}
}

// TestCreateSplitKeyGenerated: without a Unique Identifier the server
// generates the key from the template and stores only its parts, which
// join to one key whichever of them are used.
func TestCreateSplitKeyGenerated(t *testing.T) {
	e := newEnv(t, Options{})
	e.v = version{1, 4}
	before := countObjects(t, e, alice)
	parts := respUIDs(t, okPayload(t, e.do(alice, splitItem("", 3, 2, kmip14.SplitKeyMethodPolynomialSharingGF2_8,
		template(kmip14.TagTemplateAttribute, dvAlg(kmip14.CryptographicAlgorithmAES), dvLength(256), nameAttr("split")))), 0))
	if n := countObjects(t, e, alice); n != before+3 {
		t.Errorf("%d new objects, want the 3 parts only", n-before)
	}
	a := e.material(alice, text(t, okPayload(t, e.do(alice, joinItem(kmip14.ObjectTypeSymmetricKey, parts[:2])), 0), kmip14.TagUniqueIdentifier))
	b := e.material(alice, text(t, okPayload(t, e.do(alice, joinItem(kmip14.ObjectTypeSymmetricKey, parts[1:])), 0), kmip14.TagUniqueIdentifier))
	if len(a) != 32 || !bytes.Equal(a, b) {
		t.Errorf("joins of parts 1,2 and 2,3 differ or are not 32 bytes: %d, %d bytes", len(a), len(b))
	}
	for _, uid := range parts {
		if n := e.getAttrs(alice, uid, "Name")["Name"]; len(n) != 1 {
			t.Errorf("part %s: Name %v, want the template's", uid, n)
		}
	}
}

// TestSplitKeyProtection: the parts of a Sensitive or non-extractable key
// keep that protection, and a template cannot ask for less.
func TestSplitKeyProtection(t *testing.T) {
	e := newEnv(t, Options{})
	sensitive := e.regAES(alice, crHex(t, sjSecret), attrNode("Sensitive", tree.Bool(0, true)))
	parts := respUIDs(t, okPayload(t, e.do(alice, splitItem(sensitive, 2, 2, kmip14.SplitKeyMethodXOR)), 0))
	wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(parts[0]))), 0, kmip14.ResultReasonSensitive)
	joined := text(t, okPayload(t, e.do(alice, joinItem(kmip14.ObjectTypeSymmetricKey, parts)), 0), kmip14.TagUniqueIdentifier)
	wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(joined))), 0, kmip14.ResultReasonSensitive)
	wantFail(t, e.do(alice, splitItem(sensitive, 2, 2, kmip14.SplitKeyMethodXOR,
		template(kmip14.TagTemplateAttribute, attrNode("Sensitive", tree.Bool(0, false))))), 0, kmip14.ResultReasonPermissionDenied)

	locked := e.regAES(alice, crHex(t, sjSecret), attrNode("Extractable", tree.Bool(0, false)))
	parts = respUIDs(t, okPayload(t, e.do(alice, splitItem(locked, 2, 2, kmip14.SplitKeyMethodXOR)), 0))
	wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(parts[1]))), 0, kmip14.ResultReasonNotExtractable)
	wantFail(t, e.do(alice, joinItem(kmip14.ObjectTypeSymmetricKey, parts, attrNode("Extractable", tree.Bool(0, true)))), 0, kmip14.ResultReasonPermissionDenied)
}

// TestCreateSplitKeyRefusals: bad requests get the right Result Reason and
// make nothing.
func TestCreateSplitKeyRefusals(t *testing.T) {
	e := newEnv(t, Options{})
	orig := e.regAES(alice, crHex(t, sjSecret))
	compromised := e.regAES(alice, crHex(t, sjSecret), crActive())
	okPayload(t, e.do(alice, item(kmip14.OperationRevoke, uidF(compromised), tree.Struct(kmip14.TagRevocationReason,
		tree.Enum(kmip14.TagRevocationReasonCode, uint32(kmip14.RevocationReasonCodeKeyCompromise)),
		tree.Time(kmip14.TagCompromiseOccurrenceDate, e.p.opts.Now())))), 0)
	destroyed := e.regAES(alice, crHex(t, sjSecret))
	okPayload(t, e.do(alice, item(kmip14.OperationDestroy, uidF(destroyed))), 0)
	odd := e.regSecret(alice, kmip14.SecretDataTypeSeed, []byte("odd"))
	priv, _ := e.crRSAPair(alice, nil, nil)
	gf8 := kmip14.SplitKeyMethodPolynomialSharingGF2_8
	before := countObjects(t, e, alice)
	for _, c := range []struct {
		name, why string
		v         version
		it        *tree.Node
		want      kmip14.ResultReason
	}{
		{"KMIP 1.1", "needs KMIP 1.2", version{1, 1}, splitItem(orig, 2, 2, gf8), kmip14.ResultReasonOperationNotSupported},
		{"object type", "not SymmetricKey", version{1, 4}, item(kmip14.OperationCreateSplitKey, tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)), uidF(orig),
			tree.Int(kmip14.TagSplitKeyParts, 2), tree.Int(kmip14.TagSplitKeyThreshold, 2), tree.Enum(kmip14.TagSplitKeyMethod, uint32(gf8))), kmip14.ResultReasonInvalidField},
		{"no parts", "missing SplitKeyParts", version{1, 4}, item(kmip14.OperationCreateSplitKey, tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSplitKey)), uidF(orig),
			tree.Int(kmip14.TagSplitKeyThreshold, 2), tree.Enum(kmip14.TagSplitKeyMethod, uint32(gf8))), kmip14.ResultReasonInvalidMessage},
		{"threshold above parts", "Threshold 3 with 2 parts", version{1, 4}, splitItem(orig, 2, 3, gf8), kmip14.ResultReasonInvalidField},
		{"too many parts", "1 to 255", version{1, 4}, splitItem(orig, 256, 2, gf8), kmip14.ResultReasonInvalidField},
		{"unknown method", "unknown Split Key Method", version{1, 4}, splitItem(orig, 2, 2, 0x42), kmip14.ResultReasonInvalidField},
		{"prime without prime method", "Prime Field Size goes with", version{1, 4}, splitItem(orig, 2, 2, gf8, tree.Big(kmip14.TagPrimeFieldSize, big.NewInt(257))), kmip14.ResultReasonInvalidField},
		{"prime method without prime", "Prime Field Size goes with", version{1, 4}, splitItem(orig, 2, 2, kmip14.SplitKeyMethodPolynomialSharingPrimeField), kmip14.ResultReasonInvalidField},
		{"composite prime", "not prime", version{1, 4}, splitItem(orig, 2, 2, kmip14.SplitKeyMethodPolynomialSharingPrimeField,
			tree.Big(kmip14.TagPrimeFieldSize, new(big.Int).Lsh(big.NewInt(1), 130))), kmip14.ResultReasonInvalidField},
		{"XOR below all parts", "XOR needs every part", version{1, 4}, splitItem(orig, 3, 2, kmip14.SplitKeyMethodXOR), kmip14.ResultReasonInvalidField},
		{"GF(2^16) odd length", "16-bit pieces", version{1, 4}, splitItem(odd, 2, 2, kmip14.SplitKeyMethodPolynomialSharingGF2_16), kmip14.ResultReasonInvalidField},
		{"private key", "splitting a PrivateKey", version{1, 4}, splitItem(priv, 2, 2, gf8), kmip14.ResultReasonFeatureNotSupported},
		{"compromised", "Compromised", version{1, 4}, splitItem(compromised, 2, 2, gf8), kmip14.ResultReasonPermissionDenied},
		{"destroyed", "destroyed", version{1, 4}, splitItem(destroyed, 2, 2, gf8), kmip14.ResultReasonItemNotFound},
		{"generate without algorithm", "Cryptographic Algorithm is required", version{1, 4}, splitItem("", 2, 2, gf8), kmip14.ResultReasonInvalidField},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.v = c.v
			if m := wantFail(t, e.do(alice, c.it), 0, c.want); !strings.Contains(m, c.why) {
				t.Errorf("refused for %q, want %q", m, c.why)
			}
		})
	}
	e.v = version{1, 4}
	if n := countObjects(t, e, alice); n != before {
		t.Errorf("%d objects after refused splits, %d before", n, before)
	}
	// Another owner's key is not found.
	wantFail(t, e.do(bob, splitItem(orig, 2, 2, gf8)), 0, kmip14.ResultReasonItemNotFound)
}

// TestCreateSplitKeyUndo: under Undo, a split in a failed batch leaves no
// part and no Child Link behind.
func TestCreateSplitKeyUndo(t *testing.T) {
	e := newEnv(t, Options{})
	orig := e.regAES(alice, crHex(t, sjSecret))
	before := countObjects(t, e, alice)
	resp := e.send(alice, undoMsg(e, splitItem(orig, 3, 2, kmip14.SplitKeyMethodPolynomialSharingGF2_8),
		item(kmip14.OperationGet, uidF("no-such-object"))))
	if s, _ := batchItems(t, resp)[0].Child(kmip14.TagResultStatus).EnumValue(); s != uint32(kmip14.ResultStatusOperationUndone) {
		t.Fatalf("Create Split Key answered %d, want Operation Undone", s)
	}
	if n := countObjects(t, e, alice); n != before {
		t.Errorf("%d objects after undo, %d before", n, before)
	}
	if l := e.linkMap(alice, orig); len(l) != 0 {
		t.Errorf("undone split left links on the original: %v", l)
	}
}

// Steady state, Create and Join Split Key make no PKCS#11 call.
func TestSplitJoinMakeNoHSMCalls(t *testing.T) {
	e := newRealEnv(t, Options{})
	h := sharedHSM(t)
	orig := e.regAES(alice, crHex(t, sjSecret))
	parts := respUIDs(t, okPayload(t, e.do(alice, splitItem(orig, 3, 2, kmip14.SplitKeyMethodPolynomialSharingGF2_8)), 0))
	before := h.Stats().Calls
	for range 5 {
		okPayload(t, e.do(alice, splitItem(orig, 3, 2, kmip14.SplitKeyMethodPolynomialSharingGF2_8)), 0)
		okPayload(t, e.do(alice, joinItem(kmip14.ObjectTypeSymmetricKey, parts[:2])), 0)
	}
	if after := h.Stats().Calls; after != before {
		t.Fatalf("%d PKCS#11 calls during steady-state Create/Join Split Key", after-before)
	}
}

// TestQueryListsDeriveAndSplit: Query offers Derive Key in every version,
// the Split Key operations from KMIP 1.2.
func TestQueryListsDeriveAndSplit(t *testing.T) {
	e := newEnv(t, Options{})
	for _, c := range []struct {
		v     version
		split bool
	}{{version{1, 0}, false}, {version{1, 1}, false}, {version{1, 2}, true}, {version{1, 4}, true}} {
		e.v = c.v
		ops := map[kmip14.Operation]bool{}
		for _, n := range okPayload(t, e.do(alice, item(kmip14.OperationQuery,
			tree.Enum(kmip14.TagQueryFunction, uint32(kmip14.QueryFunctionQueryOperations)))), 0).All(kmip14.TagOperation) {
			ops[kmip14.Operation(n.Int)] = true
		}
		if !ops[kmip14.OperationDeriveKey] || ops[kmip14.OperationCreateSplitKey] != c.split || ops[kmip14.OperationJoinSplitKey] != c.split {
			t.Errorf("KMIP %s: Derive Key %v, Create Split Key %v, Join Split Key %v", c.v,
				ops[kmip14.OperationDeriveKey], ops[kmip14.OperationCreateSplitKey], ops[kmip14.OperationJoinSplitKey])
		}
	}
}
