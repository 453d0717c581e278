package kmipops

import (
	"crypto/ecdsa"
	"crypto/x509"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

func rekeyPair(fields ...*tree.Node) *tree.Node { return item(kmip14.OperationReKeyKeyPair, fields...) }

func privF(uid string) *tree.Node { return tree.Text(kmip14.TagPrivateKeyUniqueIdentifier, uid) }

// createECPair makes a P-256 key pair on the server (private first).
func (e *env) createECPair(c Caller, privAttrs, pubAttrs []*tree.Node) (priv, pub string) {
	e.t.Helper()
	p := okPayload(e.t, e.do(c, item(kmip14.OperationCreateKeyPair,
		template(kmip14.TagCommonTemplateAttribute,
			attrNode("Cryptographic Algorithm", tree.Enum(0, uint32(kmip14.CryptographicAlgorithmECDSA))),
			attrNode("Cryptographic Length", tree.Int(0, 256))),
		template(kmip14.TagPrivateKeyTemplateAttribute, privAttrs...),
		template(kmip14.TagPublicKeyTemplateAttribute, pubAttrs...))), 0)
	return text(e.t, p, kmip14.TagPrivateKeyUniqueIdentifier), text(e.t, p, kmip14.TagPublicKeyUniqueIdentifier)
}

// ecKeys reads a server-made EC key pair back (PKCS#8 and X.509).
func (e *env) ecKeys(c Caller, priv, pub string) (*ecdsa.PrivateKey, *ecdsa.PublicKey) {
	e.t.Helper()
	get := func(uid string) []byte {
		p := okPayload(e.t, e.do(c, item(kmip14.OperationGet, uidF(uid))), 0)
		for _, ch := range p.Children {
			if kb := ch.Child(kmip14.TagKeyBlock); kb != nil {
				return crBytes(e.t, kb.Child(kmip14.TagKeyValue), kmip14.TagKeyMaterial)
			}
		}
		e.t.Fatalf("no key block in %s", p)
		return nil
	}
	k, err := x509.ParsePKCS8PrivateKey(get(priv))
	if err != nil {
		e.t.Fatal(err)
	}
	pk, err := x509.ParsePKIXPublicKey(get(pub))
	if err != nil {
		e.t.Fatal(err)
	}
	return k.(*ecdsa.PrivateKey), pk.(*ecdsa.PublicKey)
}

// TestReKeyKeyPair: a new key pair replaces both halves, each taking its
// predecessor's names and attributes; the links are those of OASIS
// TC-133: each new key to its partner first, then to the key it replaces.
func TestReKeyKeyPair(t *testing.T) {
	e := newEnv(t, Options{})
	priv, pub := e.createECPair(alice,
		[]*tree.Node{nameAttr("signer"), attrNode("x-tier", tree.Text(0, "gold")), crMask(kmip14.CryptographicUsageMaskSign)},
		[]*tree.Node{nameAttr("verifier"), crMask(kmip14.CryptographicUsageMaskVerify)})
	oldK, _ := e.ecKeys(alice, priv, pub)
	// Created and re-keyed in one batch, through the ID Placeholder.
	resp := e.do(alice, rekeyPair(template(kmip14.TagPrivateKeyTemplateAttribute, nameAttr("signer-2"))),
		item(kmip14.OperationGetAttributes, tree.Text(kmip14.TagAttributeName, "Name")))
	wantFail(t, resp, 0, kmip14.ResultReasonMissingData) // no placeholder yet
	resp = e.do(alice, item(kmip14.OperationGetAttributes, uidF(priv)),
		rekeyPair(template(kmip14.TagPrivateKeyTemplateAttribute, nameAttr("signer-2"))),
		item(kmip14.OperationGetAttributes, tree.Text(kmip14.TagAttributeName, "Name")))
	p := okPayload(t, resp, 1)
	np, nq := text(t, p, kmip14.TagPrivateKeyUniqueIdentifier), text(t, p, kmip14.TagPublicKeyUniqueIdentifier)
	if text(t, okPayload(t, resp, 2), kmip14.TagUniqueIdentifier) != np {
		t.Error("the ID Placeholder is not the new private key")
	}
	for _, c := range []struct {
		uid   string
		types []kmip14.LinkType
		to    []string
		names []string
	}{
		{np, []kmip14.LinkType{kmip14.LinkTypePublicKeyLink, kmip14.LinkTypeReplacedObjectLink}, []string{nq, priv}, []string{"signer", "signer-2"}},
		{nq, []kmip14.LinkType{kmip14.LinkTypePrivateKeyLink, kmip14.LinkTypeReplacedObjectLink}, []string{np, pub}, []string{"verifier"}},
		{priv, []kmip14.LinkType{kmip14.LinkTypePublicKeyLink, kmip14.LinkTypeReplacementObjectLink}, []string{pub, np}, nil},
		{pub, []kmip14.LinkType{kmip14.LinkTypePrivateKeyLink, kmip14.LinkTypeReplacementObjectLink}, []string{priv, nq}, nil},
	} {
		ty, to := e.linkList(alice, c.uid)
		if len(ty) != len(c.types) || ty[0] != c.types[0] || ty[1] != c.types[1] || !equalStrings(to, c.to) {
			t.Errorf("%s links %v %v, want %v %v", c.uid, ty, to, c.types, c.to)
		}
		if n := e.names(alice, c.uid); !equalStrings(n, c.names) {
			t.Errorf("%s names %v, want %v", c.uid, n, c.names)
		}
	}
	a := e.getAttrs(alice, np)
	if a["x-tier"] == nil || a["Cryptographic Usage Mask"][0].Int != int64(kmip14.CryptographicUsageMaskSign) ||
		kmip14.CryptographicAlgorithm(a["Cryptographic Algorithm"][0].Int) != kmip14.CryptographicAlgorithmECDSA {
		t.Errorf("new private key attributes %v", a)
	}
	// The new halves are one key pair, and a new one.
	k, pk := e.ecKeys(alice, np, nq)
	if !k.PublicKey.Equal(pk) || k.Equal(oldK) {
		t.Error("the replacement halves do not match, or repeat the old pair")
	}
}

// TestReKeyKeyPairRefusals: the pair must be the caller's, start from a
// private key that links to its public key, and change whole or not at
// all.
func TestReKeyKeyPairRefusals(t *testing.T) {
	e := newEnv(t, Options{})
	priv, pub := e.createECPair(alice, []*tree.Node{nameAttr("p")}, nil)
	m1 := wantFail(t, e.do(bob, rekeyPair(privF(priv))), 0, kmip14.ResultReasonItemNotFound)
	m2 := wantFail(t, e.do(bob, rekeyPair(privF("00000000-0000-4000-8000-000000000000"))), 0, kmip14.ResultReasonItemNotFound)
	if m1 != m2 {
		t.Errorf("another owner's key answers %q, a missing one %q", m1, m2)
	}
	wantFail(t, e.do(alice, rekeyPair(privF(pub))), 0, kmip14.ResultReasonIllegalOperation)
	wantFail(t, e.do(alice, rekeyPair(tree.Int(kmip14.TagPrivateKeyUniqueIdentifier, 1))), 0, kmip14.ResultReasonInvalidField)
	lone, _ := e.crECPair(alice, nil, nil) // registered: no Public Key Link
	wantFail(t, e.do(alice, rekeyPair(privF(lone))), 0, kmip14.ResultReasonIllegalOperation)
	wantFail(t, e.do(alice, rekeyPair(privF(priv), template(kmip14.TagPublicKeyTemplateAttribute,
		attrNode("Cryptographic Length", tree.Int(0, 384))))), 0, kmip14.ResultReasonIllegalOperation)
	// The public half archived: nothing is made, nothing changes.
	before := countObjects(t, e, alice)
	okPayload(t, e.do(alice, item(kmip14.OperationArchive, uidF(pub))), 0)
	wantFail(t, e.do(alice, rekeyPair(privF(priv))), 0, kmip14.ResultReasonObjectArchived)
	okPayload(t, e.do(alice, item(kmip14.OperationRecover, uidF(pub))), 0)
	if n := countObjects(t, e, alice); n != before {
		t.Errorf("%d objects after a refused Re-key Key Pair, %d before", n, before)
	}
	// Undone with its batch, both halves are as they were.
	resp := e.send(alice, undoMsg(e, rekeyPair(privF(priv)), item(kmip14.OperationGet, uidF("no-such-object"))))
	if s, _ := batchItems(t, resp)[0].Child(kmip14.TagResultStatus).EnumValue(); s != uint32(kmip14.ResultStatusOperationUndone) {
		t.Fatalf("answered %s under Undo", batchItems(t, resp)[0])
	}
	if n := countObjects(t, e, alice); n != before {
		t.Errorf("%d objects after the undo, %d before", n, before)
	}
	for _, uid := range []string{priv, pub} {
		if ty, _ := e.linkList(alice, uid); len(ty) != 1 {
			t.Errorf("%s links %v after the undo", uid, ty)
		}
	}
	if n := e.names(alice, priv); !equalStrings(n, []string{"p"}) {
		t.Errorf("names %v after the undo", n)
	}
}

// Re-key Key Pair came with KMIP 1.1: Query does not offer it to 1.0.
func TestQueryOffersReKeyKeyPairFrom11(t *testing.T) {
	e := newEnv(t, Options{})
	for minor, want := range map[int32]bool{0: false, 1: true, 4: true} {
		e.v = version{1, minor}
		p := okPayload(t, e.do(alice, item(kmip14.OperationQuery, tree.Enum(kmip14.TagQueryFunction, uint32(kmip14.QueryFunctionQueryOperations)))), 0)
		got := map[kmip14.Operation]bool{}
		for _, n := range p.All(kmip14.TagOperation) {
			got[kmip14.Operation(n.Int)] = true
		}
		if got[kmip14.OperationReKeyKeyPair] != want || !got[kmip14.OperationReKey] || !got[kmip14.OperationCheck] ||
			!got[kmip14.OperationGetUsageAllocation] || !got[kmip14.OperationArchive] || !got[kmip14.OperationRecover] {
			t.Errorf("1.%d Query lists %v", minor, got)
		}
	}
}
