package kmipclient_test

import (
	"encoding/hex"
	"encoding/pem"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/internal/secp256k1"
	"github.com/kmipd/kmipd/kmipclient"
)

// secp256k1 key files (the OASIS TC-ECDSA-SIGN-1-14 pair), which
// crypto/x509 cannot read, parse in every form kmipd serves.
func TestParseSecp256k1KeyFiles(t *testing.T) {
	sec1, _ := hex.DecodeString("30740201010420db4d128c30ca309e62c4019758c00ba244dd64d9bf52a31078866b8a00c19c68a00706052b8104000aa14403420004dab5d3c253113db414abfc1c0ebf5a02559e656aa1c8b0aa8d870aa0324cda4899925ea1e6dbc259a6c7825cf46592ac7594cc40bd604b728d88b636f317d366")
	spki, _ := hex.DecodeString("3056301006072a8648ce3d020106052b8104000a03420004dab5d3c253113db414abfc1c0ebf5a02559e656aa1c8b0aa8d870aa0324cda4899925ea1e6dbc259a6c7825cf46592ac7594cc40bd604b728d88b636f317d366")
	k, err := secp256k1.ParseECPrivateKey(sec1)
	if err != nil {
		t.Fatal(err)
	}
	p8, _ := secp256k1.MarshalPKCS8PrivateKey(k)
	for name, c := range map[string]struct {
		parse  func([]byte) (*kmipclient.Object, error)
		in     []byte
		format string
	}{
		"SEC 1 PEM":  {kmipclient.ParsePrivateKey, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), "ECPrivateKey"},
		"SEC 1 DER":  {kmipclient.ParsePrivateKey, sec1, "ECPrivateKey"},
		"PKCS#8 PEM": {kmipclient.ParsePrivateKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), "PKCS_8"},
		"PKCS#8 DER": {kmipclient.ParsePrivateKey, p8, "PKCS_8"},
		"SPKI PEM":   {kmipclient.ParsePublicKey, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}), "X_509"},
		"SPKI DER":   {kmipclient.ParsePublicKey, spki, "X_509"},
	} {
		o, err := c.parse(c.in)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if o.Form() != c.format || o.Algorithm != kmip14.CryptographicAlgorithmEC || o.Length != 256 {
			t.Errorf("%s: %s %s %d", name, o.Form(), o.Algorithm, o.Length)
		}
	}
}
