package ovhclient

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"
)

// testDeeper: the client's less common options, at 1.4 and pinned to 1.0.
func (s *server) testDeeper(t *testing.T) {
	for _, v := range []kmip.ProtocolVersion{kmip.V1_4, kmip.V1_1, kmip.V1_0} {
		t.Run("v"+v.String(), func(t *testing.T) {
			c := s.dial(t, "deeper", kmipclient.EnforceVersion(v))
			t.Run("KeyWrapping", func(t *testing.T) { checkKeyWrapping(t, c) })
			t.Run("LocateFilters", func(t *testing.T) { checkLocateFilters(t, c) })
			t.Run("IndexedAttributes", func(t *testing.T) { checkIndexedAttributes(t, c) })
			t.Run("RevokeCompromise", func(t *testing.T) { checkRevokeCompromise(t, c) })
			t.Run("DiscoverAndQueryAll", func(t *testing.T) { checkDiscoverAndQueryAll(t, c) })
			t.Run("ECTransparent", func(t *testing.T) { checkECTransparent(t, c) })
			if minor(c) >= 2 {
				t.Run("RSAEncrypt", func(t *testing.T) { checkRSAEncrypt(t, c) })
			}
		})
	}
}

// checkKeyWrapping: Get with a Key Wrapping Specification (KMIP 1.0 §2.1.5,
// §4.11) wraps the key under another AES key with NIST key wrap (RFC 3394);
// unwrapped here, it equals the plain Get.
func checkKeyWrapping(t *testing.T, c *kmipclient.Client) {
	kek, err := c.Create().AES(256, kmip.CryptographicUsageWrapKey|kmip.CryptographicUsageUnwrapKey).Exec()
	if err != nil {
		t.Fatalf("Create the wrapping key: %v", err)
	}
	if _, err := c.Activate(kek.UniqueIdentifier).Exec(); err != nil {
		t.Fatalf("Activate: %v", err)
	}
	kekBytes := getSymmetric(t, c, kek.UniqueIdentifier, 0)
	cr, err := c.Create().AES(128, kmip.CryptographicUsageEncrypt).Exec()
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	plain := getSymmetric(t, c, cr.UniqueIdentifier, 0)
	spec := kmip.KeyWrappingSpecification{WrappingMethod: kmip.WrappingMethodEncrypt,
		EncryptionKeyInformation: &kmip.EncryptionKeyInformation{UniqueIdentifier: kek.UniqueIdentifier,
			CryptographicParameters: &kmip.CryptographicParameters{BlockCipherMode: kmip.BlockCipherModeNISTKeyWrap}}}
	g, err := c.Get(cr.UniqueIdentifier).WithKeyWrapping(spec).Exec()
	if err != nil {
		t.Fatalf("Get wrapped: %v", err)
	}
	kb := g.Object.(*kmip.SymmetricKey).KeyBlock
	if kb.KeyWrappingData == nil || kb.KeyWrappingData.WrappingMethod != kmip.WrappingMethodEncrypt ||
		kb.KeyWrappingData.EncryptionKeyInformation == nil ||
		kb.KeyWrappingData.EncryptionKeyInformation.UniqueIdentifier != kek.UniqueIdentifier {
		t.Fatalf("Key Wrapping Data: %+v", kb.KeyWrappingData)
	}
	if kb.KeyValue == nil || kb.KeyValue.Wrapped == nil {
		t.Fatalf("wrapped Key Value is not a Byte String: %+v", kb.KeyValue)
	}
	got, ok := unwrapRFC3394(kekBytes, *kb.KeyValue.Wrapped)
	if !ok {
		t.Fatalf("RFC 3394 integrity check of the wrapped key failed")
	}
	// Unwrapped, the Key Value is the TTLV Key Value structure holding the
	// key (§2.1.4's wrapped Key Value) or the raw bytes; both carry them.
	if !bytes.Contains(got, plain) {
		t.Errorf("unwrapped key does not hold the plain key")
	}
}

// unwrapRFC3394 is AES key unwrap (RFC 3394 §2.2.2) with the default IV.
func unwrapRFC3394(kek, c []byte) ([]byte, bool) {
	b, err := aes.NewCipher(kek)
	if err != nil || len(c)%8 != 0 || len(c) < 24 {
		return nil, false
	}
	n := len(c)/8 - 1
	a := binary.BigEndian.Uint64(c[:8])
	r := slices.Clone(c[8:])
	buf := make([]byte, 16)
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			binary.BigEndian.PutUint64(buf[:8], a^uint64(n*j+i))
			copy(buf[8:], r[(i-1)*8:i*8])
			b.Decrypt(buf, buf)
			a = binary.BigEndian.Uint64(buf[:8])
			copy(r[(i-1)*8:i*8], buf[8:])
		}
	}
	return r, a == 0xA6A6A6A6A6A6A6A6
}

// checkLocateFilters: an archived object is found only with the Archival
// Storage Status Mask (KMIP 1.0 §4.9); Object Group Member (1.1 §4.9) picks
// from a group.
func checkLocateFilters(t *testing.T, c *kmipclient.Client) {
	group := "ovh-group-" + c.Version().String()
	var ids []string
	for range 2 {
		cr, err := c.Create().AES(256, kmip.CryptographicUsageEncrypt).
			WithAttribute(kmip.AttributeNameObjectGroup, group).Exec()
		if err != nil {
			t.Fatalf("Create in a group: %v", err)
		}
		ids = append(ids, cr.UniqueIdentifier)
	}
	if _, err := c.Archive(ids[0]).Exec(); err != nil {
		t.Fatalf("Archive: %v", err)
	}
	loc, err := c.Locate().WithAttribute(kmip.AttributeNameObjectGroup, group).Exec()
	if err != nil {
		t.Fatalf("Locate by group: %v", err)
	}
	if !slices.Equal(loc.UniqueIdentifier, ids[1:]) {
		t.Errorf("Locate online in the group = %v, want only %s", loc.UniqueIdentifier, ids[1])
	}
	loc, err = c.Locate().WithAttribute(kmip.AttributeNameObjectGroup, group).WithStorageStatusMask(kmip.StorageStatusArchivalStorage).Exec()
	if err != nil {
		t.Fatalf("Locate archival: %v", err)
	}
	if !slices.Equal(loc.UniqueIdentifier, ids[:1]) {
		t.Errorf("Locate archival in the group = %v, want only %s", loc.UniqueIdentifier, ids[0])
	}
	loc, err = c.Locate().WithAttribute(kmip.AttributeNameObjectGroup, group).
		WithStorageStatusMask(kmip.StorageStatusArchivalStorage | kmip.StorageStatusOnlineStorage).Exec()
	if err != nil {
		t.Fatalf("Locate both: %v", err)
	}
	if len(loc.UniqueIdentifier) != 2 {
		t.Errorf("Locate online|archival in the group = %v, want both", loc.UniqueIdentifier)
	}
	if minor(c) < 1 {
		return
	}
	loc, err = c.Locate().WithAttribute(kmip.AttributeNameObjectGroup, group).
		WithObjectGroupMember(kmip.ObjectGroupMemberFresh).Exec()
	if err != nil {
		t.Fatalf("Locate Group Member Fresh: %v", err)
	}
	if !slices.Equal(loc.UniqueIdentifier, ids[1:]) {
		t.Errorf("Locate Group Member Fresh = %v, want the online fresh %s", loc.UniqueIdentifier, ids[1])
	}
}

// checkIndexedAttributes: a second Name gets index 1; Modify and Delete
// Attribute address it by index (KMIP 1.0 §4.13, §4.14).
func checkIndexedAttributes(t *testing.T, c *kmipclient.Client) {
	n0, n1 := "ovh-idx-a-"+c.Version().String(), "ovh-idx-b-"+c.Version().String()
	cr, err := c.Create().AES(128, kmip.CryptographicUsageEncrypt).WithName(n0).Exec()
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	id := cr.UniqueIdentifier
	add, err := c.AddAttribute(id, kmip.AttributeNameName, kmip.Name{NameValue: n1, NameType: kmip.NameTypeUninterpretedTextString}).Exec()
	if err != nil {
		t.Fatalf("Add a second Name: %v", err)
	}
	if add.Attribute.AttributeIndex == nil || *add.Attribute.AttributeIndex != 1 {
		t.Errorf("Add Attribute answered index %v, want 1", add.Attribute.AttributeIndex)
	}
	n2 := n1 + "-renamed"
	mod, err := c.ModifyAttribute(id, kmip.AttributeNameName, kmip.Name{NameValue: n2, NameType: kmip.NameTypeUninterpretedTextString}).WithIndex(1).Exec()
	if err != nil {
		t.Fatalf("Modify Name index 1: %v", err)
	}
	if mod.Attribute.AttributeValue.(kmip.Name).NameValue != n2 {
		t.Errorf("Modify answered %+v", mod.Attribute)
	}
	names := attrs(t, c, id, kmip.AttributeNameName)[kmip.AttributeNameName]
	if len(names) != 2 || names[0].(kmip.Name).NameValue != n0 || names[1].(kmip.Name).NameValue != n2 {
		t.Errorf("Names after Modify index 1: %v", names)
	}
	if _, err := c.DeleteAttribute(id, kmip.AttributeNameName).WithIndex(0).Exec(); err != nil {
		t.Fatalf("Delete Name index 0: %v", err)
	}
	names = attrs(t, c, id, kmip.AttributeNameName)[kmip.AttributeNameName]
	if len(names) != 1 || names[0].(kmip.Name).NameValue != n2 {
		t.Errorf("Names after Delete index 0: %v", names)
	}
	if r := reasonOf(t, c, &payloads.DeleteAttributeRequestPayload{UniqueIdentifier: id,
		AttributeName: kmip.AttributeNameName, AttributeIndex: ptr(int32(5))}); r != kmip.ResultReasonItemNotFound && r != kmip.ResultReasonIndexOutofBounds {
		t.Errorf("Delete Name index 5: reason %v", r)
	}
}

func ptr[T any](v T) *T { return &v }

// checkRevokeCompromise: Revoke with Key Compromise records the Compromise
// Occurrence Date given (KMIP 1.0 §4.19, §3.29) and the Revocation Reason.
func checkRevokeCompromise(t *testing.T, c *kmipclient.Client) {
	cr, err := c.Create().AES(128, kmip.CryptographicUsageEncrypt).Exec()
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	when := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	if _, err := c.Activate(cr.UniqueIdentifier).Exec(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Revoke(cr.UniqueIdentifier).WithRevocationReasonCode(kmip.RevocationReasonCodeKeyCompromise).
		WithRevocationMessage("leaked").WithCompromiseOccurrenceDate(when).Exec(); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	a := attrs(t, c, cr.UniqueIdentifier)
	if got := a[kmip.AttributeNameCompromiseOccurrenceDate]; len(got) != 1 || !got[0].(time.Time).Equal(when) {
		t.Errorf("Compromise Occurrence Date %v, want %v", got, when)
	}
	if got := a[kmip.AttributeNameRevocationReason]; len(got) != 1 ||
		got[0].(kmip.RevocationReason).RevocationReasonCode != kmip.RevocationReasonCodeKeyCompromise {
		t.Errorf("Revocation Reason %v", got)
	}
	if got := a[kmip.AttributeNameState]; len(got) != 1 || got[0] != kmip.StateCompromised {
		t.Errorf("State %v, want Compromised", got)
	}
}

// checkDiscoverAndQueryAll: Discover Versions without a list answers every
// version the server speaks (1.1 §4.26); Query with every function the client
// knows decodes.
func checkDiscoverAndQueryAll(t *testing.T, c *kmipclient.Client) {
	if minor(c) >= 1 {
		r, err := c.Request(t.Context(), &payloads.DiscoverVersionsRequestPayload{})
		if err != nil {
			t.Fatalf("Discover Versions: %v", err)
		}
		want := []kmip.ProtocolVersion{kmip.V1_4, kmip.V1_3, kmip.V1_2, kmip.V1_1, kmip.V1_0}
		if got := r.(*payloads.DiscoverVersionsResponsePayload).ProtocolVersion; !slices.Equal(got, want) {
			t.Errorf("Discover Versions() = %v, want %v", got, want)
		}
	}
	q, err := c.Query().All().Exec()
	if err != nil {
		t.Fatalf("Query All: %v", err)
	}
	if len(q.Operations) == 0 || len(q.ObjectType) == 0 {
		t.Errorf("Query All: %d operations, %d object types", len(q.Operations), len(q.ObjectType))
	}
}

// checkECTransparent: an EC key pair read back in the Transparent formats of
// the version (Transparent ECDSA at 1.0–1.2; Transparent EC from 1.3, §2.1.7)
// is the same key as in SEC1 / X.509.
func checkECTransparent(t *testing.T, c *kmipclient.Client) {
	r, err := c.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_256, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify).Exec()
	if err != nil {
		t.Fatalf("Create Key Pair: %v", err)
	}
	privF, pubF := kmip.KeyFormatTypeTransparentECDSAPrivateKey, kmip.KeyFormatTypeTransparentECDSAPublicKey //nolint:staticcheck // the 1.0–1.2 formats
	if minor(c) >= 3 {
		privF, pubF = kmip.KeyFormatTypeTransparentECPrivateKey, kmip.KeyFormatTypeTransparentECPublicKey
	}
	sk := getPrivate(t, c, r.PrivateKeyUniqueIdentifier)
	if got := getPrivate(t, c, r.PrivateKeyUniqueIdentifier, privF); !sk.(privKey).Equal(got) {
		t.Errorf("private key in %v differs", privF)
	}
	pk := getPublic(t, c, r.PublicKeyUniqueIdentifier)
	if got := getPublic(t, c, r.PublicKeyUniqueIdentifier, pubF); !pk.(pubKey).Equal(got) {
		t.Errorf("public key in %v differs", pubF)
	}
}

// checkRSAEncrypt: RSA-OAEP (SHA-256) with the public key; Go decrypts it
// with the private key Get serves, and kmipd decrypts what Go encrypts.
func checkRSAEncrypt(t *testing.T, c *kmipclient.Client) {
	r, err := c.CreateKeyPair().RSA(2048, kmip.CryptographicUsageDecrypt, kmip.CryptographicUsageEncrypt).Exec()
	if err != nil {
		t.Fatalf("Create Key Pair: %v", err)
	}
	for _, id := range []string{r.PrivateKeyUniqueIdentifier, r.PublicKeyUniqueIdentifier} {
		if _, err := c.Activate(id).Exec(); err != nil {
			t.Fatal(err)
		}
	}
	// OAEP's mask generation hash is SHA-1 unless the Mask Generator Hashing
	// Algorithm (KMIP 1.4 §2.1.5; absent before 1.4) says otherwise, whatever
	// the Hashing Algorithm: PKCS#1's default.
	cp := kmip.CryptographicParameters{PaddingMethod: kmip.PaddingMethodOAEP, HashingAlgorithm: kmip.HashingAlgorithmSHA_256,
		CryptographicAlgorithm: kmip.CryptographicAlgorithmRSA}
	opts := &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA1}
	checkOAEP(t, c, r.PrivateKeyUniqueIdentifier, r.PublicKeyUniqueIdentifier, cp, opts)
	if minor(c) >= 4 {
		cp.MaskGenerator = kmip.MaskGeneratorMGF1
		cp.MaskGeneratorHashingAlgorithm = kmip.HashingAlgorithmSHA_256
		checkOAEP(t, c, r.PrivateKeyUniqueIdentifier, r.PublicKeyUniqueIdentifier, cp, &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA256})
	}
}

func checkOAEP(t *testing.T, c *kmipclient.Client, priv, pub string, cp kmip.CryptographicParameters, opts *rsa.OAEPOptions) {
	t.Helper()
	msg := []byte("a data key")
	enc, err := c.Encrypt(pub).WithCryptographicParameters(cp).Data(msg).Exec()
	if err != nil {
		t.Fatalf("Encrypt RSA-OAEP: %v", err)
	}
	sk := getPrivate(t, c, priv).(*rsa.PrivateKey)
	got, err := sk.Decrypt(nil, enc.Data, opts)
	if err != nil || !bytes.Equal(got, msg) {
		t.Errorf("Go (%v, MGF1 %v) cannot decrypt kmipd's RSA-OAEP: %v", opts.Hash, opts.MGFHash, err)
	}
	ct, err := rsa.EncryptOAEPWithOptions(rand.Reader, &sk.PublicKey, msg, opts)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := c.Decrypt(priv).WithCryptographicParameters(cp).Data(ct).Exec()
	if err != nil {
		t.Fatalf("Decrypt RSA-OAEP: %v", err)
	}
	if !bytes.Equal(dec.Data, msg) {
		t.Errorf("kmipd's RSA-OAEP decryption differs")
	}
}

// testMore: the rest of what the client offers. Negotiation from a shorter
// version list; Opaque Object; Templates (KMIP 1.0–1.2 §2.2.6) at 1.0;
// Get with Key Compression; a batch under Undo.
func (s *server) testMore(t *testing.T) {
	c := s.dial(t, "short-list", kmipclient.WithKmipVersions(kmip.V1_2, kmip.V1_0))
	if c.Version() != kmip.V1_2 {
		t.Errorf("a client offering 1.2 and 1.0 negotiated %v, want 1.2", c.Version())
	}
	checkSmoke(t, c)

	c = s.dial(t, "more")
	opaque := []byte{0xde, 0xad, 0xbe, 0xef}
	r, err := c.Register().Object(&kmip.OpaqueObject{OpaqueDataType: kmip.OpaqueDataType(0x80000001), OpaqueDataValue: opaque}).Exec()
	if err != nil {
		t.Fatalf("Register Opaque Object: %v", err)
	}
	g, err := c.Get(r.UniqueIdentifier).Exec()
	if err != nil {
		t.Fatalf("Get Opaque Object: %v", err)
	}
	if oo, ok := g.Object.(*kmip.OpaqueObject); !ok || !bytes.Equal(oo.OpaqueDataValue, opaque) || oo.OpaqueDataType != 0x80000001 {
		t.Errorf("Opaque Object round trip: %+v", g.Object)
	}

	// A URI Name (KMIP 1.0 §3.2) locates its key; Key Wrap Type (1.4 §4.11)
	// As Registered / Not Wrapped on a key registered unwrapped serves it plain.
	uri, err := c.Create().AES(128, kmip.CryptographicUsageEncrypt).WithURI("https://example.org/ovh/k1").Exec()
	if err != nil {
		t.Fatalf("Create with a URI Name: %v", err)
	}
	loc, err := c.Locate().WithURI("https://example.org/ovh/k1").Exec()
	if err != nil || !slices.Equal(loc.UniqueIdentifier, []string{uri.UniqueIdentifier}) {
		t.Errorf("Locate by URI Name: %v, %v", loc, err)
	}
	plain := getSymmetric(t, c, uri.UniqueIdentifier, 0)
	for _, kwt := range []kmip.KeyWrapType{kmip.AsRegistered, kmip.NotWrapped} {
		g, err := c.Get(uri.UniqueIdentifier).WithKeyWrapType(kwt).Exec()
		if err != nil {
			t.Fatalf("Get with Key Wrap Type %v: %v", kwt, err)
		}
		if km, err := g.Object.(*kmip.SymmetricKey).KeyMaterial(); err != nil || !bytes.Equal(km, plain) {
			t.Errorf("Get with Key Wrap Type %v: %v", kwt, err)
		}
	}

	// Key Compression (KMIP 1.0 §2.1.3, §4.11): kmipd either serves the
	// compressed point or refuses with Key Compression Type Not Supported.
	kp, err := c.CreateKeyPair().ECDSA(kmip.RecommendedCurveP_256, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify).Exec()
	if err != nil {
		t.Fatalf("Create Key Pair: %v", err)
	}
	res, err := c.Batch(t.Context(), &payloads.GetRequestPayload{UniqueIdentifier: kp.PublicKeyUniqueIdentifier,
		KeyFormatType: kmip.KeyFormatTypeTransparentECPublicKey, KeyCompressionType: kmip.KeyCompressionTypeECPublicKeyTypeX9_62CompressedPrime})
	if err != nil {
		t.Fatalf("Get compressed: %v", err)
	}
	if bi := res[0]; bi.ResultStatus == kmip.ResultStatusSuccess {
		kb := bi.ResponsePayload.(*payloads.GetResponsePayload).Object.(*kmip.PublicKey).KeyBlock
		q := kb.KeyValue.Plain.KeyMaterial.TransparentECPublicKey
		if kb.KeyCompressionType != kmip.KeyCompressionTypeECPublicKeyTypeX9_62CompressedPrime || q == nil || len(q.QString) != 33 {
			t.Errorf("compressed Get: %v, %+v", kb.KeyCompressionType, q)
		}
	} else if t.Logf("compressed Get: %v", bi.ResultReason); bi.ResultReason != kmip.ResultReasonKeyCompressionTypeNotSupported {
		t.Errorf("compressed Get: reason %v, want Key Compression Type Not Supported", bi.ResultReason)
	}

	// Undo (KMIP 1.0 §6.13): the Create before the failed item is taken back.
	res, err = c.BatchOpt(t.Context(), []kmip.OperationPayload{
		&payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey, TemplateAttribute: kmip.TemplateAttribute{Attribute: []kmip.Attribute{
			{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmAES},
			{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(128)},
			{AttributeName: kmip.AttributeNameName, AttributeValue: kmip.Name{NameValue: "ovh-undone", NameType: kmip.NameTypeUninterpretedTextString}},
		}}},
		&payloads.GetRequestPayload{UniqueIdentifier: "no-such-object"},
	}, kmipclient.OnBatchErr(kmip.BatchErrorContinuationOptionUndo))
	if err != nil {
		t.Fatalf("Batch under Undo: %v", err)
	}
	if res[0].ResultStatus != kmip.ResultStatusOperationUndone || res[1].ResultReason != kmip.ResultReasonItemNotFound {
		t.Errorf("Undo: %v, then %v/%v", res[0].ResultStatus, res[1].ResultStatus, res[1].ResultReason)
	}
	loc, err = c.Locate().WithName("ovh-undone").Exec()
	if err != nil || len(loc.UniqueIdentifier) != 0 {
		t.Errorf("the undone Create left %v (%v)", loc, err)
	}

	// kmipclient's Revoke without WithRevocationReasonCode sends an empty
	// Revocation Reason; its Revocation Reason Code is required (KMIP 1.0
	// §3.31), so kmipd answers Invalid Field and the key stays Active.
	cr0, err := c.Create().AES(128, kmip.CryptographicUsageEncrypt).Exec()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Activate(cr0.UniqueIdentifier).Exec(); err != nil {
		t.Fatal(err)
	}
	if r := reasonOf(t, c, &payloads.RevokeRequestPayload{UniqueIdentifier: cr0.UniqueIdentifier}); r != kmip.ResultReasonInvalidField {
		t.Errorf("Revoke with an empty Revocation Reason: reason %v, want Invalid Field", r)
	}
	if st := state(t, c, cr0.UniqueIdentifier); st != kmip.StateActive {
		t.Errorf("State %v after a refused Revoke", st)
	}

	c10 := s.dial(t, "template", kmipclient.EnforceVersion(kmip.V1_0))
	tpl, err := c10.Register().Object(&kmip.Template{Attribute: []kmip.Attribute{
		{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmAES},
		{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(192)},
		{AttributeName: kmip.AttributeNameCryptographicUsageMask, AttributeValue: kmip.CryptographicUsageEncrypt},
	}}).WithName("ovh-tpl").Exec()
	if err != nil {
		t.Fatalf("Register Template at 1.0: %v", err)
	}
	if tpl.UniqueIdentifier == "" {
		t.Fatalf("Register Template answered no Unique Identifier")
	}
	cr, err := c10.Create().Object(kmip.ObjectTypeSymmetricKey).WithTemplate("ovh-tpl", kmip.NameTypeUninterpretedTextString).Exec()
	if err != nil {
		t.Fatalf("Create from a Template at 1.0: %v", err)
	}
	if got := getSymmetric(t, c10, cr.UniqueIdentifier, 0); len(got) != 24 {
		t.Errorf("key from the AES-192 Template: %d bytes", len(got))
	}
}
