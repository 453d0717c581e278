package kmipops

import (
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// Re-key Key Pair (KMIP 1.4 §4.5, since 1.1) replaces a private key and the
// public key it links to with a new pair, as Re-key does for a symmetric
// key (op_rekey.go): each new key takes its predecessor's attributes and
// names, the new keys link to each other (Public Key Link, Private Key
// Link) and to the key each replaces (Replaced Object Link), and each old
// key gets a Replacement Object Link. Both old keys change under both
// their locks (object.Scope.UpdatePair), so the pair is retired whole.

// linkedUID is the object o links to with type t ("" if none).
func linkedUID(o *object.Object, t kmip14.LinkType) string {
	for _, a := range o.All(object.AttrLink) {
		v := a.Value()
		if lt, _ := v.Child(kmip14.TagLinkType).EnumValue(); kmip14.LinkType(lt) == t {
			s, _ := v.Child(kmip14.TagLinkedObjectIdentifier).TextValue()
			return s
		}
	}
	return ""
}

// privateKeyArg is the request's Private Key Unique Identifier, else the
// ID Placeholder.
func privateKeyArg(ic *itemCtx, payload *tree.Node) (string, error) {
	n := payload.Child(kmip14.TagPrivateKeyUniqueIdentifier)
	if n == nil {
		if ic.placeholder == "" {
			return "", Errorf(kmip14.ResultReasonMissingData, "Private Key Unique Identifier missing and no ID Placeholder set")
		}
		return ic.placeholder, nil
	}
	if n.Type != ttlv.TypeTextString {
		return "", Errorf(kmip14.ResultReasonInvalidField, "Private Key Unique Identifier must be a text string")
	}
	return n.Text, nil
}

func opReKeyKeyPair(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	uid, err := privateKeyArg(ic, payload)
	if err != nil {
		return nil, err
	}
	offset, err := offsetArg(payload)
	if err != nil {
		return nil, err
	}
	var tmpl [3][]object.Attr
	for i, tag := range []ttlv.Tag{kmip14.TagCommonTemplateAttribute, kmip14.TagPrivateKeyTemplateAttribute, kmip14.TagPublicKeyTemplateAttribute} {
		if tmpl[i], err = ic.parseTemplate(payload.Child(tag)); err != nil {
			return nil, err
		}
	}
	privT, pubT := mergeTemplates(tmpl[0], tmpl[1]), mergeTemplates(tmpl[0], tmpl[2])
	// The public key is the one the private key links to; UpdatePair
	// checks the link again under the locks.
	first, err := ic.objects.Load(ic.ctx, uid)
	if err != nil {
		return nil, err
	}
	if err := replaceable(first, kmip14.ObjectTypePrivateKey); err != nil {
		return nil, err
	}
	pubUID := linkedUID(first, kmip14.LinkTypePublicKeyLink)
	if pubUID == "" {
		return nil, Errorf(kmip14.ResultReasonIllegalOperation, "the private key has no Public Key Link to re-key with")
	}
	var newPriv, newPub *object.Object
	_, _, err = ic.objects.UpdatePair(ic.ctx, uid, pubUID, func(priv, pub *object.Object) (bool, bool, error) {
		priv.AdvanceState(ic.now)
		pub.AdvanceState(ic.now)
		if err := replaceable(priv, kmip14.ObjectTypePrivateKey); err != nil {
			return false, false, err
		}
		if linkedUID(priv, kmip14.LinkTypePublicKeyLink) != pubUID {
			return false, false, Errorf(kmip14.ResultReasonIllegalOperation, "the private key's Public Key Link changed during the re-key")
		}
		if err := replaceable(pub, kmip14.ObjectTypePublicKey); err != nil {
			return false, false, err
		}
		// Run again (another replica wrote either key meanwhile), fn
		// keeps the pair it stored: only the keys' own change is redone.
		if newPriv == nil {
			var err error
			if newPriv, newPub, err = p.newKeyPairFor(ic, priv, pub, privT, pubT, offset); err != nil {
				return false, false, err
			}
		}
		retire(priv, newPriv.UID(), ic.now)
		retire(pub, newPub.UID(), ic.now)
		return true, true, nil
	})
	if err != nil {
		p.dropNew(ic, newPriv, newPub)
		return nil, err
	}
	ic.placeholder = newPriv.UID()
	return tree.Struct(kmip14.TagResponsePayload,
		tree.Text(kmip14.TagPrivateKeyUniqueIdentifier, newPriv.UID()),
		tree.Text(kmip14.TagPublicKeyUniqueIdentifier, newPub.UID())), nil
}

// newKeyPairFor generates and stores the replacement of the pair priv,
// pub, with the same algorithm and size unless the templates say
// otherwise. On error, what it returns was stored (nil if not), for the
// caller to remove.
func (p *Processor) newKeyPairFor(ic *itemCtx, priv, pub *object.Object, privT, pubT []object.Attr, offset *time.Duration) (np, nq *object.Object, err error) {
	privA, err := replacementAttrs(priv, privT, offset, ic.now)
	if err != nil {
		return nil, nil, err
	}
	pubA, err := replacementAttrs(pub, pubT, offset, ic.now)
	if err != nil {
		return nil, nil, err
	}
	alg, length, hasAlg, hasLen := algLength(privA)
	palg, plen, phasAlg, phasLen := algLength(pubA)
	if !hasAlg || !phasAlg || alg != palg || hasLen != phasLen || length != plen {
		return nil, nil, Errorf(kmip14.ResultReasonIllegalOperation, "the two keys must share one Cryptographic Algorithm and Length")
	}
	kp, err := replacementKeyPair(p, priv, alg, length, hasLen, privA) // keyformat_secp256k1.go
	if err != nil {
		return nil, nil, err
	}
	np, err = p.newObject(ic, kmip14.ObjectTypePrivateKey,
		tree.Struct(kmip14.TagPrivateKey, keyBlock(alg, kp.length, kp.privFormat, kp.priv)),
		withDefaults(privA, alg, kp.length, kp.privMask), true)
	if err != nil {
		return nil, nil, err
	}
	nq, err = p.newObject(ic, kmip14.ObjectTypePublicKey,
		tree.Struct(kmip14.TagPublicKey, keyBlock(alg, kp.length, kp.pubFormat, kp.pub)),
		withDefaults(pubA, alg, kp.length, kp.pubMask), true)
	if err != nil {
		return nil, nil, err
	}
	if err := p.objects.AssignUID(np); err != nil {
		return nil, nil, err
	}
	if err := p.objects.AssignUID(nq); err != nil {
		return nil, nil, err
	}
	np.Add(object.AttrLink, linkValue(kmip14.LinkTypePublicKeyLink, nq.UID()))
	np.Add(object.AttrLink, linkValue(kmip14.LinkTypeReplacedObjectLink, priv.UID()))
	nq.Add(object.AttrLink, linkValue(kmip14.LinkTypePrivateKeyLink, np.UID()))
	nq.Add(object.AttrLink, linkValue(kmip14.LinkTypeReplacedObjectLink, pub.UID()))
	if err := ic.objects.Insert(ic.ctx, np); err != nil {
		return nil, nil, err
	}
	if err := ic.objects.Insert(ic.ctx, nq); err != nil {
		return np, nil, err
	}
	return np, nq, nil
}
