package conformance

import (
	"bytes"
	"crypto/x509"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Certificates the server issued (Certify and ReCertify, KMIP 1.4 §4.7–4.8).
// KMIP leaves the certification authority to the server: its name, its key
// (and so the signature algorithm), the serial number and the validity are
// the server's choice, and so is every byte of the certificate. The OASIS
// cases record what the reference server's own CA (CN=KMIP, OU=OASIS,
// O=TEST, C=US) signed, which no other server can reproduce. So, for an
// object that a Certify or ReCertify of the case returned:
//   - a Get's Certificate Value must be a DER X.509 certificate for the
//     recorded certificate's subject and public key;
//   - the attributes that only describe the issuer's choices (issuerChosen)
//     must have the recorded shape, the same fields of the same types,
//     whatever their values.
// Everything the client asked for is still compared exactly: the subject
// attributes (Certificate Subject, X.509 Certificate Subject), the
// Cryptographic Length of the certified key, the Certificate Type, links,
// names, usage mask, state and dates.

// issues reports whether an operation has the server issue a certificate.
func issues(op uint32) bool {
	return op == uint32(kmip14.OperationCertify) || op == uint32(kmip14.OperationReCertify)
}

// issuerChosen are the attributes of an issued certificate whose values the
// issuing CA decides.
var issuerChosen = map[ttlv.Tag]bool{
	kmip14.TagCertificateIdentifier: true, kmip14.TagCertificateIssuer: true,
	kmip14.TagX_509CertificateIdentifier: true, kmip14.TagX_509CertificateIssuer: true,
	kmip14.TagDigitalSignatureAlgorithm: true, kmip14.TagCertificateLength: true, kmip14.TagDigest: true,
}

// checkIssuedCertificate compares the Certificate Value of an issued
// certificate: the subject and the public key must be the recorded ones.
func checkIssuedCertificate(path string, e *Node, g *tree.Node) *Mismatch {
	want, err := x509.ParseCertificate(e.Lit.Bytes)
	if err != nil {
		return &Mismatch{Path: path, Expected: format(e.Lit, e.Tag), Got: format(g, e.Tag), Note: "the recorded value is not a certificate"}
	}
	got, err := x509.ParseCertificate(g.Bytes)
	if err != nil {
		return &Mismatch{Path: path, Expected: "a DER X.509 certificate", Got: format(g, e.Tag)}
	}
	if !bytes.Equal(got.RawSubject, want.RawSubject) {
		return &Mismatch{Path: path, Expected: "a certificate for subject " + want.Subject.String(), Got: "one for " + got.Subject.String()}
	}
	if !bytes.Equal(got.RawSubjectPublicKeyInfo, want.RawSubjectPublicKeyInfo) {
		return &Mismatch{Path: path, Expected: "a certificate for the recorded public key", Got: "one for another key"}
	}
	return nil
}

// sameShape checks that g has e's structure: the same fields, in order, of
// the same types; leaf values are not compared.
func sameShape(path string, e *Node, g *tree.Node) *Mismatch {
	if e.Type != g.Type {
		return &Mismatch{Path: path, Expected: "type " + e.Type.String(), Got: "type " + g.Type.String()}
	}
	if e.Type != ttlv.TypeStructure {
		return nil
	}
	if len(e.Children) != len(g.Children) {
		return &Mismatch{Path: path, Expected: describe(e, e.Tag), Got: format(g, g.Tag)}
	}
	for i, ec := range e.Children {
		gc := g.Children[i]
		p := path + "/" + tree.TagName(ec.Tag)
		if gc.Tag != ec.Tag {
			return &Mismatch{Path: p, Expected: describe(ec, ec.Tag), Got: tree.TagName(gc.Tag) + " in its place"}
		}
		if m := sameShape(p, ec, gc); m != nil {
			return m
		}
	}
	return nil
}

// issuedItem reports whether an expected batch item is about a certificate
// the server issued earlier in the case.
func issuedItem(exp *Node, b *Bindings) bool {
	name, ok := payloadPlaceholder(exp)
	return ok && b.Issued[name]
}
