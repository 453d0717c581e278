package ovhclient

import (
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"

	"github.com/kmipd/kmipd/testkit"
)

func TestScratch(t *testing.T) {
	s := &server{dev: testkit.StartDev(t, testkit.DevOptions{})}
	for _, v := range []kmip.ProtocolVersion{kmip.V1_4, kmip.V1_0} {
		c := s.dial(t, "scratch", kmipclient.EnforceVersion(v))
		for _, l := range []int{112, 168, 192} {
			_, err := c.Create().TDES(l, kmip.CryptographicUsageEncrypt).Exec()
			t.Logf("%v TDES %d: %v", v, l, err)
		}
		_, err := c.Create().Skipjack(kmip.CryptographicUsageEncrypt).Exec()
		t.Logf("%v skipjack: %v", v, err)
		for _, cv := range []kmip.RecommendedCurve{kmip.RecommendedCurveP_224, kmip.RecommendedCurveP_521, kmip.RecommendedCurveP_192} {
			r, err := c.CreateKeyPair().ECDSA(cv, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify).Exec()
			t.Logf("%v curve %v: %v", v, cv, err)
			if err == nil {
				g, err := c.Get(r.PrivateKeyUniqueIdentifier).Exec()
				if err == nil {
					_, err = g.Object.(*kmip.PrivateKey).CryptoPrivateKey()
				}
				t.Logf("  get: %v", err)
			}
		}
		for _, h := range []kmip.HashingAlgorithm{kmip.HashingAlgorithm(0x0F), kmip.HashingAlgorithmSHA_1, kmip.HashingAlgorithmMD5, kmip.HashingAlgorithmSHA_512_256} {
			r, err := c.Hash().WithCryptographicParameters(kmip.CryptographicParameters{HashingAlgorithm: h}).Data([]byte("x")).Exec()
			if err == nil {
				t.Logf("%v hash %v: %d bytes", v, h, len(r.Data))
			} else {
				t.Logf("%v hash %v: %v", v, h, err)
			}
		}
	}
}
