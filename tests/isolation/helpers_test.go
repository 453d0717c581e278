// Package isolation_test proves kmipd's ownership rule end to end, over
// real mutual TLS: an identity can read, use, change, revoke, destroy or
// discover only its own objects, and another owner's object is answered
// byte for byte like one that does not exist.
package isolation_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/tests/hostile"
)

const (
	alice = 0
	bob   = 1
)

var fullMask = int32(kmip14.CryptographicUsageMaskEncrypt | kmip14.CryptographicUsageMaskDecrypt |
	kmip14.CryptographicUsageMaskMACGenerate | kmip14.CryptographicUsageMaskMACVerify)

// object kinds an operation can need to succeed for its rightful owner.
const (
	kindKey     = "pre-active AES key"
	kindActive  = "active AES key"
	kindSecret  = "secret data"
	kindPrivate = "active RSA private key"
	kindPublic  = "active RSA public key"
)

// aliceObjects makes one object of every kind as the given identity, each
// with a Name and a custom attribute, and returns kind → uid.
func makeObjects(t *testing.T, c *hostile.Conn, prefix string) map[string]string {
	t.Helper()
	named := func(kind string) []*tree.Node {
		return []*tree.Node{hostile.Name(prefix + " " + kind), hostile.Attr("x-owner", tree.Text(0, prefix))}
	}
	aes := func(kind string) *tree.Node {
		it := hostile.CreateAES(256, named(kind)...)
		// Widen the usage mask so the MAC operations apply too.
		tmpl := it.Path(kmip14.TagRequestPayload, kmip14.TagTemplateAttribute)
		for _, a := range tmpl.All(kmip14.TagAttribute) {
			if n, _ := a.Child(kmip14.TagAttributeName).TextValue(); n == "Cryptographic Usage Mask" {
				a.Child(kmip14.TagAttributeValue).Int = int64(fullMask)
			}
		}
		return it
	}
	uids := map[string]string{
		kindKey:    c.MustUID(t, aes(kindKey)),
		kindActive: c.MustUID(t, aes(kindActive)),
		kindSecret: c.MustUID(t, hostile.RegisterSecret([]byte(prefix+" secret"), named(kindSecret)...)),
	}
	hostile.WantOK(t, c.One(t, hostile.Item(kmip14.OperationActivate, hostile.UID(uids[kindActive]))))
	p := hostile.WantOK(t, c.One(t, hostile.CreateKeyPair(2048)))
	uids[kindPrivate], _ = p.Child(kmip14.TagPrivateKeyUniqueIdentifier).TextValue()
	uids[kindPublic], _ = p.Child(kmip14.TagPublicKeyUniqueIdentifier).TextValue()
	for _, k := range []string{kindPrivate, kindPublic} {
		hostile.WantOK(t, c.One(t, hostile.Item(kmip14.OperationActivate, hostile.UID(uids[k]))))
	}
	return uids
}

// randomUID has the shape of a kmipd identifier and belongs to nobody.
func randomUID() string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:]
}

// normalized is a response's bytes with its Time Stamp cleared, the only
// field that may differ between two answers to the same question.
func normalized(resp *tree.Node) []byte {
	r := resp.Clone()
	if ts := r.Path(kmip14.TagResponseHeader, kmip14.TagTimeStamp); ts != nil {
		ts.Time = time.Unix(0, 0)
	}
	return tree.MustEncode(r)
}

func roundTrip(t *testing.T, c *hostile.Conn, req *tree.Node) *tree.Node {
	t.Helper()
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatalf("round trip: %v", err)
	}
	hostile.CheckMessage(t, resp)
	return resp
}

// sameAsNobodys sends req (mentioning victim uid) and the same request with
// the uid replaced by one nobody owns, and fails unless both answers are
// identical. It returns the answer.
func sameAsNobodys(t *testing.T, c *hostile.Conn, build func(uid string) *tree.Node, victim string) *tree.Node {
	t.Helper()
	got := roundTrip(t, c, build(victim))
	nobody := roundTrip(t, c, build(randomUID()))
	if !bytes.Equal(normalized(got), normalized(nobody)) {
		t.Fatalf("another owner's object is answered differently from a nonexistent one:\n owned:  %v\n absent: %v", hostile.Results(got), hostile.Results(nobody))
	}
	return got
}

// snapshot is every stored record of owner, byte for byte, pKEK included.
func snapshot(t *testing.T, e *hostile.Env, owner string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, prefix := range []string{"obj/" + owner + "/", "pkek/" + owner} {
		err := e.Store().List(context.Background(), prefix, func(k string, v []byte) error {
			out[k] = v
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func sameSnapshot(t *testing.T, before, after map[string][]byte) {
	t.Helper()
	for k, v := range before {
		if !bytes.Equal(after[k], v) {
			t.Errorf("record %s changed", k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("record %s appeared in the victim's namespace", k)
		}
	}
}

// leaks fails the test if resp mentions any of the victim's uids.
func leaks(t *testing.T, resp *tree.Node, victim map[string]string) {
	t.Helper()
	b := tree.MustEncode(resp)
	for kind, uid := range victim {
		if bytes.Contains(b, []byte(uid)) {
			t.Fatalf("response mentions the victim's %s %s", kind, uid)
		}
	}
}

// traversals are spellings of a victim's uid that try to escape the
// caller's storage namespace.
func traversals(victimOwner, uid string) []string {
	return []string{
		"../" + victimOwner + "/" + uid,
		victimOwner + "/" + uid,
		"obj/" + victimOwner + "/" + uid,
		uid + "\x00",
		strings.ToUpper(uid),
		" " + uid,
	}
}
