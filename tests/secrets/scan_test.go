package secrets_test

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// Window lengths: any 16 bytes of a secret, in any encoding, found in a
// log or a message is a leak. 16 random bytes do not occur by chance, and
// a shorter leak would still be one of a key's bytes printed somewhere.
const (
	rawWin = 16
	hexWin = 2 * rawWin
	b64Win = 24 // 18 bytes; aligned on a 4-character group
)

// vault is every secret a test session handled, indexed so a large log can
// be scanned in one pass per encoding instead of once per secret.
type vault struct {
	mu    sync.Mutex
	names map[string]string // needle → which secret it came from
	dec   map[string]string // Go %v of 8 bytes ("[1 2 3 ...") → secret
}

func newVault() *vault { return &vault{names: map[string]string{}, dec: map[string]string{}} }

// add registers b (at least rawWin bytes) under name.
func (v *vault) add(t *testing.T, name string, b []byte) {
	t.Helper()
	if len(b) < rawWin {
		t.Fatalf("secret %s is only %d bytes; scanning needs %d", name, len(b), rawWin)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := 0; i+rawWin <= len(b); i++ {
		w := b[i : i+rawWin]
		v.names[string(w)] = name
		v.names[hex.EncodeToString(w)] = name + " (hex)"
		v.names[strings.ToUpper(hex.EncodeToString(w))] = name + " (HEX)"
	}
	// Base64 of a blob holding the secret at any offset: the secret's
	// encoding then starts at one of three phases.
	for phase := range 3 {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			s := enc.EncodeToString(b[phase:])
			for i := 0; i+b64Win <= len(s)-4; i += 4 {
				v.names[s[i:i+b64Win]] = name + " (base64)"
			}
		}
	}
	for i := 0; i+8 <= len(b); i += 8 {
		v.dec[strings.Trim(fmt.Sprint(b[i:i+8]), "[]")] = name + " (%v)"
	}
}

// addRSA registers the private parts of a PKCS#1 or PKCS#8 RSA key; its
// modulus and public exponent are public and may legitimately be printed.
func (v *vault) addRSA(t *testing.T, name string, der []byte) {
	t.Helper()
	var k *rsa.PrivateKey
	if p1, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		k = p1
	} else if p8, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		k, _ = p8.(*rsa.PrivateKey)
	}
	if k == nil {
		t.Fatalf("%s: key material is not an RSA private key", name)
	}
	v.add(t, name+" D", k.D.Bytes())
	for i, p := range k.Primes {
		v.add(t, fmt.Sprintf("%s prime %d", name, i), p.Bytes())
	}
}

// scan fails the test for every secret found in text.
func (v *vault) scan(t *testing.T, where, text string) {
	t.Helper()
	for _, f := range v.find(text) {
		t.Errorf("%s leaks %s", where, f)
	}
}

// find lists the secrets text contains, one line each.
func (v *vault) find(text string) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	found := map[string]bool{}
	b := []byte(text)
	for _, w := range []int{rawWin, hexWin, b64Win} {
		for i := 0; i+w <= len(b); i++ {
			if name, ok := v.names[string(b[i:i+w])]; ok && !found[name] {
				found[name] = true
				out = append(out, fmt.Sprintf("%s: …%s…", name, excerpt(b, i, w)))
			}
		}
	}
	for needle, name := range v.dec {
		if !found[name] && strings.Contains(text, needle) {
			found[name] = true
			out = append(out, name)
		}
	}
	return out
}

// excerpt shows where a leak is without printing the secret itself again.
func excerpt(b []byte, i, w int) string {
	lo := max(0, i-40)
	return fmt.Sprintf("%q[%d secret bytes]", bytes.ToValidUTF8(b[lo:i], []byte("?")), w)
}

func (v *vault) size() int { v.mu.Lock(); defer v.mu.Unlock(); return len(v.names) }

// TestScannerFindsLeaks: the scanner itself must catch each encoding, or
// the tests below would pass on a server that prints keys.
func TestScannerFindsLeaks(t *testing.T) {
	secret := []byte("0123456789abcdef-a-secret-of-32b")
	v := newVault()
	v.add(t, "s", secret)
	for name, text := range map[string]string{
		"raw":              "key=" + string(secret[3:20]),
		"hex":              "key=" + hex.EncodeToString(secret)[6:40],
		"HEX":              "key=" + strings.ToUpper(hex.EncodeToString(secret)),
		"base64 at offset": "key=" + base64.StdEncoding.EncodeToString(append([]byte("xy"), secret...)),
		"base64url":        "key=" + base64.RawURLEncoding.EncodeToString(secret),
		"%v":               fmt.Sprint(secret),
	} {
		if len(v.find(text)) == 0 {
			t.Errorf("scanner misses a %s leak", name)
		}
	}
	v.scan(t, "clean text", "nothing to see "+hex.EncodeToString([]byte("other bytes entirely")))
}
