package kmipops

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

func TestQuery(t *testing.T) {
	e := newEnv(t, Options{Issuer: testIssuer(t)}) // with a CA, every operation is offered (TestCertifyNotOffered)
	p := okPayload(t, e.do(alice, item(kmip14.OperationQuery,
		tree.Enum(kmip14.TagQueryFunction, uint32(kmip14.QueryFunctionQueryOperations)),
		tree.Enum(kmip14.TagQueryFunction, uint32(kmip14.QueryFunctionQueryObjects)),
		tree.Enum(kmip14.TagQueryFunction, uint32(kmip14.QueryFunctionQueryServerInformation)),
	)), 0)
	ops := map[kmip14.Operation]bool{}
	for _, n := range p.All(kmip14.TagOperation) {
		ops[kmip14.Operation(n.Int)] = true
	}
	for op := range operations {
		if !ops[op] {
			t.Errorf("Query does not list %s", op)
		}
	}
	if len(ops) != len(operations) {
		t.Errorf("Query lists %d operations, %d supported", len(ops), len(operations))
	}
	if len(p.All(kmip14.TagObjectType)) != len(registrableTypes) {
		t.Errorf("object types: %d", len(p.All(kmip14.TagObjectType)))
	}
	if text(t, p, kmip14.TagVendorIdentification) != "kmipd" {
		t.Error("vendor")
	}
	// A 1.0 client is not offered DiscoverVersions (a 1.1 operation).
	e.v = version{1, 0}
	p = okPayload(t, e.do(alice, item(kmip14.OperationQuery,
		tree.Enum(kmip14.TagQueryFunction, uint32(kmip14.QueryFunctionQueryOperations)))), 0)
	for _, n := range p.All(kmip14.TagOperation) {
		if kmip14.Operation(n.Int) == kmip14.OperationDiscoverVersions {
			t.Error("1.0 client offered DiscoverVersions")
		}
	}
	// Wrong type of Query Function.
	wantFail(t, e.do(alice, item(kmip14.OperationQuery, tree.Int(kmip14.TagQueryFunction, 1))), 0, kmip14.ResultReasonInvalidField)
}

func versionsOf(p *tree.Node) []version {
	var out []version
	for _, n := range p.All(kmip14.TagProtocolVersion) {
		v, _ := parseVersion(n)
		out = append(out, v)
	}
	return out
}

func TestDiscoverVersions(t *testing.T) {
	e := newEnv(t, Options{})
	pv := func(maj, min int32) *tree.Node {
		return tree.Struct(kmip14.TagProtocolVersion, tree.Int(kmip14.TagProtocolVersionMajor, maj), tree.Int(kmip14.TagProtocolVersionMinor, min))
	}
	got := versionsOf(okPayload(t, e.do(alice, item(kmip14.OperationDiscoverVersions)), 0))
	want := []version{{1, 4}, {1, 3}, {1, 2}, {1, 1}, {1, 0}}
	if len(got) != len(want) {
		t.Fatalf("all versions: %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("all versions: %v", got)
		}
	}
	// Intersection in the client's order.
	got = versionsOf(okPayload(t, e.do(alice, item(kmip14.OperationDiscoverVersions,
		pv(2, 0), pv(1, 1), pv(1, 3), pv(1, 5))), 0))
	if len(got) != 2 || got[0] != (version{1, 1}) || got[1] != (version{1, 3}) {
		t.Fatalf("intersection: %v", got)
	}
	got = versionsOf(okPayload(t, e.do(alice, item(kmip14.OperationDiscoverVersions, pv(2, 0))), 0))
	if len(got) != 0 {
		t.Fatalf("no common version: %v", got)
	}
}

func TestProtocolVersions(t *testing.T) {
	e := newEnv(t, Options{})
	for minor := int32(0); minor <= 4; minor++ {
		e.v = version{1, minor}
		resp := e.do(alice, item(kmip14.OperationQuery))
		okPayload(t, resp, 0)
		got, _ := parseVersion(resp.Path(kmip14.TagResponseHeader, kmip14.TagProtocolVersion))
		if got != e.v {
			t.Errorf("request %s answered in %s", e.v, got)
		}
	}
	for _, c := range []struct{ req, answer version }{{version{2, 0}, version{1, 4}}, {version{1, 5}, version{1, 4}}, {version{0, 9}, version{1, 0}}} {
		e.v = c.req
		resp := e.do(alice, item(kmip14.OperationQuery))
		msg := wantFail(t, resp, 0, kmip14.ResultReasonInvalidMessage)
		if want := "protocol version " + c.req.String() + " not supported"; msg != want {
			t.Errorf("message %q, want %q", msg, want)
		}
		got, _ := parseVersion(resp.Path(kmip14.TagResponseHeader, kmip14.TagProtocolVersion))
		if got != c.answer {
			t.Errorf("%s refused in %s, want %s", c.req, got, c.answer)
		}
	}
}

// TestSymmetricLifecycle follows OASIS SKLC-M-1/2/3 and SKLC-O-1.
func TestSymmetricLifecycle(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1700000000, 0).UTC()}
	e := newEnv(t, Options{Now: clock.Now})
	resp := e.do(alice, createAES(256, nameAttr("SKLC-M-1-14")))
	p := okPayload(t, resp, 0)
	if ot, _ := p.Child(kmip14.TagObjectType).EnumValue(); ot != uint32(kmip14.ObjectTypeSymmetricKey) || len(p.Children) != 2 {
		t.Fatalf("Create payload %s", p)
	}
	uid := text(t, p, kmip14.TagUniqueIdentifier)

	names := []string{"State", "Cryptographic Usage Mask", "Unique Identifier", "Object Type", "Cryptographic Algorithm",
		"Cryptographic Length", "Digest", "Initial Date", "Last Change Date", "Activation Date"}
	f := []*tree.Node{uidF(uid)}
	for _, n := range names {
		f = append(f, tree.Text(kmip14.TagAttributeName, n))
	}
	p = okPayload(t, e.do(alice, item(kmip14.OperationGetAttributes, f...)), 0)
	var got []string
	for _, a := range p.All(kmip14.TagAttribute) {
		n, _ := a.Child(kmip14.TagAttributeName).TextValue()
		got = append(got, n)
	}
	if want := names[:9]; len(got) != len(want) {
		t.Fatalf("GetAttributes names %v, want %v", got, want)
	} else {
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("GetAttributes names %v, want %v", got, want)
			}
		}
	}
	a := e.getAttrs(alice, uid)
	if kmip14.State(a["State"][0].Int) != kmip14.StatePreActive ||
		a["Cryptographic Usage Mask"][0].Int != int64(kmip14.CryptographicUsageMaskEncrypt|kmip14.CryptographicUsageMaskDecrypt) ||
		a["Cryptographic Length"][0].Int != 256 || a["Unique Identifier"][0].Text != uid {
		t.Fatalf("attributes %v", a)
	}
	if !a["Initial Date"][0].Time.Equal(clock.Now()) {
		t.Fatalf("Initial Date %v", a["Initial Date"][0].Time)
	}
	if fr, _ := a["Fresh"][0].BoolValue(); !fr {
		t.Fatal("new key not Fresh")
	}
	// Digest is SHA-256 of the Raw key material.
	g := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0)
	mat := g.Path(kmip14.TagSymmetricKey, kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial).Bytes
	sum := sha256.Sum256(mat)
	d := a["Digest"][0]
	if len(mat) != 32 || !bytes.Equal(d.Child(kmip14.TagDigestValue).Bytes, sum[:]) ||
		kmip14.KeyFormatType(d.Child(kmip14.TagKeyFormatType).Int) != kmip14.KeyFormatTypeRaw {
		t.Fatalf("digest %s", d)
	}
	if fr, _ := e.getAttrs(alice, uid, "Fresh")["Fresh"][0].BoolValue(); fr {
		t.Fatal("still Fresh after Get")
	}

	clock.Add(time.Minute)
	okPayload(t, e.do(alice, item(kmip14.OperationActivate, uidF(uid))), 0)
	a = e.getAttrs(alice, uid, "State", "Activation Date", "Deactivation Date")
	if kmip14.State(a["State"][0].Int) != kmip14.StateActive || !a["Activation Date"][0].Time.Equal(clock.Now()) || a["Deactivation Date"] != nil {
		t.Fatalf("after Activate: %v", a)
	}
	wantFail(t, e.do(alice, item(kmip14.OperationActivate, uidF(uid))), 0, kmip14.ResultReasonPermissionDenied)
	wantFail(t, e.do(alice, item(kmip14.OperationDestroy, uidF(uid))), 0, kmip14.ResultReasonPermissionDenied)
	wantFail(t, e.do(alice, item(kmip14.OperationModifyAttribute, uidF(uid),
		attrNode("Activation Date", tree.Time(0, clock.Now())))), 0, kmip14.ResultReasonPermissionDenied)

	okPayload(t, e.do(alice, item(kmip14.OperationRevoke, uidF(uid),
		tree.Struct(kmip14.TagRevocationReason, tree.Enum(kmip14.TagRevocationReasonCode, uint32(kmip14.RevocationReasonCodeKeyCompromise))),
		tree.Time(kmip14.TagCompromiseOccurrenceDate, time.Unix(6, 0)))), 0)
	if s := e.state(alice, uid); s != kmip14.StateCompromised {
		t.Fatalf("after Revoke: %s", s)
	}
	okPayload(t, e.do(alice, item(kmip14.OperationDestroy, uidF(uid))), 0)
	a = e.getAttrs(alice, uid)
	if kmip14.State(a["State"][0].Int) != kmip14.StateDestroyedCompromised || a["Destroy Date"] == nil || a["Name"][0].Child(kmip14.TagNameValue).Text != "SKLC-M-1-14" {
		t.Fatalf("after Destroy: %v", a)
	}
	wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0, kmip14.ResultReasonItemNotFound)
	wantFail(t, e.do(alice, item(kmip14.OperationDestroy, uidF(uid))), 0, kmip14.ResultReasonItemNotFound)

	// SKLC-O-1: PreActive Destroy is allowed; attributes stay readable.
	uid2 := e.create(alice)
	okPayload(t, e.do(alice, item(kmip14.OperationDestroy, uidF(uid2))), 0)
	if s := e.state(alice, uid2); s != kmip14.StateDestroyed {
		t.Fatalf("destroyed PreActive key: %s", s)
	}
}

func TestCreateSymmetricVariants(t *testing.T) {
	e := newEnv(t, Options{})
	alg := func(a kmip14.CryptographicAlgorithm) *tree.Node {
		return attrNode("Cryptographic Algorithm", tree.Enum(0, uint32(a)))
	}
	length := func(l int32) *tree.Node { return attrNode("Cryptographic Length", tree.Int(0, l)) }
	create := func(attrs ...*tree.Node) *tree.Node {
		return e.do(alice, item(kmip14.OperationCreate,
			tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)),
			template(kmip14.TagTemplateAttribute, attrs...)))
	}
	for _, c := range []struct {
		attrs []*tree.Node
		bytes int
		mask  uint32
	}{
		{[]*tree.Node{alg(kmip14.CryptographicAlgorithmAES)}, 32, maskEncDec},
		{[]*tree.Node{alg(kmip14.CryptographicAlgorithmAES), length(128)}, 16, maskEncDec},
		{[]*tree.Node{alg(kmip14.CryptographicAlgorithmAES), length(192)}, 24, maskEncDec},
		{[]*tree.Node{alg(kmip14.CryptographicAlgorithmHMAC_SHA256)}, 32, maskMAC},
		{[]*tree.Node{alg(kmip14.CryptographicAlgorithmHMAC_SHA512), length(4096)}, 512, maskMAC},
		{[]*tree.Node{alg(kmip14.CryptographicAlgorithmHMAC_SHA1), length(136)}, 17, maskMAC},
		{[]*tree.Node{alg(kmip14.CryptographicAlgorithmDES3), length(168)}, 24, maskEncDec},
	} {
		uid := text(t, okPayload(t, create(c.attrs...), 0), kmip14.TagUniqueIdentifier)
		g := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0)
		kb := g.Path(kmip14.TagSymmetricKey, kmip14.TagKeyBlock)
		if n := len(kb.Path(kmip14.TagKeyValue, kmip14.TagKeyMaterial).Bytes); n != c.bytes {
			t.Errorf("%v: %d bytes, want %d", c.attrs[0], n, c.bytes)
		}
		if m := e.getAttrs(alice, uid, "Cryptographic Usage Mask")["Cryptographic Usage Mask"][0].Int; uint32(m) != c.mask {
			t.Errorf("mask %#x, want %#x", m, c.mask)
		}
		if kb.Child(kmip14.TagCryptographicAlgorithm) == nil || kb.Child(kmip14.TagCryptographicLength) == nil {
			t.Errorf("key block lacks algorithm/length")
		}
	}
	for name, c := range map[string][]*tree.Node{
		"no algorithm":   {length(256)},
		"AES 100":        {alg(kmip14.CryptographicAlgorithmAES), length(100)},
		"3DES no length": {alg(kmip14.CryptographicAlgorithmDES3)},
		"HMAC 100 bits":  {alg(kmip14.CryptographicAlgorithmHMAC_SHA256), length(100)},
		"RSA":            {alg(kmip14.CryptographicAlgorithmRSA), length(2048)},
		"length as text": {alg(kmip14.CryptographicAlgorithmAES), attrNode("Cryptographic Length", tree.Text(0, "256"))},
		"server attr":    {alg(kmip14.CryptographicAlgorithmAES), attrNode("State", tree.Enum(0, 2))},
		"bad name":       {alg(kmip14.CryptographicAlgorithmAES), attrNode("Name", tree.Text(0, "x"))},
		"twice":          {alg(kmip14.CryptographicAlgorithmAES), alg(kmip14.CryptographicAlgorithmAES)},
	} {
		t.Run(name, func(t *testing.T) { wantFail(t, create(c...), 0, kmip14.ResultReasonInvalidField) })
	}
	wantFail(t, e.do(alice, item(kmip14.OperationCreate,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypePrivateKey)))), 0, kmip14.ResultReasonInvalidField)
	wantFail(t, e.do(alice, item(kmip14.OperationCreate)), 0, kmip14.ResultReasonInvalidMessage)

	// An Activation Date in the past makes the new key Active at once.
	uid := e.create(alice, attrNode("Activation Date", tree.Time(0, time.Now().Add(-time.Hour))))
	if s := e.state(alice, uid); s != kmip14.StateActive {
		t.Fatalf("state %s", s)
	}
}

// TestCreateKeyPairBarbican is what Barbican's kmip_plugin sends: algorithm
// and length only, no usage masks (PyKMIP's own server refuses this).
func TestCreateKeyPairBarbican(t *testing.T) {
	e := newEnv(t, Options{})
	resp := e.do(alice, item(kmip14.OperationCreateKeyPair,
		template(kmip14.TagCommonTemplateAttribute,
			attrNode("Cryptographic Algorithm", tree.Enum(0, uint32(kmip14.CryptographicAlgorithmRSA))),
			attrNode("Cryptographic Length", tree.Int(0, 2048)))))
	p := okPayload(t, resp, 0)
	priv, pub := text(t, p, kmip14.TagPrivateKeyUniqueIdentifier), text(t, p, kmip14.TagPublicKeyUniqueIdentifier)
	pa, pu := e.getAttrs(alice, priv), e.getAttrs(alice, pub)
	if uint32(pa["Cryptographic Usage Mask"][0].Int) != maskRSAPriv || uint32(pu["Cryptographic Usage Mask"][0].Int) != maskRSAPub {
		t.Fatalf("masks %v %v", pa["Cryptographic Usage Mask"], pu["Cryptographic Usage Mask"])
	}
	if l := pa["Link"][0]; kmip14.LinkType(l.Child(kmip14.TagLinkType).Int) != kmip14.LinkTypePublicKeyLink || l.Child(kmip14.TagLinkedObjectIdentifier).Text != pub {
		t.Fatalf("private link %s", l)
	}
	if l := pu["Link"][0]; kmip14.LinkType(l.Child(kmip14.TagLinkType).Int) != kmip14.LinkTypePrivateKeyLink || l.Child(kmip14.TagLinkedObjectIdentifier).Text != priv {
		t.Fatalf("public link %s", l)
	}
	if kmip14.ObjectType(pa["Object Type"][0].Int) != kmip14.ObjectTypePrivateKey || kmip14.State(pu["State"][0].Int) != kmip14.StatePreActive {
		t.Fatal("types/states")
	}
	// Stored as PKCS#1 (AKLC test cases); convertible to PKCS#8 and X.509.
	getKey := func(uid string, f kmip14.KeyFormatType) (kmip14.KeyFormatType, []byte) {
		fields := []*tree.Node{uidF(uid)}
		if f != 0 {
			fields = append(fields, tree.Enum(kmip14.TagKeyFormatType, uint32(f)))
		}
		g := okPayload(t, e.do(alice, item(kmip14.OperationGet, fields...)), 0)
		kb := g.Children[2].Child(kmip14.TagKeyBlock)
		return kmip14.KeyFormatType(kb.Child(kmip14.TagKeyFormatType).Int), kb.Path(kmip14.TagKeyValue, kmip14.TagKeyMaterial).Bytes
	}
	f, der := getKey(priv, 0)
	if f != kmip14.KeyFormatTypePKCS_1 {
		t.Fatalf("private format %s", f)
	}
	k1, err := x509.ParsePKCS1PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	_, der8 := getKey(priv, kmip14.KeyFormatTypePKCS_8)
	k8, err := x509.ParsePKCS8PrivateKey(der8)
	if err != nil || !k1.Equal(k8) {
		t.Fatalf("PKCS#8: %v", err)
	}
	f, pder := getKey(pub, 0)
	if f != kmip14.KeyFormatTypePKCS_1 {
		t.Fatalf("public format %s", f)
	}
	if pk, err := x509.ParsePKCS1PublicKey(pder); err != nil || !pk.Equal(&k1.PublicKey) {
		t.Fatalf("public key does not match: %v", err)
	}
	_, spki := getKey(pub, kmip14.KeyFormatTypeX_509)
	if pk, err := x509.ParsePKIXPublicKey(spki); err != nil || !pk.(*rsa.PublicKey).Equal(&k1.PublicKey) {
		t.Fatalf("SPKI: %v", err)
	}
	wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(priv), tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeECPrivateKey)))), 0, kmip14.ResultReasonKeyFormatTypeNotSupported)
	// Both PreActive: Barbican's delete_secret destroys them.
	okPayload(t, e.do(alice, item(kmip14.OperationDestroy, uidF(priv))), 0)
	okPayload(t, e.do(alice, item(kmip14.OperationDestroy, uidF(pub))), 0)
}

func TestCreateKeyPairVariants(t *testing.T) {
	e := newEnv(t, Options{})
	algA := func(a kmip14.CryptographicAlgorithm) *tree.Node {
		return attrNode("Cryptographic Algorithm", tree.Enum(0, uint32(a)))
	}
	lenA := func(l int32) *tree.Node { return attrNode("Cryptographic Length", tree.Int(0, l)) }
	mask := func(m kmip14.CryptographicUsageMask) *tree.Node {
		return attrNode("Cryptographic Usage Mask", tree.Int(0, int32(m)))
	}
	// AKLC-M-1 shape: per-key names and masks.
	p := okPayload(t, e.do(alice, item(kmip14.OperationCreateKeyPair,
		template(kmip14.TagCommonTemplateAttribute, algA(kmip14.CryptographicAlgorithmRSA), lenA(1024)),
		template(kmip14.TagPrivateKeyTemplateAttribute, nameAttr("priv"), mask(kmip14.CryptographicUsageMaskSign)),
		template(kmip14.TagPublicKeyTemplateAttribute, nameAttr("pub"), mask(kmip14.CryptographicUsageMaskVerify)))), 0)
	priv := text(t, p, kmip14.TagPrivateKeyUniqueIdentifier)
	a := e.getAttrs(alice, priv, "Cryptographic Usage Mask", "Name", "Digest", "Cryptographic Length")
	if a["Cryptographic Usage Mask"][0].Int != int64(kmip14.CryptographicUsageMaskSign) || a["Name"][0].Child(kmip14.TagNameValue).Text != "priv" ||
		a["Cryptographic Length"][0].Int != 1024 || kmip14.KeyFormatType(a["Digest"][0].Child(kmip14.TagKeyFormatType).Int) != kmip14.KeyFormatTypePKCS_1 {
		t.Fatalf("AKLC attributes %v", a)
	}
	// EC P-256 by length, P-384 by Recommended Curve.
	for _, c := range []struct {
		attrs []*tree.Node
		bits  int
	}{
		{[]*tree.Node{algA(kmip14.CryptographicAlgorithmEC), lenA(256)}, 256},
		{[]*tree.Node{algA(kmip14.CryptographicAlgorithmECDSA), attrNode("Cryptographic Domain Parameters",
			tree.Struct(0, tree.Enum(kmip14.TagRecommendedCurve, uint32(kmip14.RecommendedCurveP_384))))}, 384},
	} {
		p := okPayload(t, e.do(alice, item(kmip14.OperationCreateKeyPair, template(kmip14.TagCommonTemplateAttribute, c.attrs...))), 0)
		g := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(text(t, p, kmip14.TagPrivateKeyUniqueIdentifier)),
			tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeECPrivateKey)))), 0)
		der := g.Path(kmip14.TagPrivateKey, kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial).Bytes
		k, err := x509.ParseECPrivateKey(der)
		if err != nil || k.Curve.Params().BitSize != c.bits {
			t.Fatalf("EC key: %v", err)
		}
		g = okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(text(t, p, kmip14.TagPublicKeyUniqueIdentifier)))), 0)
		if _, err := x509.ParsePKIXPublicKey(g.Path(kmip14.TagPublicKey, kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial).Bytes); err != nil {
			t.Fatal(err)
		}
	}
	for name, c := range map[string][]*tree.Node{
		"no algorithm": {template(kmip14.TagCommonTemplateAttribute, lenA(2048))},
		"no length":    {template(kmip14.TagCommonTemplateAttribute, algA(kmip14.CryptographicAlgorithmRSA))},
		"RSA 512":      {template(kmip14.TagCommonTemplateAttribute, algA(kmip14.CryptographicAlgorithmRSA), lenA(512))},
		"AES":          {template(kmip14.TagCommonTemplateAttribute, algA(kmip14.CryptographicAlgorithmAES), lenA(256))},
		"EC 200":       {template(kmip14.TagCommonTemplateAttribute, algA(kmip14.CryptographicAlgorithmEC), lenA(200))},
		"mixed algs": {template(kmip14.TagPrivateKeyTemplateAttribute, algA(kmip14.CryptographicAlgorithmRSA), lenA(2048)),
			template(kmip14.TagPublicKeyTemplateAttribute, algA(kmip14.CryptographicAlgorithmEC), lenA(2048))},
	} {
		t.Run(name, func(t *testing.T) {
			wantFail(t, e.do(alice, item(kmip14.OperationCreateKeyPair, c...)), 0, kmip14.ResultReasonInvalidField)
		})
	}
}
