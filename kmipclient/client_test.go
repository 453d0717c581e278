package kmipclient_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/kmipclient"
	"github.com/kmipd/kmipd/server"
	"github.com/kmipd/kmipd/tests/hostile"
)

// The client against a whole in-process kmipd (tests/hostile: SoftHSM2,
// Badger, mutual TLS on 127.0.0.1), one server for every subtest.

func newClient(t *testing.T, env *hostile.Env, id int) *kmipclient.Client {
	t.Helper()
	c, err := kmipclient.New(kmipclient.Config{Addr: env.Addr(), TLS: env.ClientTLS(id), Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// must(t)(f()) is f's result, or the end of the test when f fails.
func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestClientAgainstKmipd(t *testing.T) {
	// A short idle timeout, so that the server closing a connection the
	// client keeps is tested too.
	env := hostile.StartServer(t, hostile.Options{Server: server.Config{IdleTimeout: time.Second}})
	ctx := context.Background()
	c := newClient(t, env, 0)

	t.Run("symmetric key: create, get, encrypt and decrypt", func(t *testing.T) {
		id := must[string](t)(c.Create(ctx, kmipclient.KeySpec{Algorithm: kmip14.CryptographicAlgorithmAES, Length: 128,
			Attributes: []kmipclient.Attribute{kmipclient.Name("sym-1")}}))
		key := must[*kmipclient.Object](t)(c.Get(ctx, id, 0))
		if key.Type != kmip14.ObjectTypeSymmetricKey || key.Format != kmip14.KeyFormatTypeRaw || len(key.Material) != 16 || key.Length != 128 {
			t.Fatalf("Get: %+v", key)
		}
		// A Pre-Active key refuses to encrypt: the server's reason reaches us.
		_, err := c.Encrypt(ctx, id, []byte("x"), kmipclient.Cipher{Mode: kmip14.BlockCipherModeGCM})
		if r, ok := kmipclient.ReasonOf(err); !ok || r != kmip14.ResultReasonPermissionDenied {
			t.Fatalf("Encrypt before Activate: %v", err)
		}
		if err := c.Activate(ctx, id); err != nil {
			t.Fatal(err)
		}
		plain, aad := []byte("attack at dawn"), []byte("header")
		ct := must[*kmipclient.Ciphertext](t)(c.Encrypt(ctx, id, plain, kmipclient.Cipher{Mode: kmip14.BlockCipherModeGCM, AAD: aad}))
		if len(ct.IV) != 12 || len(ct.Tag) != 16 {
			t.Fatalf("GCM: IV %d bytes, tag %d", len(ct.IV), len(ct.Tag))
		}
		// The ciphertext is real AES-GCM under the key Get returned.
		blk, _ := aes.NewCipher(key.Material)
		g, _ := cipher.NewGCM(blk)
		if got, err := g.Open(nil, ct.IV, append(slices.Clone(ct.Data), ct.Tag...), aad); err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("local AES-GCM open: %q, %v", got, err)
		}
		got := must[[]byte](t)(c.Decrypt(ctx, id, ct.Data, kmipclient.Cipher{Mode: kmip14.BlockCipherModeGCM, IV: ct.IV, AAD: aad, Tag: ct.Tag}))
		if !bytes.Equal(got, plain) {
			t.Fatalf("Decrypt: %q", got)
		}
		bad := slices.Clone(ct.Tag)
		bad[0] ^= 1
		_, err = c.Decrypt(ctx, id, ct.Data, kmipclient.Cipher{Mode: kmip14.BlockCipherModeGCM, IV: ct.IV, AAD: aad, Tag: bad})
		if r, _ := kmipclient.ReasonOf(err); r != kmip14.ResultReasonCryptographicFailure {
			t.Fatalf("Decrypt with a bad tag: %v", err)
		}
		// CBC with the server's IV and PKCS#5 padding; an empty input too.
		for _, in := range [][]byte{plain, {}} {
			cbc := kmipclient.Cipher{Mode: kmip14.BlockCipherModeCBC, Padding: kmip14.PaddingMethodPKCS5}
			ct := must[*kmipclient.Ciphertext](t)(c.Encrypt(ctx, id, in, cbc))
			if len(ct.IV) != 16 || len(ct.Data)%16 != 0 || len(ct.Data) == 0 {
				t.Fatalf("CBC: IV %d bytes, data %d", len(ct.IV), len(ct.Data))
			}
			cbc.IV = ct.IV
			if got := must[[]byte](t)(c.Decrypt(ctx, id, ct.Data, cbc)); !bytes.Equal(got, in) {
				t.Fatalf("CBC round trip: %q", got)
			}
		}
	})

	t.Run("key pairs: the public key parses", func(t *testing.T) {
		for _, s := range []kmipclient.KeySpec{
			{Algorithm: kmip14.CryptographicAlgorithmRSA, Length: 2048},
			{Algorithm: kmip14.CryptographicAlgorithmEC, Curve: kmip14.RecommendedCurveP_384},
		} {
			priv, pub, err := c.CreateKeyPair(ctx, s)
			if err != nil {
				t.Fatalf("%s: %v", s.Algorithm, err)
			}
			o := must[*kmipclient.Object](t)(c.Get(ctx, pub, kmip14.KeyFormatTypeX_509))
			k, err := x509.ParsePKIXPublicKey(o.Material)
			if err != nil {
				t.Fatalf("%s public key: %v", s.Algorithm, err)
			}
			switch k := k.(type) {
			case *rsa.PublicKey:
				if k.N.BitLen() != 2048 {
					t.Fatalf("RSA key of %d bits", k.N.BitLen())
				}
			case *ecdsa.PublicKey:
				if k.Curve != elliptic.P384() {
					t.Fatalf("EC key on %s", k.Curve.Params().Name)
				}
			}
			if p, ok := must[*kmipclient.Object](t)(c.Get(ctx, priv, 0)).PEMType(); !ok || !strings.HasSuffix(p, "PRIVATE KEY") {
				t.Fatalf("%s private key PEM type %q", s.Algorithm, p)
			}
		}
	})

	t.Run("register every object type, get it back byte for byte", func(t *testing.T) {
		for name, o := range registrable(t) {
			want := slices.Clone(o.Material)
			id, err := c.Register(ctx, o, kmipclient.Name("reg-"+name))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got := must[*kmipclient.Object](t)(c.Get(ctx, id, 0))
			if got.Type != o.Type || got.Form() != o.Form() || !bytes.Equal(got.Material, want) {
				t.Fatalf("%s: got %s %s (%d bytes), want %s %s", name, got.Type, got.Form(), len(got.Material), o.Type, o.Form())
			}
			if ids := must[[]string](t)(c.Locate(ctx, 0, kmipclient.Name("reg-"+name))); !slices.Equal(ids, []string{id}) {
				t.Fatalf("%s: Locate by name: %v, want [%s]", name, ids, id)
			}
		}
	})

	t.Run("attributes and lifecycle", func(t *testing.T) {
		id := must[string](t)(c.Create(ctx, kmipclient.KeySpec{Algorithm: kmip14.CryptographicAlgorithmAES,
			Attributes: []kmipclient.Attribute{kmipclient.ActivationDate(time.Now())}}))
		attrs := must[[]kmipclient.Attribute](t)(c.GetAttributes(ctx, id, "State", "Cryptographic Usage Mask", "Cryptographic Length"))
		got := map[string]string{}
		for _, a := range attrs {
			got[a.Name] = a.Text()
		}
		want := map[string]string{"State": "Active", "Cryptographic Usage Mask": "Encrypt|Decrypt|WrapKey|UnwrapKey", "Cryptographic Length": "256"}
		if !maps(got, want) {
			t.Fatalf("GetAttributes: %v, want %v", got, want)
		}
		if all := must[[]kmipclient.Attribute](t)(c.GetAttributes(ctx, id)); len(all) < 10 {
			t.Fatalf("all attributes: %d", len(all))
		}
		if err := c.Destroy(ctx, id); !isReason(err, kmip14.ResultReasonPermissionDenied) {
			t.Fatalf("Destroy while Active: %v", err)
		}
		if err := c.Revoke(ctx, id, kmip14.RevocationReasonCodeKeyCompromise, "lost laptop"); err != nil {
			t.Fatal(err)
		}
		if err := c.Destroy(ctx, id); err != nil {
			t.Fatal(err)
		}
		a := must[[]kmipclient.Attribute](t)(c.GetAttributes(ctx, id, "State", "Revocation Reason"))
		if len(a) != 2 || a[0].Text() != "DestroyedCompromised" || a[1].JSON().(map[string]any)["RevocationMessage"] != "lost laptop" {
			t.Fatalf("after revoke and destroy: %v %v", a[0].Text(), a[1].Text())
		}
		if _, err := c.Get(ctx, id, 0); !isReason(err, kmip14.ResultReasonItemNotFound) {
			t.Fatalf("Get after Destroy: %v", err)
		}
	})

	t.Run("another identity sees nothing", func(t *testing.T) {
		id := must[string](t)(c.Create(ctx, kmipclient.KeySpec{Algorithm: kmip14.CryptographicAlgorithmAES}))
		_, err := newClient(t, env, 1).Get(ctx, id, 0)
		var e *kmipclient.Error
		if !errors.As(err, &e) || e.Kind != kmipclient.Failed || e.Reason != kmip14.ResultReasonItemNotFound || e.Message == "" {
			t.Fatalf("Get as another owner: %#v", err)
		}
		if !strings.Contains(e.Error(), "Item Not Found") {
			t.Fatalf("message %q", e.Error())
		}
	})

	t.Run("query", func(t *testing.T) {
		info := must[*kmipclient.ServerInfo](t)(c.Query(ctx))
		if info.Vendor != "kmipd" || !slices.Contains(info.Operations, kmip14.OperationEncrypt) ||
			!slices.Contains(info.ObjectTypes, kmip14.ObjectTypeCertificate) {
			t.Fatalf("Query: %+v", info)
		}
	})

	t.Run("a connection the server closed while idle is dialled again", func(t *testing.T) {
		if _, err := c.Query(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		id, err := c.Create(ctx, kmipclient.KeySpec{Algorithm: kmip14.CryptographicAlgorithmAES,
			Attributes: []kmipclient.Attribute{kmipclient.Name("after-idle")}})
		if err != nil {
			t.Fatalf("Create after the server closed the idle connection: %v", err)
		}
		// Sent once, not twice.
		if ids := must[[]string](t)(c.Locate(ctx, 0, kmipclient.Name("after-idle"))); !slices.Equal(ids, []string{id}) {
			t.Fatalf("Locate: %v, want [%s]", ids, id)
		}
	})

	t.Run("transport failures are Transport errors", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := l.Addr().String()
		l.Close()
		other, err := certs.NewCA(certs.Options{})
		if err != nil {
			t.Fatal(err)
		}
		untrusting := env.ClientTLS(0)
		untrusting.RootCAs = other.Pool()
		for name, cfg := range map[string]kmipclient.Config{
			"closed port":      {Addr: closed, TLS: env.ClientTLS(0)},
			"server untrusted": {Addr: env.Addr(), TLS: untrusting},
			"no client cert":   {Addr: env.Addr(), TLS: env.TLSWith(nil)},
		} {
			cfg.Timeout = 10 * time.Second
			c, err := kmipclient.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Query(ctx)
			if kmipclient.KindOf(err) != kmipclient.Transport {
				t.Errorf("%s: %v (kind %v), want a Transport error", name, err, kmipclient.KindOf(err))
			}
			c.Close()
		}
	})

	t.Run("an oversized request gets the server's answer", func(t *testing.T) {
		id := must[string](t)(c.Create(ctx, kmipclient.KeySpec{Algorithm: kmip14.CryptographicAlgorithmAES,
			Attributes: []kmipclient.Attribute{kmipclient.ActivationDate(time.Now())}}))
		_, err := c.Encrypt(ctx, id, make([]byte, 2<<20), kmipclient.Cipher{Mode: kmip14.BlockCipherModeGCM})
		// Either the answer (Invalid Message) or, when the server's close
		// beat it, a Transport error: never a hang or a panic.
		if r, ok := kmipclient.ReasonOf(err); !(ok && r == kmip14.ResultReasonInvalidMessage) && kmipclient.KindOf(err) != kmipclient.Transport {
			t.Fatalf("2 MiB Encrypt: %v", err)
		}
		// The client dials again for the next request.
		if _, err := c.Query(ctx); err != nil {
			t.Fatalf("Query after: %v", err)
		}
	})
}

func isReason(err error, r kmip14.ResultReason) bool {
	got, ok := kmipclient.ReasonOf(err)
	return ok && got == r
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// registrable makes one object of each kind `kmipd client register` reads.
func registrable(t *testing.T) map[string]*kmipclient.Object {
	t.Helper()
	rsaKey := must[*rsa.PrivateKey](t)(rsa.GenerateKey(rand.Reader, 2048))
	ecKey := must[*ecdsa.PrivateKey](t)(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	pkcs8 := must[[]byte](t)(x509.MarshalPKCS8PrivateKey(ecKey))
	sec1 := must[[]byte](t)(x509.MarshalECPrivateKey(ecKey))
	spki := must[[]byte](t)(x509.MarshalPKIXPublicKey(&ecKey.PublicKey))
	ca := must[*certs.CA](t)(certs.NewCA(certs.Options{}))
	leaf := must[*certs.Issued](t)(ca.IssueClient("reg"))
	parse := func(f func([]byte) (*kmipclient.Object, error), der []byte) *kmipclient.Object {
		return must[*kmipclient.Object](t)(f(der))
	}
	aes := must[[]byte](t)(hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"))
	return map[string]*kmipclient.Object{
		"aes":         kmipclient.SymmetricKey(kmip14.CryptographicAlgorithmAES, aes),
		"secret":      kmipclient.SecretData(kmip14.SecretDataTypePassword, []byte("correct horse")),
		"opaque":      kmipclient.OpaqueObject(0x80000001, []byte{0, 1, 2, 0xff}),
		"certificate": parse(kmipclient.ParseCertificate, leaf.Cert.Raw),
		"rsa-pkcs1":   parse(kmipclient.ParsePrivateKey, x509.MarshalPKCS1PrivateKey(rsaKey)),
		"ec-pkcs8":    parse(kmipclient.ParsePrivateKey, pkcs8),
		"ec-sec1":     parse(kmipclient.ParsePrivateKey, sec1),
		"ec-spki":     parse(kmipclient.ParsePublicKey, spki),
		"rsa-pub":     parse(kmipclient.ParsePublicKey, x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)),
	}
}
