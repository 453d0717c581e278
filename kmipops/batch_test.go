package kmipops

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

func withID(it *tree.Node, id string) *tree.Node {
	n := tree.Struct(kmip14.TagBatchItem, it.Children[0], tree.Bytes(kmip14.TagUniqueBatchItemID, []byte(id)))
	return n.Add(it.Children[1:]...)
}

func TestBatchPlaceholder(t *testing.T) {
	e := newEnv(t, Options{})
	resp := e.do(alice,
		withID(createAES(128), "1"),
		withID(item(kmip14.OperationGetAttributes, tree.Text(kmip14.TagAttributeName, "State")), "2"),
		withID(item(kmip14.OperationActivate), "3"),
		withID(item(kmip14.OperationGet), "4"),
	)
	items := batchItems(t, resp)
	if len(items) != 4 {
		t.Fatalf("%d items", len(items))
	}
	uid := text(t, okPayload(t, resp, 0), kmip14.TagUniqueIdentifier)
	for i, it := range items {
		if id := string(it.Child(kmip14.TagUniqueBatchItemID).Bytes); id != string(rune('1'+i)) {
			t.Errorf("item %d echoes batch id %q", i, id)
		}
		if op := it.Child(kmip14.TagOperation); op == nil {
			t.Errorf("item %d lacks Operation", i)
		}
		if got := text(t, okPayload(t, resp, i), kmip14.TagUniqueIdentifier); got != uid {
			t.Errorf("item %d acted on %s, want %s", i, got, uid)
		}
	}
	if s := e.state(alice, uid); s != kmip14.StateActive {
		t.Fatalf("placeholder Activate: %s", s)
	}
	// CreateKeyPair sets the placeholder to the private key.
	resp = e.do(alice,
		item(kmip14.OperationCreateKeyPair, template(kmip14.TagCommonTemplateAttribute,
			attrNode("Cryptographic Algorithm", tree.Enum(0, uint32(kmip14.CryptographicAlgorithmEC))),
			attrNode("Cryptographic Length", tree.Int(0, 256)))),
		item(kmip14.OperationGetAttributes, tree.Text(kmip14.TagAttributeName, "Object Type")))
	p := okPayload(t, resp, 1)
	if p.Child(kmip14.TagAttribute).Child(kmip14.TagAttributeValue).Int != int64(kmip14.ObjectTypePrivateKey) {
		t.Fatalf("placeholder after CreateKeyPair: %s", p)
	}
	// No placeholder at all.
	wantFail(t, e.do(alice, item(kmip14.OperationGet)), 0, kmip14.ResultReasonMissingData)
}

func TestBatchStopAndContinue(t *testing.T) {
	e := newEnv(t, Options{})
	bad := item(kmip14.OperationGet, uidF("nope"))
	good := item(kmip14.OperationQuery)
	// Stop (default): later items are not answered (Undo: TestBatchUndo).
	for _, opt := range []kmip14.BatchErrorContinuationOption{0, kmip14.BatchErrorContinuationOptionStop} {
		req := reqMsg(e.v, good, bad, createAES(256))
		if opt != 0 {
			req.Child(kmip14.TagRequestHeader).Add(tree.Enum(kmip14.TagBatchErrorContinuationOption, uint32(opt)))
		}
		resp := e.send(alice, req)
		items := batchItems(t, resp)
		if len(items) != 2 {
			t.Fatalf("option %d: %d items answered, want 2", opt, len(items))
		}
		okPayload(t, resp, 0)
		wantFail(t, resp, 1, kmip14.ResultReasonItemNotFound)
	}
	n := countObjects(t, e, alice)
	if n != 0 {
		t.Fatalf("Stop executed a later item: %d objects", n)
	}
	req := reqMsg(e.v, good, bad, createAES(256))
	req.Child(kmip14.TagRequestHeader).Add(tree.Enum(kmip14.TagBatchErrorContinuationOption, uint32(kmip14.BatchErrorContinuationOptionContinue)))
	resp := e.send(alice, req)
	if len(batchItems(t, resp)) != 3 {
		t.Fatal("Continue did not answer every item")
	}
	okPayload(t, resp, 0)
	wantFail(t, resp, 1, kmip14.ResultReasonItemNotFound)
	okPayload(t, resp, 2)
}

// countObjects counts c's records in the store (obj/<owner>/<uid>, see
// DEVELOPERS.md), destroyed objects included.
func countObjects(t *testing.T, e *env, c Caller) int {
	n := 0
	if err := e.st.List(context.Background(), "obj/"+c.Identity+"/", func(string, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIsolation: every operation taking a uid answers Item Not Found for
// another owner's object, exactly as for one that does not exist.
func TestIsolation(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.create(alice)
	ops := map[string][]*tree.Node{
		"Get":              {uidF(uid)},
		"GetAttributes":    {uidF(uid)},
		"GetAttributeList": {uidF(uid)},
		"Activate":         {uidF(uid)},
		"Destroy":          {uidF(uid)},
		"Revoke":           {uidF(uid), tree.Struct(kmip14.TagRevocationReason, tree.Enum(kmip14.TagRevocationReasonCode, 1))},
		"AddAttribute":     {uidF(uid), attrNode("x-a", tree.Text(0, "v"))},
		"ModifyAttribute":  {uidF(uid), attrNode("Contact Information", tree.Text(0, "v"))},
		"DeleteAttribute":  {uidF(uid), tree.Text(kmip14.TagAttributeName, "Name")},
	}
	byName := map[string]kmip14.Operation{}
	for op := range operations {
		byName[op.String()] = op
	}
	for name, fields := range ops {
		t.Run(name, func(t *testing.T) {
			theirs := e.do(bob, item(byName[name], fields...))
			m1 := wantFail(t, theirs, 0, kmip14.ResultReasonItemNotFound)
			fields[0] = uidF("00000000-0000-4000-8000-000000000000")
			m2 := wantFail(t, e.do(bob, item(byName[name], fields...)), 0, kmip14.ResultReasonItemNotFound)
			if m1 != m2 {
				t.Errorf("another owner's object answers %q, a missing one %q", m1, m2)
			}
		})
	}
	// Locate does not see it either; alice still has it untouched.
	p := okPayload(t, e.do(bob, item(kmip14.OperationLocate)), 0)
	if len(p.All(kmip14.TagUniqueIdentifier)) != 0 {
		t.Fatal("bob located alice's object")
	}
	if s := e.state(alice, uid); s != kmip14.StatePreActive {
		t.Fatalf("alice's object changed: %s", s)
	}
}

type recObserver struct {
	mu  sync.Mutex
	got []string
}

func (r *recObserver) ObserveOperation(op, result string, d time.Duration) {
	r.mu.Lock()
	r.got = append(r.got, op+"/"+result)
	r.mu.Unlock()
}

func TestObserverAndCredentials(t *testing.T) {
	obs := &recObserver{}
	e := newEnv(t, Options{Observer: obs, CheckCredentials: true, Credentials: map[string]string{"barbican": "s3cret"}})
	cred := func(user, pass string) *tree.Node {
		return tree.Struct(kmip14.TagAuthentication, tree.Struct(kmip14.TagCredential,
			tree.Enum(kmip14.TagCredentialType, uint32(kmip14.CredentialTypeUsernameAndPassword)),
			tree.Struct(kmip14.TagCredentialValue, tree.Text(kmip14.TagUsername, user), tree.Text(kmip14.TagPassword, pass))))
	}
	send := func(auth *tree.Node, items ...*tree.Node) *tree.Node {
		req := reqMsg(e.v, items...)
		if auth != nil {
			req.Child(kmip14.TagRequestHeader).Add(auth)
		}
		return e.send(alice, req)
	}
	wantFail(t, send(nil, item(kmip14.OperationQuery)), 0, kmip14.ResultReasonAuthenticationNotSuccessful)
	wantFail(t, send(cred("barbican", "wrong"), item(kmip14.OperationQuery)), 0, kmip14.ResultReasonAuthenticationNotSuccessful)
	wantFail(t, send(cred("nobody", "s3cret"), item(kmip14.OperationQuery)), 0, kmip14.ResultReasonAuthenticationNotSuccessful)
	resp := send(cred("barbican", "s3cret"), item(kmip14.OperationQuery), item(kmip14.OperationGet, uidF("x")))
	okPayload(t, resp, 0)
	wantFail(t, resp, 1, kmip14.ResultReasonItemNotFound)
	want := []string{"Query/success", "Get/" + kmip14.ResultReasonItemNotFound.String()}
	if len(obs.got) != 2 || obs.got[0] != want[0] || obs.got[1] != want[1] {
		t.Fatalf("observed %v, want %v", obs.got, want)
	}
	// Without CheckCredentials any credential is accepted and ignored.
	e2 := newEnv(t, Options{})
	okPayload(t, e2.send(alice, func() *tree.Node {
		r := reqMsg(e2.v, item(kmip14.OperationQuery))
		r.Child(kmip14.TagRequestHeader).Add(cred("x", "y"))
		return r
	}()), 0)
}

func TestMaximumResponseSize(t *testing.T) {
	e := newEnv(t, Options{})
	q := item(kmip14.OperationQuery,
		tree.Enum(kmip14.TagQueryFunction, uint32(kmip14.QueryFunctionQueryOperations)),
		tree.Enum(kmip14.TagQueryFunction, uint32(kmip14.QueryFunctionQueryObjects)))
	for _, c := range []struct {
		max int32
		ok  bool
	}{{256, false}, {2048, true}} {
		req := reqMsg(e.v, q)
		req.Child(kmip14.TagRequestHeader).Add(tree.Int(kmip14.TagMaximumResponseSize, c.max))
		resp := e.send(alice, req)
		if c.ok {
			okPayload(t, resp, 0)
		} else {
			wantFail(t, resp, 0, kmip14.ResultReasonResponseTooLarge)
		}
	}
}

// TestConcurrentAddAttribute: the per-object lock makes concurrent
// read-modify-write operations lose nothing.
func TestConcurrentAddAttribute(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.create(alice)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := e.p.Process(context.Background(), alice, reqMsg(e.v,
				item(kmip14.OperationAddAttribute, uidF(uid), attrNode("x-n", tree.Int(0, 1)))))
			if s, _ := resp.Path(kmip14.TagBatchItem, kmip14.TagResultStatus).EnumValue(); s != uint32(kmip14.ResultStatusSuccess) {
				t.Errorf("AddAttribute failed: %s", resp)
			}
		}()
	}
	wg.Wait()
	if n := len(e.getAttrs(alice, uid, "x-n")["x-n"]); n != 16 {
		t.Fatalf("%d instances, want 16", n)
	}
}
