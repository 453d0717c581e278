package testmodule

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"testing"

	"github.com/miekg/pkcs11"
)

// aesKey makes a session AES key whose value the test may read.
func aesKey(t *testing.T, sh pkcs11.SessionHandle, n int, wrap bool) pkcs11.ObjectHandle {
	t.Helper()
	k, err := mod.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)},
		[]*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, n),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, wrap),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, wrap),
		})
	if err != nil {
		t.Fatalf("C_GenerateKey: %v", err)
	}
	return k
}

func keyValue(t *testing.T, sh pkcs11.SessionHandle, k pkcs11.ObjectHandle) []byte {
	t.Helper()
	a, err := mod.GetAttributeValue(sh, k, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	if err != nil {
		t.Fatalf("C_GetAttributeValue(CKA_VALUE): %v", err)
	}
	return a[0].Value
}

// CKM_AES_CBC_PAD wrapping (emulated over SoftHSM's CKM_AES_CBC) must give
// exactly AES-CBC with PKCS#7 padding of the key value, and unwrap back to a
// key with the same value.
func TestWrapAESCBCPad(t *testing.T) {
	hsm(t, 0)
	sh := open(t)
	login(t, sh)
	kek := aesKey(t, sh, 32, true)
	key := aesKey(t, sh, 32, false)
	iv := bytes.Repeat([]byte{0x5a}, 16)
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_CBC_PAD, iv)}

	wrapped, err := mod.WrapKey(sh, mech, kek, key)
	if err != nil {
		t.Fatalf("C_WrapKey(CKM_AES_CBC_PAD): %v", err)
	}
	block, err := aes.NewCipher(keyValue(t, sh, kek))
	if err != nil {
		t.Fatal(err)
	}
	plain := append(keyValue(t, sh, key), bytes.Repeat([]byte{16}, 16)...)
	want := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(want, plain)
	if !bytes.Equal(wrapped, want) {
		t.Fatalf("wrapped key\n got %x\nwant %x (AES-CBC, PKCS#7 padding)", wrapped, want)
	}

	back, err := mod.UnwrapKey(sh, mech, kek, wrapped, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
	})
	if err != nil {
		t.Fatalf("C_UnwrapKey(CKM_AES_CBC_PAD): %v", err)
	}
	if got, orig := keyValue(t, sh, back), keyValue(t, sh, key); !bytes.Equal(got, orig) {
		t.Fatalf("unwrapped value %x, want %x", got, orig)
	}

	// A damaged last block has bad padding.
	bad := append([]byte(nil), wrapped...)
	bad[len(bad)-1] ^= 1
	_, err = mod.UnwrapKey(sh, mech, kek, bad, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
	})
	wantRV(t, "C_UnwrapKey of a damaged wrapping", err, pkcs11.CKR_WRAPPED_KEY_INVALID)
}
