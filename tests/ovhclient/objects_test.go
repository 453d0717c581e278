package ovhclient

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"slices"
	"testing"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"
)

// testVersion runs the object operations with the client pinned to v
// (EnforceVersion: no Discover Versions, every header says v).
func (s *server) testVersion(t *testing.T, v kmip.ProtocolVersion) {
	rec := &recorder{}
	c := s.dial(t, "v"+v.String(), kmipclient.EnforceVersion(v), kmipclient.WithMiddlewares(rec.middleware))
	t.Run("Query", func(t *testing.T) { checkQuery(t, c) })
	t.Run("NewerOperations", func(t *testing.T) { checkNewerOperations(t, c) })
	t.Run("SymmetricLifecycle", func(t *testing.T) { checkSymmetricLifecycle(t, c) })
	t.Run("Attributes", func(t *testing.T) { checkAttributes(t, c) })
	t.Run("Locate", func(t *testing.T) { checkLocate(t, c) })
	t.Run("Register", func(t *testing.T) { checkRegister(t, c) })
	t.Run("KeyPairs", func(t *testing.T) { checkKeyPairs(t, c) })
	t.Run("ArchiveRecover", func(t *testing.T) { checkArchiveRecover(t, c) })
	t.Run("UsageAndLease", func(t *testing.T) { checkUsageAndLease(t, c) })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i, r := range rec.reqs {
		if r.Header.ProtocolVersion != v {
			t.Errorf("request %d went out as %v, want the pinned %v", i, r.Header.ProtocolVersion, v)
		}
	}
	for i, r := range rec.resp {
		if r.Header.ProtocolVersion != v {
			t.Errorf("response %d came back as %v to a %v request", i, r.Header.ProtocolVersion, v)
		}
	}
}

func minor(c *kmipclient.Client) int32 { return c.Version().ProtocolVersionMinor }

// checkQuery: Query Operations lists what kmipd offers at this version: the
// 1.0 operations always, Discover Versions from 1.1, the cryptographic ones
// from 1.2 (KMIP 1.2 §4.26–4.34).
func checkQuery(t *testing.T, c *kmipclient.Client) {
	q, err := c.Query().Operations().Objects().ServerInformation().Exec()
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	for _, op := range []kmip.Operation{kmip.OperationCreate, kmip.OperationCreateKeyPair, kmip.OperationRegister,
		kmip.OperationReKey, kmip.OperationLocate, kmip.OperationGet, kmip.OperationGetAttributes,
		kmip.OperationGetAttributeList, kmip.OperationAddAttribute, kmip.OperationModifyAttribute,
		kmip.OperationDeleteAttribute, kmip.OperationObtainLease, kmip.OperationGetUsageAllocation,
		kmip.OperationActivate, kmip.OperationRevoke, kmip.OperationDestroy, kmip.OperationArchive,
		kmip.OperationRecover, kmip.OperationQuery} {
		if !slices.Contains(q.Operations, op) {
			t.Errorf("Query at %v omits %v", c.Version(), op)
		}
	}
	cryptoOps := []kmip.Operation{kmip.OperationEncrypt, kmip.OperationDecrypt, kmip.OperationSign,
		kmip.OperationSignatureVerify, kmip.OperationHash}
	for _, op := range cryptoOps {
		if got := slices.Contains(q.Operations, op); got != (minor(c) >= 2) {
			t.Errorf("Query at %v lists %v: %v", c.Version(), op, got)
		}
	}
	if got := slices.Contains(q.Operations, kmip.OperationDiscoverVersions); got != (minor(c) >= 1) {
		t.Errorf("Query at %v lists Discover Versions: %v", c.Version(), got)
	}
	for _, ot := range []kmip.ObjectType{kmip.ObjectTypeSymmetricKey, kmip.ObjectTypePublicKey,
		kmip.ObjectTypePrivateKey, kmip.ObjectTypeSecretData, kmip.ObjectTypeCertificate} {
		if !slices.Contains(q.ObjectType, ot) {
			t.Errorf("Query at %v omits object type %v", c.Version(), ot)
		}
	}
	if q.VendorIdentification != "kmipd" {
		t.Errorf("Vendor Identification %q", q.VendorIdentification)
	}
}

// checkNewerOperations: an operation that the request's version does not
// define (Re-key Key Pair is 1.1, the cryptographic ones 1.2) is Operation
// Not Supported, as Query at that version says. Discover Versions (1.1) is
// the negotiation and is answered under every version.
func checkNewerOperations(t *testing.T, c *kmipclient.Client) {
	for _, o := range []struct {
		pl    kmip.OperationPayload
		since int32
	}{
		{&payloads.DiscoverVersionsRequestPayload{}, 0},
		{&payloads.RekeyKeyPairRequestPayload{PrivateKeyUniqueIdentifier: "none"}, 1},
		{&payloads.HashRequestPayload{CryptographicParameters: kmip.CryptographicParameters{HashingAlgorithm: kmip.HashingAlgorithmSHA_256}, Data: []byte("x")}, 2},
		{&payloads.EncryptRequestPayload{UniqueIdentifier: "none", Data: []byte("x")}, 2},
	} {
		r := reasonOf(t, c, o.pl)
		if minor(c) < o.since && r != kmip.ResultReasonOperationNotSupported {
			t.Errorf("%v at %v: reason %v, want Operation Not Supported", o.pl.Operation(), c.Version(), r)
		}
		if minor(c) >= o.since && r == kmip.ResultReasonOperationNotSupported {
			t.Errorf("%v at %v: Operation Not Supported", o.pl.Operation(), c.Version())
		}
	}
}

// attrs fetches every attribute of an object, by name.
func attrs(t *testing.T, c *kmipclient.Client, id string, names ...kmip.AttributeName) map[kmip.AttributeName][]any {
	t.Helper()
	r, err := c.GetAttributes(id, names...).Exec()
	if err != nil {
		t.Fatalf("Get Attributes %s at %v: %v", id, c.Version(), err)
	}
	if r.UniqueIdentifier != id {
		t.Errorf("Get Attributes answered for %q, asked %q", r.UniqueIdentifier, id)
	}
	m := map[kmip.AttributeName][]any{}
	for _, a := range r.Attribute {
		m[a.AttributeName] = append(m[a.AttributeName], a.AttributeValue)
	}
	return m
}

func state(t *testing.T, c *kmipclient.Client, id string) kmip.State {
	t.Helper()
	v := attrs(t, c, id, kmip.AttributeNameState)[kmip.AttributeNameState]
	if len(v) != 1 {
		t.Fatalf("State of %s: %v", id, v)
	}
	return v[0].(kmip.State)
}

// checkSymmetricLifecycle: Create → Get (Raw, and Transparent Symmetric Key
// with the same bytes) → Activate → Revoke → Destroy, with the states KMIP
// 1.0 §3.22's state machine gives at each step.
func checkSymmetricLifecycle(t *testing.T, c *kmipclient.Client) {
	const mask = kmip.CryptographicUsageEncrypt | kmip.CryptographicUsageDecrypt
	cr, err := c.Create().AES(128, mask).Exec()
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	id := cr.UniqueIdentifier
	if cr.ObjectType != kmip.ObjectTypeSymmetricKey || id == "" {
		t.Fatalf("Create answered %v %q", cr.ObjectType, id)
	}
	a := attrs(t, c, id)
	if got := a[kmip.AttributeNameCryptographicAlgorithm]; len(got) != 1 || got[0] != kmip.CryptographicAlgorithmAES {
		t.Errorf("Cryptographic Algorithm %v", got)
	}
	if got := a[kmip.AttributeNameCryptographicLength]; len(got) != 1 || got[0] != int32(128) {
		t.Errorf("Cryptographic Length %v", got)
	}
	if got := a[kmip.AttributeNameCryptographicUsageMask]; len(got) != 1 || got[0] != mask {
		t.Errorf("Cryptographic Usage Mask %v", got)
	}
	if got := a[kmip.AttributeNameState]; len(got) != 1 || got[0] != kmip.StatePreActive {
		t.Errorf("State after Create %v, want Pre-Active", got)
	}
	checkAllAttrs(t, c, id, kmip.AttributeNameCryptographicAlgorithm, kmip.AttributeNameFresh,
		kmip.AttributeNameOriginalCreationDate, kmip.AttributeNameDigest, kmip.AttributeNameLastChangeDate)
	raw := getSymmetric(t, c, id, 0)
	if len(raw) != 16 {
		t.Fatalf("Get: %d bytes of AES-128", len(raw))
	}
	if got := getSymmetric(t, c, id, kmip.KeyFormatTypeRaw); !bytes.Equal(got, raw) {
		t.Errorf("Get in Raw differs from the default format")
	}
	if got := getSymmetric(t, c, id, kmip.KeyFormatTypeTransparentSymmetricKey); !bytes.Equal(got, raw) {
		t.Errorf("Get in Transparent Symmetric Key differs from Raw")
	}
	if _, err := c.Activate(id).Exec(); err != nil {
		t.Fatalf("Activate: %v", err)
	}
	if s := state(t, c, id); s != kmip.StateActive {
		t.Fatalf("State after Activate %v", s)
	}
	// KMIP 1.4 §4.21: Destroy of an Active object is refused; kmipd says
	// Permission Denied.
	if r := reasonOf(t, c, &payloads.DestroyRequestPayload{UniqueIdentifier: id}); r != kmip.ResultReasonPermissionDenied {
		t.Errorf("Destroy of an Active key: reason %v, want Permission Denied", r)
	}
	if _, err := c.Revoke(id).WithRevocationReasonCode(kmip.RevocationReasonCodeCessationOfOperation).
		WithRevocationMessage("retired by the ovh interop test").Exec(); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if s := state(t, c, id); s != kmip.StateDeactivated {
		t.Fatalf("State after Revoke (cessation of operation) %v, want Deactivated", s)
	}
	if _, err := c.Destroy(id).Exec(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if s := state(t, c, id); s != kmip.StateDestroyed {
		t.Fatalf("State after Destroy %v", s)
	}
	// The material is gone (§4.21); the attributes stay.
	if bi := failure(t, c, &payloads.GetRequestPayload{UniqueIdentifier: id}); bi.ResultReason == 0 {
		t.Errorf("Get of a destroyed key failed without a Result Reason")
	}

	// A compromised key goes to Compromised (§3.22 transition 9/10).
	cr, err = c.Create().AES(256, mask).Exec()
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := c.Revoke(cr.UniqueIdentifier).WithRevocationReasonCode(kmip.RevocationReasonCodeKeyCompromise).Exec(); err != nil {
		t.Fatalf("Revoke (key compromise): %v", err)
	}
	if s := state(t, c, cr.UniqueIdentifier); s != kmip.StateCompromised {
		t.Errorf("State after Revoke (key compromise) %v, want Compromised", s)
	}
}

// getSymmetric gets a symmetric key's bytes in format f (0: the server's default).
func getSymmetric(t *testing.T, c *kmipclient.Client, id string, f kmip.KeyFormatType) []byte {
	t.Helper()
	ex := c.Get(id)
	if f != 0 {
		ex = ex.WithKeyFormat(f)
	}
	g, err := ex.Exec()
	if err != nil {
		t.Fatalf("Get %s (format %v) at %v: %v", id, f, c.Version(), err)
	}
	sk, ok := g.Object.(*kmip.SymmetricKey)
	if !ok || g.ObjectType != kmip.ObjectTypeSymmetricKey || g.UniqueIdentifier != id {
		t.Fatalf("Get %s: %T, %v, %q", id, g.Object, g.ObjectType, g.UniqueIdentifier)
	}
	if f != 0 && sk.KeyBlock.KeyFormatType != f {
		t.Errorf("Get in %v served %v", f, sk.KeyBlock.KeyFormatType)
	}
	km, err := sk.KeyMaterial()
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	return km
}

// checkAttributes: Add, Modify, Delete Attribute on a custom attribute and on
// Contact Information, seen by Get Attributes and Get Attribute List.
func checkAttributes(t *testing.T, c *kmipclient.Client) {
	name := fmt.Sprintf("ovh-attrs-%v", c.Version())
	cr, err := c.Create().AES(256, kmip.CryptographicUsageEncrypt).
		WithName(name).Exec()
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	id := cr.UniqueIdentifier
	if _, err := c.AddAttribute(id, kmip.AttributeNameContactInformation, "ops@example.org").Exec(); err != nil {
		t.Fatalf("Add Attribute Contact Information: %v", err)
	}
	if _, err := c.AddAttribute(id, "x-ovh-purpose", "interop").Exec(); err != nil {
		t.Fatalf("Add Attribute x-ovh-purpose: %v", err)
	}
	a := attrs(t, c, id, kmip.AttributeNameContactInformation, "x-ovh-purpose", kmip.AttributeNameName)
	if got := a[kmip.AttributeNameContactInformation]; len(got) != 1 || got[0] != "ops@example.org" {
		t.Errorf("Contact Information after Add: %v", got)
	}
	if got := a["x-ovh-purpose"]; len(got) != 1 || fmt.Sprint(got[0]) == "" {
		t.Errorf("x-ovh-purpose after Add: %v", got)
	}
	if got := a[kmip.AttributeNameName]; len(got) != 1 || got[0].(kmip.Name).NameValue != name {
		t.Errorf("Name: %v, want %q", got, name)
	}
	list, err := c.GetAttributeList(id).Exec()
	if err != nil {
		t.Fatalf("Get Attribute List: %v", err)
	}
	for _, n := range []kmip.AttributeName{kmip.AttributeNameName, kmip.AttributeNameContactInformation,
		"x-ovh-purpose", kmip.AttributeNameState, kmip.AttributeNameCryptographicAlgorithm} {
		if !slices.Contains(list.AttributeName, n) {
			t.Errorf("Get Attribute List omits %q: %v", n, list.AttributeName)
		}
	}
	if _, err := c.ModifyAttribute(id, kmip.AttributeNameContactInformation, "sec@example.org").Exec(); err != nil {
		t.Fatalf("Modify Attribute: %v", err)
	}
	if got := attrs(t, c, id, kmip.AttributeNameContactInformation)[kmip.AttributeNameContactInformation]; len(got) != 1 || got[0] != "sec@example.org" {
		t.Errorf("Contact Information after Modify: %v", got)
	}
	if _, err := c.DeleteAttribute(id, kmip.AttributeNameContactInformation).Exec(); err != nil {
		t.Fatalf("Delete Attribute: %v", err)
	}
	if _, err := c.DeleteAttribute(id, "x-ovh-purpose").Exec(); err != nil {
		t.Fatalf("Delete Attribute x-ovh-purpose: %v", err)
	}
	a = attrs(t, c, id)
	if len(a[kmip.AttributeNameContactInformation]) != 0 || len(a["x-ovh-purpose"]) != 0 {
		t.Errorf("deleted attributes still there: %v", a)
	}
	// A server-set attribute cannot be added, changed or deleted by the client
	// (KMIP 1.0 §3: State is set by the server only).
	if r := reasonOf(t, c, &payloads.ModifyAttributeRequestPayload{UniqueIdentifier: id,
		Attribute: kmip.Attribute{AttributeName: kmip.AttributeNameState, AttributeValue: kmip.StateActive}}); r == 0 {
		t.Errorf("Modify Attribute State succeeded")
	}
	if s := state(t, c, id); s != kmip.StatePreActive {
		t.Errorf("State %v after a refused Modify", s)
	}
}

// checkLocate: by Name exactly the named object; by Object Type all of this
// owner's keys of the type and nothing else; Maximum Items caps the answer.
func checkLocate(t *testing.T, c *kmipclient.Client) {
	// A fresh identity: Locate sees only its own objects.
	var keys []string
	name := fmt.Sprintf("ovh-locate-%v", c.Version())
	for i := range 3 {
		ex := c.Create().AES(256, kmip.CryptographicUsageEncrypt)
		if i == 1 {
			ex = ex.WithName(name)
		}
		cr, err := ex.Exec()
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		keys = append(keys, cr.UniqueIdentifier)
	}
	sd, err := c.Register().Secret(kmip.SecretDataTypePassword, []byte("locate-me")).Exec()
	if err != nil {
		t.Fatalf("Register secret: %v", err)
	}
	loc, err := c.Locate().WithName(name).Exec()
	if err != nil {
		t.Fatalf("Locate by Name: %v", err)
	}
	if !slices.Equal(loc.UniqueIdentifier, []string{keys[1]}) {
		t.Errorf("Locate by Name %q = %v, want [%s]", name, loc.UniqueIdentifier, keys[1])
	}
	loc, err = c.Locate().WithObjectType(kmip.ObjectTypeSecretData).Exec()
	if err != nil {
		t.Fatalf("Locate by Object Type: %v", err)
	}
	if !slices.Contains(loc.UniqueIdentifier, sd.UniqueIdentifier) {
		t.Errorf("Locate Secret Data = %v, want it to hold %s", loc.UniqueIdentifier, sd.UniqueIdentifier)
	}
	for _, k := range keys {
		if slices.Contains(loc.UniqueIdentifier, k) {
			t.Errorf("Locate Secret Data found the symmetric key %s", k)
		}
	}
	loc, err = c.Locate().WithObjectType(kmip.ObjectTypeSymmetricKey).Exec()
	if err != nil {
		t.Fatalf("Locate by Object Type: %v", err)
	}
	for _, k := range keys {
		if !slices.Contains(loc.UniqueIdentifier, k) {
			t.Errorf("Locate Symmetric Key = %v misses %s", loc.UniqueIdentifier, k)
		}
	}
	all := len(loc.UniqueIdentifier)
	loc, err = c.Locate().WithObjectType(kmip.ObjectTypeSymmetricKey).WithMaxItems(2).Exec()
	if err != nil {
		t.Fatalf("Locate with Maximum Items: %v", err)
	}
	if len(loc.UniqueIdentifier) != 2 {
		t.Errorf("Locate with Maximum Items 2 found %d", len(loc.UniqueIdentifier))
	}
	if minor(c) >= 3 {
		// Located Items (1.3 §4.9) counts every match, not the page; a
		// server MAY omit it (kmipd does when its search stopped early).
		if loc.LocatedItems != nil && int(*loc.LocatedItems) != all {
			t.Errorf("Located Items %v, want %d", loc.LocatedItems, all)
		}
		off, err := c.Locate().WithObjectType(kmip.ObjectTypeSymmetricKey).WithOffset(int32(all - 1)).Exec()
		if err != nil {
			t.Fatalf("Locate with Offset Items: %v", err)
		}
		if len(off.UniqueIdentifier) != 1 {
			t.Errorf("Locate with Offset %d of %d found %d", all-1, all, len(off.UniqueIdentifier))
		}
	}
	loc, err = c.Locate().WithName("ovh-no-such-name").Exec()
	if err != nil {
		t.Fatalf("Locate of nothing: %v", err)
	}
	if len(loc.UniqueIdentifier) != 0 {
		t.Errorf("Locate of an unknown name found %v", loc.UniqueIdentifier)
	}
}

func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
