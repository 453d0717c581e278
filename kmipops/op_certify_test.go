package kmipops

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/kek/kektest"
	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// oasisCSR is the PKCS#10 request of the OASIS TC-134 cases (KMIP 1.0–1.2;
// testdata/oasis-tc134-csr.hex): RSA-2048, subject C=US, O=ACME, OU=KMIP,
// CN=Client.
func oasisCSR(t testing.TB) []byte {
	t.Helper()
	return readHexFile(t, filepath.Join("testdata", "oasis-tc134-csr.hex"))
}

func readHexFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return mustHex(t, strings.TrimSpace(string(b)))
}

// A real issuing CA (certs.Issuer) in a temporary folder.
func testIssuer(t testing.TB) *certs.Issuer {
	t.Helper()
	dir := t.TempDir()
	if err := certs.InitIssuer(dir, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	i, err := certs.LoadIssuer(filepath.Join(dir, certs.IssuerCertFile), filepath.Join(dir, certs.IssuerKeyFile),
		certs.Policy{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func certifyEnv(t testing.TB) (*env, *certs.Issuer) {
	iss := testIssuer(t)
	return newEnv(t, Options{Issuer: iss}), iss
}

func csrOf(t testing.TB, k crypto.Signer, cn string, dns ...string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn, Organization: []string{"ACME"}}, DNSNames: dns}, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func certifyItem(uid string, csr []byte, attrs ...*tree.Node) *tree.Node {
	var f []*tree.Node
	if uid != "" {
		f = append(f, uidF(uid))
	}
	if csr != nil {
		f = append(f, tree.Enum(kmip14.TagCertificateRequestType, uint32(kmip14.CertificateRequestTypePKCS_10)),
			tree.Bytes(kmip14.TagCertificateRequest, csr))
	}
	if attrs != nil {
		f = append(f, template(kmip14.TagTemplateAttribute, attrs...))
	}
	return item(kmip14.OperationCertify, f...)
}

func maskAttr(ms ...kmip14.CryptographicUsageMask) *tree.Node {
	var m kmip14.CryptographicUsageMask
	for _, x := range ms {
		m |= x
	}
	return attrNode("Cryptographic Usage Mask", tree.Int(0, int32(m)))
}

// registerPub registers pub (PKCS#1 for RSA, SubjectPublicKeyInfo else).
func (e *env) registerPub(c Caller, pub crypto.PublicKey, attrs ...*tree.Node) string {
	e.t.Helper()
	var body *tree.Node
	switch k := pub.(type) {
	case *rsa.PublicKey:
		body = keyBody(kmip14.TagPublicKey, kmip14.KeyFormatTypePKCS_1, kmip14.CryptographicAlgorithmRSA, int32(k.N.BitLen()), x509.MarshalPKCS1PublicKey(k))
	default:
		spki, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			e.t.Fatal(err)
		}
		body = keyBody(kmip14.TagPublicKey, kmip14.KeyFormatTypeX_509, kmip14.CryptographicAlgorithmECDSA, 256, spki)
	}
	return text(e.t, okPayload(e.t, e.do(c, register(kmip14.ObjectTypePublicKey, body, attrs...)), 0), kmip14.TagUniqueIdentifier)
}

// issued gets certificate uid and checks it chains to iss.
func (e *env) issued(c Caller, uid string, iss *certs.Issuer) *x509.Certificate {
	e.t.Helper()
	g := okPayload(e.t, e.do(c, item(kmip14.OperationGet, uidF(uid))), 0)
	if ot, _ := g.Child(kmip14.TagObjectType).EnumValue(); kmip14.ObjectType(ot) != kmip14.ObjectTypeCertificate {
		e.t.Fatalf("object type %d", ot)
	}
	der, _ := g.Path(kmip14.TagCertificate, kmip14.TagCertificateValue).BytesValue()
	xc, err := x509.ParseCertificate(der)
	if err != nil {
		e.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(iss.Certificate())
	if _, err := xc.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		e.t.Fatalf("issued certificate does not chain to the issuing CA: %v", err)
	}
	if xc.IsCA {
		e.t.Fatal("an issued certificate is a CA")
	}
	return xc
}

// links returns uid's links as "LinkType→uid" strings, by index.
func (e *env) links(c Caller, uid string) []string {
	e.t.Helper()
	var out []string
	for _, v := range e.getAttrs(c, uid, "Link")["Link"] {
		t, _ := v.Child(kmip14.TagLinkType).EnumValue()
		to, _ := v.Child(kmip14.TagLinkedObjectIdentifier).TextValue()
		out = append(out, kmip14.LinkType(t).String()+"→"+to)
	}
	return out
}

func sameStrings(a []string, b ...string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

// Certify with the OASIS TC-134 request: the certificate is for the
// request's key and subject, chains to the issuing CA, and the key and the
// certificate link to each other.
func TestCertifyWithRequest(t *testing.T) {
	e, iss := certifyEnv(t)
	csr := oasisCSR(t)
	req, err := x509.ParseCertificateRequest(csr)
	if err != nil {
		t.Fatal(err)
	}
	pub := e.registerPub(alice, req.PublicKey, maskAttr(kmip14.CryptographicUsageMaskVerify))
	// Certify, then Get through the ID Placeholder in the same batch.
	resp := e.do(alice, certifyItem(pub, csr, maskAttr(kmip14.CryptographicUsageMaskVerify, kmip14.CryptographicUsageMaskSign), nameAttr("cert-1")),
		item(kmip14.OperationGet))
	cert := text(t, okPayload(t, resp, 0), kmip14.TagUniqueIdentifier)
	if g := okPayload(t, resp, 1); text(t, g, kmip14.TagUniqueIdentifier) != cert {
		t.Fatal("the ID Placeholder is not the certificate")
	}
	xc := e.issued(alice, cert, iss)
	if xc.Subject.String() != "CN=Client,OU=KMIP,O=ACME,C=US" || !bytes.Equal(xc.RawSubject, req.RawSubject) {
		t.Errorf("subject %s", xc.Subject)
	}
	if !samePublicKey(xc.PublicKey, req.PublicKey) || xc.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage %v", xc.KeyUsage)
	}
	if l := e.links(alice, cert); !sameStrings(l, "PublicKeyLink→"+pub) {
		t.Errorf("certificate links %v", l)
	}
	if l := e.links(alice, pub); !sameStrings(l, "CertificateLink→"+cert) {
		t.Errorf("key links %v", l)
	}
	a := e.getAttrs(alice, cert)
	if a["Name"] == nil || a["Name"][0].Child(kmip14.TagNameValue).Text != "cert-1" || a["Fresh"] == nil || a["Fresh"][0].Int != 0 {
		// Get above served it, so it is no longer Fresh.
		t.Errorf("attributes %v", a)
	}
	if s, _ := a["State"][0].EnumValue(); kmip14.State(s) != kmip14.StatePreActive {
		t.Errorf("state %s", kmip14.State(s))
	}
	if n := a["Certificate Subject"][0].Child(kmip14.TagCertificateSubjectDistinguishedName).Text; n != "CN=Client,OU=KMIP,O=ACME,C=US" {
		t.Errorf("Certificate Subject %q", n)
	}
	if n := a["Cryptographic Length"][0].Int; n != 2048 {
		t.Errorf("Cryptographic Length %d", n)
	}
	if rng := a["Random Number Generator"]; rng != nil {
		t.Error("a certificate records a Random Number Generator")
	}

	// A PEM request and a request without Unique Identifier (the request's
	// key alone: no links).
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pemCSR := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrOf(t, k, "pem", "pem.example")})
	p := okPayload(t, e.do(alice, item(kmip14.OperationCertify,
		tree.Enum(kmip14.TagCertificateRequestType, uint32(kmip14.CertificateRequestTypePEM)),
		tree.Bytes(kmip14.TagCertificateRequest, pemCSR))), 0)
	lone := text(t, p, kmip14.TagUniqueIdentifier)
	xc = e.issued(alice, lone, iss)
	if xc.Subject.CommonName != "pem" || len(xc.DNSNames) != 1 || !k.PublicKey.Equal(xc.PublicKey) {
		t.Errorf("PEM request: %v %v", xc.Subject, xc.DNSNames)
	}
	if l := e.links(alice, lone); l != nil {
		t.Errorf("a certificate of a request alone has links %v", l)
	}
}

// Without a request the template names the subject, or the key's current
// certificate does (a certificate update); each Certify adds a Certificate
// Link to the key.
func TestCertifyWithoutRequest(t *testing.T) {
	e, iss := certifyEnv(t)
	_, pub := e.crECPair(alice, nil, []*tree.Node{crMask(kmip14.CryptographicUsageMaskVerify)})
	x509Type := attrNode("Certificate Type", tree.Enum(0, uint32(kmip14.CertificateTypeX_509)))
	dn, _ := asn1.Marshal((pkix.Name{CommonName: "from-template", Country: []string{"FR"}}).ToRDNSequence())
	subject := attrNode("X.509 Certificate Subject", tree.Struct(0, tree.Bytes(kmip14.TagSubjectDistinguishedName, dn)))

	wantFail(t, e.do(alice, certifyItem(pub, nil, subject)), 0, kmip14.ResultReasonMissingData)  // no Certificate Type
	wantFail(t, e.do(alice, certifyItem(pub, nil, x509Type)), 0, kmip14.ResultReasonMissingData) // no subject anywhere
	first := text(t, okPayload(t, e.do(alice, certifyItem(pub, nil, x509Type, subject)), 0), kmip14.TagUniqueIdentifier)
	xc := e.issued(alice, first, iss)
	if !bytes.Equal(xc.RawSubject, dn) || xc.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("subject %s, key usage %v", xc.Subject, xc.KeyUsage)
	}
	// Again, through the ID Placeholder, with the subject of the current one.
	resp := e.do(alice, item(kmip14.OperationGetAttributes, uidF(pub)), certifyItem("", nil, x509Type))
	second := text(t, okPayload(t, resp, 1), kmip14.TagUniqueIdentifier)
	if xc2 := e.issued(alice, second, iss); !bytes.Equal(xc2.RawSubject, dn) || xc2.SerialNumber.Cmp(xc.SerialNumber) == 0 {
		t.Errorf("update: subject %s, serial %v", xc2.Subject, xc2.SerialNumber)
	}
	if l := e.links(alice, pub); !sameStrings(l, "CertificateLink→"+first, "CertificateLink→"+second) {
		t.Errorf("key links %v", l)
	}
}

func TestCertifyRefusals(t *testing.T) {
	e, _ := certifyEnv(t)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := e.registerPub(alice, &k.PublicKey, maskAttr(kmip14.CryptographicUsageMaskVerify))
	csr := csrOf(t, k, "ok")
	badSig := bytes.Clone(csr)
	badSig[len(badSig)-3] ^= 1
	encOnly := e.registerPub(alice, &k.PublicKey, maskAttr(kmip14.CryptographicUsageMaskEncrypt))
	compromised := e.registerPub(alice, &k.PublicKey)
	okPayload(t, e.do(alice, item(kmip14.OperationRevoke, uidF(compromised), tree.Struct(kmip14.TagRevocationReason,
		tree.Enum(kmip14.TagRevocationReasonCode, uint32(kmip14.RevocationReasonCodeKeyCompromise))))), 0)
	destroyed := e.registerPub(alice, &k.PublicKey)
	okPayload(t, e.do(alice, item(kmip14.OperationDestroy, uidF(destroyed))), 0)
	sym := e.create(alice)
	withType := func(t kmip14.CertificateRequestType, b []byte) *tree.Node {
		return item(kmip14.OperationCertify, uidF(pub), tree.Enum(kmip14.TagCertificateRequestType, uint32(t)), tree.Bytes(kmip14.TagCertificateRequest, b))
	}
	for name, c := range map[string]struct {
		req    *tree.Node
		reason kmip14.ResultReason
	}{
		"request for another key": {certifyItem(pub, csrOf(t, other, "x")), kmip14.ResultReasonInvalidField},
		"junk request":            {certifyItem(pub, []byte("junk")), kmip14.ResultReasonInvalidField},
		"bad signature":           {certifyItem(pub, badSig), kmip14.ResultReasonInvalidField},
		"PEM that is not":         {withType(kmip14.CertificateRequestTypePEM, csr), kmip14.ResultReasonInvalidField},
		"CRMF":                    {withType(kmip14.CertificateRequestTypeCRMF, csr), kmip14.ResultReasonFeatureNotSupported},
		"unknown request type":    {withType(77, csr), kmip14.ResultReasonInvalidField},
		"type without request":    {item(kmip14.OperationCertify, uidF(pub), tree.Enum(kmip14.TagCertificateRequestType, 2)), kmip14.ResultReasonInvalidMessage},
		"request without type":    {item(kmip14.OperationCertify, uidF(pub), tree.Bytes(kmip14.TagCertificateRequest, csr)), kmip14.ResultReasonInvalidMessage},
		"request not bytes":       {item(kmip14.OperationCertify, uidF(pub), tree.Enum(kmip14.TagCertificateRequestType, 2), tree.Text(kmip14.TagCertificateRequest, "x")), kmip14.ResultReasonInvalidField},
		"PGP certificate":         {certifyItem(pub, csr, attrNode("Certificate Type", tree.Enum(0, uint32(kmip14.CertificateTypePGP)))), kmip14.ResultReasonFeatureNotSupported},
		"text subject":            {certifyItem(pub, nil, attrNode("Certificate Subject", tree.Struct(0, tree.Text(kmip14.TagCertificateSubjectDistinguishedName, "CN=x")))), kmip14.ResultReasonFeatureNotSupported},
		"bad DER subject":         {certifyItem(pub, csr, attrNode("X.509 Certificate Subject", tree.Struct(0, tree.Bytes(kmip14.TagSubjectDistinguishedName, []byte{1})))), kmip14.ResultReasonInvalidField},
		"template Public Key Link": {certifyItem(pub, csr, attrNode("Link", tree.Struct(0, tree.Enum(kmip14.TagLinkType, uint32(kmip14.LinkTypePublicKeyLink)),
			tree.Text(kmip14.TagLinkedObjectIdentifier, sym)))), kmip14.ResultReasonInvalidField},
		"server attribute":     {certifyItem(pub, csr, attrNode("Digest", tree.Struct(0))), kmip14.ResultReasonInvalidField},
		"symmetric key":        {certifyItem(sym, nil, attrNode("Certificate Type", tree.Enum(0, 1))), kmip14.ResultReasonInvalidField},
		"unknown uid":          {certifyItem("no-such-key", csr), kmip14.ResultReasonItemNotFound},
		"no uid, no request":   {certifyItem("", nil, attrNode("Certificate Type", tree.Enum(0, 1))), kmip14.ResultReasonMissingData},
		"compromised key":      {certifyItem(compromised, csr), kmip14.ResultReasonPermissionDenied},
		"destroyed key":        {certifyItem(destroyed, csr), kmip14.ResultReasonPermissionDenied},
		"key for encryption":   {certifyItem(encOnly, csr, maskAttr(kmip14.CryptographicUsageMaskSign)), kmip14.ResultReasonPermissionDenied},
		"EC for key transport": {certifyItem(pub, csr, maskAttr(kmip14.CryptographicUsageMaskWrapKey)), kmip14.ResultReasonPermissionDenied},
	} {
		t.Run(name, func(t *testing.T) { wantFail(t, e.do(alice, c.req), 0, c.reason) })
	}
	// Another owner's key does not exist for bob; nothing was made for him.
	wantFail(t, e.do(bob, certifyItem(pub, csr)), 0, kmip14.ResultReasonItemNotFound)
	if n := countObjects(t, e, bob); n != 0 {
		t.Errorf("bob has %d objects", n)
	}
	if l := e.links(alice, pub); l != nil {
		t.Errorf("refused requests left links %v", l)
	}
}

// Without a certification authority Certify and ReCertify are not offered.
func TestCertifyNotOffered(t *testing.T) {
	e := newEnv(t, Options{})
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := e.registerPub(alice, &k.PublicKey)
	wantFail(t, e.do(alice, certifyItem(pub, csrOf(t, k, "x"))), 0, kmip14.ResultReasonOperationNotSupported)
	wantFail(t, e.do(alice, item(kmip14.OperationReCertify, uidF(pub))), 0, kmip14.ResultReasonOperationNotSupported)
	queried := func(e *env) map[kmip14.Operation]bool {
		p := okPayload(t, e.do(alice, item(kmip14.OperationQuery, tree.Enum(kmip14.TagQueryFunction, uint32(kmip14.QueryFunctionQueryOperations)))), 0)
		ops := map[kmip14.Operation]bool{}
		for _, o := range p.All(kmip14.TagOperation) {
			ops[kmip14.Operation(o.Int)] = true
		}
		return ops
	}
	if ops := queried(e); ops[kmip14.OperationCertify] || ops[kmip14.OperationReCertify] || !ops[kmip14.OperationQuery] {
		t.Errorf("Query without a CA lists %v", ops)
	}
	e2, _ := certifyEnv(t)
	if ops := queried(e2); !ops[kmip14.OperationCertify] || !ops[kmip14.OperationReCertify] {
		t.Errorf("Query with a CA lists %v", ops)
	}
}

// Under the Undo option a later failure takes the certificate and the
// key's link back; without it, a failed write leaves neither behind.
func TestCertifyIsAtomic(t *testing.T) {
	e, _ := certifyEnv(t)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := e.registerPub(alice, &k.PublicKey)
	before := countObjects(t, e, alice)
	resp := e.send(alice, undoMsg(e, certifyItem(pub, csrOf(t, k, "undo")), item(kmip14.OperationGet, uidF("no-such-object"))))
	if s, _ := batchItems(t, resp)[0].Child(kmip14.TagResultStatus).EnumValue(); s != uint32(kmip14.ResultStatusOperationUndone) {
		t.Fatalf("Certify answered %d, want Operation Undone", s)
	}
	if n := countObjects(t, e, alice); n != before {
		t.Errorf("%d objects after undo, %d before", n, before)
	}
	if l := e.links(alice, pub); l != nil {
		t.Errorf("undone Certify left links %v", l)
	}

	// The key's record cannot be written: the certificate, stored first, is
	// removed again.
	fs := &failingStore{Store: storage.NewMemory()}
	fe := envOver(t, "", fs, kektest.NewMasterKeys(), Options{Issuer: testIssuer(t)})
	pub2 := fe.registerPub(alice, &k.PublicKey)
	n0 := countObjects(t, fe, alice)
	fs.failPut.Store(pub2)
	wantFail(t, fe.do(alice, certifyItem(pub2, csrOf(t, k, "x"))), 0, kmip14.ResultReasonGeneralFailure)
	fs.failPut.Store("")
	if n := countObjects(t, fe, alice); n != n0 {
		t.Errorf("%d objects after a failed Certify, %d before", n, n0)
	}
	if l := fe.links(alice, pub2); l != nil {
		t.Errorf("failed Certify left links %v", l)
	}
}

// failingStore fails the Put of keys ending in failPut.
type failingStore struct {
	storage.Store
	failPut atomic.Value // string
}

func (s *failingStore) Put(ctx context.Context, key string, v []byte) error {
	if f, _ := s.failPut.Load().(string); f != "" && strings.HasSuffix(key, f) {
		return errors.New("injected write failure")
	}
	return s.Store.Put(ctx, key, v)
}
