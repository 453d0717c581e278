// Package pkcs12 writes PKCS#12 (RFC 7292) files: a private key, shrouded
// with PBES2 (PBKDF2-HMAC-SHA-256, AES-256-CBC; RFC 8018), and its
// certificate chain, under an HMAC-SHA-256 integrity MAC whose key comes from
// the PKCS#12 key derivation (RFC 7292 Appendix B). These are OpenSSL 3's
// defaults, which current OpenSSL, NSS, Java and .NET read. It only encodes:
// kmipd serves PKCS#12 (KMIP 1.4 Key Format Type PKCS#12) and never reads one.
package pkcs12

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"unicode/utf16"
)

// Iterations is the PBKDF2 and MAC iteration count (OpenSSL 3's default).
const Iterations = 2048

var (
	oidData            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidShroudedKeyBag  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 2}
	oidCertBag         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 3}
	oidX509Certificate = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 22, 1}
	oidFriendlyName    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 20}
	oidLocalKeyID      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 21}
	oidPBES2           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACWithSHA256  = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidAES256CBC       = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidSHA256          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	asn1NULL           = asn1.RawValue{Tag: asn1.TagNull, FullBytes: []byte{asn1.TagNull, 0}}
	errNoKey           = errors.New("pkcs12: no private key")
)

// ErrText is the error for a password or friendly name that a BMPString
// cannot hold (NUL, invalid UTF-8).
var ErrText = errors.New("pkcs12: password or friendly name is not valid text")

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue // [0] EXPLICIT, built by octets
}

type pfx struct {
	Version  int
	AuthSafe contentInfo
	MacData  macData
}

type digestInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Digest    []byte
}

type macData struct {
	Mac        digestInfo
	MacSalt    []byte
	Iterations int
}

type safeBag struct {
	ID         asn1.ObjectIdentifier
	Value      asn1.RawValue     // [0] EXPLICIT, built by bag
	Attributes []pkcs12Attribute `asn1:"set,optional"`
}

type pkcs12Attribute struct {
	ID    asn1.ObjectIdentifier
	Value asn1.RawValue `asn1:"set"`
}

type certBag struct {
	ID   asn1.ObjectIdentifier
	Data []byte `asn1:"tag:0,explicit"`
}

type encryptedPrivateKeyInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Data      []byte
}

type pbes2Params struct {
	KDF        pkix.AlgorithmIdentifier
	Encryption pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt       []byte
	Iterations int
	KeyLength  int `asn1:"optional"`
	PRF        pkix.AlgorithmIdentifier
}

// Bundle is what a PKCS#12 file carries.
type Bundle struct {
	// PrivateKey is the key's PKCS#8 PrivateKeyInfo DER.
	PrivateKey []byte
	// Certificates are DER X.509 certificates, the key's own first.
	Certificates [][]byte
	// FriendlyName, if not empty, names the key and its certificate.
	FriendlyName string
}

// Encode writes b as a PKCS#12 file protected by password (UTF-8, without
// NUL), drawing salts and the IV from rand.
func Encode(rand io.Reader, b Bundle, password string) ([]byte, error) {
	if len(b.PrivateKey) == 0 {
		return nil, errNoKey
	}
	bmp, err := bmpString(password)
	if err != nil {
		return nil, err
	}
	// localKeyId ties the key to its certificate: SHA-1 of the certificate,
	// as OpenSSL writes it (an identifier, not a security function).
	var attrs []pkcs12Attribute
	if len(b.Certificates) > 0 {
		id := sha1.Sum(b.Certificates[0])
		a, err := attribute(oidLocalKeyID, id[:])
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	}
	if b.FriendlyName != "" {
		name, err := bmpString(b.FriendlyName)
		if err != nil {
			return nil, err
		}
		// The BMPString without the terminating NUL the KDF wants.
		raw := asn1.RawValue{Class: asn1.ClassUniversal, Tag: 30, Bytes: name[:len(name)-2]}
		a, err := attribute(oidFriendlyName, raw)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	}
	shrouded, err := shroud(rand, b.PrivateKey, []byte(password))
	if err != nil {
		return nil, err
	}
	keyBag, err := bag(oidShroudedKeyBag, shrouded, attrs)
	if err != nil {
		return nil, err
	}
	var certBags []safeBag
	for i, der := range b.Certificates {
		cb, err := asn1.Marshal(certBag{ID: oidX509Certificate, Data: der})
		if err != nil {
			return nil, err
		}
		var ca []pkcs12Attribute
		if i == 0 {
			ca = attrs
		}
		sb, err := bag(oidCertBag, cb, ca)
		if err != nil {
			return nil, err
		}
		certBags = append(certBags, sb)
	}
	var safes []contentInfo
	for _, bags := range [][]safeBag{{keyBag}, certBags} {
		if len(bags) == 0 {
			continue
		}
		ci, err := dataContent(bags)
		if err != nil {
			return nil, err
		}
		safes = append(safes, ci)
	}
	authSafe, err := asn1.Marshal(safes)
	if err != nil {
		return nil, err
	}
	salt := make([]byte, 16)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return nil, fmt.Errorf("pkcs12: salt: %w", err)
	}
	macKey := deriveKey(bmp, salt, 3, Iterations, sha256.Size)
	m := hmac.New(sha256.New, macKey)
	m.Write(authSafe)
	content, err := octets(authSafe)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(pfx{
		Version:  3,
		AuthSafe: contentInfo{ContentType: oidData, Content: content},
		MacData: macData{
			Mac:        digestInfo{Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidSHA256, Parameters: asn1NULL}, Digest: m.Sum(nil)},
			MacSalt:    salt,
			Iterations: Iterations,
		},
	})
}

// shroud encrypts a PKCS#8 key: an EncryptedPrivateKeyInfo under PBES2.
// PBES2 takes the password's bytes as they are (RFC 8018 §6.2).
func shroud(rand io.Reader, key, password []byte) ([]byte, error) {
	salt, iv := make([]byte, 16), make([]byte, aes.BlockSize)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return nil, fmt.Errorf("pkcs12: salt: %w", err)
	}
	if _, err := io.ReadFull(rand, iv); err != nil {
		return nil, fmt.Errorf("pkcs12: iv: %w", err)
	}
	k, err := pbkdf2.Key(sha256.New, string(password), salt, Iterations, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	pad := aes.BlockSize - len(key)%aes.BlockSize
	ct := make([]byte, len(key)+pad)
	copy(ct, key)
	for i := len(key); i < len(ct); i++ {
		ct[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, ct)
	kdf, err := asn1.Marshal(pbkdf2Params{Salt: salt, Iterations: Iterations, KeyLength: 32,
		PRF: pkix.AlgorithmIdentifier{Algorithm: oidHMACWithSHA256, Parameters: asn1NULL}})
	if err != nil {
		return nil, err
	}
	ivDER, err := asn1.Marshal(iv)
	if err != nil {
		return nil, err
	}
	params, err := asn1.Marshal(pbes2Params{
		KDF:        pkix.AlgorithmIdentifier{Algorithm: oidPBKDF2, Parameters: asn1.RawValue{FullBytes: kdf}},
		Encryption: pkix.AlgorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivDER}},
	})
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(encryptedPrivateKeyInfo{
		Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: params}},
		Data:      ct,
	})
}

// bag is a SafeBag. encoding/asn1 writes a RawValue as it is, whatever the
// field's tag says, so the [0] EXPLICIT around the value is built here.
func bag(id asn1.ObjectIdentifier, value []byte, attrs []pkcs12Attribute) (safeBag, error) {
	return safeBag{ID: id, Value: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: value}, Attributes: attrs}, nil
}

func attribute(id asn1.ObjectIdentifier, v any) (pkcs12Attribute, error) {
	der, err := asn1.Marshal(v)
	if err != nil {
		return pkcs12Attribute{}, err
	}
	return pkcs12Attribute{ID: id, Value: asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: der}}, nil
}

// dataContent is a SafeContents in an unencrypted (id-data) ContentInfo:
// the key inside is shrouded, the certificates are public.
func dataContent(bags []safeBag) (contentInfo, error) {
	der, err := asn1.Marshal(bags)
	if err != nil {
		return contentInfo{}, err
	}
	content, err := octets(der)
	if err != nil {
		return contentInfo{}, err
	}
	return contentInfo{ContentType: oidData, Content: content}, nil
}

// octets is [0] EXPLICIT OCTET STRING der, the content of an id-data
// ContentInfo.
func octets(der []byte) (asn1.RawValue, error) {
	os, err := asn1.Marshal(der)
	if err != nil {
		return asn1.RawValue{}, err
	}
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: os}, nil
}

// bmpString is s as RFC 7292 B.1 has a password: UTF-16BE with two zero
// bytes at the end.
func bmpString(s string) ([]byte, error) {
	out := make([]byte, 0, 2*len(s)+2)
	for _, r := range s {
		if r == 0 || r == '\uFFFD' {
			return nil, ErrText
		}
		for _, u := range utf16.Encode([]rune{r}) {
			out = append(out, byte(u>>8), byte(u))
		}
	}
	return append(out, 0, 0), nil
}

// deriveKey is RFC 7292 Appendix B.2 with SHA-256 (u = 32, v = 64): n
// bytes of key material of purpose id (1 key, 2 IV, 3 MAC key).
func deriveKey(password, salt []byte, id byte, iterations, n int) []byte {
	const u, v = sha256.Size, 64
	fill := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		out := make([]byte, v*((len(b)+v-1)/v))
		for i := range out {
			out[i] = b[i%len(b)]
		}
		return out
	}
	d := make([]byte, v)
	for i := range d {
		d[i] = id
	}
	I := append(fill(salt), fill(password)...)
	var out []byte
	for len(out) < n {
		h := sha256.New()
		h.Write(d)
		h.Write(I)
		a := h.Sum(nil)
		for r := 1; r < iterations; r++ {
			s := sha256.Sum256(a)
			a = s[:]
		}
		out = append(out, a...)
		if len(out) >= n {
			break
		}
		// B = A repeated to v bytes; each v-byte block of I becomes
		// (I_j + B + 1) mod 2^(8v).
		b := make([]byte, v)
		for i := range b {
			b[i] = a[i%u]
		}
		for j := 0; j < len(I); j += v {
			carry := 1
			for k := v - 1; k >= 0; k-- {
				x := int(I[j+k]) + int(b[k]) + carry
				I[j+k] = byte(x)
				carry = x >> 8
			}
		}
	}
	return out[:n]
}
