package derive

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"testing"
)

// Known answers from the documents that define each method. Nothing here is
// kmipd's own output.
func TestKnownAnswers(t *testing.T) {
	b0b := bytes.Repeat([]byte{0x0b}, 22)
	cases := []struct {
		name string
		p    Params
		want string
	}{
		// RFC 6070 §2 (PBKDF2-HMAC-SHA1); its 16777216-iteration case is
		// TestPBKDF2IterationBound's.
		{"RFC6070/1", Params{Method: PBKDF2, Hash: sha1.New, Key: []byte("password"), Salt: []byte("salt"), Iterations: 1, Length: 20},
			"0c60c80f961f0e71f3a9b524af6012062fe037a6"},
		{"RFC6070/2", Params{Method: PBKDF2, Hash: sha1.New, Key: []byte("password"), Salt: []byte("salt"), Iterations: 2, Length: 20},
			"ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"},
		// Also PyKMIP 0.10's test_derive_key_using_pbkdf2 (Cryptographic Length 160).
		{"RFC6070/3", Params{Method: PBKDF2, Hash: sha1.New, Key: []byte("password"), Salt: []byte("salt"), Iterations: 4096, Length: 20},
			"4b007901b765489abead49d926f721d065a429c1"},
		{"RFC6070/5", Params{Method: PBKDF2, Hash: sha1.New, Key: []byte("passwordPASSWORDpassword"), Salt: []byte("saltSALTsaltSALTsaltSALTsaltSALTsalt"), Iterations: 4096, Length: 25},
			"3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038"},
		{"RFC6070/6", Params{Method: PBKDF2, Hash: sha1.New, Key: []byte("pass\x00word"), Salt: []byte("sa\x00lt"), Iterations: 4096, Length: 16},
			"56fa6aa75548099dcc37d7f03425e0c3"},
		// RFC 7914 §11 (PBKDF2-HMAC-SHA256).
		{"RFC7914/1", Params{Method: PBKDF2, Hash: sha256.New, Key: []byte("passwd"), Salt: []byte("salt"), Iterations: 1, Length: 64},
			"55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"},
		{"RFC7914/2", Params{Method: PBKDF2, Hash: sha256.New, Key: []byte("Password"), Salt: []byte("NaCl"), Iterations: 80000, Length: 64},
			"4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"},
		// OASIS KMIP 1.4 test case TC-DERIVEKEY-1-10: HASH (SHA-256) over the
		// base key 00112233…eeff, no Derivation Data, Cryptographic Length 128.
		{"TC-DERIVEKEY-1", Params{Method: HASH, Hash: sha256.New, Key: unhex(t, "00112233445566778899aabbccddeeff"), Length: 16},
			"a8faed6abbf35c12a4b26e40f6feb19d"},
		// FIPS 180-2 Appendix B.1: SHA-256("abc"), as Derivation Data.
		{"FIPS180/abc", Params{Method: HASH, Hash: sha256.New, Data: []byte("abc"), Length: 32},
			"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		// RFC 4231 test case 2 (HMAC-SHA-256), RFC 2202 test case 2 (HMAC-SHA-1).
		{"RFC4231/2", Params{Method: HMAC, Hash: sha256.New, Key: []byte("Jefe"), Data: []byte("what do ya want for nothing?"), Length: 32},
			"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		{"RFC2202/2-truncated", Params{Method: HMAC, Hash: sha1.New, Key: []byte("Jefe"), Data: []byte("what do ya want for nothing?"), Length: 16},
			"effcdf6ae5eb2fa2d27416d5f184df9c"},
		// RFC 5869 A.1, A.3 and A.7; A.7 is also PyKMIP 0.10's
		// test_derive_key_using_hmac (which it names HMAC: see HKDF's doc).
		{"RFC5869/A.1", Params{Method: HKDF, Hash: sha256.New, Key: b0b, Salt: unhex(t, "000102030405060708090a0b0c"), Data: unhex(t, "f0f1f2f3f4f5f6f7f8f9"), Length: 42},
			"3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"},
		{"RFC5869/A.3", Params{Method: HKDF, Hash: sha256.New, Key: b0b, Salt: []byte{}, Data: []byte{}, Length: 42},
			"8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"},
		{"RFC5869/A.7", Params{Method: HKDF, Hash: sha1.New, Key: bytes.Repeat([]byte{0x0c}, 22), Data: []byte{}, Length: 42},
			"2c91117204d745f3500d636a62f64f0ab3bae548aa53d423b0d1f27ebba6f5e5673a081d70cce7acfc48"},
		// NIST SP 800-38A F.2.1 (CBC-AES128.Encrypt), first two blocks.
		{"SP800-38A/F.2.1", Params{Method: ENCRYPT, Encrypt: aesCBC, Key: unhex(t, "2b7e151628aed2a6abf7158809cf4f3c"), IV: unhex(t, "000102030405060708090a0b0c0d0e0f"),
			Data: unhex(t, "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"), Length: 32},
			"7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"},
		{"SP800-38A/F.2.1-truncated", Params{Method: ENCRYPT, Encrypt: aesCBC, Key: unhex(t, "2b7e151628aed2a6abf7158809cf4f3c"), IV: unhex(t, "000102030405060708090a0b0c0d0e0f"),
			Data: unhex(t, "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"), Length: 20},
			"7649abac8119b246cee98e9b12e9197d5086cb9b"},
	}
	for _, c := range cases {
		got, err := Derive(c.p)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !bytes.Equal(got, unhex(t, c.want)) {
			t.Errorf("%s:\n got %x\nwant %s", c.name, got, c.want)
		}
	}
}

// aesCBC is a caller's Encrypter: AES-CBC without padding.
func aesCBC(key, iv, data []byte) ([]byte, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if len(iv) != b.BlockSize() || len(data)%b.BlockSize() != 0 {
		return nil, errors.New("CBC needs a block-sized IV and whole blocks")
	}
	out := make([]byte, len(data))
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(out, data)
	return out, nil
}

func TestEncryptIV(t *testing.T) {
	var seen []byte
	enc := func(key, iv, data []byte) ([]byte, error) { seen = iv; return bytes.Repeat([]byte{1}, 16), nil }
	if _, err := Encrypt(enc, []byte("k"), nil, []byte("d"), 16); err != nil {
		t.Fatal(err)
	}
	if seen == nil || len(seen) != 0 {
		t.Errorf("an absent IV reached the encrypter as %#v, want an empty one", seen)
	}
	// The encrypter's failure is the client's parameter problem.
	bad := func(key, iv, data []byte) ([]byte, error) { return nil, errors.New("bad padding") }
	if _, err := Encrypt(bad, []byte("k"), nil, []byte("d"), 16); !errors.Is(err, ErrParameter) {
		t.Errorf("encrypter failure: %v, want ErrParameter", err)
	}
}

// TestRefusals: parameters the specification does not allow, or that would
// leave the client's intent open, are refused with the right sentinel.
func TestRefusals(t *testing.T) {
	key := []byte("0123456789abcdef")
	cases := []struct {
		name string
		p    Params
		want error
	}{
		{"zero length", Params{Method: HASH, Hash: sha256.New, Key: key}, ErrLength},
		{"above the bound", Params{Method: HASH, Hash: sha256.New, Key: key, Length: DefaultMaxLength + 1}, ErrLength},
		{"above a caller's bound", Params{Method: NIST800108C, PRF: HMACPRF(sha256.New), Key: key, Data: []byte{1}, Length: 65, MaxLength: 64}, ErrLength},
		{"HASH longer than the hash", Params{Method: HASH, Hash: sha256.New, Key: key, Length: 33}, ErrLength},
		{"HASH of key and data", Params{Method: HASH, Hash: sha256.New, Key: key, Data: []byte("d"), Length: 16}, ErrParameter},
		{"HASH without hash", Params{Method: HASH, Key: key, Length: 16}, ErrParameter},
		{"HMAC longer than the hash", Params{Method: HMAC, Hash: sha1.New, Key: key, Data: []byte{}, Length: 21}, ErrLength},
		{"HMAC without data", Params{Method: HMAC, Hash: sha1.New, Key: key, Length: 16}, ErrParameter},
		{"HMAC with salt", Params{Method: HMAC, Hash: sha1.New, Key: key, Data: []byte{}, Salt: []byte{}, Length: 16}, ErrParameter},
		{"HKDF beyond 255 blocks", Params{Method: HKDF, Hash: sha1.New, Key: key, Length: 255*20 + 1}, ErrLength},
		{"HKDF with iterations", Params{Method: HKDF, Hash: sha1.New, Key: key, Iterations: 2, Length: 16}, ErrParameter},
		{"PBKDF2 without salt", Params{Method: PBKDF2, Hash: sha1.New, Key: key, Iterations: 1, Length: 16}, ErrParameter},
		{"PBKDF2 without iterations", Params{Method: PBKDF2, Hash: sha1.New, Key: key, Salt: []byte("s"), Length: 16}, ErrParameter},
		{"PBKDF2 without hash", Params{Method: PBKDF2, Key: key, Salt: []byte("s"), Iterations: 1, Length: 16}, ErrParameter},
		{"PBKDF2 with data", Params{Method: PBKDF2, Hash: sha1.New, Key: key, Salt: []byte("s"), Iterations: 1, Data: []byte{}, Length: 16}, ErrParameter},
		{"PBKDF2 with IV", Params{Method: PBKDF2, Hash: sha1.New, Key: key, Salt: []byte("s"), Iterations: 1, IV: []byte{}, Length: 16}, ErrParameter},
		{"ENCRYPT without encrypter", Params{Method: ENCRYPT, Key: key, Data: []byte("d"), Length: 16}, ErrParameter},
		{"ENCRYPT without data", Params{Method: ENCRYPT, Encrypt: aesCBC, Key: key, Length: 16}, ErrParameter},
		{"ENCRYPT longer than its output", Params{Method: ENCRYPT, Encrypt: aesCBC, Key: key, IV: make([]byte, 16), Data: make([]byte, 16), Length: 17}, ErrLength},
		{"counter mode with IV", Params{Method: NIST800108C, PRF: HMACPRF(sha256.New), Key: key, Data: []byte{1}, IV: []byte{1}, Length: 16}, ErrParameter},
		{"pipeline with IV", Params{Method: NIST800108DPI, PRF: HMACPRF(sha256.New), Key: key, Data: []byte{1}, IV: []byte{1}, Length: 16}, ErrParameter},
		{"feedback with salt", Params{Method: NIST800108F, PRF: HMACPRF(sha256.New), Key: key, Data: []byte{1}, Salt: []byte{1}, Length: 16}, ErrParameter},
		{"feedback without PRF", Params{Method: NIST800108F, Key: key, Data: []byte{1}, Length: 16}, ErrParameter},
		{"unknown method", Params{Method: 0x99, Key: key, Length: 16}, ErrParameter},
	}
	for _, c := range cases {
		out, err := Derive(c.p)
		if !errors.Is(err, c.want) || out != nil {
			t.Errorf("%s: got (%x, %v), want %v", c.name, out, err, c.want)
		}
	}
}

// TestPBKDF2IterationBound: RFC 6070's fourth case (16777216 iterations) is
// above the default bound, so a request for it is refused before any work;
// a caller may lower the bound further.
func TestPBKDF2IterationBound(t *testing.T) {
	p := Params{Method: PBKDF2, Hash: sha1.New, Key: []byte("password"), Salt: []byte("salt"), Iterations: 16777216, Length: 20}
	if _, err := Derive(p); !errors.Is(err, ErrParameter) {
		t.Errorf("16777216 iterations: %v, want ErrParameter", err)
	}
	p.Iterations, p.MaxIterations = 4097, 4096
	if _, err := Derive(p); !errors.Is(err, ErrParameter) {
		t.Errorf("4097 iterations with a bound of 4096: %v, want ErrParameter", err)
	}
	p.Iterations = 4096
	if _, err := Derive(p); err != nil {
		t.Errorf("4096 iterations with a bound of 4096: %v", err)
	}
	// RFC 6070's fifth case takes 25 bytes, two SHA-1 blocks: 4096
	// iterations are 8192 of work, over a bound of 8191 and within 8192.
	p = Params{Method: PBKDF2, Hash: sha1.New, Key: []byte("passwordPASSWORDpassword"), Salt: []byte("saltSALTsaltSALTsaltSALTsaltSALTsalt"),
		Iterations: 4096, Length: 25, MaxIterations: 8191}
	if _, err := Derive(p); !errors.Is(err, ErrParameter) {
		t.Errorf("4096 iterations × 2 blocks with a bound of 8191: %v, want ErrParameter", err)
	}
	p.MaxIterations = 8192
	if got, err := Derive(p); err != nil || !bytes.Equal(got, unhex(t, "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038")) {
		t.Errorf("4096 iterations × 2 blocks with a bound of 8192: %x, %v", got, err)
	}
}

// TestErrorsCarryNoSecrets: the refusal messages name parameters, never
// their values.
func TestErrorsCarryNoSecrets(t *testing.T) {
	secret := []byte("SECRETSECRETSECRET")
	for _, p := range []Params{
		{Method: HASH, Hash: sha256.New, Key: secret, Data: secret, Length: 16},
		{Method: HMAC, Hash: sha256.New, Key: secret, Data: secret, Length: 64},
		{Method: ENCRYPT, Encrypt: aesCBC, Key: secret, Data: secret, Length: 16},
		{Method: PBKDF2, Hash: sha256.New, Key: secret, Salt: secret, Length: 16},
	} {
		_, err := Derive(p)
		if err == nil {
			t.Fatalf("%v: no error", p.Method)
		}
		if bytes.Contains([]byte(err.Error()), []byte("SECRET")) || bytes.Contains([]byte(err.Error()), []byte("534543524554")) {
			t.Errorf("%v: error %q carries the input", p.Method, err)
		}
	}
}

func TestMethodString(t *testing.T) {
	if NIST800108DPI.String() != "NIST800-108-DPI" || Method(0x42).String() != "Method(0x42)" {
		t.Errorf("String: %v, %v", NIST800108DPI, Method(0x42))
	}
}

var _ Encrypter = aesCBC
