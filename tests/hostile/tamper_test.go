package hostile

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// Tampering with the store: whatever is changed on disk — a byte of an
// object record, of its sealed material, of a wrapped pKEK record, or a
// record moved to another key — must be detected and answered with
// Cryptographic Failure, never served as data, never "repaired" by
// overwriting it, and must not stop the untouched records from working.

func objKey(owner, uid string) string { return "obj/" + owner + "/" + uid }
func pkekKey(owner string) string     { return "pkek/" + owner }

func flip(i int) func([]byte) []byte {
	return func(b []byte) []byte {
		b = bytes.Clone(b)
		if i < 0 {
			i += len(b)
		}
		b[i] ^= 0x01
		return b
	}
}

// mutations are the ways a record can be damaged. Sealed objects are
// version(1) | nonce(12) | ciphertext | tag(16); pKEK records are
// version(1) | len(2) | wrapped | mac.
var objectMutations = map[string]func([]byte) []byte{
	"version byte":          flip(0),
	"nonce":                 flip(5),
	"first ciphertext byte": flip(13),
	"middle of the sealed material": func(b []byte) []byte {
		return flip(len(b) / 2)(b)
	},
	"last tag byte": flip(-1),
	"truncated":     func(b []byte) []byte { return bytes.Clone(b[:len(b)-1]) },
	"cut to 10":     func(b []byte) []byte { return bytes.Clone(b[:10]) },
	"empty":         func([]byte) []byte { return []byte{} },
	"extended":      func(b []byte) []byte { return append(bytes.Clone(b), 0) },
}

var pkekMutations = map[string]func([]byte) []byte{
	"version byte":   flip(0),
	"length field":   flip(2),
	"wrapped key":    flip(8),
	"last wrap byte": func(b []byte) []byte { return flip(3 + int(b[1])<<8 | int(b[2]) - 1)(b) },
	"MAC":            flip(-1),
	"truncated MAC":  func(b []byte) []byte { return bytes.Clone(b[:len(b)-1]) },
	"header only":    func(b []byte) []byte { return bytes.Clone(b[:3]) },
	"empty":          func([]byte) []byte { return []byte{} },
	"MAC of all ones": func(b []byte) []byte {
		return append(bytes.Clone(b[:3+int(b[1])<<8|int(b[2])]), bytes.Repeat([]byte{0xff}, 32)...)
	},
}

func storeGet(t *testing.T, st storage.Store, key string) []byte {
	t.Helper()
	b, err := st.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("store get %s: %v", key, err)
	}
	return b
}

func storePut(t *testing.T, st storage.Store, key string, v []byte) {
	t.Helper()
	if err := st.Put(context.Background(), key, v); err != nil {
		t.Fatalf("store put %s: %v", key, err)
	}
}

// offline runs fn on the store with the server stopped — as an attacker
// with the disk would — then starts the server again with a cold pKEK cache.
func offline(t *testing.T, e *Env, fn func(st storage.Store)) {
	t.Helper()
	e.Stop()
	st, err := storage.OpenBadger(e.DataDir, storage.BadgerOptions{GCInterval: -1}, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("open the store offline: %v", err)
	}
	fn(st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	e.Start()
}

// refused checks r is the integrity refusal and carries nothing of secret.
func refused(t *testing.T, r Result, secret []byte) {
	t.Helper()
	WantFailure(t, r, kmip14.ResultReasonCryptographicFailure)
	if !strings.Contains(r.Message, "integrity check") {
		t.Errorf("Result Message %q does not say what failed", r.Message)
	}
	if bytes.Contains([]byte(r.Message), secret) {
		t.Errorf("Result Message quotes the key material")
	}
}

func TestTamperedObjectRecords(t *testing.T) {
	e := StartServer(t, Options{})
	alice, bob := e.Dial(0), e.Dial(1)
	key := bytes.Repeat([]byte{0xa7}, 32)
	secret := []byte("tamper-evident secret data 0123456789")
	uidKey := alice.MustUID(t, RegisterAES(key, Name("tamper-key")))
	uidSecret := alice.MustUID(t, RegisterSecret(secret))
	bob.MustUID(t, CreateAES(128))
	st := e.Store()
	orig := storeGet(t, st, objKey(e.Owners[0], uidKey))
	ops := map[string]*tree.Node{
		"Get":              Item(kmip14.OperationGet, UID(uidKey)),
		"GetAttributes":    Item(kmip14.OperationGetAttributes, UID(uidKey)),
		"GetAttributeList": Item(kmip14.OperationGetAttributeList, UID(uidKey)),
		"AddAttribute":     Item(kmip14.OperationAddAttribute, UID(uidKey), Attr("x-tamper", tree.Text(0, "v"))),
		"Activate":         Item(kmip14.OperationActivate, UID(uidKey)),
		"Destroy":          Item(kmip14.OperationDestroy, UID(uidKey)),
		"Locate (all)":     Item(kmip14.OperationLocate),
		"Locate (by name)": Item(kmip14.OperationLocate, Name("tamper-key")),
		"Revoke":           Revoke(uidKey),
		"ModifyAttribute":  Item(kmip14.OperationModifyAttribute, UID(uidKey), Name("renamed")),
		"DeleteAttribute":  Item(kmip14.OperationDeleteAttribute, UID(uidKey), tree.Text(kmip14.TagAttributeName, "Name")),
	}
	for mname, mutate := range objectMutations {
		t.Run(mname, func(t *testing.T) {
			bad := mutate(orig)
			storePut(t, st, objKey(e.Owners[0], uidKey), bad)
			for oname, it := range ops {
				refused(t, alice.One(t, it), key)
				if got := storeGet(t, st, objKey(e.Owners[0], uidKey)); !bytes.Equal(got, bad) {
					t.Fatalf("%s rewrote the damaged record", oname)
				}
			}
			// Another object of the same owner is unaffected.
			if got := FindBytes(WantOK(t, alice.One(t, Item(kmip14.OperationGet, UID(uidSecret)))), kmip14.TagKeyMaterial); !bytes.Equal(got, secret) {
				t.Fatalf("untouched object read back wrong")
			}
			storePut(t, st, objKey(e.Owners[0], uidKey), orig)
			if got := FindBytes(WantOK(t, alice.One(t, Item(kmip14.OperationGet, UID(uidKey)))), kmip14.TagKeyMaterial); !bytes.Equal(got, key) {
				t.Fatalf("restored object read back wrong")
			}
		})
	}
	t.Run("record moved to another uid of the same owner", func(t *testing.T) {
		target := objKey(e.Owners[0], uidSecret)
		saved := storeGet(t, st, target)
		storePut(t, st, target, orig)
		refused(t, alice.One(t, Item(kmip14.OperationGet, UID(uidSecret))), key)
		storePut(t, st, target, saved)
	})
	t.Run("record copied to another owner", func(t *testing.T) {
		// Bob's namespace now holds Alice's sealed record under her uid.
		storePut(t, st, objKey(e.Owners[1], uidKey), orig)
		refused(t, bob.One(t, Item(kmip14.OperationGet, UID(uidKey))), key)
		refused(t, bob.One(t, Item(kmip14.OperationLocate)), key)
		if err := st.Delete(context.Background(), objKey(e.Owners[1], uidKey)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Get through the ID placeholder", func(t *testing.T) {
		storePut(t, st, objKey(e.Owners[0], uidKey), flip(20)(orig))
		resp := must(alice.RoundTrip(ContinueOnError(Item(kmip14.OperationGetAttributes, UID(uidKey)), Item(kmip14.OperationGet))))
		rs := CheckMessage(t, resp)
		refused(t, rs[0], key)
		if rs[1].OK() {
			t.Fatalf("Get through the placeholder of a damaged object succeeded")
		}
		if bytes.Contains(enc(resp), key) {
			t.Fatalf("the response carries the key material")
		}
		storePut(t, st, objKey(e.Owners[0], uidKey), orig)
	})
	WantOK(t, alice.One(t, Item(kmip14.OperationLocate)))
	waitLog(t, e, 0, "failed")
}

func TestTamperedPKEKRecords(t *testing.T) {
	e := StartServer(t, Options{Identities: 3})
	key := bytes.Repeat([]byte{0x3c}, 32)
	uidAlice := e.Dial(0).MustUID(t, RegisterAES(key))
	uidBob := e.Dial(1).MustUID(t, CreateAES(256))
	alicePKEK := storeGet(t, e.Store(), pkekKey(e.Owners[0]))
	bobPKEK := storeGet(t, e.Store(), pkekKey(e.Owners[1]))

	for mname, mutate := range pkekMutations {
		t.Run(mname, func(t *testing.T) {
			bad := mutate(alicePKEK)
			offline(t, e, func(st storage.Store) { storePut(t, st, pkekKey(e.Owners[0]), bad) })
			mark := len(e.Logs())
			alice := e.Dial(0)
			refusedPKEK(t, alice.One(t, Item(kmip14.OperationGet, UID(uidAlice))))
			// Create must not replace the damaged pKEK with a fresh one.
			refusedPKEK(t, alice.One(t, CreateAES(128)))
			refusedPKEK(t, alice.One(t, Item(kmip14.OperationLocate)))
			if got := storeGet(t, e.Store(), pkekKey(e.Owners[0])); !bytes.Equal(got, bad) {
				t.Fatalf("the damaged pKEK record was overwritten")
			}
			waitLog(t, e, mark, "[ERROR]", "pKEK record failed its integrity check")
			// Bob's key hierarchy is untouched.
			WantOK(t, e.Dial(1).One(t, Item(kmip14.OperationGet, UID(uidBob))))
		})
	}
	t.Run("copied onto another owner with a pKEK", func(t *testing.T) {
		offline(t, e, func(st storage.Store) { storePut(t, st, pkekKey(e.Owners[1]), alicePKEK) })
		bob := e.Dial(1)
		refusedPKEK(t, bob.One(t, Item(kmip14.OperationGet, UID(uidBob))))
		refusedPKEK(t, bob.One(t, CreateAES(128)))
		// Even naming Alice's uid gets Bob nothing but not-found.
		WantFailure(t, bob.One(t, Item(kmip14.OperationGet, UID(uidAlice))), kmip14.ResultReasonItemNotFound)
	})
	t.Run("copied onto a new owner", func(t *testing.T) {
		offline(t, e, func(st storage.Store) {
			storePut(t, st, pkekKey(e.Owners[2]), alicePKEK)
			// Alice's sealed object, too, as if the attacker moved both.
			storePut(t, st, objKey(e.Owners[2], uidAlice), storeGet(t, st, objKey(e.Owners[0], uidAlice)))
		})
		carol := e.Dial(2)
		refusedPKEK(t, carol.One(t, Item(kmip14.OperationGet, UID(uidAlice))))
		refusedPKEK(t, carol.One(t, CreateAES(128)))
	})
	// Put everything back: every owner's objects are intact.
	offline(t, e, func(st storage.Store) {
		storePut(t, st, pkekKey(e.Owners[0]), alicePKEK)
		storePut(t, st, pkekKey(e.Owners[1]), bobPKEK)
		if err := st.Delete(context.Background(), pkekKey(e.Owners[2])); err != nil {
			t.Fatal(err)
		}
		if err := st.Delete(context.Background(), objKey(e.Owners[2], uidAlice)); err != nil {
			t.Fatal(err)
		}
	})
	got := FindBytes(WantOK(t, e.Dial(0).One(t, Item(kmip14.OperationGet, UID(uidAlice)))), kmip14.TagKeyMaterial)
	if !bytes.Equal(got, key) {
		t.Fatal("Alice's key read back wrong after restoring her pKEK")
	}
	WantOK(t, e.Dial(1).One(t, Item(kmip14.OperationGet, UID(uidBob))))
	e.Dial(2).MustUID(t, CreateAES(128))
}

func refusedPKEK(t *testing.T, r Result) {
	t.Helper()
	WantFailure(t, r, kmip14.ResultReasonCryptographicFailure)
	if !strings.Contains(r.Message, "integrity check") {
		t.Errorf("Result Message %q does not say what failed", r.Message)
	}
}
