package kmipclient_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipclient"
	"github.com/kmipd/kmipd/kmipops/tree"
)

func TestParseKeyFiles(t *testing.T) {
	objs := registrable(t)
	for name, want := range map[string]struct {
		typ    kmip14.ObjectType
		format string
		alg    kmip14.CryptographicAlgorithm
		bits   int32
		pem    string
	}{
		"rsa-pkcs1":   {kmip14.ObjectTypePrivateKey, "PKCS_1", kmip14.CryptographicAlgorithmRSA, 2048, "RSA PRIVATE KEY"},
		"ec-pkcs8":    {kmip14.ObjectTypePrivateKey, "PKCS_8", kmip14.CryptographicAlgorithmEC, 256, "PRIVATE KEY"},
		"ec-sec1":     {kmip14.ObjectTypePrivateKey, "ECPrivateKey", kmip14.CryptographicAlgorithmEC, 256, "EC PRIVATE KEY"},
		"ec-spki":     {kmip14.ObjectTypePublicKey, "X_509", kmip14.CryptographicAlgorithmEC, 256, "PUBLIC KEY"},
		"rsa-pub":     {kmip14.ObjectTypePublicKey, "PKCS_1", kmip14.CryptographicAlgorithmRSA, 2048, "RSA PUBLIC KEY"},
		"certificate": {kmip14.ObjectTypeCertificate, "X_509", 0, 0, "CERTIFICATE"},
	} {
		o := objs[name]
		if o.Type != want.typ || o.Form() != want.format || o.Algorithm != want.alg || o.Length != want.bits {
			t.Errorf("%s: %s %s %s %d", name, o.Type, o.Form(), o.Algorithm, o.Length)
		}
		// The PEM form reads back to the same object, DER byte for byte.
		p, err := o.PEM()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if blk, _ := pem.Decode(p); blk == nil || blk.Type != want.pem {
			t.Fatalf("%s: PEM %q", name, p)
		}
		parse := map[kmip14.ObjectType]func([]byte) (*kmipclient.Object, error){
			kmip14.ObjectTypePrivateKey: kmipclient.ParsePrivateKey, kmip14.ObjectTypePublicKey: kmipclient.ParsePublicKey,
			kmip14.ObjectTypeCertificate: kmipclient.ParseCertificate}[o.Type]
		back, err := parse(p)
		if err != nil || string(back.Material) != string(o.Material) || back.Form() != o.Form() {
			t.Fatalf("%s: PEM does not read back: %v", name, err)
		}
	}
	if _, err := objs["aes"].PEM(); err == nil {
		t.Fatal("a symmetric key has a PEM form")
	}
}

func TestParseRefusals(t *testing.T) {
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ed, _ := x509.MarshalPKCS8PrivateKey(edKey)
	secret := "c2VjcmV0LWtleS1ieXRlcw" // must never be quoted back
	cases := map[string]struct {
		parse func([]byte) (*kmipclient.Object, error)
		in    []byte
		want  string
	}{
		"garbage private key":   {kmipclient.ParsePrivateKey, []byte(secret), "not an RSA or EC private key"},
		"ed25519":               {kmipclient.ParsePrivateKey, ed, "only RSA and EC"},
		"certificate as key":    {kmipclient.ParsePrivateKey, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte(secret)}), `"CERTIFICATE" block`},
		"broken PEM":            {kmipclient.ParsePublicKey, []byte("-----BEGIN PUBLIC KEY-----\n" + secret + "!!\n"), "does not decode"},
		"garbage certificate":   {kmipclient.ParseCertificate, []byte(secret), "not an X.509 certificate"},
		"private key as public": {kmipclient.ParsePublicKey, ed, "not an RSA or EC public key"},
	}
	for name, c := range cases {
		_, err := c.parse(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error quotes the input: %v", name, err)
		}
	}
}

func TestFormatValues(t *testing.T) {
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		name string
		v    *tree.Node
		text string
		json string
	}{
		{"State", tree.Enum(0, uint32(kmip14.StatePreActive)), "PreActive", `"PreActive"`},
		{"Cryptographic Usage Mask", tree.Int(0, int32(kmip14.CryptographicUsageMaskEncrypt|kmip14.CryptographicUsageMaskDecrypt)), "Encrypt|Decrypt", `"Encrypt|Decrypt"`},
		{"Cryptographic Length", tree.Int(0, 256), "256", `256`},
		{"Activation Date", tree.Time(0, when), "2026-01-02T03:04:05Z", `"2026-01-02T03:04:05Z"`},
		{"Lease Time", tree.Interval(0, time.Hour), "1h0m0s", `3600`},
		{"Fresh", tree.Bool(0, true), "true", `true`},
		{"Name", kmipclient.Name("k1").Value, "{NameValue=k1, NameType=UninterpretedTextString}", `{"NameType":"UninterpretedTextString","NameValue":"k1"}`},
		{"x-custom", tree.Bytes(0, []byte{0xca, 0xfe}), "cafe", `"cafe"`},
		{"x-enum", tree.Enum(0, 7), "0x00000007", `"0x00000007"`},
	} {
		if got := kmipclient.FormatValue(c.name, c.v); got != c.text {
			t.Errorf("FormatValue(%s) = %q, want %q", c.name, got, c.text)
		}
		b, err := json.Marshal(kmipclient.JSONValue(c.name, c.v))
		if err != nil || string(b) != c.json {
			t.Errorf("JSONValue(%s) = %s (%v), want %s", c.name, b, err, c.json)
		}
	}
}

func TestParseEnum(t *testing.T) {
	for _, c := range []struct {
		tag  ttlv.Tag
		in   string
		want uint32
	}{
		{kmip14.TagCryptographicAlgorithm, "aes", uint32(kmip14.CryptographicAlgorithmAES)},
		{kmip14.TagCryptographicAlgorithm, "HMAC-SHA256", uint32(kmip14.CryptographicAlgorithmHMAC_SHA256)},
		{kmip14.TagRecommendedCurve, "p-384", uint32(kmip14.RecommendedCurveP_384)},
		{kmip14.TagRevocationReasonCode, "key compromise", uint32(kmip14.RevocationReasonCodeKeyCompromise)},
		{kmip14.TagKeyFormatType, "pkcs8", uint32(kmip14.KeyFormatTypePKCS_8)},
		{kmip14.TagOpaqueDataType, "0x80000001", 0x80000001},
	} {
		got, err := kmipclient.ParseEnum(c.tag, c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseEnum(%s, %q) = %#x, %v; want %#x", c.tag, c.in, got, err, c.want)
		}
	}
	if _, err := kmipclient.ParseEnum(kmip14.TagBlockCipherMode, "rot13"); err == nil || !strings.Contains(err.Error(), "GCM") {
		t.Errorf("an unknown mode: %v (want the list of modes)", err)
	}
	m, err := kmipclient.ParseMask("encrypt, decrypt|wrap-key")
	if err != nil || m != kmip14.CryptographicUsageMaskEncrypt|kmip14.CryptographicUsageMaskDecrypt|kmip14.CryptographicUsageMaskWrapKey {
		t.Errorf("ParseMask: %v, %v", m, err)
	}
}
