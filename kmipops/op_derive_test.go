package kmipops

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Derive Key: known answers from the OASIS case and the methods' published
// vectors, never kmipd's own output.

const maskDerive = kmip14.CryptographicUsageMaskDeriveKey

func dvParams(fields ...*tree.Node) *tree.Node {
	return tree.Struct(kmip14.TagDerivationParameters, fields...)
}

func dvData(b []byte) *tree.Node { return tree.Bytes(kmip14.TagDerivationData, b) }

func dvLength(bits int32) *tree.Node { return attrNode("Cryptographic Length", tree.Int(0, bits)) }

func dvAlg(a kmip14.CryptographicAlgorithm) *tree.Node {
	return attrNode("Cryptographic Algorithm", tree.Enum(0, uint32(a)))
}

// deriveItem builds a Derive Key request; tmpl is the Template-Attribute's
// attributes.
func deriveItem(ot kmip14.ObjectType, uids []string, m kmip14.DerivationMethod, dp *tree.Node, tmpl ...*tree.Node) *tree.Node {
	f := []*tree.Node{tree.Enum(kmip14.TagObjectType, uint32(ot))}
	for _, u := range uids {
		f = append(f, uidF(u))
	}
	f = append(f, tree.Enum(kmip14.TagDerivationMethod, uint32(m)), dp, template(kmip14.TagTemplateAttribute, tmpl...))
	return item(kmip14.OperationDeriveKey, f...)
}

// regSecret registers a Secret Data object (Active unless attrs say more).
func (e *env) regSecret(c Caller, t kmip14.SecretDataType, material []byte, attrs ...*tree.Node) string {
	e.t.Helper()
	body := secretDataBody(t, kmip14.KeyFormatTypeOpaque, material)
	return text(e.t, okPayload(e.t, e.do(c, register(kmip14.ObjectTypeSecretData, body, attrs...)), 0), kmip14.TagUniqueIdentifier)
}

// material Gets uid and returns its Key Material.
func (e *env) material(c Caller, uid string) []byte {
	e.t.Helper()
	p := okPayload(e.t, e.do(c, item(kmip14.OperationGet, uidF(uid))), 0)
	for _, tag := range []kmip14.ObjectType{kmip14.ObjectTypeSymmetricKey, kmip14.ObjectTypeSecretData, kmip14.ObjectTypeSplitKey} {
		if b := p.Child(bodyTags[tag]); b != nil {
			return crBytes(e.t, b.Path(kmip14.TagKeyBlock, kmip14.TagKeyValue), kmip14.TagKeyMaterial)
		}
	}
	e.t.Fatalf("Get %s: no key material in %s", uid, p)
	return nil
}

// linkMap returns uid's Link attributes as type → linked identifiers.
func (e *env) linkMap(c Caller, uid string) map[kmip14.LinkType][]string {
	e.t.Helper()
	out := map[kmip14.LinkType][]string{}
	for _, v := range e.getAttrs(c, uid, "Link")["Link"] {
		lt, _ := v.Child(kmip14.TagLinkType).EnumValue()
		id, _ := v.Child(kmip14.TagLinkedObjectIdentifier).TextValue()
		out[kmip14.LinkType(lt)] = append(out[kmip14.LinkType(lt)], id)
	}
	return out
}

// TestDeriveKeyOASIS is TC-DERIVEKEY-1-10 (KMIP 1.0): SHA-256 over the
// registered key, 128 bits, with the case's expected bytes; then the links
// both ways, and the derived key (Pre-Active) can be destroyed.
func TestDeriveKeyOASIS(t *testing.T) {
	e := newEnv(t, Options{})
	e.v = version{1, 0}
	base := e.crSym(alice, kmip14.CryptographicAlgorithmAES, crHex(t, "00112233445566778899aabbccddeeff"),
		crMask(kmip14.CryptographicUsageMaskEncrypt, kmip14.CryptographicUsageMaskDecrypt, maskDerive))
	p := okPayload(t, e.do(alice, deriveItem(kmip14.ObjectTypeSymmetricKey, []string{base}, kmip14.DerivationMethodHASH,
		dvParams(crParams(crHash(kmip14.HashingAlgorithmSHA_256))),
		dvAlg(kmip14.CryptographicAlgorithmAES), dvLength(128),
		crMask(kmip14.CryptographicUsageMaskDecrypt, kmip14.CryptographicUsageMaskEncrypt))), 0)
	if len(p.Children) != 1 {
		t.Errorf("response payload %s, want the Unique Identifier only", p)
	}
	derived := text(t, p, kmip14.TagUniqueIdentifier)
	kb := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(derived))), 0).Path(kmip14.TagSymmetricKey, kmip14.TagKeyBlock)
	if f, _ := kb.Child(kmip14.TagKeyFormatType).EnumValue(); kmip14.KeyFormatType(f) != kmip14.KeyFormatTypeRaw {
		t.Errorf("Key Format Type %s", kmip14.KeyFormatType(f))
	}
	if got := crBytes(t, kb.Child(kmip14.TagKeyValue), kmip14.TagKeyMaterial); !bytes.Equal(got, crHex(t, "a8faed6abbf35c12a4b26e40f6feb19d")) {
		t.Errorf("derived key %x", got)
	}
	if a, _ := kb.Child(kmip14.TagCryptographicAlgorithm).EnumValue(); kmip14.CryptographicAlgorithm(a) != kmip14.CryptographicAlgorithmAES {
		t.Errorf("algorithm %s", kmip14.CryptographicAlgorithm(a))
	}
	if l, _ := kb.Child(kmip14.TagCryptographicLength).IntValue(); l != 128 {
		t.Errorf("length %d", l)
	}
	if l := e.linkMap(alice, derived); len(l[kmip14.LinkTypeDerivationBaseObjectLink]) != 1 || l[kmip14.LinkTypeDerivationBaseObjectLink][0] != base {
		t.Errorf("derived key's links %v, want Derivation Base Object Link to %s", l, base)
	}
	if l := e.linkMap(alice, base); len(l[kmip14.LinkTypeDerivedKeyLink]) != 1 || l[kmip14.LinkTypeDerivedKeyLink][0] != derived {
		t.Errorf("base key's links %v, want Derived Key Link to %s", l, derived)
	}
	if s := e.state(alice, derived); s != kmip14.StatePreActive {
		t.Errorf("derived key is %s", s)
	}
	okPayload(t, e.do(alice, item(kmip14.OperationDestroy, uidF(derived))), 0)
}

// TestDeriveKeyKnownAnswers runs every method through the operation with a
// published vector.
func TestDeriveKeyKnownAnswers(t *testing.T) {
	e := newEnv(t, Options{})
	jefe := []byte("Jefe")
	jefeData := []byte("what do ya want for nothing?")
	hmacKey := e.crSym(alice, kmip14.CryptographicAlgorithmHMAC_SHA256, jefe, crMask(maskDerive))
	// Botan sp800_108_fb.vec (HMAC-SHA256): IV and context from Salt.
	fbSalt := crHex(t, "8BA32A09224E2BA61EADFE345E3978950895F605E73867946DD1175CC836421B6318D9E6384ABE5F323E")
	fbFixed := append(append(crHex(t, "E7EAFC5B1FAEA3AC16E3B0B700"), fbSalt[32:]...), binary.BigEndian.AppendUint32(nil, 16)...)
	cases := []struct {
		name string
		base func() []string
		ot   kmip14.ObjectType
		m    kmip14.DerivationMethod
		dp   *tree.Node
		bits int32
		want string
	}{
		// RFC 6070 §2 case 3, which PyKMIP 0.10's suite also checks (a
		// Secret Data password, an "AES" key of 160 bits).
		{"PBKDF2/RFC6070", func() []string {
			return []string{e.regSecret(alice, kmip14.SecretDataTypePassword, []byte("password"), crMask(maskDerive), crActive())}
		}, kmip14.ObjectTypeSymmetricKey, kmip14.DerivationMethodPBKDF2,
			dvParams(crParams(crHash(kmip14.HashingAlgorithmSHA_1)), tree.Bytes(kmip14.TagSalt, []byte("salt")), tree.Int(kmip14.TagIterationCount, 4096)),
			160, "4b007901b765489abead49d926f721d065a429c1"},
		// The same without Cryptographic Parameters: PKCS#5's default PRF.
		{"PBKDF2/default-PRF", func() []string {
			return []string{e.regSecret(alice, kmip14.SecretDataTypePassword, []byte("password"), crMask(maskDerive), crActive())}
		}, kmip14.ObjectTypeSymmetricKey, kmip14.DerivationMethodPBKDF2,
			dvParams(tree.Bytes(kmip14.TagSalt, []byte("salt")), tree.Int(kmip14.TagIterationCount, 2)),
			160, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"},
		// RFC 4231 test case 2; the hash is the HMAC key's own (§4.6:
		// Cryptographic Parameters "except for HMAC derivation keys").
		{"HMAC/RFC4231-2", func() []string { return []string{hmacKey} }, kmip14.ObjectTypeSecretData, kmip14.DerivationMethodHMAC,
			dvParams(dvData(jefeData)), 256, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		// The same with the Derivation Data as a second, Secret Data object.
		{"HMAC/data-object", func() []string {
			return []string{hmacKey, e.regSecret(alice, kmip14.SecretDataTypeSeed, jefeData, crMask(maskDerive), crActive())}
		}, kmip14.ObjectTypeSecretData, kmip14.DerivationMethodHMAC,
			dvParams(crParams(crHash(kmip14.HashingAlgorithmSHA_256))), 128, "5bdcc146bf60754e6a042426089575c7"},
		// FIPS 180-2 B.1: SHA-256("abc") over the Derivation Data.
		{"HASH/FIPS180", func() []string {
			return []string{e.regSecret(alice, kmip14.SecretDataTypeSeed, []byte{}, crMask(maskDerive), crActive())}
		}, kmip14.ObjectTypeSecretData, kmip14.DerivationMethodHASH,
			dvParams(crParams(crHash(kmip14.HashingAlgorithmSHA_256)), dvData([]byte("abc"))),
			256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		// NIST SP 800-38A F.2.1, CBC-AES128, first two blocks.
		{"ENCRYPT/SP800-38A", func() []string {
			return []string{e.crSym(alice, kmip14.CryptographicAlgorithmAES, crHex(t, "2b7e151628aed2a6abf7158809cf4f3c"), crMask(maskDerive))}
		}, kmip14.ObjectTypeSecretData, kmip14.DerivationMethodENCRYPT,
			dvParams(crParams(crMode(kmip14.BlockCipherModeCBC)), tree.Bytes(kmip14.TagInitializationVector, crHex(t, "000102030405060708090a0b0c0d0e0f")),
				dvData(crHex(t, "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"))),
			256, "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"},
		// NIST CAVP KDFCTR (HMAC-SHA512, 32-bit counter before the fixed
		// data), the vector PyKMIP 0.10's suite checks.
		{"NIST800-108-C/CAVP", func() []string {
			return []string{e.crSym(alice, kmip14.CryptographicAlgorithmHMAC_SHA512,
				crHex(t, "dd5dbd45593ee2ac139748e7645b450f223d2ff297b73fd71cbcebe71d41653c950b88500de5322d99ef18dfdd30428294c4b3094f4c954334e593bd982ec614"), crMask(maskDerive))}
		}, kmip14.ObjectTypeSymmetricKey, kmip14.DerivationMethodNIST800_108_C,
			dvParams(crParams(crHash(kmip14.HashingAlgorithmSHA_512)),
				dvData(crHex(t, "b50b0c963c6b3034b8cf19cd3f5c4ebe4f4985af0c03e575db62e6fdf1ecfe4f28b95d7ce16df85843246e1557ce95bb26cc9a21974bbd2eb69e8355"))),
			128, "e5993bf9bd2aa1c45746042e12598155"},
		{"NIST800-108-F/Botan", func() []string {
			return []string{e.crSym(alice, kmip14.CryptographicAlgorithmHMAC_SHA256,
				crHex(t, "A7C84831ED751469D67BD1341502F8D9CEA242F22B603A82B82E5F04124E14D0"), crMask(maskDerive))}
		}, kmip14.ObjectTypeSecretData, kmip14.DerivationMethodNIST800_108_F,
			dvParams(crParams(crHash(kmip14.HashingAlgorithmSHA_256)), tree.Bytes(kmip14.TagInitializationVector, fbSalt[:32]), dvData(fbFixed)),
			16, "ae76"},
		// Botan sp800_108_pipe.vec: CMAC-AES128 as the PRF.
		{"NIST800-108-DPI/CMAC", func() []string {
			return []string{e.crSym(alice, kmip14.CryptographicAlgorithmAES, crHex(t, "34f0c2542bfe13c7149b68c8a1ef636b"), crMask(maskDerive))}
		}, kmip14.ObjectTypeSecretData, kmip14.DerivationMethodNIST800_108_DPI,
			dvParams(crParams(crAlg(kmip14.CryptographicAlgorithmAES)),
				dvData(crHex(t, "daefcc52d6e32e1614109268933087fce3d64a5a6f111ba1a8d343a1e388a1752aaea93853be52864997a81c84b04c4f3ff3bd"))),
			512, "fc0eae673e7db3c4660668e187bcd81d5ca9b89213d8d741e71c9bab89bb4fb3c4df541d89a8117f0f56b0f15111ae28abf81fb7d7349fbbcaf01137e4d73527"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmpl := []*tree.Node{dvLength(c.bits)}
			if c.ot == kmip14.ObjectTypeSymmetricKey {
				tmpl = append(tmpl, dvAlg(kmip14.CryptographicAlgorithmAES))
			}
			uid := text(t, okPayload(t, e.do(alice, deriveItem(c.ot, c.base(), c.m, c.dp, tmpl...)), 0), kmip14.TagUniqueIdentifier)
			if got := e.material(alice, uid); !bytes.Equal(got, crHex(t, c.want)) {
				t.Errorf("derived %x\nwant     %s", got, c.want)
			}
			if l, ok := e.getAttrs(alice, uid, "Cryptographic Length")["Cryptographic Length"]; c.ot == kmip14.ObjectTypeSymmetricKey && (!ok || l[0].Int != int64(c.bits)) {
				t.Errorf("Cryptographic Length %v", l)
			}
		})
	}
}

// TestDeriveKeyRefusals: bad requests and unusable bases get the right
// Result Reason, and nothing is made.
func TestDeriveKeyRefusals(t *testing.T) {
	e := newEnv(t, Options{MaxDeriveIterations: 10_000, MaxDeriveBytes: 64})
	key := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16), crMask(maskDerive, kmip14.CryptographicUsageMaskEncrypt))
	noMask := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16), crMask(kmip14.CryptographicUsageMaskEncrypt))
	preActive := text(t, okPayload(t, e.do(alice, register(kmip14.ObjectTypeSymmetricKey,
		keyBody(kmip14.TagSymmetricKey, kmip14.KeyFormatTypeRaw, kmip14.CryptographicAlgorithmAES, 128, make([]byte, 16)), crMask(maskDerive))), 0), kmip14.TagUniqueIdentifier)
	stopped := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16), crMask(maskDerive),
		attrNode("Protect Stop Date", tree.Time(0, time.Now().Add(-time.Minute))))
	blowfish := e.crSym(alice, kmip14.CryptographicAlgorithmBlowfish, make([]byte, 16), crMask(maskDerive))
	password := e.regSecret(alice, kmip14.SecretDataTypePassword, []byte("password"), crMask(maskDerive), crActive())
	destroyed := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16), crMask(maskDerive))
	okPayload(t, e.do(alice, item(kmip14.OperationRevoke, uidF(destroyed),
		tree.Struct(kmip14.TagRevocationReason, tree.Enum(kmip14.TagRevocationReasonCode, uint32(kmip14.RevocationReasonCodeCessationOfOperation))))), 0)
	okPayload(t, e.do(alice, item(kmip14.OperationDestroy, uidF(destroyed))), 0)
	sha256 := crParams(crHash(kmip14.HashingAlgorithmSHA_256))
	aes128 := []*tree.Node{dvAlg(kmip14.CryptographicAlgorithmAES), dvLength(128)}
	sym := kmip14.ObjectTypeSymmetricKey
	pbkdf2 := func(iter int32, bits int32) *tree.Node {
		return deriveItem(sym, []string{password}, kmip14.DerivationMethodPBKDF2,
			dvParams(tree.Bytes(kmip14.TagSalt, []byte("salt")), tree.Int(kmip14.TagIterationCount, iter)), dvAlg(kmip14.CryptographicAlgorithmAES), dvLength(bits))
	}
	before := countObjects(t, e, alice)
	for _, c := range []struct {
		name string
		it   *tree.Node
		want kmip14.ResultReason
	}{
		{"no base", deriveItem(sym, nil, kmip14.DerivationMethodHASH, dvParams(sha256), aes128...), kmip14.ResultReasonInvalidMessage},
		{"three bases", deriveItem(sym, []string{key, key, key}, kmip14.DerivationMethodHASH, dvParams(sha256), aes128...), kmip14.ResultReasonInvalidField},
		{"makes a private key", deriveItem(kmip14.ObjectTypePrivateKey, []string{key}, kmip14.DerivationMethodHASH, dvParams(sha256), aes128...), kmip14.ResultReasonInvalidField},
		{"unknown method", deriveItem(sym, []string{key}, 0x42, dvParams(sha256), aes128...), kmip14.ResultReasonInvalidField},
		{"asymmetric method", deriveItem(sym, []string{key}, kmip14.DerivationMethodAsymmetricKey, dvParams(sha256), aes128...), kmip14.ResultReasonFeatureNotSupported},
		{"no parameters", item(kmip14.OperationDeriveKey, tree.Enum(kmip14.TagObjectType, uint32(sym)), uidF(key),
			tree.Enum(kmip14.TagDerivationMethod, uint32(kmip14.DerivationMethodHASH)), template(kmip14.TagTemplateAttribute, aes128...)), kmip14.ResultReasonInvalidMessage},
		{"no length", deriveItem(sym, []string{key}, kmip14.DerivationMethodHASH, dvParams(sha256), dvAlg(kmip14.CryptographicAlgorithmAES)), kmip14.ResultReasonInvalidField},
		{"odd length", deriveItem(sym, []string{key}, kmip14.DerivationMethodHASH, dvParams(sha256), dvAlg(kmip14.CryptographicAlgorithmAES), dvLength(127)), kmip14.ResultReasonInvalidField},
		{"over MaxDeriveBytes", pbkdf2(1, 8*65), kmip14.ResultReasonInvalidField},
		{"no algorithm", deriveItem(sym, []string{key}, kmip14.DerivationMethodHASH, dvParams(sha256), dvLength(128)), kmip14.ResultReasonInvalidField},
		{"no hash", deriveItem(sym, []string{key}, kmip14.DerivationMethodHASH, dvParams(), aes128...), kmip14.ResultReasonInvalidMessage},
		{"no Derive Key bit", deriveItem(sym, []string{noMask}, kmip14.DerivationMethodHASH, dvParams(sha256), aes128...), kmip14.ResultReasonPermissionDenied},
		{"Pre-Active base", deriveItem(sym, []string{preActive}, kmip14.DerivationMethodHASH, dvParams(sha256), aes128...), kmip14.ResultReasonPermissionDenied},
		{"past Protect Stop", deriveItem(sym, []string{stopped}, kmip14.DerivationMethodHASH, dvParams(sha256), aes128...), kmip14.ResultReasonPermissionDenied},
		{"destroyed base", deriveItem(sym, []string{destroyed}, kmip14.DerivationMethodHASH, dvParams(sha256), aes128...), kmip14.ResultReasonItemNotFound},
		// §4.6: a length beyond the method's output is an error, so HMAC
		// (one hash output) does not stretch into HKDF.
		{"HMAC too long", deriveItem(kmip14.ObjectTypeSecretData, []string{key}, kmip14.DerivationMethodHMAC,
			dvParams(crParams(crHash(kmip14.HashingAlgorithmSHA_1)), dvData([]byte{})), dvLength(336)), kmip14.ResultReasonInvalidField},
		{"HMAC with Salt", deriveItem(sym, []string{key}, kmip14.DerivationMethodHMAC,
			dvParams(sha256, dvData([]byte("d")), tree.Bytes(kmip14.TagSalt, []byte{})), aes128...), kmip14.ResultReasonInvalidField},
		{"PBKDF2 over the bound", pbkdf2(10_001, 128), kmip14.ResultReasonInvalidField},
		{"PBKDF2 blocks over the bound", pbkdf2(6_000, 8*21), kmip14.ResultReasonInvalidField},
		{"zero iterations", pbkdf2(0, 128), kmip14.ResultReasonInvalidField},
		{"Blowfish ENCRYPT", deriveItem(kmip14.ObjectTypeSecretData, []string{blowfish}, kmip14.DerivationMethodENCRYPT,
			dvParams(crParams(crAlg(kmip14.CryptographicAlgorithmBlowfish), crMode(kmip14.BlockCipherModeCBC)), tree.Bytes(kmip14.TagInitializationVector, make([]byte, 8)), dvData(make([]byte, 32))),
			dvLength(256)), kmip14.ResultReasonFeatureNotSupported},
		{"CBC without IV", deriveItem(kmip14.ObjectTypeSecretData, []string{key}, kmip14.DerivationMethodENCRYPT,
			dvParams(crParams(crMode(kmip14.BlockCipherModeCBC)), dvData(make([]byte, 32))), dvLength(256)), kmip14.ResultReasonInvalidMessage},
		{"repeated data", deriveItem(kmip14.ObjectTypeSecretData, []string{key}, kmip14.DerivationMethodHMAC,
			dvParams(sha256, dvData([]byte("a")), dvData([]byte("b"))), dvLength(128)), kmip14.ResultReasonFeatureNotSupported},
		{"second base not Secret Data", deriveItem(sym, []string{key, key}, kmip14.DerivationMethodHMAC, dvParams(sha256), aes128...), kmip14.ResultReasonInvalidField},
		{"data twice", deriveItem(sym, []string{key, password}, kmip14.DerivationMethodHMAC, dvParams(sha256, dvData([]byte("d"))), aes128...), kmip14.ResultReasonInvalidField},
		{"wrong field type", deriveItem(sym, []string{key}, kmip14.DerivationMethodHASH, dvParams(sha256, tree.Text(kmip14.TagDerivationData, "x")), aes128...), kmip14.ResultReasonInvalidField},
	} {
		t.Run(c.name, func(t *testing.T) {
			if m := wantFail(t, e.do(alice, c.it), 0, c.want); !strings.Contains(m, refusalWhy[c.name]) {
				t.Errorf("refused for %q, want %q", m, refusalWhy[c.name])
			}
		})
	}
	if n := countObjects(t, e, alice); n != before {
		t.Errorf("%d objects after refused derivations, %d before", n, before)
	}
	if l := e.linkMap(alice, key); len(l) != 0 {
		t.Errorf("refused derivations left links on the base: %v", l)
	}
}

// refusalWhy says which check each TestDeriveKeyRefusals case must reach.
var refusalWhy = map[string]string{
	"no base": "needs the Unique Identifier", "three bases": "at most 2", "makes a private key": "not PrivateKey",
	"unknown method": "unknown Derivation Method", "asymmetric method": "AsymmetricKey not supported",
	"no parameters": "missing Derivation Parameters", "no length": "Cryptographic Length is required",
	"odd length": "Cryptographic Length 127", "over MaxDeriveBytes": "up to 512 bits",
	"no algorithm": "Cryptographic Algorithm is required", "no hash": "Hashing Algorithm",
	"no Derive Key bit": "does not allow Derive Key", "Pre-Active base": "PreActive",
	"past Protect Stop": "Protect Stop Date", "destroyed base": "destroyed",
	"HMAC too long": "HMAC yields 20 bytes", "HMAC with Salt": "Salt and Iteration Count belong to PBKDF2",
	"PBKDF2 over the bound": "limit of 10000", "PBKDF2 blocks over the bound": "for 2 output blocks",
	"zero iterations": "Iteration Count", "Blowfish ENCRYPT": "Blowfish is not supported",
	"CBC without IV": "needs an Initialization Vector", "repeated data": "repeated Derivation Data",
	"second base not Secret Data": "must be Secret Data", "data twice": "given both",
	"wrong field type": "byte string",
}

// TestDeriveKeyOwnershipAndPlaceholder: another owner's base is Item Not
// Found; the ID Placeholder never stands for the base, and becomes the
// derived object's identifier.
func TestDeriveKeyOwnershipAndPlaceholder(t *testing.T) {
	e := newEnv(t, Options{})
	key := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16), crMask(maskDerive))
	sha := dvParams(crParams(crHash(kmip14.HashingAlgorithmSHA_256)))
	wantFail(t, e.do(bob, deriveItem(kmip14.ObjectTypeSecretData, []string{key}, kmip14.DerivationMethodHASH, sha, dvLength(128))), 0, kmip14.ResultReasonItemNotFound)
	// Get key sets the placeholder; Derive Key without a base is still refused.
	resp := e.do(alice, item(kmip14.OperationGet, uidF(key)),
		deriveItem(kmip14.ObjectTypeSecretData, nil, kmip14.DerivationMethodHASH, sha, dvLength(128)))
	wantFail(t, resp, 1, kmip14.ResultReasonInvalidMessage)
	resp = e.do(alice, deriveItem(kmip14.ObjectTypeSecretData, []string{key}, kmip14.DerivationMethodHASH, sha, dvLength(128)),
		item(kmip14.OperationGet))
	derived := text(t, okPayload(t, resp, 0), kmip14.TagUniqueIdentifier)
	if got := text(t, okPayload(t, resp, 1), kmip14.TagUniqueIdentifier); got != derived {
		t.Errorf("placeholder %s after Derive Key, want %s", got, derived)
	}
}

// TestDeriveKeyUndo: under Undo, a derivation in a failed batch leaves
// neither the new object nor the base's Derived Key Link behind.
func TestDeriveKeyUndo(t *testing.T) {
	e := newEnv(t, Options{})
	key := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16), crMask(maskDerive))
	before := countObjects(t, e, alice)
	resp := e.send(alice, undoMsg(e,
		deriveItem(kmip14.ObjectTypeSecretData, []string{key}, kmip14.DerivationMethodHASH, dvParams(crParams(crHash(kmip14.HashingAlgorithmSHA_256))), dvLength(128)),
		item(kmip14.OperationGet, uidF("no-such-object"))))
	if s, _ := batchItems(t, resp)[0].Child(kmip14.TagResultStatus).EnumValue(); s != uint32(kmip14.ResultStatusOperationUndone) {
		t.Fatalf("Derive Key answered %d, want Operation Undone", s)
	}
	if n := countObjects(t, e, alice); n != before {
		t.Errorf("%d objects after undo, %d before", n, before)
	}
	if l := e.linkMap(alice, key); len(l) != 0 {
		t.Errorf("undone derivation left links on the base: %v", l)
	}
}

// TestDeriveKeyUsageLimits: a derivation counts against the base's Usage
// Limits like any protecting use.
func TestDeriveKeyUsageLimits(t *testing.T) {
	e := newEnv(t, Options{})
	key := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16), crMask(maskDerive),
		attrNode("Usage Limits", tree.Struct(0, tree.Long(kmip14.TagUsageLimitsTotal, 1),
			tree.Enum(kmip14.TagUsageLimitsUnit, uint32(kmip14.UsageLimitsUnitObject)))))
	it := deriveItem(kmip14.ObjectTypeSecretData, []string{key}, kmip14.DerivationMethodHASH, dvParams(crParams(crHash(kmip14.HashingAlgorithmSHA_256))), dvLength(128))
	okPayload(t, e.do(alice, it), 0)
	wantFail(t, e.do(alice, it), 0, kmip14.ResultReasonPermissionDenied)
}

// Steady state, Derive Key makes no PKCS#11 call.
func TestDeriveKeyMakesNoHSMCalls(t *testing.T) {
	e := newRealEnv(t, Options{})
	h := sharedHSM(t)
	key := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16), crMask(maskDerive))
	it := deriveItem(kmip14.ObjectTypeSymmetricKey, []string{key}, kmip14.DerivationMethodHASH,
		dvParams(crParams(crHash(kmip14.HashingAlgorithmSHA_256))), dvAlg(kmip14.CryptographicAlgorithmAES), dvLength(128))
	okPayload(t, e.do(alice, it), 0)
	before := h.Stats().Calls
	for range 10 {
		okPayload(t, e.do(alice, it), 0)
	}
	if after := h.Stats().Calls; after != before {
		t.Fatalf("%d PKCS#11 calls during steady-state Derive Key", after-before)
	}
}
