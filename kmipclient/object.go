package kmipclient

import (
	"encoding/pem"
	"fmt"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Object is a managed object's content, as Register sends it and Get
// returns it. Material holds the bytes: a key's Key Material (in Format), a
// certificate's DER, an opaque object's value. Wipe clears it.
type Object struct {
	Type kmip14.ObjectType
	// Keys and Secret Data: the Key Block's fields.
	Format    kmip14.KeyFormatType
	Algorithm kmip14.CryptographicAlgorithm // 0 when the Key Block names none
	Length    int32                         // bits; 0 when the Key Block names none
	// Wrapped: Material is a wrapped Key Value, not Key Material.
	Wrapped bool

	SecretDataType  kmip14.SecretDataType  // Secret Data
	CertificateType kmip14.CertificateType // Certificate
	OpaqueDataType  kmip14.OpaqueDataType  // Opaque Object

	Material []byte
}

// Wipe overwrites the material.
func (o *Object) Wipe() { clear(o.Material) }

// bodyTags maps each object type this client handles to its structure's tag.
var bodyTags = map[kmip14.ObjectType]ttlv.Tag{
	kmip14.ObjectTypeSymmetricKey: kmip14.TagSymmetricKey,
	kmip14.ObjectTypePublicKey:    kmip14.TagPublicKey,
	kmip14.ObjectTypePrivateKey:   kmip14.TagPrivateKey,
	kmip14.ObjectTypeSecretData:   kmip14.TagSecretData,
	kmip14.ObjectTypeCertificate:  kmip14.TagCertificate,
	kmip14.ObjectTypeOpaqueObject: kmip14.TagOpaqueObject,
}

// body is the object structure Register sends.
func (o *Object) body() (*tree.Node, error) {
	tag, ok := bodyTags[o.Type]
	if !ok {
		return nil, fmt.Errorf("kmipclient: cannot register a %s", o.Type)
	}
	switch o.Type {
	case kmip14.ObjectTypeCertificate:
		return tree.Struct(tag,
			tree.Enum(kmip14.TagCertificateType, uint32(o.CertificateType)),
			tree.Bytes(kmip14.TagCertificateValue, o.Material)), nil
	case kmip14.ObjectTypeOpaqueObject:
		return tree.Struct(tag,
			tree.Enum(kmip14.TagOpaqueDataType, uint32(o.OpaqueDataType)),
			tree.Bytes(kmip14.TagOpaqueDataValue, o.Material)), nil
	}
	kb := tree.Struct(kmip14.TagKeyBlock,
		tree.Enum(kmip14.TagKeyFormatType, uint32(o.Format)),
		tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, o.Material)))
	if o.Algorithm != 0 {
		kb.Add(tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(o.Algorithm)))
	}
	if o.Length != 0 {
		kb.Add(tree.Int(kmip14.TagCryptographicLength, o.Length))
	}
	if o.Type == kmip14.ObjectTypeSecretData {
		return tree.Struct(tag, tree.Enum(kmip14.TagSecretDataType, uint32(o.SecretDataType)), kb), nil
	}
	return tree.Struct(tag, kb), nil
}

// objectOf reads a Get response's object structure.
func objectOf(ot kmip14.ObjectType, p *tree.Node) (*Object, error) {
	tag, ok := bodyTags[ot]
	if !ok {
		return nil, fmt.Errorf("object type %s is not one this client reads", ot)
	}
	b := p.Child(tag)
	if b == nil {
		return nil, fmt.Errorf("no %s structure in the response", tag)
	}
	o := &Object{Type: ot}
	enum := func(t ttlv.Tag) uint32 { v, _ := b.Child(t).EnumValue(); return v }
	var found bool
	switch ot {
	case kmip14.ObjectTypeCertificate:
		o.CertificateType = kmip14.CertificateType(enum(kmip14.TagCertificateType))
		o.Material, found = b.Child(kmip14.TagCertificateValue).BytesValue()
	case kmip14.ObjectTypeOpaqueObject:
		o.OpaqueDataType = kmip14.OpaqueDataType(enum(kmip14.TagOpaqueDataType))
		o.Material, found = b.Child(kmip14.TagOpaqueDataValue).BytesValue()
	default:
		o.SecretDataType = kmip14.SecretDataType(enum(kmip14.TagSecretDataType))
		kb := b.Child(kmip14.TagKeyBlock)
		f, _ := kb.Child(kmip14.TagKeyFormatType).EnumValue()
		a, _ := kb.Child(kmip14.TagCryptographicAlgorithm).EnumValue()
		o.Format, o.Algorithm = kmip14.KeyFormatType(f), kmip14.CryptographicAlgorithm(a)
		o.Length, _ = kb.Child(kmip14.TagCryptographicLength).IntValue()
		kv := kb.Child(kmip14.TagKeyValue)
		km := kv.Child(kmip14.TagKeyMaterial)
		switch {
		case kv != nil && kv.Type == ttlv.TypeByteString:
			o.Material, o.Wrapped, found = kv.Bytes, true, true
		case km != nil && km.Type != ttlv.TypeByteString:
			return nil, fmt.Errorf("the %s key material is a structure, not bytes: ask for another key format", o.Format)
		default:
			o.Material, found = km.BytesValue()
		}
	}
	if !found {
		return nil, fmt.Errorf("no value in the %s structure", tag)
	}
	return o, nil
}

// PEMType is the PEM block type of the object's material, false when it
// has none (symmetric keys, secret data, opaque objects, wrapped keys).
func (o *Object) PEMType() (string, bool) {
	var t string
	switch {
	case o.Wrapped:
	case o.Type == kmip14.ObjectTypeCertificate && o.CertificateType == kmip14.CertificateTypeX_509:
		t = "CERTIFICATE"
	case o.Type == kmip14.ObjectTypePrivateKey:
		t = map[kmip14.KeyFormatType]string{kmip14.KeyFormatTypePKCS_1: "RSA PRIVATE KEY",
			kmip14.KeyFormatTypePKCS_8: "PRIVATE KEY", kmip14.KeyFormatTypeECPrivateKey: "EC PRIVATE KEY"}[o.Format]
	case o.Type == kmip14.ObjectTypePublicKey:
		t = map[kmip14.KeyFormatType]string{kmip14.KeyFormatTypePKCS_1: "RSA PUBLIC KEY",
			kmip14.KeyFormatTypeX_509: "PUBLIC KEY"}[o.Format]
	}
	return t, t != ""
}

// PEM encodes the material as a PEM block.
func (o *Object) PEM() ([]byte, error) {
	t, ok := o.PEMType()
	if !ok {
		return nil, fmt.Errorf("kmipclient: a %s in %s format has no PEM form", o.Type, o.Form())
	}
	return pem.EncodeToMemory(&pem.Block{Type: t, Bytes: o.Material}), nil
}

// Form names the object's form: its Key Format Type, or its
// certificate type for a certificate.
func (o *Object) Form() string {
	switch o.Type {
	case kmip14.ObjectTypeCertificate:
		return o.CertificateType.String()
	case kmip14.ObjectTypeOpaqueObject:
		return "Opaque"
	}
	return o.Format.String()
}
