package kmipops

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"net"
	"net/url"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// Certify and ReCertify (KMIP 1.4 §4.7–4.8; op_certify.go, op_recertify.go)
// have the server issue an X.509 certificate for a public key. KMIP leaves
// the certification authority to the server: kmipd signs with the issuing CA
// the operator configures (Options.Issuer; certs.Issuer from the certify
// block). Without one, neither operation is offered: Query does not list
// them and a request is answered Operation Not Supported.
//
// What a certificate says is split between the client and the CA. The
// client's request gives the subject and subject alternative names (from a
// PKCS#10 request, an X.509 Certificate Subject template attribute, or the
// certificate being renewed) and, through the Cryptographic Usage Mask, the
// key usage; the issuer's policy gives everything else: serial number,
// validity, extended key usage, and never a CA certificate.

// Issuer is the certification authority behind Certify and ReCertify.
type Issuer interface {
	// Issue signs a certificate for pub carrying tmpl's subject (RawSubject),
	// subject alternative names (DNSNames, EmailAddresses, IPAddresses,
	// URIs) and KeyUsage, valid from tmpl.NotBefore, and returns its DER.
	// The serial number, validity period, extensions and basic constraints
	// are the issuer's policy whatever tmpl says; it never issues a CA.
	Issue(ctx context.Context, tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, error)
}

// offers reports whether Query lists op: Certify and ReCertify only when a
// certification authority is configured.
func (p *Processor) offers(op kmip14.Operation) bool {
	switch op {
	case kmip14.OperationCertify, kmip14.OperationReCertify:
		return p.opts.Issuer != nil
	}
	return true
}

func (p *Processor) issuer(op kmip14.Operation) (Issuer, error) {
	if p.opts.Issuer == nil {
		return nil, Errorf(kmip14.ResultReasonOperationNotSupported, "%s is not offered: this server has no certification authority configured", op)
	}
	return p.opts.Issuer, nil
}

// certRequest is what a Certify or ReCertify request asks for.
type certRequest struct {
	csr      *x509.CertificateRequest // nil without a Certificate Request
	subject  []byte                   // DER Name from the template's X.509 Certificate Subject
	certType kmip14.CertificateType   // from the template; 0 if absent
	mask     kmip14.CryptographicUsageMask
	hasMask  bool
	attrs    []object.Attr // the template, less the request parameters above
}

// parseCertRequest reads the Certificate Request Type, Certificate Request
// and Template-Attribute fields.
func parseCertRequest(ic *itemCtx, payload *tree.Node) (*certRequest, error) {
	r := &certRequest{}
	typN, reqN := payload.Child(kmip14.TagCertificateRequestType), payload.Child(kmip14.TagCertificateRequest)
	switch {
	case typN == nil && reqN != nil:
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "a Certificate Request needs its Certificate Request Type")
	case typN != nil && reqN == nil:
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "Certificate Request Type without a Certificate Request")
	case reqN != nil:
		csr, err := parseCSR(typN, reqN)
		if err != nil {
			return nil, err
		}
		r.csr = csr
	}
	attrs, err := ic.parseTemplate(payload.Child(kmip14.TagTemplateAttribute))
	if err != nil {
		return nil, err
	}
	for _, a := range attrs {
		switch a.Name() {
		case object.AttrCertificateType:
			v, ok := a.Value().EnumValue()
			if !ok {
				return nil, Errorf(kmip14.ResultReasonInvalidField, "Certificate Type must be an enumeration")
			}
			if kmip14.CertificateType(v) != kmip14.CertificateTypeX_509 {
				return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "only X.509 certificates are issued")
			}
			r.certType = kmip14.CertificateType(v)
		case object.AttrX509CertificateSubject:
			dn, ok := a.Value().Child(kmip14.TagSubjectDistinguishedName).BytesValue()
			var rdn pkix.RDNSequence
			if !ok || !unmarshalWhole(dn, &rdn) {
				return nil, Errorf(kmip14.ResultReasonInvalidField, "X.509 Certificate Subject needs a DER Subject Distinguished Name")
			}
			r.subject = dn
		case object.AttrCertificateSubject:
			return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "give the subject as X.509 Certificate Subject or in a Certificate Request")
		case object.AttrLink:
			// The server links the certificate to its key and to the
			// certificate it replaces; a client may add other links.
			switch t, _ := a.Value().Child(kmip14.TagLinkType).EnumValue(); kmip14.LinkType(t) {
			case kmip14.LinkTypePublicKeyLink, kmip14.LinkTypeReplacedObjectLink, kmip14.LinkTypeReplacementObjectLink:
				return nil, Errorf(kmip14.ResultReasonInvalidField, "the server sets the certificate's %s", kmip14.LinkType(t))
			}
			r.attrs = append(r.attrs, a)
		default:
			if a.Name() == object.AttrUsageMask {
				m, _ := a.Value().IntValue()
				r.mask, r.hasMask = kmip14.CryptographicUsageMask(uint32(m)), true
			}
			r.attrs = append(r.attrs, a)
		}
	}
	return r, nil
}

// parseCSR reads a PKCS#10 request, DER or PEM, and checks its signature:
// the proof that the client holds the private key.
func parseCSR(typN, reqN *tree.Node) (*x509.CertificateRequest, error) {
	t, ok := typN.EnumValue()
	if !ok {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Certificate Request Type must be an enumeration")
	}
	der, ok := reqN.BytesValue()
	if !ok {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Certificate Request must be a byte string")
	}
	switch kmip14.CertificateRequestType(t) {
	case kmip14.CertificateRequestTypePKCS_10:
	case kmip14.CertificateRequestTypePEM:
		b, _ := pem.Decode(der)
		if b == nil || (b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST") {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Certificate Request is not a PEM certificate request")
		}
		der = b.Bytes
	case kmip14.CertificateRequestTypeCRMF, kmip14.CertificateRequestTypePGP:
		return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "%s certificate requests are not supported (use PKCS#10)", kmip14.CertificateRequestType(t))
	default:
		return nil, Errorf(kmip14.ResultReasonInvalidField, "unknown Certificate Request Type")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, &Error{Reason: kmip14.ResultReasonInvalidField, Msg: "Certificate Request is not a PKCS#10 request kmipd can read", Err: err}
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, &Error{Reason: kmip14.ResultReasonInvalidField, Msg: "Certificate Request signature does not verify", Err: err}
	}
	return csr, nil
}

// publicKeyOf is the key of a managed Public Key.
func publicKeyOf(o *object.Object) (crypto.PublicKey, error) {
	if o.Type() != kmip14.ObjectTypePublicKey {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Certify needs a Public Key, not a %s", o.Type())
	}
	k, err := keyMaterial(o)
	if err != nil {
		return nil, err
	}
	return k.pub, nil
}

// samePublicKey reports whether a and b are the same key.
func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// certifiable refuses a key whose state forbids a new certificate: only a
// Pre-Active or Active key is certified.
func certifiable(o *object.Object) error {
	if o.Destroyed() || !o.Body().Present() {
		return Errorf(kmip14.ResultReasonPermissionDenied, "%s is %s", o.Type(), o.State())
	}
	switch s := o.State(); s {
	case kmip14.StatePreActive, kmip14.StateActive:
		return nil
	default:
		return Errorf(kmip14.ResultReasonPermissionDenied, "a %s key is not certified", s)
	}
}

// keyUsage is the certificate's key usage: the uses of the certificate's
// Cryptographic Usage Mask (the template's, else the key's) that the public
// key's own mask allows. Certificate Sign and CRL Sign are never given: an
// issued certificate is never a CA. With no mask at all, a signature
// certificate (and key encipherment for RSA, as TLS uses it).
func keyUsage(want kmip14.CryptographicUsageMask, hasWant bool, keyMask kmip14.CryptographicUsageMask, hasKeyMask bool, pub crypto.PublicKey) (x509.KeyUsage, error) {
	if !hasWant {
		want, hasWant = keyMask, hasKeyMask
	}
	if !hasWant {
		ku := x509.KeyUsageDigitalSignature
		if _, ok := pub.(*rsa.PublicKey); ok {
			ku |= x509.KeyUsageKeyEncipherment
		}
		return ku, nil
	}
	uses := func(m kmip14.CryptographicUsageMask) x509.KeyUsage {
		var ku x509.KeyUsage
		if m&(kmip14.CryptographicUsageMaskSign|kmip14.CryptographicUsageMaskVerify) != 0 {
			ku |= x509.KeyUsageDigitalSignature
		}
		if m&(kmip14.CryptographicUsageMaskEncrypt|kmip14.CryptographicUsageMaskDecrypt) != 0 {
			ku |= x509.KeyUsageDataEncipherment
		}
		if m&(kmip14.CryptographicUsageMaskWrapKey|kmip14.CryptographicUsageMaskUnwrapKey) != 0 {
			ku |= x509.KeyUsageKeyEncipherment
		}
		if m&kmip14.CryptographicUsageMaskKeyAgreement != 0 {
			ku |= x509.KeyUsageKeyAgreement
		}
		return ku
	}
	ku := uses(want)
	if hasKeyMask {
		// The public key's mask names its public-key half of each use.
		ku &= uses(keyMask & (kmip14.CryptographicUsageMaskVerify | kmip14.CryptographicUsageMaskEncrypt |
			kmip14.CryptographicUsageMaskWrapKey | kmip14.CryptographicUsageMaskKeyAgreement))
	}
	if ku == 0 {
		return 0, Errorf(kmip14.ResultReasonPermissionDenied, "the Cryptographic Usage Masks allow the certificate no use of the key")
	}
	if _, ok := pub.(*rsa.PublicKey); !ok {
		ku &^= x509.KeyUsageDataEncipherment | x509.KeyUsageKeyEncipherment // only RSA keys encrypt
		if ku == 0 {
			return 0, Errorf(kmip14.ResultReasonPermissionDenied, "only an RSA key can be certified for encryption")
		}
	}
	return ku, nil
}

// names is a certificate's subject and subject alternative names.
type names struct {
	subject []byte // DER Name
	dns     []string
	emails  []string
	ips     []net.IP
	uris    []*url.URL
}

func (n names) empty() bool {
	var rdn pkix.RDNSequence
	_, err := asn1.Unmarshal(n.subject, &rdn)
	return (err != nil || len(rdn) == 0) && len(n.dns)+len(n.emails)+len(n.ips)+len(n.uris) == 0
}

func namesOfCSR(c *x509.CertificateRequest) names {
	return names{c.RawSubject, c.DNSNames, c.EmailAddresses, c.IPAddresses, c.URIs}
}

func namesOfCert(c *x509.Certificate) names {
	return names{c.RawSubject, c.DNSNames, c.EmailAddresses, c.IPAddresses, c.URIs}
}

// issue has the CA sign a certificate and makes it a new Certificate object
// (not yet stored) with the client's attributes.
func (p *Processor) issue(ic *itemCtx, iss Issuer, pub crypto.PublicKey, n names, ku x509.KeyUsage, attrs []object.Attr) (*object.Object, error) {
	if n.empty() {
		return nil, Errorf(kmip14.ResultReasonMissingData, "the certificate needs a subject: give a Certificate Request or an X.509 Certificate Subject")
	}
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "kmipd certifies RSA, ECDSA and Ed25519 keys only")
	}
	tmpl := &x509.Certificate{RawSubject: n.subject, DNSNames: n.dns, EmailAddresses: n.emails, IPAddresses: n.ips, URIs: n.uris,
		KeyUsage: ku, NotBefore: ic.now}
	der, err := iss.Issue(ic.ctx, tmpl, pub)
	if err != nil {
		return nil, &Error{Reason: kmip14.ResultReasonGeneralFailure, Msg: "the certification authority did not issue the certificate", Err: err}
	}
	body := tree.Struct(kmip14.TagCertificate,
		tree.Enum(kmip14.TagCertificateType, uint32(kmip14.CertificateTypeX_509)),
		tree.Bytes(kmip14.TagCertificateValue, der))
	// Generated: the server made it, so it is Fresh; no Random Number
	// Generator is recorded, as a certificate holds no key material.
	return object.New(object.Spec{Type: kmip14.ObjectTypeCertificate, Body: body, Attrs: attrs, Now: ic.now,
		Generated: true, LeaseTime: p.opts.LeaseTime, Group: p.assignedGroup()})
}

// atomically runs fn over the caller's objects so that, if it fails, none
// of its writes remain. Under the batch's Undo option the batch's own log
// does that (a failed item rolls the batch back); otherwise fn gets a scope
// with a log of its own.
func (p *Processor) atomically(ic *itemCtx, fn func(s *object.Scope) error) error {
	if ic.objects.Undoing() {
		return fn(&ic.objects)
	}
	s := p.objects.Scope(ic.caller.Identity, object.NewUndoLog()).As(ic.caller.Principal)
	if err := fn(&s); err != nil {
		s.Rollback(ic.ctx, func(uid string, rerr error) {
			p.log.Error("could not undo part of a failed operation", "uid", uid, "caller", ic.caller.CommonName, "err", rerr)
		})
		return err
	}
	return nil
}
