package kmipops

import (
	"crypto/x509"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// opCertify issues a certificate for a public key (KMIP 1.4 §4.7): the
// caller's managed Public Key named by Unique Identifier (or the ID
// Placeholder), a PKCS#10 request for it, or both, in which case the request
// must be for that key. The certificate links to the key (Public Key Link)
// and the key to it (a further Certificate Link), both written or neither.
func opCertify(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	iss, err := p.issuer(kmip14.OperationCertify)
	if err != nil {
		return nil, err
	}
	req, err := parseCertRequest(ic, payload)
	if err != nil {
		return nil, err
	}
	if req.csr == nil && req.certType == 0 {
		return nil, Errorf(kmip14.ResultReasonMissingData, "without a Certificate Request, the template must give the Certificate Type")
	}
	// With a Certificate Request and no Unique Identifier, the request's key
	// is certified alone: the ID Placeholder stands in only without one.
	var pubUID string
	if req.csr == nil || payload.Child(kmip14.TagUniqueIdentifier) != nil {
		if pubUID, err = uidArg(ic, payload); err != nil {
			return nil, err
		}
	}
	var cert *object.Object
	err = p.atomically(ic, func(s *object.Scope) error {
		if pubUID == "" {
			ku, err := keyUsage(req.mask, req.hasMask, 0, false, req.csr.PublicKey)
			if err != nil {
				return err
			}
			if cert, err = p.issue(ic, iss, req.csr.PublicKey, namesOfCSR(req.csr), ku, req.attrs); err != nil {
				return err
			}
			return s.Insert(ic.ctx, cert)
		}
		_, err := s.Update(ic.ctx, pubUID, func(o *object.Object) (bool, error) {
			o.AdvanceState(ic.now)
			if err := certifiable(o); err != nil {
				return false, err
			}
			pub, err := publicKeyOf(o)
			if err != nil {
				return false, err
			}
			n := names{subject: req.subject}
			switch {
			case req.csr != nil:
				if !samePublicKey(pub, req.csr.PublicKey) {
					return false, Errorf(kmip14.ResultReasonInvalidField, "the Certificate Request is for another key than the Public Key")
				}
				n = namesOfCSR(req.csr) // the request takes precedence over the template (§4.7)
			case n.subject == nil:
				n = currentNames(ic, s, o)
			}
			keyMask, hasKeyMask := o.UsageMask()
			ku, err := keyUsage(req.mask, req.hasMask, keyMask, hasKeyMask, pub)
			if err != nil {
				return false, err
			}
			// Run again (another replica wrote the key meanwhile), fn
			// keeps the certificate it stored: only the key's link is redone.
			if cert == nil {
				c, err := p.issue(ic, iss, pub, n, ku, req.attrs)
				if err != nil {
					return false, err
				}
				c.Add(object.AttrLink, linkValue(kmip14.LinkTypePublicKeyLink, pubUID))
				if err := s.Insert(ic.ctx, c); err != nil {
					return false, err
				}
				cert = c
			}
			o.Add(object.AttrLink, linkValue(kmip14.LinkTypeCertificateLink, cert.UID()))
			o.Touch(ic.now)
			return true, nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	ic.placeholder = cert.UID()
	return respUID(cert.UID()), nil
}

// currentNames are the subject and alternative names of the key's latest
// certificate (its Certificate Link of highest index), for a certificate
// update without a Certificate Request: none if it has no readable one.
func currentNames(ic *itemCtx, s *object.Scope, key *object.Object) names {
	var uid string
	var best int32 = -1
	for _, l := range key.All(object.AttrLink) {
		v := l.Value()
		if t, _ := v.Child(kmip14.TagLinkType).EnumValue(); kmip14.LinkType(t) == kmip14.LinkTypeCertificateLink && l.Index() > best {
			uid, _ = v.Child(kmip14.TagLinkedObjectIdentifier).TextValue()
			best = l.Index()
		}
	}
	if uid == "" {
		return names{}
	}
	c, err := s.Load(ic.ctx, uid)
	if err != nil || c.Type() != kmip14.ObjectTypeCertificate {
		return names{}
	}
	der, _ := c.Body().Child(kmip14.TagCertificateValue).BytesValue()
	xc, err := x509.ParseCertificate(der)
	if err != nil {
		return names{}
	}
	return namesOfCert(xc)
}
