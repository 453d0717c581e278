package ovhclient

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// ovh/kmip-go v0.9.2 writes Import and Export payloads in a shape of its
// own: its Import request has no Object Type and lists bare Attributes,
// and its Export response reads bare Attributes, where KMIP 1.4 has Object
// Type and a Template-Attribute in both (Import request: Unique
// Identifier, Object Type, Replace Existing, Key Wrap Type,
// Template-Attribute, object; Export response: Object Type, Unique
// Identifier, Template-Attribute, object). kmipd implements KMIP 1.4, so
// the round trip below uses 1.4-shaped payloads over the client's
// transport, and testImportExport records what the client's own shapes get.
func init() {
	kmip.RegisterOperationPayload[payloads.ExportRequestPayload, export14Response](kmip.OperationExport)
}

// import14Request is KMIP 1.4's Import request payload.
type import14Request struct {
	UniqueIdentifier  string
	ObjectType        kmip.ObjectType
	ReplaceExisting   bool             `ttlv:",omitempty"`
	KeyWrapType       kmip.KeyWrapType `ttlv:",omitempty"`
	TemplateAttribute kmip.TemplateAttribute
	Object            kmip.Object
}

func (*import14Request) Operation() kmip.Operation { return kmip.OperationImport }

// export14Response is KMIP 1.4's Export response payload; Object is nil
// when the object is destroyed (its key material is not returned).
type export14Response struct {
	ObjectType        kmip.ObjectType
	UniqueIdentifier  string
	TemplateAttribute kmip.TemplateAttribute
	Object            kmip.Object `ttlv:",omitempty"`
}

func (*export14Response) Operation() kmip.Operation { return kmip.OperationExport }

func (pl *export14Response) TagDecodeTTLV(d *ttlv.Decoder, tag int) error {
	return d.Struct(tag, func(d *ttlv.Decoder) error {
		if err := d.Any(&pl.ObjectType); err != nil {
			return err
		}
		if err := d.TagAny(kmip.TagUniqueIdentifier, &pl.UniqueIdentifier); err != nil {
			return err
		}
		if err := d.Any(&pl.TemplateAttribute); err != nil {
			return err
		}
		if d.Tag() == 0 { // the end of the payload: no object
			return nil
		}
		var err error
		if pl.Object, err = kmip.NewObjectForType(pl.ObjectType); err != nil {
			return err
		}
		return d.Any(&pl.Object)
	})
}

func export(t *testing.T, c *kmipclient.Client, req *payloads.ExportRequestPayload) *export14Response {
	t.Helper()
	resp, err := c.Request(t.Context(), req)
	if err != nil {
		t.Fatalf("Export %s: %v", req.UniqueIdentifier, err)
	}
	return resp.(*export14Response)
}

func importObject(t *testing.T, c *kmipclient.Client, req *import14Request) string {
	t.Helper()
	resp, err := c.Request(t.Context(), req)
	if err != nil {
		t.Fatalf("Import %s: %v", req.UniqueIdentifier, err)
	}
	return resp.(*payloads.ImportResponsePayload).UniqueIdentifier
}

// withoutUID is an exported Template-Attribute less its Unique Identifier,
// for an Import under another uid.
func withoutUID(ta kmip.TemplateAttribute) kmip.TemplateAttribute {
	var out kmip.TemplateAttribute
	for _, a := range ta.Attribute {
		if a.AttributeName != kmip.AttributeNameUniqueIdentifier {
			out.Attribute = append(out.Attribute, a)
		}
	}
	return out
}

func attrValue(ta kmip.TemplateAttribute, name kmip.AttributeName) any {
	for _, a := range ta.Attribute {
		if a.AttributeName == name {
			return a.AttributeValue
		}
	}
	return nil
}

func newUID(prefix string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// testImportExport: Import and Export are KMIP 1.4 operations: offered by
// Query and served at 1.4, Operation Not Supported below. An Export, imported
// under a new uid, is the same key with the same attributes (State and dates
// included); a wrapped Export imported with Key Wrap Type Not Wrapped is
// unwrapped by the server.
func (s *server) testImportExport(t *testing.T) {
	c := s.dial(t, "importexport")
	q, err := c.Query().Operations().Exec()
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	if !slices.Contains(q.Operations, kmip.OperationImport) || !slices.Contains(q.Operations, kmip.OperationExport) {
		t.Fatalf("Query at %v omits Import or Export: %v", c.Version(), q.Operations)
	}
	old := s.dial(t, "importexport-1.2", kmipclient.EnforceVersion(kmip.V1_2))
	q, err = old.Query().Operations().Exec()
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	if slices.Contains(q.Operations, kmip.OperationImport) || slices.Contains(q.Operations, kmip.OperationExport) {
		t.Errorf("Query at 1.2 offers Import or Export")
	}

	cr, err := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).
		WithName("ovh export").WithAttribute(kmip.AttributeName("x-origin"), "ovh").Exec()
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := c.Activate(cr.UniqueIdentifier).Exec(); err != nil {
		t.Fatalf("Activate: %v", err)
	}
	if r := reasonOf(t, old, &payloads.ExportRequestPayload{UniqueIdentifier: cr.UniqueIdentifier}); r != kmip.ResultReasonOperationNotSupported {
		t.Errorf("Export at 1.2: reason %v, want Operation Not Supported", r)
	}
	plain := getSymmetric(t, c, cr.UniqueIdentifier, 0)

	x := export(t, c, &payloads.ExportRequestPayload{UniqueIdentifier: cr.UniqueIdentifier})
	sk, ok := x.Object.(*kmip.SymmetricKey)
	if x.ObjectType != kmip.ObjectTypeSymmetricKey || x.UniqueIdentifier != cr.UniqueIdentifier || !ok {
		t.Fatalf("Export: %v %q %T", x.ObjectType, x.UniqueIdentifier, x.Object)
	}
	if km, err := sk.KeyMaterial(); err != nil || string(km) != string(plain) {
		t.Fatalf("exported key material differs from Get's (%v)", err)
	}
	// A custom attribute's value comes back as a ttlv.Value (tag and value).
	if attrValue(x.TemplateAttribute, kmip.AttributeNameState) != kmip.StateActive ||
		attrValue(x.TemplateAttribute, kmip.AttributeName("x-origin")) != (ttlv.Value{Tag: kmip.TagAttributeValue, Value: "ovh"}) {
		t.Fatalf("exported attributes: state %T %v, x-origin %T %v", attrValue(x.TemplateAttribute, kmip.AttributeNameState), attrValue(x.TemplateAttribute, kmip.AttributeNameState),
			attrValue(x.TemplateAttribute, kmip.AttributeName("x-origin")), attrValue(x.TemplateAttribute, kmip.AttributeName("x-origin")))
	}

	// Round trip under a new uid: the same key, the same attributes.
	copyID := newUID("ovh-import")
	got := importObject(t, c, &import14Request{UniqueIdentifier: copyID, ObjectType: x.ObjectType,
		TemplateAttribute: withoutUID(x.TemplateAttribute), Object: x.Object})
	if got != copyID {
		t.Fatalf("Import answered %q for %q", got, copyID)
	}
	if km := getSymmetric(t, c, copyID, 0); string(km) != string(plain) {
		t.Fatal("imported key differs")
	}
	y := export(t, c, &payloads.ExportRequestPayload{UniqueIdentifier: copyID})
	for _, a := range x.TemplateAttribute.Attribute {
		if a.AttributeName == kmip.AttributeNameUniqueIdentifier {
			continue
		}
		if v := attrValue(y.TemplateAttribute, a.AttributeName); !sameValue(v, a.AttributeValue) {
			t.Errorf("%s: exported %v, after the round trip %v", a.AttributeName, a.AttributeValue, v)
		}
	}
	// Its uid is taken now, unless Replace Existing.
	again := &import14Request{UniqueIdentifier: copyID, ObjectType: x.ObjectType, TemplateAttribute: withoutUID(x.TemplateAttribute), Object: x.Object}
	if bi := failure(t, c, again); bi.ResultReason != kmip.ResultReasonObjectAlreadyExists {
		t.Errorf("Import over an existing uid: %v", bi.ResultReason)
	}
	again.ReplaceExisting = true
	importObject(t, c, again)

	// Wrapped on Export, unwrapped by the server on Import.
	kek, err := c.Create().AES(256, kmip.CryptographicUsageWrapKey|kmip.CryptographicUsageUnwrapKey).Exec()
	if err != nil {
		t.Fatalf("Create the wrapping key: %v", err)
	}
	if _, err := c.Activate(kek.UniqueIdentifier).Exec(); err != nil {
		t.Fatalf("Activate: %v", err)
	}
	w := export(t, c, &payloads.ExportRequestPayload{UniqueIdentifier: cr.UniqueIdentifier,
		KeyWrappingSpecification: &kmip.KeyWrappingSpecification{WrappingMethod: kmip.WrappingMethodEncrypt,
			EncryptionKeyInformation: &kmip.EncryptionKeyInformation{UniqueIdentifier: kek.UniqueIdentifier}}})
	wk := w.Object.(*kmip.SymmetricKey).KeyBlock
	if wk.KeyWrappingData == nil || wk.KeyValue == nil || wk.KeyValue.Wrapped == nil {
		t.Fatalf("Export with a Key Wrapping Specification: %+v", wk)
	}
	unwrapped := newUID("ovh-unwrapped")
	importObject(t, c, &import14Request{UniqueIdentifier: unwrapped, ObjectType: w.ObjectType, KeyWrapType: kmip.NotWrapped,
		TemplateAttribute: withoutUID(w.TemplateAttribute), Object: w.Object})
	if km := getSymmetric(t, c, unwrapped, 0); string(km) != string(plain) {
		t.Fatal("Import with Key Wrap Type Not Wrapped did not store the unwrapped key")
	}

	// A destroyed key exports its attributes without its material.
	if _, err := c.Revoke(unwrapped).WithRevocationReasonCode(kmip.RevocationReasonCodeCessationOfOperation).Exec(); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := c.Destroy(unwrapped).Exec(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if d := export(t, c, &payloads.ExportRequestPayload{UniqueIdentifier: unwrapped}); d.Object != nil ||
		attrValue(d.TemplateAttribute, kmip.AttributeNameState) != kmip.StateDestroyed {
		t.Errorf("Export of a destroyed key: %T, state %v", d.Object, attrValue(d.TemplateAttribute, kmip.AttributeNameState))
	}

	// The client's own shapes. Its Import request has no Object Type:
	// kmipd answers it as any request lacking a required field.
	own := &payloads.ImportRequestPayload{UniqueIdentifier: newUID("ovh-own"),
		Attribute: withoutUID(x.TemplateAttribute).Attribute, Object: x.Object}
	if bi := failure(t, c, own); bi.ResultReason != kmip.ResultReasonInvalidMessage {
		t.Errorf("the client's own Import: %v, want Invalid Message (no Object Type)", bi.ResultReason)
	}
	// Its Export response type cannot read a KMIP 1.4 Export answer.
	enc := ttlv.NewTTLVEncoder()
	enc.TagAny(kmip.TagResponsePayload, x)
	var theirs payloads.ExportResponsePayload
	dec, err := ttlv.NewTTLVDecoder(enc.Bytes())
	if err != nil {
		t.Fatalf("re-encoded Export answer: %v", err)
	}
	err = theirs.TagDecodeTTLV(&dec, kmip.TagResponsePayload)
	t.Logf("ovh's ExportResponsePayload on a KMIP 1.4 Export answer: %v (%d attributes read)", err, len(theirs.Attribute))
	if err == nil && len(theirs.Attribute) > 0 {
		t.Errorf("ovh's ExportResponsePayload now reads a 1.4 answer: drop the 1.4-shaped type")
	}
}

// sameValue compares attribute values as the client decodes them.
func sameValue(a, b any) bool {
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		return ok && ta.Equal(tb)
	}
	enc := func(v any) string {
		e := ttlv.NewTTLVEncoder()
		e.TagAny(kmip.TagAttributeValue, v)
		return string(e.Bytes())
	}
	return enc(a) == enc(b)
}
