package kmipops

import (
	"crypto/x509"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/internal/pkcs12"
	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// Get in Key Format Type PKCS#12 (KMIP 1.4 §2.1.7, Links §3.35). A Private
// Key is served as a PKCS#12 file: the key, shrouded under the password of
// the Secret Data its PKCS#12 Password Link names; the certificate its
// PKCS#12 Certificate Link names, then each certificate's own PKCS#12
// Certificate Link in turn (the chain towards the root); the key's PKCS#12
// Friendly Name. The file is protected by its password, so it is served as
// the Key Value byte string, not wrapped again.

// maxPKCS12Chain bounds the certificate chain followed through links.
const maxPKCS12Chain = 16

func (p *Processor) pkcs12Body(ic *itemCtx, o *object.Object) (*tree.Node, error) {
	notSupported := Errorf(kmip14.ResultReasonKeyFormatTypeNotSupported, "only a Private Key is served as PKCS#12 (KMIP 1.4)")
	if ic.v.minor < 4 || o.Type() != kmip14.ObjectTypePrivateKey {
		return nil, notSupported
	}
	kb := o.Body().Child(kmip14.TagKeyBlock)
	if kb.Child(kmip14.TagKeyWrappingData).Present() {
		return nil, notSupported
	}
	if err := requireKeyValue(kb); err != nil {
		return nil, err
	}
	f, _ := kb.Child(kmip14.TagKeyFormatType).EnumValue()
	key, err := readAsymmetric(o.Type(), kmip14.KeyFormatType(f), kb.Path(kmip14.TagKeyValue, kmip14.TagKeyMaterial))
	if errors.Is(err, errUnknownFormat) {
		return nil, notSupported
	}
	if err != nil {
		return nil, &Error{Reason: kmip14.ResultReasonCryptographicFailure, Msg: "key material does not parse", Err: err}
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, notSupported
	}
	defer clear(p8)
	password, err := p.pkcs12Password(ic, o)
	if err != nil {
		return nil, err
	}
	chain, err := p.pkcs12Chain(ic, o)
	if err != nil {
		return nil, err
	}
	name, _ := o.Get("PKCS#12 Friendly Name").TextValue()
	der, err := pkcs12.Encode(p.opts.Rand, pkcs12.Bundle{PrivateKey: p8, Certificates: chain, FriendlyName: name}, password)
	if errors.Is(err, pkcs12.ErrText) {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "the PKCS#12 password or friendly name is not valid text")
	}
	if err != nil {
		return nil, fmt.Errorf("write PKCS#12: %w", err)
	}
	return tree.Struct(kmip14.TagPrivateKey, tree.Struct(kmip14.TagKeyBlock,
		tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypePKCS_12)),
		tree.Bytes(kmip14.TagKeyValue, der))), nil
}

// linkTarget is the object o's link of type t names (the highest index if
// several do).
func linkTarget(o *object.Object, t kmip14.LinkType) (string, bool) {
	uid, best := "", int32(-1)
	for _, l := range o.All(object.AttrLink) {
		v := l.Value()
		if lt, _ := v.Child(kmip14.TagLinkType).EnumValue(); kmip14.LinkType(lt) == t && l.Index() > best {
			uid, _ = v.Child(kmip14.TagLinkedObjectIdentifier).TextValue()
			best = l.Index()
		}
	}
	return uid, best >= 0
}

// linked loads the caller's object that o's link of type t names.
func (p *Processor) linked(ic *itemCtx, o *object.Object, t kmip14.LinkType, want kmip14.ObjectType) (*object.Object, bool, error) {
	uid, ok := linkTarget(o, t)
	if !ok {
		return nil, false, nil
	}
	l, err := ic.objects.Load(ic.ctx, uid)
	if err != nil {
		return nil, false, err
	}
	if l.Type() != want {
		return nil, false, Errorf(kmip14.ResultReasonInvalidField, "the %s names a %s, not a %s", t, l.Type(), want)
	}
	if l.Destroyed() || !l.Body().Present() {
		return nil, false, Errorf(kmip14.ResultReasonItemNotFound, "the object the %s names has been destroyed", t)
	}
	return l, true, nil
}

// pkcs12Password is the password of the Secret Data the key's PKCS#12
// Password Link names. kmipd never serves a private key under no password.
func (p *Processor) pkcs12Password(ic *itemCtx, o *object.Object) (string, error) {
	s, ok, err := p.linked(ic, o, kmip14.LinkTypePKCS_12PasswordLink, kmip14.ObjectTypeSecretData)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", Errorf(kmip14.ResultReasonMissingData, "the key has no PKCS#12 Password Link to protect the PKCS#12 file")
	}
	kb := s.Body().Child(kmip14.TagKeyBlock)
	if kb.Child(kmip14.TagKeyWrappingData).Present() {
		return "", Errorf(kmip14.ResultReasonFeatureNotSupported, "the PKCS#12 password is stored wrapped")
	}
	if err := requireKeyValue(kb); err != nil {
		return "", err
	}
	b, ok := kb.Path(kmip14.TagKeyValue, kmip14.TagKeyMaterial).BytesValue()
	defer clear(b)
	if !ok || len(b) == 0 || !utf8.Valid(b) {
		return "", Errorf(kmip14.ResultReasonInvalidField, "the PKCS#12 password must be non-empty UTF-8 text")
	}
	return string(b), nil
}

// pkcs12Chain follows PKCS#12 Certificate Links from the key, stopping at a
// certificate with none or one already taken (a root may name itself).
func (p *Processor) pkcs12Chain(ic *itemCtx, o *object.Object) ([][]byte, error) {
	var chain [][]byte
	seen := map[string]bool{}
	for cur := o; ; {
		uid, _ := linkTarget(cur, kmip14.LinkTypePKCS_12CertificateLink)
		if uid == "" || seen[uid] {
			return chain, nil
		}
		if len(chain) == maxPKCS12Chain {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "PKCS#12 Certificate Links chain more than %d certificates", maxPKCS12Chain)
		}
		c, _, err := p.linked(ic, cur, kmip14.LinkTypePKCS_12CertificateLink, kmip14.ObjectTypeCertificate)
		if err != nil {
			return nil, err
		}
		der, _ := c.Body().Child(kmip14.TagCertificateValue).BytesValue()
		seen[uid] = true
		chain = append(chain, der)
		cur = c
	}
}
