package kmipops

import (
	"crypto/x509"
	"errors"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// opReCertify renews a certificate for the same key pair (KMIP 1.4 §4.8):
// a new certificate for the key of the existing one, which takes over its
// names. The existing certificate gets a Replacement Object Link to the new
// one, the new one a Replaced Object Link back and the existing one's
// Public Key Link, and the public key's Certificate Link moves to the new
// certificate; all of it is written or none.
func opReCertify(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	iss, err := p.issuer(kmip14.OperationReCertify)
	if err != nil {
		return nil, err
	}
	uid, err := uidArg(ic, payload)
	if err != nil {
		return nil, err
	}
	req, err := parseCertRequest(ic, payload)
	if err != nil {
		return nil, err
	}
	var offset *time.Duration
	if n := payload.Child(kmip14.TagOffset); n != nil {
		d, ok := n.View().IntervalValue()
		if !ok {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Offset must be an interval")
		}
		offset = &d
	}
	var cert *object.Object
	var pubUID string
	err = p.atomically(ic, func(s *object.Scope) error {
		_, err := s.Update(ic.ctx, uid, func(old *object.Object) (bool, error) {
			old.AdvanceState(ic.now)
			if old.Type() != kmip14.ObjectTypeCertificate {
				return false, Errorf(kmip14.ResultReasonInvalidField, "ReCertify needs a Certificate, not a %s", old.Type())
			}
			if st := old.State(); old.Destroyed() || !old.Body().Present() ||
				st == kmip14.StateCompromised || st == kmip14.StateDestroyedCompromised {
				return false, Errorf(kmip14.ResultReasonPermissionDenied, "a %s certificate is not renewed", st)
			}
			der, _ := old.Body().Child(kmip14.TagCertificateValue).BytesValue()
			xc, err := x509.ParseCertificate(der)
			if err != nil {
				return false, &Error{Reason: kmip14.ResultReasonFeatureNotSupported, Msg: "kmipd cannot read the key of this certificate", Err: err}
			}
			pubUID = linked(old, kmip14.LinkTypePublicKeyLink)
			n := namesOfCert(xc)
			if req.subject != nil {
				n = names{subject: req.subject}
			}
			if req.csr != nil {
				if !samePublicKey(xc.PublicKey, req.csr.PublicKey) {
					return false, Errorf(kmip14.ResultReasonInvalidField, "the Certificate Request is for another key than the certificate's")
				}
				n = namesOfCSR(req.csr)
			}
			want, hasWant := req.mask, req.hasMask
			if !hasWant {
				want, hasWant = old.UsageMask()
			}
			var keyMask kmip14.CryptographicUsageMask
			var hasKeyMask bool
			if pubUID != "" {
				if k, err := s.Load(ic.ctx, pubUID); err == nil {
					keyMask, hasKeyMask = k.UsageMask()
				}
			}
			ku, err := keyUsage(want, hasWant, keyMask, hasKeyMask, xc.PublicKey)
			if err != nil {
				return false, err
			}
			// Run again (another replica wrote the certificate meanwhile),
			// fn keeps the one it stored: only the old one's change is redone.
			if cert == nil {
				c, err := p.issue(ic, iss, xc.PublicKey, n, ku, renewedAttrs(old, req.attrs, offset, ic.now))
				if err != nil {
					return false, err
				}
				if pubUID != "" {
					c.Add(object.AttrLink, linkValue(kmip14.LinkTypePublicKeyLink, pubUID))
				}
				c.Add(object.AttrLink, linkValue(kmip14.LinkTypeReplacedObjectLink, uid))
				if err := s.Insert(ic.ctx, c); err != nil {
					return false, err
				}
				cert = c
			}
			for _, a := range old.All(object.AttrName) {
				old.Delete(object.AttrName, a.Index())
			}
			old.Add(object.AttrLink, linkValue(kmip14.LinkTypeReplacementObjectLink, cert.UID()))
			old.Touch(ic.now)
			return true, nil
		})
		if err != nil || pubUID == "" {
			return err
		}
		_, err = s.Update(ic.ctx, pubUID, func(k *object.Object) (bool, error) {
			for _, l := range k.All(object.AttrLink) {
				v := l.Value()
				t, _ := v.Child(kmip14.TagLinkType).EnumValue()
				if to, _ := v.Child(kmip14.TagLinkedObjectIdentifier).TextValue(); kmip14.LinkType(t) == kmip14.LinkTypeCertificateLink && to == uid {
					k.Modify(object.AttrLink, l.Index(), linkValue(kmip14.LinkTypeCertificateLink, cert.UID()))
					k.Touch(ic.now)
					return true, nil
				}
			}
			k.Add(object.AttrLink, linkValue(kmip14.LinkTypeCertificateLink, cert.UID()))
			k.Touch(ic.now)
			return true, nil
		})
		if errors.Is(err, object.ErrNotFound) {
			return nil // the key is gone: there is no link to move
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	ic.placeholder = cert.UID()
	return respUID(cert.UID()), nil
}

// linked is the object o's first link of type t points to ("" if none).
func linked(o *object.Object, t kmip14.LinkType) string {
	for _, l := range o.All(object.AttrLink) {
		v := l.Value()
		if lt, _ := v.Child(kmip14.TagLinkType).EnumValue(); kmip14.LinkType(lt) == t {
			uid, _ := v.Child(kmip14.TagLinkedObjectIdentifier).TextValue()
			return uid
		}
	}
	return ""
}

// notRenewed are the client attributes a renewed certificate does not copy
// from the one it replaces (KMIP 1.4 §4.8): its names are moved after the
// template's, links are set by the server, the dates follow the Offset
// rule, the key's size comes from the certificate, a usage count starts
// again, and when and how the new certificate was made are its own.
var notRenewed = map[string]bool{
	object.AttrName: true, object.AttrLink: true,
	object.AttrActivationDate: true, object.AttrDeactivationDate: true,
	object.AttrProcessStartDate: true, object.AttrProtectStopDate: true,
	object.AttrCryptoAlgorithm: true, object.AttrCryptoLength: true, object.AttrCryptoDomainParameters: true,
	object.AttrUsageLimits: true, object.AttrOriginalCreationDate: true, object.AttrRNG: true,
	object.AttrFresh: true, // the new certificate's own: not served yet
}

// renewedAttrs are the new certificate's client attributes: the template's;
// then the existing certificate's that the template does not replace; its
// Activation and Deactivation Dates, shifted by Offset if one is given
// (AT2 = IT2 + Offset, DT2 = DT1 + (AT2 − AT1)); and last the existing
// certificate's names, which the new one takes over.
func renewedAttrs(old *object.Object, template []object.Attr, offset *time.Duration, now time.Time) []object.Attr {
	var copied []object.Attr
	for _, a := range old.Listing(4, false) {
		d, known := object.Lookup(a.Name())
		if notRenewed[a.Name()] || (known && !d.ClientSets()) || (known && !d.Multi() && hasAttr(template, a.Name())) {
			continue
		}
		copied = append(copied, object.NewAttr(a.Name(), a.Value().Clone()))
	}
	out := mergeTemplates(copied, template)
	at1, hasAT := old.Get(object.AttrActivationDate).TimeValue()
	dt1, hasDT := old.Get(object.AttrDeactivationDate).TimeValue()
	switch {
	case offset == nil:
		if hasAT && !hasAttr(template, object.AttrActivationDate) {
			out = append(out, object.NewAttr(object.AttrActivationDate, tree.Time(0, at1)))
		}
		if hasDT && !hasAttr(template, object.AttrDeactivationDate) {
			out = append(out, object.NewAttr(object.AttrDeactivationDate, tree.Time(0, dt1)))
		}
	default:
		at2 := now.Add(*offset)
		out = append(removeAttrs(out, object.AttrActivationDate), object.NewAttr(object.AttrActivationDate, tree.Time(0, at2)))
		if hasAT && hasDT {
			out = append(removeAttrs(out, object.AttrDeactivationDate),
				object.NewAttr(object.AttrDeactivationDate, tree.Time(0, dt1.Add(at2.Sub(at1)))))
		}
	}
	for _, a := range old.All(object.AttrName) {
		out = append(out, object.NewAttr(object.AttrName, a.Value().Clone()))
	}
	return out
}
