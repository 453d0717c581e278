package kmipops

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

func recertifyItem(uid string, csr []byte, extra ...*tree.Node) *tree.Node {
	it := certifyItem(uid, csr)
	it.Child(kmip14.TagOperation).Int = int64(kmip14.OperationReCertify)
	p := it.Child(kmip14.TagRequestPayload)
	for _, x := range extra {
		if x.Tag == kmip14.TagAttribute {
			tp := p.Child(kmip14.TagTemplateAttribute)
			if tp == nil {
				tp = template(kmip14.TagTemplateAttribute)
				p.Add(tp)
			}
			tp.Add(x)
		} else {
			p.Add(x)
		}
	}
	return it
}

func (e *env) names(c Caller, uid string) []string {
	e.t.Helper()
	var out []string
	for _, v := range e.getAttrs(c, uid, "Name")["Name"] {
		out = append(out, v.Child(kmip14.TagNameValue).Text)
	}
	return out
}

// The OASIS TC-134 sequence: register a key, certify it, re-certify the
// certificate; then the links of all three objects and the names are those
// the case expects.
func TestReCertifyLinksAndNames(t *testing.T) {
	e, iss := certifyEnv(t)
	csr := oasisCSR(t)
	req, _ := x509.ParseCertificateRequest(csr)
	pub := e.registerPub(alice, req.PublicKey, maskAttr(kmip14.CryptographicUsageMaskVerify))
	priv := e.create(alice) // stands for the private key: only its uid is linked
	okPayload(t, e.do(alice, item(kmip14.OperationAddAttribute, uidF(pub), attrNode("Link", tree.Struct(0,
		tree.Enum(kmip14.TagLinkType, uint32(kmip14.LinkTypePrivateKeyLink)), tree.Text(kmip14.TagLinkedObjectIdentifier, priv))))), 0)
	mask := maskAttr(kmip14.CryptographicUsageMaskVerify, kmip14.CryptographicUsageMaskSign)
	old := text(t, okPayload(t, e.do(alice, certifyItem(pub, csr, mask, nameAttr("certificate1"), attrNode("x-team", tree.Text(0, "ops")))), 0), kmip14.TagUniqueIdentifier)
	oldX := e.issued(alice, old, iss)

	resp := e.do(alice, recertifyItem(old, csr, mask, nameAttr("certificate2")), item(kmip14.OperationGet))
	cur := text(t, okPayload(t, resp, 0), kmip14.TagUniqueIdentifier)
	if text(t, okPayload(t, resp, 1), kmip14.TagUniqueIdentifier) != cur {
		t.Fatal("the ID Placeholder is not the new certificate")
	}
	newX := e.issued(alice, cur, iss)
	if !bytes.Equal(newX.RawSubject, oldX.RawSubject) || !samePublicKey(newX.PublicKey, oldX.PublicKey) || newX.SerialNumber.Cmp(oldX.SerialNumber) == 0 {
		t.Errorf("renewed certificate: subject %s, serial %v", newX.Subject, newX.SerialNumber)
	}
	for _, c := range []struct {
		uid  string
		want []string
	}{
		{priv, nil},
		{pub, []string{"PrivateKeyLink→" + priv, "CertificateLink→" + cur}},
		{old, []string{"PublicKeyLink→" + pub, "ReplacementObjectLink→" + cur}},
		{cur, []string{"PublicKeyLink→" + pub, "ReplacedObjectLink→" + old}},
	} {
		if l := e.links(alice, c.uid); !sameStrings(l, c.want...) {
			t.Errorf("links of %s: %v, want %v", c.uid, l, c.want)
		}
	}
	if n := e.names(alice, cur); !sameStrings(n, "certificate2", "certificate1") {
		t.Errorf("new certificate's names %v", n)
	}
	if n := e.names(alice, old); n != nil {
		t.Errorf("the replaced certificate kept its names %v", n)
	}
	if a := e.getAttrs(alice, cur, "x-team", "Cryptographic Usage Mask"); a["x-team"] == nil || a["x-team"][0].Text != "ops" ||
		a["Cryptographic Usage Mask"][0].Int != int64(kmip14.CryptographicUsageMaskVerify|kmip14.CryptographicUsageMaskSign) {
		t.Errorf("attributes not carried over: %v", a)
	}
}

// Without a request the certificate is renewed for its own key and subject;
// the dates are copied, or shifted by the Offset.
func TestReCertifyDates(t *testing.T) {
	clock := &fixedClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	iss := testIssuer(t)
	e := newEnv(t, Options{Issuer: iss, Now: clock.Now})
	// The issuing CA's own clock is real; certificates start at the KMIP
	// clock's time, so keep within the CA's validity.
	clock.t = time.Now().UTC().Truncate(time.Second)
	now := clock.Now()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := e.registerPub(alice, &k.PublicKey)
	at1, dt1 := now.Add(time.Hour), now.Add(10*time.Hour)
	old := text(t, okPayload(t, e.do(alice, certifyItem(pub, csrOf(t, k, "dated"),
		attrNode("Activation Date", tree.Time(0, at1)), attrNode("Deactivation Date", tree.Time(0, dt1)))), 0), kmip14.TagUniqueIdentifier)

	copied := text(t, okPayload(t, e.do(alice, recertifyItem(old, nil)), 0), kmip14.TagUniqueIdentifier)
	if a := e.getAttrs(alice, copied, "Activation Date", "Deactivation Date"); !a["Activation Date"][0].Time.Equal(at1) || !a["Deactivation Date"][0].Time.Equal(dt1) {
		t.Errorf("without Offset: %v", a)
	}
	if x := e.issued(alice, copied, iss); x.Subject.CommonName != "dated" || !k.PublicKey.Equal(x.PublicKey) {
		t.Errorf("renewed without a request: %s", x.Subject)
	}
	clock.Add(30 * time.Minute)
	shifted := text(t, okPayload(t, e.do(alice, recertifyItem(old, nil, tree.Interval(kmip14.TagOffset, 2*time.Hour))), 0), kmip14.TagUniqueIdentifier)
	at2 := clock.Now().Add(2 * time.Hour)
	a := e.getAttrs(alice, shifted, "Activation Date", "Deactivation Date", "Initial Date")
	if !a["Activation Date"][0].Time.Equal(at2) || !a["Deactivation Date"][0].Time.Equal(dt1.Add(at2.Sub(at1))) || !a["Initial Date"][0].Time.Equal(clock.Now()) {
		t.Errorf("with Offset: %v", a)
	}
}

func TestReCertifyRefusals(t *testing.T) {
	e, _ := certifyEnv(t)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := e.registerPub(alice, &k.PublicKey)
	cert := text(t, okPayload(t, e.do(alice, certifyItem(pub, csrOf(t, k, "c"))), 0), kmip14.TagUniqueIdentifier)
	compromised := text(t, okPayload(t, e.do(alice, certifyItem(pub, csrOf(t, k, "c"))), 0), kmip14.TagUniqueIdentifier)
	okPayload(t, e.do(alice, item(kmip14.OperationRevoke, uidF(compromised), tree.Struct(kmip14.TagRevocationReason,
		tree.Enum(kmip14.TagRevocationReasonCode, uint32(kmip14.RevocationReasonCodeKeyCompromise))))), 0)
	// A certificate of a key kmipd cannot read (secp256k1, OASIS TC-ECC-3-12).
	k1 := text(t, okPayload(t, e.do(alice, register(kmip14.ObjectTypeCertificate, tree.Struct(kmip14.TagCertificate,
		tree.Enum(kmip14.TagCertificateType, uint32(kmip14.CertificateTypeX_509)),
		tree.Bytes(kmip14.TagCertificateValue, oasisK1Cert(t))))), 0), kmip14.TagUniqueIdentifier)
	for name, c := range map[string]struct {
		req    *tree.Node
		reason kmip14.ResultReason
	}{
		"not a certificate":       {recertifyItem(pub, nil), kmip14.ResultReasonInvalidField},
		"request for another key": {recertifyItem(cert, csrOf(t, other, "x")), kmip14.ResultReasonInvalidField},
		"compromised":             {recertifyItem(compromised, nil), kmip14.ResultReasonPermissionDenied},
		"unreadable key":          {recertifyItem(k1, nil), kmip14.ResultReasonFeatureNotSupported},
		"offset not interval":     {recertifyItem(cert, nil, tree.Int(kmip14.TagOffset, 5)), kmip14.ResultReasonInvalidField},
		"no uid":                  {recertifyItem("", nil), kmip14.ResultReasonMissingData},
		"unknown uid":             {recertifyItem("nope", nil), kmip14.ResultReasonItemNotFound},
	} {
		t.Run(name, func(t *testing.T) { wantFail(t, e.do(alice, c.req), 0, c.reason) })
	}
	wantFail(t, e.do(bob, recertifyItem(cert, nil)), 0, kmip14.ResultReasonItemNotFound)
	if l := e.links(alice, cert); !sameStrings(l, "PublicKeyLink→"+pub) {
		t.Errorf("refusals changed the certificate's links: %v", l)
	}
}

// Under Undo, a renewal is taken back whole: the new certificate, the
// replaced one's links and names, the key's link.
func TestReCertifyUndo(t *testing.T) {
	e, _ := certifyEnv(t)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := e.registerPub(alice, &k.PublicKey)
	cert := text(t, okPayload(t, e.do(alice, certifyItem(pub, csrOf(t, k, "c"), nameAttr("n1"))), 0), kmip14.TagUniqueIdentifier)
	before := countObjects(t, e, alice)
	e.send(alice, undoMsg(e, recertifyItem(cert, nil), item(kmip14.OperationGet, uidF("no-such-object"))))
	if n := countObjects(t, e, alice); n != before {
		t.Errorf("%d objects after undo, %d before", n, before)
	}
	if l := e.links(alice, cert); !sameStrings(l, "PublicKeyLink→"+pub) {
		t.Errorf("certificate links after undo %v", l)
	}
	if l := e.links(alice, pub); !sameStrings(l, "CertificateLink→"+cert) {
		t.Errorf("key links after undo %v", l)
	}
	if n := e.names(alice, cert); !sameStrings(n, "n1") {
		t.Errorf("names after undo %v", n)
	}
}

// At KMIP 1.0 the certificate lists the 1.0 certificate attributes and not
// those of 1.1 (X.509 Certificate Identifier, ...).
func TestCertifyAtKMIP10(t *testing.T) {
	e, _ := certifyEnv(t)
	e.v = version{1, 0}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := e.registerPub(alice, &k.PublicKey)
	cert := text(t, okPayload(t, e.do(alice, certifyItem(pub, csrOf(t, k, "ten"))), 0), kmip14.TagUniqueIdentifier)
	cur := text(t, okPayload(t, e.do(alice, recertifyItem(cert, nil)), 0), kmip14.TagUniqueIdentifier)
	p := okPayload(t, e.do(alice, item(kmip14.OperationGetAttributeList, uidF(cur))), 0)
	got := map[string]bool{}
	for _, n := range p.All(kmip14.TagAttributeName) {
		got[n.Text] = true
	}
	for _, n := range []string{object.AttrCertificateIdentifier, object.AttrCertificateSubject, object.AttrCertificateIssuer, "Link", "Digest"} {
		if !got[n] {
			t.Errorf("1.0 listing lacks %s", n)
		}
	}
	for _, n := range []string{object.AttrX509CertificateIdentifier, object.AttrDigitalSignatureAlgorithm, "Certificate Length", "Fresh"} {
		if got[n] {
			t.Errorf("1.0 listing has %s", n)
		}
	}
}

// Certify and ReCertify make no PKCS#11 call once the owner's pKEK is
// cached: the CA signs in software and the objects are sealed in software.
func TestCertifyMakesNoHSMCalls(t *testing.T) {
	e := newRealEnv(t, Options{Issuer: testIssuer(t)})
	h := sharedHSM(t)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := e.registerPub(alice, &k.PublicKey) // warms the pKEK
	csr := csrOf(t, k, "hot")
	before := h.Stats().Calls
	for range 5 {
		cert := text(t, okPayload(t, e.do(alice, certifyItem(pub, csr)), 0), kmip14.TagUniqueIdentifier)
		okPayload(t, e.do(alice, recertifyItem(cert, csr)), 0)
	}
	if after := h.Stats().Calls; after != before {
		t.Fatalf("%d PKCS#11 calls during Certify and ReCertify", after-before)
	}
}

func oasisK1Cert(t *testing.T) []byte {
	t.Helper()
	return readHexFile(t, "object/testdata/oasis-ecc3-secp256k1.hex")
}
