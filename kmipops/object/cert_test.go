package object

import (
	"bytes"
	"encoding/hex"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// oasisCert reads a certificate of the OASIS KMIP test cases (testdata/
// holds the Certificate Value of the case each file is named after).
func oasisCert(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	der, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newCert(t *testing.T, der []byte) *Object {
	t.Helper()
	o, err := New(Spec{Type: kmip14.ObjectTypeCertificate, Now: time.Unix(1700000000, 0),
		Body: tree.Struct(kmip14.TagCertificate,
			tree.Enum(kmip14.TagCertificateType, uint32(kmip14.CertificateTypeX_509)),
			tree.Bytes(kmip14.TagCertificateValue, der))})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// The certificate attributes are the values the OASIS test cases expect for
// the certificates they register or have certified: TC-132 and TC-134 (RSA,
// KMIP 1.0–1.2), TC-ECC-3 (ECDSA on P-256 in 1.0, on secp256k1 in 1.1–1.2,
// a curve crypto/x509 cannot read).
func TestCertificateAttributesKnownAnswers(t *testing.T) {
	oasisCA := "303b310b3009060355040613025553310d300b060355040a130454455354310e300c060355040b13054f41534953310d300b060355040313044b4d4950"
	k1CA := "3048310b3009060355040613025553310d300b060355040a0c0454455354310e300c060355040b0c054f41534953311a301806035504030c114b4d49502d45432d736563703235366b31"
	for _, c := range []struct {
		file                         string
		issuer, serial, subject      string
		length, bits                 int64
		sig                          kmip14.DigitalSignatureAlgorithm
		x509Issuer, x509Serial, x509 string
	}{
		{file: "oasis-tc134-rsa.hex", issuer: "CN=KMIP,OU=OASIS,O=TEST,C=US", serial: "9BBA23D1B6A48F97",
			subject: "CN=Client,OU=KMIP,O=ACME,C=US", length: 635, bits: 2048,
			sig: kmip14.DigitalSignatureAlgorithmSHA_256WithRSAEncryption, x509Issuer: oasisCA, x509Serial: "0209009bba23d1b6a48f97",
			x509: "303c310b3009060355040613025553310d300b060355040a130441434d45310d300b060355040b13044b4d4950310f300d06035504031306436c69656e74"},
		{file: "oasis-tc132-rsa.hex", issuer: "CN=KMIP,OU=OASIS,O=TEST,C=US", serial: "01",
			subject: "CN=KMIP,OU=OASIS,O=TEST,C=US", bits: 2048},
		{file: "oasis-ecc3-p256.hex", issuer: "CN=KMIP-EC-secp256r1,OU=OASIS,O=TEST,C=US", serial: "DADA16A58D2924D9",
			subject: "CN=KMIP-EC-secp256r1,OU=OASIS,O=TEST,C=US"},
		{file: "oasis-ecc3-secp256k1.hex", sig: kmip14.DigitalSignatureAlgorithmECDSAWithSHA256,
			x509Issuer: k1CA, x509Serial: "020900ec0b7402196d5295", x509: k1CA},
	} {
		t.Run(c.file, func(t *testing.T) {
			der := oasisCert(t, c.file)
			o := newCert(t, der)
			id := o.Get(AttrCertificateIdentifier)
			if c.issuer != "" {
				if s, _ := id.Child(kmip14.TagIssuer).TextValue(); s != c.issuer {
					t.Errorf("Certificate Identifier Issuer %q, want %q", s, c.issuer)
				}
				if s, _ := o.Get(AttrCertificateIssuer).Child(kmip14.TagCertificateIssuerDistinguishedName).TextValue(); s != c.issuer {
					t.Errorf("Certificate Issuer %q, want %q", s, c.issuer)
				}
			}
			if s, _ := id.Child(kmip14.TagSerialNumber).TextValue(); c.serial != "" && s != c.serial {
				t.Errorf("Serial Number %q, want %q", s, c.serial)
			}
			if s, _ := o.Get(AttrCertificateSubject).Child(kmip14.TagCertificateSubjectDistinguishedName).TextValue(); c.subject != "" && s != c.subject {
				t.Errorf("Certificate Subject %q, want %q", s, c.subject)
			}
			if n, _ := o.Get(AttrCertificateLength).IntValue(); int(n) != len(der) || (c.length != 0 && int64(n) != c.length) {
				t.Errorf("Certificate Length %d (value %d bytes), want %d", n, len(der), c.length)
			}
			if n, _ := o.Get(AttrCryptoLength).IntValue(); c.bits != 0 && int64(n) != c.bits {
				t.Errorf("Cryptographic Length %d, want %d", n, c.bits)
			}
			if s, _ := o.Get(AttrDigitalSignatureAlgorithm).EnumValue(); c.sig != 0 && kmip14.DigitalSignatureAlgorithm(s) != c.sig {
				t.Errorf("Digital Signature Algorithm %s, want %s", kmip14.DigitalSignatureAlgorithm(s), c.sig)
			}
			xid := o.Get(AttrX509CertificateIdentifier)
			for _, f := range []struct {
				got  tree.View
				want string
			}{
				{xid.Child(kmip14.TagIssuerDistinguishedName), c.x509Issuer},
				{o.Get(AttrX509CertificateIssuer).Child(kmip14.TagIssuerDistinguishedName), c.x509Issuer},
				{xid.Child(kmip14.TagCertificateSerialNumber), c.x509Serial},
				{o.Get(AttrX509CertificateSubject).Child(kmip14.TagSubjectDistinguishedName), c.x509},
			} {
				if b, _ := f.got.BytesValue(); c.x509Issuer != "" && !bytes.Equal(b, unhex(t, f.want)) {
					t.Errorf("X.509 field %x, want %s", b, f.want)
				}
			}
		})
	}
}

// The P-256 and secp256k1 certificates of TC-ECC-3 certify 256-bit keys.
func TestCertificateKeyLengthOfCurves(t *testing.T) {
	for _, f := range []string{"oasis-ecc3-p256.hex", "oasis-ecc3-secp256k1.hex"} {
		if n, _ := newCert(t, oasisCert(t, f)).Get(AttrCryptoLength).IntValue(); n != 256 {
			t.Errorf("%s: Cryptographic Length %d, want 256", f, n)
		}
	}
}

func TestCertificateValueMustBeX509(t *testing.T) {
	der := oasisCert(t, "oasis-tc134-rsa.hex")
	for name, v := range map[string][]byte{
		"junk":      []byte("not a certificate"),
		"truncated": der[:len(der)-1],
		"trailing":  append(append([]byte(nil), der...), 0),
		"empty":     {},
	} {
		_, err := New(Spec{Type: kmip14.ObjectTypeCertificate, Now: time.Unix(1700000000, 0),
			Body: tree.Struct(kmip14.TagCertificate,
				tree.Enum(kmip14.TagCertificateType, uint32(kmip14.CertificateTypeX_509)),
				tree.Bytes(kmip14.TagCertificateValue, v))})
		var oe *Error
		if err == nil || !asError(err, &oe) || oe.Reason != kmip14.ResultReasonInvalidField {
			t.Errorf("%s: %v, want Invalid Field", name, err)
		}
	}
}

func asError(err error, target **Error) bool {
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}

// A 1.0 rendering of Digest drops its Key Format Type from a copy: the
// stored value keeps it.
func TestAttributeAtVersion(t *testing.T) {
	d := NewAttr(AttrDigest, tree.Struct(0,
		tree.Enum(kmip14.TagHashingAlgorithm, uint32(kmip14.HashingAlgorithmSHA_256)),
		tree.Bytes(kmip14.TagDigestValue, []byte{1, 2}),
		tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw))))
	if d.AttributeAt(0).Path(kmip14.TagAttributeValue, kmip14.TagKeyFormatType) != nil {
		t.Error("1.0 Digest has a Key Format Type")
	}
	if d.AttributeAt(1).Path(kmip14.TagAttributeValue, kmip14.TagKeyFormatType) == nil || !d.Value().Child(kmip14.TagKeyFormatType).Present() {
		t.Error("1.1 Digest, or the stored value, lost its Key Format Type")
	}
	n := NewAttr("x-digest-like", tree.Struct(0, tree.Enum(kmip14.TagKeyFormatType, 1)))
	if n.AttributeAt(0).Path(kmip14.TagAttributeValue, kmip14.TagKeyFormatType) == nil {
		t.Error("another attribute was changed")
	}
}

// The Digest of a transparent key is that of its Key Material's TTLV
// encoding: the OASIS TC-181 (Transparent Symmetric Key) and TC-182
// (Transparent RSA Private Key, testdata) known answers.
func TestDigestOfTransparentKeys(t *testing.T) {
	raw, _ := os.ReadFile(filepath.Join("testdata", "oasis-tc182-transparent-rsa.txt"))
	rsaKM := tree.Struct(kmip14.TagKeyMaterial)
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		f := strings.Fields(line)
		tag, err := ttlv.DefaultRegistry.ParseTag(f[0])
		if err != nil {
			t.Fatal(err)
		}
		rsaKM.Add(tree.Big(tag, new(big.Int).SetBytes(unhex(t, f[1]))))
	}
	for _, c := range []struct {
		name   string
		tag    ttlv.Tag
		format kmip14.KeyFormatType
		km     *tree.Node
		want   string
	}{
		{"TC-181 symmetric", kmip14.TagSymmetricKey, kmip14.KeyFormatTypeTransparentSymmetricKey,
			tree.Struct(kmip14.TagKeyMaterial, tree.Bytes(kmip14.TagKey, unhex(t, "0000111122223333444455556666777788889999aaaabbbbccccddddeeeeffff"))),
			"499ce96ff6f5e19fe9fe7a2fe4c3e92b88db0001a4e8df28d9966856b6c4b87c"},
		{"TC-182 RSA private", kmip14.TagPrivateKey, kmip14.KeyFormatTypeTransparentRSAPrivateKey, rsaKM,
			"d73bbc51e83332935f912dbfc35c5efc3b7bf8021835ba86b8da4181f74244ac"},
	} {
		body := tree.Struct(c.tag, tree.Struct(kmip14.TagKeyBlock,
			tree.Enum(kmip14.TagKeyFormatType, uint32(c.format)),
			tree.Struct(kmip14.TagKeyValue, c.km)))
		d := digestOf(body)
		if v, _ := d.Child(kmip14.TagDigestValue).BytesValue(); !bytes.Equal(v, unhex(t, c.want)) {
			t.Errorf("%s: digest %x, want %s", c.name, v, c.want)
		}
		if f, _ := d.Child(kmip14.TagKeyFormatType).EnumValue(); kmip14.KeyFormatType(f) != c.format {
			t.Errorf("%s: Key Format Type %d", c.name, f)
		}
	}
}
