package kmipops

import (
	"bytes"
	"context"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// FuzzCryptoRequest feeds decoded request trees, seeded with every
// cryptographic operation and streaming shape, through Process: any answer
// must be an encodable ResponseMessage, never a panic.
func FuzzCryptoRequest(f *testing.F) {
	e := newEnv(f, Options{})
	all := crMask(kmip14.CryptographicUsageMaskEncrypt, kmip14.CryptographicUsageMaskDecrypt,
		kmip14.CryptographicUsageMaskMACGenerate, kmip14.CryptographicUsageMaskMACVerify)
	key := e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16), all)
	priv, pub := e.crECPair(alice, []*tree.Node{crMask(kmip14.CryptographicUsageMaskSign)}, []*tree.Node{crMask(kmip14.CryptographicUsageMaskVerify)})
	v := version{1, 4}
	d := crData([]byte("fuzz"))
	h := crParams(crHash(kmip14.HashingAlgorithmSHA_256))
	init := tree.Bool(kmip14.TagInitIndicator, true)
	for _, it := range []*tree.Node{
		item(kmip14.OperationEncrypt, uidF(key), crParams(crMode(kmip14.BlockCipherModeGCM), tree.Int(kmip14.TagTagLength, 12)), d,
			tree.Bytes(kmip14.TagAuthenticatedEncryptionAdditionalData, []byte{1})),
		item(kmip14.OperationDecrypt, uidF(key), crParams(crMode(kmip14.BlockCipherModeCBC), crPad(kmip14.PaddingMethodPKCS5)), crIV(make([]byte, 16)), crData(make([]byte, 32))),
		item(kmip14.OperationEncrypt, uidF(key), crParams(crMode(kmip14.BlockCipherModeCTR)), d, init),
		item(kmip14.OperationEncrypt, d, tree.Bytes(kmip14.TagCorrelationValue, make([]byte, 16)), tree.Bool(kmip14.TagFinalIndicator, true)),
		item(kmip14.OperationSign, uidF(priv), h, d),
		item(kmip14.OperationSignatureVerify, uidF(pub), h, d, tree.Bytes(kmip14.TagSignatureData, make([]byte, 70))),
		item(kmip14.OperationMAC, uidF(key), d, init),
		item(kmip14.OperationMACVerify, uidF(key), d, tree.Bytes(kmip14.TagMACData, make([]byte, 16))),
		item(kmip14.OperationHash, h, d),
		item(kmip14.OperationRNGRetrieve, tree.Int(kmip14.TagDataLength, 16)),
		item(kmip14.OperationRNGSeed, d),
	} {
		f.Add(tree.MustEncode(reqMsg(v, it)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := tree.Decode(b, tree.DefaultLimits)
		if err != nil {
			return
		}
		resp := e.p.Process(context.Background(), alice, req)
		if resp == nil || resp.Tag != kmip14.TagResponseMessage {
			t.Fatalf("no ResponseMessage")
		}
		if _, err := tree.Encode(resp); err != nil {
			t.Fatalf("response does not encode: %v", err)
		}
	})
}

// FuzzEncryptRoundTrip drives Encrypt with arbitrary parameters: it either
// refuses with a reason or produces what Decrypt turns back into the data.
func FuzzEncryptRoundTrip(f *testing.F) {
	e := newEnv(f, Options{})
	keys := []string{
		e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 16)),
		e.crSym(alice, kmip14.CryptographicAlgorithmAES, make([]byte, 32)),
		e.crSym(alice, kmip14.CryptographicAlgorithmDES3, bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, 3)),
	}
	f.Add(uint8(0), uint8(kmip14.BlockCipherModeGCM), uint8(0), uint8(12), int8(16), []byte("data"), []byte("aad"))
	f.Add(uint8(1), uint8(kmip14.BlockCipherModeCBC), uint8(kmip14.PaddingMethodPKCS5), uint8(16), int8(0), []byte("0123456789abcdef!"), []byte(nil))
	f.Add(uint8(2), uint8(kmip14.BlockCipherModeECB), uint8(kmip14.PaddingMethodNone), uint8(0), int8(0), make([]byte, 8), []byte(nil))
	f.Add(uint8(0), uint8(kmip14.BlockCipherModeCTR), uint8(0), uint8(16), int8(0), []byte("ctr"), []byte(nil))
	f.Add(uint8(1), uint8(kmip14.BlockCipherModeGCM), uint8(0), uint8(7), int8(13), []byte(""), []byte("x"))
	f.Fuzz(func(t *testing.T, k, mode, pad, ivLen uint8, tagLen int8, data, aad []byte) {
		params := crParams()
		if mode != 0 {
			params.Add(crMode(kmip14.BlockCipherMode(mode)))
		}
		if pad != 0 {
			params.Add(crPad(kmip14.PaddingMethod(pad)))
		}
		if tagLen != 0 {
			params.Add(tree.Int(kmip14.TagTagLength, int32(tagLen)))
		}
		fields := []*tree.Node{uidF(keys[int(k)%len(keys)]), params, crData(data)}
		if ivLen != 0 {
			fields = append(fields, crIV(bytes.Repeat([]byte{ivLen}, int(ivLen))))
		}
		if len(aad) > 0 {
			fields = append(fields, tree.Bytes(kmip14.TagAuthenticatedEncryptionAdditionalData, aad))
		}
		resp := e.p.Process(context.Background(), alice, reqMsg(e.v, item(kmip14.OperationEncrypt, fields...)))
		it := resp.Child(kmip14.TagBatchItem)
		if s, _ := it.Child(kmip14.TagResultStatus).EnumValue(); s != uint32(kmip14.ResultStatusSuccess) {
			if r, _ := it.Child(kmip14.TagResultReason).EnumValue(); r == 0 {
				t.Fatalf("failure without a reason: %s", resp)
			}
			return
		}
		p := it.Child(kmip14.TagResponsePayload)
		dec := []*tree.Node{fields[0], params, p.Child(kmip14.TagData)}
		dec = append(dec, fields[3:]...)
		dec = append(dec, p.Child(kmip14.TagIVCounterNonce), p.Child(kmip14.TagAuthenticatedEncryptionTag))
		back := e.p.Process(context.Background(), alice, reqMsg(e.v, item(kmip14.OperationDecrypt, dec...)))
		got, ok := back.Path(kmip14.TagBatchItem, kmip14.TagResponsePayload, kmip14.TagData).BytesValue()
		if !ok || !bytes.Equal(got, data) {
			t.Fatalf("round trip of %x: %s", data, back)
		}
	})
}
