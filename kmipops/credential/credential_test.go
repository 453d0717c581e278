package credential

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

const owner = "a11ce0000000000000000000000000000000000000000000000000000000000a"

func userCred(name, password string) *tree.Node {
	return tree.Struct(kmip14.TagCredential,
		tree.Enum(kmip14.TagCredentialType, uint32(kmip14.CredentialTypeUsernameAndPassword)),
		tree.Struct(kmip14.TagCredentialValue, tree.Text(kmip14.TagUsername, name), tree.Text(kmip14.TagPassword, password)))
}

func auth(creds ...*tree.Node) *tree.Node { return tree.Struct(kmip14.TagAuthentication, creds...) }

func TestParsePrincipals(t *testing.T) {
	c, err := Parse(auth(userCred("Fred", "pw")))
	if err != nil || c.Principal != "user:Fred" || c.Username != "Fred" || string(c.Password) != "pw" || !c.HasPassword {
		t.Fatalf("username: %+v, %v", c, err)
	}
	dev := func(fields ...*tree.Node) *tree.Node {
		return tree.Struct(kmip14.TagCredential,
			tree.Enum(kmip14.TagCredentialType, uint32(kmip14.CredentialTypeDevice)),
			tree.Struct(kmip14.TagCredentialValue, fields...))
	}
	c, err = Parse(auth(dev(tree.Text(kmip14.TagMediaIdentifier, "m"), tree.Text(kmip14.TagPassword, "s"),
		tree.Text(kmip14.TagDeviceSerialNumber, `a","b`))))
	if err != nil || c.Principal != `device:"a\",\"b",,,,"m"` || string(c.Password) != "s" {
		t.Fatalf("device: %+v, %v", c, err)
	}
	// The password is no part of the identity.
	c2, _ := Parse(auth(dev(tree.Text(kmip14.TagMediaIdentifier, "m"), tree.Text(kmip14.TagPassword, "other"),
		tree.Text(kmip14.TagDeviceSerialNumber, `a","b`))))
	if c2.Principal != c.Principal {
		t.Fatalf("password changed the identity: %q vs %q", c2.Principal, c.Principal)
	}
	if c, err := Parse(nil); c != nil || err != nil {
		t.Fatalf("no Authentication: %v, %v", c, err)
	}
	for name, tc := range map[string]struct {
		a    *tree.Node
		want kmip14.ResultReason
	}{
		"no credential":   {auth(), kmip14.ResultReasonInvalidField},
		"two":             {auth(userCred("a", "b"), userCred("a", "b")), kmip14.ResultReasonAuthenticationNotSuccessful},
		"attestation":     {auth(tree.Struct(kmip14.TagCredential, tree.Enum(kmip14.TagCredentialType, uint32(kmip14.CredentialTypeAttestation)), tree.Struct(kmip14.TagCredentialValue))), kmip14.ResultReasonAuthenticationNotSuccessful},
		"password int":    {auth(tree.Struct(kmip14.TagCredential, tree.Enum(kmip14.TagCredentialType, 1), tree.Struct(kmip14.TagCredentialValue, tree.Text(kmip14.TagUsername, "u"), tree.Int(kmip14.TagPassword, 1)))), kmip14.ResultReasonInvalidField},
		"device int":      {auth(dev(tree.Int(kmip14.TagDeviceIdentifier, 1))), kmip14.ResultReasonInvalidField},
		"type text":       {auth(tree.Struct(kmip14.TagCredential, tree.Text(kmip14.TagCredentialType, "x"))), kmip14.ResultReasonInvalidField},
		"not a structure": {&tree.Node{Tag: kmip14.TagAuthentication, Type: ttlv.TypeInteger}, kmip14.ResultReasonInvalidField},
	} {
		_, err := Parse(tc.a)
		var e *Error
		if !errors.As(err, &e) || e.Reason != tc.want {
			t.Errorf("%s: %v, want %s", name, err, tc.want)
		}
	}
}

func cred(name, password string) *Credential {
	c, err := Parse(auth(userCred(name, password)))
	if err != nil {
		panic(err)
	}
	return c
}

func isDenied(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Reason == kmip14.ResultReasonAuthenticationNotSuccessful
}

func TestBinderBindsOnFirstUse(t *testing.T) {
	st := storage.NewMemory()
	defer st.Close()
	b := NewBinder(st, 1000)
	if err := b.Verify(ctx(), owner, cred("Fred", "pw1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Verify(ctx(), owner, cred("Fred", "pw1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Verify(ctx(), owner, cred("Fred", "pw2")); !isDenied(err) {
		t.Fatalf("wrong password: %v", err)
	}
	// A new Binder (a restart, another replica) reads the binding.
	b2 := NewBinder(st, 5000)
	if err := b2.Verify(ctx(), owner, cred("Fred", "pw2")); !isDenied(err) {
		t.Fatalf("wrong password after a restart: %v", err)
	}
	if err := b2.Verify(ctx(), owner, cred("Fred", "pw1")); err != nil {
		t.Fatalf("right password after a restart: %v", err)
	}
	// A binding moved to another identity's key is refused, not used.
	keyF, _ := bindingKey(owner, "user:Fred")
	keyB, _ := bindingKey(owner, "user:Barney")
	v, _ := st.Get(ctx(), keyF)
	if err := st.Put(ctx(), keyB, v); err != nil {
		t.Fatal(err)
	}
	if err := NewBinder(st, 1000).Verify(ctx(), owner, cred("Barney", "pw1")); err == nil || isDenied(err) {
		t.Fatalf("a moved binding: %v, want an internal error", err)
	}
	// A record asking for an absurd iteration count is refused.
	v[33] = 0xff
	if err := st.Put(ctx(), keyF, v); err != nil {
		t.Fatal(err)
	}
	if err := NewBinder(st, 1000).Verify(ctx(), owner, cred("Fred", "pw1")); err == nil || isDenied(err) {
		t.Fatalf("a tampered binding: %v", err)
	}
}

// Concurrent first uses of one identity with different passwords: one
// binding wins, and exactly the requests with its password pass, on two
// Binders (two replicas) at once.
func TestBinderConcurrentFirstUse(t *testing.T) {
	st := storage.NewMemory()
	defer st.Close()
	binders := []*Binder{NewBinder(st, 1000), NewBinder(st, 1000)}
	var wg sync.WaitGroup
	results := make([]error, 16)
	for i := range results {
		wg.Go(func() {
			results[i] = binders[i%2].Verify(ctx(), owner, cred("Fred", fmt.Sprint("pw", i%4)))
		})
	}
	wg.Wait()
	ok := map[string]bool{}
	for i, err := range results {
		if err == nil {
			ok[fmt.Sprint("pw", i%4)] = true
		} else if !isDenied(err) {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if len(ok) != 1 {
		t.Fatalf("passwords accepted: %v, want exactly one", ok)
	}
	var n int
	st.List(ctx(), Prefix, func(k string, v []byte) error {
		n++
		for i := range 4 {
			if bytes.Contains(v, []byte(fmt.Sprint("pw", i))) {
				t.Errorf("binding holds a password in the clear")
			}
		}
		return nil
	})
	if n != 1 {
		t.Fatalf("%d bindings, want 1", n)
	}
}

func ctx() context.Context { return context.Background() }
