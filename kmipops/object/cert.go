package object

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"strings"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// The attributes a server derives from an X.509 certificate (KMIP 1.0
// §3.9–3.11: Certificate Identifier, Subject and Issuer, as text; 1.1+
// §3.12–3.16: Certificate Length, Digital Signature Algorithm and the X.509
// Certificate Identifier, Subject and Issuer, as DER; and Cryptographic
// Length, the size of the certified key). The certificate is read with
// encoding/asn1 rather than crypto/x509, which refuses any certificate whose
// key it cannot use (secp256k1, say): a key server stores certificates it
// never verifies.

// Names of the certificate attributes.
const (
	AttrCertificateIdentifier     = "Certificate Identifier"
	AttrCertificateSubject        = "Certificate Subject"
	AttrCertificateIssuer         = "Certificate Issuer"
	AttrX509CertificateIdentifier = "X.509 Certificate Identifier"
	AttrX509CertificateSubject    = "X.509 Certificate Subject"
	AttrX509CertificateIssuer     = "X.509 Certificate Issuer"
	AttrDigitalSignatureAlgorithm = "Digital Signature Algorithm"
)

type asnCertificate struct {
	TBS    asnTBS
	SigAlg pkix.AlgorithmIdentifier
	Sig    asn1.BitString
}

type asnTBS struct {
	Version    int `asn1:"optional,explicit,default:0,tag:0"`
	Serial     asn1.RawValue
	SigAlg     pkix.AlgorithmIdentifier
	Issuer     asn1.RawValue
	Validity   asn1.RawValue
	Subject    asn1.RawValue
	SPKI       asnSPKI
	IssuerUID  asn1.BitString   `asn1:"optional,tag:1"`
	SubjectUID asn1.BitString   `asn1:"optional,tag:2"`
	Extensions []pkix.Extension `asn1:"optional,explicit,tag:3"`
}

type asnSPKI struct {
	Algorithm pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

// CertInfo is what KMIP records of an X.509 certificate.
type CertInfo struct {
	Serial         *big.Int
	SerialDER      []byte // the serialNumber INTEGER, tag and length included
	Issuer         []byte // DER Name
	Subject        []byte // DER Name
	IssuerText     string // RFC 4514 form, most specific RDN first
	SubjectText    string
	SubjectAltName []byte // DER GeneralNames of the extension, if any
	IssuerAltName  []byte
	SubjectAltText []string                         // the subject alternative names as text, where crypto/x509 reads them
	SigAlg         kmip14.DigitalSignatureAlgorithm // 0 if KMIP has no name for it
	KeyBits        int32                            // 0 if unknown
	PublicKeyAlg   asn1.ObjectIdentifier
}

var (
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidIssuerAltName  = asn1.ObjectIdentifier{2, 5, 29, 18}
	oidRSA            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidECPublicKey    = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidDSA            = asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}
)

// sigAlgs maps signature algorithm OIDs to KMIP's Digital Signature
// Algorithm (KMIP 1.4 §9.1.3.2.37).
var sigAlgs = map[string]kmip14.DigitalSignatureAlgorithm{
	"1.2.840.113549.1.1.2":    kmip14.DigitalSignatureAlgorithmMD2WithRSAEncryption,
	"1.2.840.113549.1.1.4":    kmip14.DigitalSignatureAlgorithmMD5WithRSAEncryption,
	"1.2.840.113549.1.1.5":    kmip14.DigitalSignatureAlgorithmSHA_1WithRSAEncryption,
	"1.2.840.113549.1.1.14":   kmip14.DigitalSignatureAlgorithmSHA_224WithRSAEncryption,
	"1.2.840.113549.1.1.11":   kmip14.DigitalSignatureAlgorithmSHA_256WithRSAEncryption,
	"1.2.840.113549.1.1.12":   kmip14.DigitalSignatureAlgorithmSHA_384WithRSAEncryption,
	"1.2.840.113549.1.1.13":   kmip14.DigitalSignatureAlgorithmSHA_512WithRSAEncryption,
	"1.2.840.113549.1.1.10":   kmip14.DigitalSignatureAlgorithmRSASSA_PSS,
	"1.2.840.10040.4.3":       kmip14.DigitalSignatureAlgorithmDSAWithSHA_1,
	"2.16.840.1.101.3.4.3.1":  kmip14.DigitalSignatureAlgorithmDSAWithSHA224,
	"2.16.840.1.101.3.4.3.2":  kmip14.DigitalSignatureAlgorithmDSAWithSHA256,
	"1.2.840.10045.4.1":       kmip14.DigitalSignatureAlgorithmECDSAWithSHA_1,
	"1.2.840.10045.4.3.1":     kmip14.DigitalSignatureAlgorithmECDSAWithSHA224,
	"1.2.840.10045.4.3.2":     kmip14.DigitalSignatureAlgorithmECDSAWithSHA256,
	"1.2.840.10045.4.3.3":     kmip14.DigitalSignatureAlgorithmECDSAWithSHA384,
	"1.2.840.10045.4.3.4":     kmip14.DigitalSignatureAlgorithmECDSAWithSHA512,
	"2.16.840.1.101.3.4.3.14": kmip14.DigitalSignatureAlgorithmSHA3_256WithRSAEncryption,
	"2.16.840.1.101.3.4.3.15": kmip14.DigitalSignatureAlgorithmSHA3_384WithRSAEncryption,
	"2.16.840.1.101.3.4.3.16": kmip14.DigitalSignatureAlgorithmSHA3_512WithRSAEncryption,
}

// CurveBits is the size of the named elliptic curves KMIP lists (Recommended
// Curve, KMIP 1.4 §9.1.3.2.5), by OID: the NIST, SEC 2 Koblitz and binary
// curves and Brainpool's.
var CurveBits = map[string]int32{
	"1.2.840.10045.3.1.1": 192, "1.3.132.0.33": 224, "1.2.840.10045.3.1.7": 256, "1.3.132.0.34": 384, "1.3.132.0.35": 521,
	"1.3.132.0.1": 163, "1.3.132.0.15": 163, "1.3.132.0.26": 233, "1.3.132.0.27": 233, "1.3.132.0.16": 283,
	"1.3.132.0.17": 283, "1.3.132.0.36": 409, "1.3.132.0.37": 409, "1.3.132.0.38": 571, "1.3.132.0.39": 571,
	"1.3.132.0.10": 256, "1.3.132.0.31": 192, "1.3.132.0.32": 224,
	"1.3.36.3.3.2.8.1.1.1": 160, "1.3.36.3.3.2.8.1.1.3": 192, "1.3.36.3.3.2.8.1.1.5": 224,
	"1.3.36.3.3.2.8.1.1.7": 256, "1.3.36.3.3.2.8.1.1.9": 320, "1.3.36.3.3.2.8.1.1.11": 384,
	"1.3.36.3.3.2.8.1.1.13": 512,
}

// ParseCertificate reads what KMIP records of a DER X.509 certificate.
func ParseCertificate(der []byte) (*CertInfo, error) {
	var c asnCertificate
	rest, err := asn1.Unmarshal(der, &c)
	if err != nil {
		return nil, fmt.Errorf("not a DER X.509 certificate: %w", err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("trailing data after the certificate")
	}
	t := &c.TBS
	if t.Serial.Class != asn1.ClassUniversal || t.Serial.Tag != asn1.TagInteger || len(t.Serial.Bytes) == 0 {
		return nil, fmt.Errorf("certificate serial number is not an INTEGER")
	}
	info := &CertInfo{
		Serial:       new(big.Int).SetBytes(t.Serial.Bytes),
		SerialDER:    t.Serial.FullBytes,
		Issuer:       t.Issuer.FullBytes,
		Subject:      t.Subject.FullBytes,
		SigAlg:       sigAlgs[c.SigAlg.Algorithm.String()],
		PublicKeyAlg: t.SPKI.Algorithm.Algorithm,
	}
	for _, dn := range []struct {
		der []byte
		out *string
	}{{info.Issuer, &info.IssuerText}, {info.Subject, &info.SubjectText}} {
		var rdn pkix.RDNSequence
		if rest, err := asn1.Unmarshal(dn.der, &rdn); err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("certificate names are not DER Names")
		}
		*dn.out = rdn.String()
	}
	for _, e := range t.Extensions {
		switch {
		case e.Id.Equal(oidSubjectAltName):
			info.SubjectAltName = e.Value
		case e.Id.Equal(oidIssuerAltName):
			info.IssuerAltName = e.Value
		}
	}
	info.KeyBits = keyBits(&t.SPKI)
	if xc, err := x509.ParseCertificate(der); err == nil {
		info.SubjectAltText = append(info.SubjectAltText, xc.DNSNames...)
		info.SubjectAltText = append(info.SubjectAltText, xc.EmailAddresses...)
		for _, ip := range xc.IPAddresses {
			info.SubjectAltText = append(info.SubjectAltText, ip.String())
		}
		for _, u := range xc.URIs {
			info.SubjectAltText = append(info.SubjectAltText, u.String())
		}
	}
	return info, nil
}

// keyBits is the Cryptographic Length of a certified key: an RSA modulus's
// bits, a named curve's size, a DSA prime's bits; 0 when unknown.
func keyBits(k *asnSPKI) int32 {
	alg := k.Algorithm.Algorithm
	switch {
	case alg.Equal(oidRSA):
		var pub struct {
			N *big.Int
			E int
		}
		if _, err := asn1.Unmarshal(k.PublicKey.RightAlign(), &pub); err == nil && pub.N != nil {
			return int32(pub.N.BitLen())
		}
	case alg.Equal(oidECPublicKey):
		var curve asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(k.Algorithm.Parameters.FullBytes, &curve); err == nil {
			return CurveBits[curve.String()]
		}
	case alg.Equal(oidDSA):
		var params struct{ P, Q, G *big.Int }
		if _, err := asn1.Unmarshal(k.Algorithm.Parameters.FullBytes, &params); err == nil && params.P != nil {
			return int32(params.P.BitLen())
		}
	}
	return 0
}

// serialText is the serial number as KMIP 1.0's Certificate Identifier
// shows it: upper-case hex, whole bytes.
func serialText(n *big.Int) string {
	if n.Sign() == 0 {
		return "00"
	}
	return strings.ToUpper(fmt.Sprintf("%x", n.Bytes()))
}

// setCertificateAttrs records what the certificate value says. They are the
// server's, so they replace whatever a client template gave.
func (o *Object) setCertificateAttrs(der []byte) error {
	info, err := ParseCertificate(der)
	if err != nil {
		return errorf(kmip14.ResultReasonInvalidField, "Certificate Value is not a DER X.509 certificate")
	}
	o.Set(AttrCertificateIdentifier, tree.Struct(0,
		tree.Text(kmip14.TagIssuer, info.IssuerText),
		tree.Text(kmip14.TagSerialNumber, serialText(info.Serial))))
	subj := tree.Struct(0, tree.Text(kmip14.TagCertificateSubjectDistinguishedName, info.SubjectText))
	for _, s := range info.SubjectAltText {
		subj.Add(tree.Text(kmip14.TagCertificateSubjectAlternativeName, s))
	}
	o.Set(AttrCertificateSubject, subj)
	o.Set(AttrCertificateIssuer, tree.Struct(0, tree.Text(kmip14.TagCertificateIssuerDistinguishedName, info.IssuerText)))
	o.Set(AttrX509CertificateIdentifier, tree.Struct(0,
		tree.Bytes(kmip14.TagIssuerDistinguishedName, info.Issuer),
		tree.Bytes(kmip14.TagCertificateSerialNumber, info.SerialDER)))
	xs := tree.Struct(0, tree.Bytes(kmip14.TagSubjectDistinguishedName, info.Subject))
	if info.SubjectAltName != nil {
		xs.Add(tree.Bytes(kmip14.TagSubjectAlternativeName, info.SubjectAltName))
	}
	o.Set(AttrX509CertificateSubject, xs)
	xi := tree.Struct(0, tree.Bytes(kmip14.TagIssuerDistinguishedName, info.Issuer))
	if info.IssuerAltName != nil {
		xi.Add(tree.Bytes(kmip14.TagIssuerAlternativeName, info.IssuerAltName))
	}
	o.Set(AttrX509CertificateIssuer, xi)
	if info.SigAlg != 0 {
		o.Set(AttrDigitalSignatureAlgorithm, tree.Enum(0, uint32(info.SigAlg)))
	}
	if info.KeyBits > 0 {
		o.Set(AttrCryptoLength, tree.Int(0, info.KeyBits))
	}
	return nil
}
