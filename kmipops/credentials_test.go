package kmipops

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/audit"
	"github.com/kmipd/kmipd/kmipmsg"
	"github.com/kmipd/kmipd/kmipops/credential"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// testIterations keeps the tests' PBKDF2 cheap; the record format and the
// checks are the same at any count.
const testIterations = 1000

// as sends items as c under cred (nil: no Authentication).
func (e *env) as(c Caller, cred *tree.Node, items ...*tree.Node) *tree.Node {
	e.t.Helper()
	req := reqMsg(e.v, items...)
	if cred != nil {
		req.Child(kmip14.TagRequestHeader).Add(tree.Struct(kmip14.TagAuthentication, cred.Clone()))
	}
	return e.send(c, req)
}

func device(serial, id, password string) *tree.Node {
	return tree.Struct(kmip14.TagCredential,
		tree.Enum(kmip14.TagCredentialType, uint32(kmip14.CredentialTypeDevice)),
		tree.Struct(kmip14.TagCredentialValue,
			tree.Text(kmip14.TagDeviceSerialNumber, serial),
			tree.Text(kmip14.TagPassword, password),
			tree.Text(kmip14.TagDeviceIdentifier, id)))
}

// refused asserts a message-level Authentication Not Successful.
func refused(t *testing.T, resp *tree.Node) {
	t.Helper()
	wantFail(t, resp, 0, kmip14.ResultReasonAuthenticationNotSuccessful)
}

func TestCredentialIdentityOwnsObjects(t *testing.T) {
	e := newEnv(t, Options{CredentialIterations: testIterations})
	fred := kmipmsg.UsernamePassword("Fred", "password1")
	barney := kmipmsg.UsernamePassword("Barney", "secret2")
	uid := text(t, okPayload(t, e.as(alice, fred, createAES(128)), 0), kmip14.TagUniqueIdentifier)
	okPayload(t, e.as(alice, fred, item(kmip14.OperationGet, uidF(uid))), 0)

	// Another username of the same TLS client: Permission Denied (OASIS
	// TC-111), whatever the operation; Locate does not find it.
	cont := reqMsg(e.v, item(kmip14.OperationGet, uidF(uid)), item(kmip14.OperationGetAttributeList, uidF(uid)),
		item(kmip14.OperationActivate, uidF(uid)), item(kmip14.OperationDestroy, uidF(uid)))
	hdr := cont.Child(kmip14.TagRequestHeader)
	hdr.Add(tree.Struct(kmip14.TagAuthentication, barney.Clone()))
	hdr.Add(tree.Enum(kmip14.TagBatchErrorContinuationOption, uint32(kmip14.BatchErrorContinuationOptionContinue)))
	resp := e.send(alice, cont)
	for i := range 4 {
		wantFail(t, resp, i, kmip14.ResultReasonPermissionDenied)
	}
	if n := okPayload(t, e.as(alice, barney, item(kmip14.OperationLocate)), 0).All(kmip14.TagUniqueIdentifier); len(n) != 0 {
		t.Fatalf("Barney located %d of Fred's objects", len(n))
	}
	if n := okPayload(t, e.as(alice, barney, item(kmip14.OperationLocate, nameAttr("none"))), 0).All(kmip14.TagUniqueIdentifier); len(n) != 0 {
		t.Fatal("indexed Locate found another identity's object")
	}
	// The same TLS client without a Credential is not Fred either.
	wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0, kmip14.ResultReasonPermissionDenied)
	// Another TLS client, even as Fred: not found at all.
	wantFail(t, e.as(bob, fred, item(kmip14.OperationGet, uidF(uid))), 0, kmip14.ResultReasonItemNotFound)

	// An object made without a Credential stays every request's.
	open := e.create(alice)
	for _, cred := range []*tree.Node{nil, fred, barney} {
		okPayload(t, e.as(alice, cred, item(kmip14.OperationGet, uidF(open))), 0)
	}
	// Fred still does everything with his own.
	okPayload(t, e.as(alice, fred, item(kmip14.OperationDestroy, uidF(uid))), 0)
}

func TestCredentialDefaultPolicyPublicObjects(t *testing.T) {
	e := newEnv(t, Options{CredentialIterations: testIterations})
	fred := kmipmsg.UsernamePassword("Fred", "pw")
	barney := kmipmsg.UsernamePassword("Barney", "pw")
	p := okPayload(t, e.as(alice, fred, item(kmip14.OperationCreateKeyPair, template(kmip14.TagCommonTemplateAttribute,
		attrNode("Cryptographic Algorithm", tree.Enum(0, uint32(kmip14.CryptographicAlgorithmEC))),
		attrNode("Cryptographic Length", tree.Int(0, 256))))), 0)
	priv := text(t, p, kmip14.TagPrivateKeyUniqueIdentifier)
	pub := text(t, p, kmip14.TagPublicKeyUniqueIdentifier)
	// KMIP 1.0–1.2 §3.18.1: Get, Get Attributes, Get Attribute List and
	// Locate of a public key are allowed to all; the rest to its creator.
	for _, op := range []kmip14.Operation{kmip14.OperationGet, kmip14.OperationGetAttributes, kmip14.OperationGetAttributeList} {
		okPayload(t, e.as(alice, barney, item(op, uidF(pub))), 0)
		wantFail(t, e.as(alice, barney, item(op, uidF(priv))), 0, kmip14.ResultReasonPermissionDenied)
	}
	wantFail(t, e.as(alice, barney, item(kmip14.OperationActivate, uidF(pub))), 0, kmip14.ResultReasonPermissionDenied)
	got := okPayload(t, e.as(alice, barney, item(kmip14.OperationLocate)), 0).All(kmip14.TagUniqueIdentifier)
	if len(got) != 1 || got[0].Text != pub {
		t.Fatalf("Barney located %v, want only the public key %s", got, pub)
	}
}

func TestCredentialPasswordBoundOnFirstUse(t *testing.T) {
	e := newEnv(t, Options{CredentialIterations: testIterations})
	okPayload(t, e.as(alice, kmipmsg.UsernamePassword("Fred", "password1"), item(kmip14.OperationQuery)), 0)
	refused(t, e.as(alice, kmipmsg.UsernamePassword("Fred", "password2"), item(kmip14.OperationQuery)))
	// The binding is per TLS client: bob's Fred is another identity.
	okPayload(t, e.as(bob, kmipmsg.UsernamePassword("Fred", "password2"), item(kmip14.OperationQuery)), 0)
	// A username without a password binds the empty one.
	noPW := tree.Struct(kmip14.TagCredential,
		tree.Enum(kmip14.TagCredentialType, uint32(kmip14.CredentialTypeUsernameAndPassword)),
		tree.Struct(kmip14.TagCredentialValue, tree.Text(kmip14.TagUsername, "Wilma")))
	okPayload(t, e.as(alice, noPW, item(kmip14.OperationQuery)), 0)
	refused(t, e.as(alice, kmipmsg.UsernamePassword("Wilma", "guess"), item(kmip14.OperationQuery)))

	// Stored, not only remembered: a new processor over the same store
	// refuses the wrong password and takes the right one.
	e2 := &env{t: t, st: e.st, kr: e.kr, v: e.v, p: NewProcessor(e.st, e.kr, Options{CredentialIterations: testIterations}, hclog.NewNullLogger())}
	refused(t, e2.as(alice, kmipmsg.UsernamePassword("Fred", "password2"), item(kmip14.OperationQuery)))
	okPayload(t, e2.as(alice, kmipmsg.UsernamePassword("Fred", "password1"), item(kmip14.OperationQuery)), 0)

	// No password in the clear anywhere in the store.
	var n int
	err := e.st.List(context.Background(), "", func(key string, v []byte) error {
		n++
		for _, pw := range []string{"password1", "password2"} {
			if bytes.Contains(v, []byte(pw)) || bytes.Contains([]byte(key), []byte(pw)) {
				t.Errorf("%s holds a password in the clear", key)
			}
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("store listing: %d records, %v", n, err)
	}
	var bindings int
	e.st.List(context.Background(), credential.Prefix, func(string, []byte) error { bindings++; return nil })
	if bindings != 3 {
		t.Fatalf("%d bindings stored, want 3 (alice's Fred and Wilma, bob's Fred)", bindings)
	}
}

func TestDeviceCredentials(t *testing.T) {
	e := newEnv(t, Options{CredentialIterations: testIterations})
	mine, other := device("serNum123456", "devID2233", "secret"), device("serNum101010", "devID4444", "passwd")
	uid := text(t, okPayload(t, e.as(alice, mine, createAES(128)), 0), kmip14.TagUniqueIdentifier)
	okPayload(t, e.as(alice, mine, item(kmip14.OperationGetAttributeList, uidF(uid))), 0)
	wantFail(t, e.as(alice, other, item(kmip14.OperationGet, uidF(uid))), 0, kmip14.ResultReasonPermissionDenied)
	refused(t, e.as(alice, device("serNum123456", "devID2233", "wrong"), item(kmip14.OperationGet, uidF(uid))))
	// A username that spells a device's identity is another identity.
	wantFail(t, e.as(alice, kmipmsg.UsernamePassword(`"serNum123456","devID2233"`, "secret"), item(kmip14.OperationGet, uidF(uid))), 0, kmip14.ResultReasonPermissionDenied)
}

func TestCredentialsRefused(t *testing.T) {
	e := newEnv(t, Options{CredentialIterations: testIterations})
	attest := tree.Struct(kmip14.TagCredential,
		tree.Enum(kmip14.TagCredentialType, uint32(kmip14.CredentialTypeAttestation)),
		tree.Struct(kmip14.TagCredentialValue, tree.Bytes(kmip14.TagNonceValue, []byte{1})))
	refused(t, e.as(alice, attest, item(kmip14.OperationQuery)))
	two := tree.Struct(kmip14.TagAuthentication, kmipmsg.UsernamePassword("a", "b"), kmipmsg.UsernamePassword("c", "d"))
	req := reqMsg(e.v, item(kmip14.OperationQuery))
	req.Child(kmip14.TagRequestHeader).Add(two)
	refused(t, e.send(alice, req))
	for name, cred := range map[string]*tree.Node{
		"empty username": kmipmsg.UsernamePassword("", "x"),
		"no value":       tree.Struct(kmip14.TagCredential, tree.Enum(kmip14.TagCredentialType, uint32(kmip14.CredentialTypeUsernameAndPassword))),
		"long username":  kmipmsg.UsernamePassword(string(bytes.Repeat([]byte{'u'}, credential.MaxPrincipal)), "x"),
		"empty device": tree.Struct(kmip14.TagCredential, tree.Enum(kmip14.TagCredentialType, uint32(kmip14.CredentialTypeDevice)),
			tree.Struct(kmip14.TagCredentialValue, tree.Text(kmip14.TagPassword, "x"))),
	} {
		resp := e.as(alice, cred, item(kmip14.OperationQuery))
		if r, _ := batchItems(t, resp)[0].Child(kmip14.TagResultReason).EnumValue(); kmip14.ResultReason(r) != kmip14.ResultReasonInvalidField {
			t.Errorf("%s: reason %s, want Invalid Field", name, kmip14.ResultReason(r))
		}
	}
}

func TestIgnoreCredentials(t *testing.T) {
	e := newEnv(t, Options{IgnoreCredentials: true})
	uid := text(t, okPayload(t, e.as(alice, kmipmsg.UsernamePassword("Fred", "a"), createAES(128)), 0), kmip14.TagUniqueIdentifier)
	okPayload(t, e.as(alice, kmipmsg.UsernamePassword("Barney", "b"), item(kmip14.OperationGet, uidF(uid))), 0)
	okPayload(t, e.as(alice, kmipmsg.UsernamePassword("Fred", "other"), item(kmip14.OperationGet, uidF(uid))), 0)
	var bindings int
	e.st.List(context.Background(), credential.Prefix, func(string, []byte) error { bindings++; return nil })
	if bindings != 0 {
		t.Fatalf("ignored credentials were bound: %d", bindings)
	}
}

func TestCheckedCredentialsNameIdentities(t *testing.T) {
	e := newEnv(t, Options{CheckCredentials: true, Credentials: map[string]string{"Fred": "pw1", "Barney": "pw2"}})
	uid := text(t, okPayload(t, e.as(alice, kmipmsg.UsernamePassword("Fred", "pw1"), createAES(128)), 0), kmip14.TagUniqueIdentifier)
	wantFail(t, e.as(alice, kmipmsg.UsernamePassword("Barney", "pw2"), item(kmip14.OperationGet, uidF(uid))), 0, kmip14.ResultReasonPermissionDenied)
	refused(t, e.as(alice, kmipmsg.UsernamePassword("Fred", "pw2"), item(kmip14.OperationGet, uidF(uid))))
	refused(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))))
	refused(t, e.as(alice, device("s", "d", "pw1"), item(kmip14.OperationQuery)))
}

// A pending operation is its credential identity's: another username of
// the same TLS client can neither poll nor cancel it.
func TestCredentialPendingOperations(t *testing.T) {
	e := newEnv(t, Options{CredentialIterations: testIterations})
	fred, barney := kmipmsg.UsernamePassword("Fred", "a"), kmipmsg.UsernamePassword("Barney", "b")
	uid := text(t, okPayload(t, e.as(alice, fred, createAES(128)), 0), kmip14.TagUniqueIdentifier)
	req := asyncMsg(e, item(kmip14.OperationArchive, uidF(uid)))
	req.Child(kmip14.TagRequestHeader).Add(tree.Struct(kmip14.TagAuthentication, fred.Clone()))
	corr := pendingCorr(t, e.send(alice, req), 0)
	wantFail(t, e.as(alice, barney, poll(corr)), 0, kmip14.ResultReasonItemNotFound)
	wantFail(t, e.as(alice, barney, cancel(corr)), 0, kmip14.ResultReasonItemNotFound)
	wantFail(t, e.do(alice, cancel(corr)), 0, kmip14.ResultReasonItemNotFound)
	okPayload(t, e.as(alice, fred, poll(corr)), 0)
}

// The audit line names the credential identity (never its password).
func TestCredentialInAudit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s, err := audit.Open(path, audit.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, Options{Audit: s, CredentialIterations: testIterations})
	okPayload(t, e.as(alice, kmipmsg.UsernamePassword("Fred", "hunter2-secret"), createAES(128)), 0)
	refused(t, e.as(alice, kmipmsg.UsernamePassword("Fred", "wrong-secret"), createAES(128)))
	okPayload(t, e.do(alice, createAES(128)), 0)
	raw, lines := closeAudit(t, s, path)
	if bytes.Contains(raw, []byte("hunter2-secret")) || bytes.Contains(raw, []byte("wrong-secret")) {
		t.Fatal("a password reached the audit log")
	}
	var principals []string
	for _, l := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatal(err)
		}
		if _, isEvent := m["result"]; isEvent {
			p, _ := m["principal"].(string)
			principals = append(principals, p)
		}
	}
	if len(lines) != 3 || len(principals) != 3 || principals[0] != "user:Fred" || principals[1] != "" || principals[2] != "" {
		t.Fatalf("audit principals %q over %d lines, want [user:Fred, \"\" (refused before verification), \"\"]", principals, len(lines))
	}
}
