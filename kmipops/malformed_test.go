package kmipops

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

func TestMalformedMessages(t *testing.T) {
	e := newEnv(t, Options{})
	hdr := func(children ...*tree.Node) *tree.Node { return tree.Struct(kmip14.TagRequestHeader, children...) }
	pv := tree.Struct(kmip14.TagProtocolVersion, tree.Int(kmip14.TagProtocolVersionMajor, 1), tree.Int(kmip14.TagProtocolVersionMinor, 4))
	bc := func(n int32) *tree.Node { return tree.Int(kmip14.TagBatchCount, n) }
	q := item(kmip14.OperationQuery)
	for name, req := range map[string]*tree.Node{
		"nil":                nil,
		"not a request":      tree.Struct(kmip14.TagResponseMessage),
		"request as text":    tree.Text(kmip14.TagRequestMessage, "x"),
		"no header":          tree.Struct(kmip14.TagRequestMessage, q),
		"no version":         tree.Struct(kmip14.TagRequestMessage, hdr(bc(1)), q),
		"version as text":    tree.Struct(kmip14.TagRequestMessage, hdr(tree.Text(kmip14.TagProtocolVersion, "1.4"), bc(1)), q),
		"no batch count":     tree.Struct(kmip14.TagRequestMessage, hdr(pv), q),
		"count too high":     tree.Struct(kmip14.TagRequestMessage, hdr(pv, bc(2)), q),
		"count too low":      tree.Struct(kmip14.TagRequestMessage, hdr(pv, bc(0))),
		"count as long":      tree.Struct(kmip14.TagRequestMessage, hdr(pv, tree.Long(kmip14.TagBatchCount, 1)), q),
		"bad continuation":   tree.Struct(kmip14.TagRequestMessage, hdr(pv, tree.Enum(kmip14.TagBatchErrorContinuationOption, 9), bc(1)), q),
		"async as int":       tree.Struct(kmip14.TagRequestMessage, hdr(pv, tree.Int(kmip14.TagAsynchronousIndicator, 1), bc(1)), q),
		"max size as enum":   tree.Struct(kmip14.TagRequestMessage, hdr(pv, tree.Enum(kmip14.TagMaximumResponseSize, 1), bc(1)), q),
		"negative max size":  tree.Struct(kmip14.TagRequestMessage, hdr(pv, tree.Int(kmip14.TagMaximumResponseSize, -1), bc(1)), q),
		"batch item as text": tree.Struct(kmip14.TagRequestMessage, hdr(pv, bc(1)), tree.Text(kmip14.TagBatchItem, "x")),
	} {
		t.Run(name, func(t *testing.T) {
			resp := e.send(alice, req)
			wantFail(t, resp, 0, kmip14.ResultReasonInvalidMessage)
		})
	}
	// Asynchronous Indicator true is answered synchronously.
	okPayload(t, e.send(alice, tree.Struct(kmip14.TagRequestMessage, hdr(pv, tree.Bool(kmip14.TagAsynchronousIndicator, true), bc(1)), q)), 0)
}

func TestMalformedItems(t *testing.T) {
	e := newEnv(t, Options{})
	uid := e.create(alice)
	for name, c := range map[string]struct {
		it     *tree.Node
		reason kmip14.ResultReason
	}{
		"no operation":      {tree.Struct(kmip14.TagBatchItem, tree.Struct(kmip14.TagRequestPayload)), kmip14.ResultReasonInvalidMessage},
		"operation as int":  {tree.Struct(kmip14.TagBatchItem, tree.Int(kmip14.TagOperation, 10), tree.Struct(kmip14.TagRequestPayload)), kmip14.ResultReasonInvalidMessage},
		"unknown operation": {item(kmip14.Operation(0x7777)), kmip14.ResultReasonOperationNotSupported},
		"unsupported op":    {item(kmip14.OperationNotify, uidF(uid)), kmip14.ResultReasonOperationNotSupported},
		"no payload":        {tree.Struct(kmip14.TagBatchItem, tree.Enum(kmip14.TagOperation, uint32(kmip14.OperationGet))), kmip14.ResultReasonInvalidMessage},
		"payload as text":   {tree.Struct(kmip14.TagBatchItem, tree.Enum(kmip14.TagOperation, uint32(kmip14.OperationGet)), tree.Text(kmip14.TagRequestPayload, "x")), kmip14.ResultReasonInvalidMessage},
		"batch id as text":  {tree.Struct(kmip14.TagBatchItem, tree.Enum(kmip14.TagOperation, uint32(kmip14.OperationQuery)), tree.Text(kmip14.TagUniqueBatchItemID, "1"), tree.Struct(kmip14.TagRequestPayload)), kmip14.ResultReasonInvalidMessage},
		"critical ext": {tree.Struct(kmip14.TagBatchItem, tree.Enum(kmip14.TagOperation, uint32(kmip14.OperationQuery)), tree.Struct(kmip14.TagRequestPayload),
			tree.Struct(kmip14.TagMessageExtension, tree.Text(kmip14.TagVendorIdentification, "v"), tree.Bool(kmip14.TagCriticalityIndicator, true))), kmip14.ResultReasonFeatureNotSupported},
		"uid as int":          {item(kmip14.OperationGet, tree.Int(kmip14.TagUniqueIdentifier, 1)), kmip14.ResultReasonInvalidField},
		"uid with slash":      {item(kmip14.OperationGet, uidF("../"+uid)), kmip14.ResultReasonItemNotFound},
		"uid empty":           {item(kmip14.OperationGet, uidF("")), kmip14.ResultReasonItemNotFound},
		"uid huge":            {item(kmip14.OperationGet, uidF(strings.Repeat("a", 4000))), kmip14.ResultReasonItemNotFound},
		"attr name as int":    {item(kmip14.OperationGetAttributes, uidF(uid), tree.Int(kmip14.TagAttributeName, 1)), kmip14.ResultReasonInvalidField},
		"revoke no reason":    {item(kmip14.OperationRevoke, uidF(uid)), kmip14.ResultReasonInvalidMessage},
		"revoke code as text": {item(kmip14.OperationRevoke, uidF(uid), tree.Struct(kmip14.TagRevocationReason, tree.Text(kmip14.TagRevocationReasonCode, "x"))), kmip14.ResultReasonInvalidField},
		"revoke date as text": {item(kmip14.OperationRevoke, uidF(uid), tree.Struct(kmip14.TagRevocationReason, tree.Enum(kmip14.TagRevocationReasonCode, 2)), tree.Text(kmip14.TagCompromiseOccurrenceDate, "x")), kmip14.ResultReasonInvalidField},
		"template as text":    {item(kmip14.OperationCreate, tree.Enum(kmip14.TagObjectType, 2), tree.Text(kmip14.TagTemplateAttribute, "x")), kmip14.ResultReasonInvalidField},
		"attribute as text":   {item(kmip14.OperationCreate, tree.Enum(kmip14.TagObjectType, 2), tree.Struct(kmip14.TagTemplateAttribute, tree.Text(kmip14.TagAttribute, "x"))), kmip14.ResultReasonInvalidField},
		"attribute no value":  {item(kmip14.OperationCreate, tree.Enum(kmip14.TagObjectType, 2), tree.Struct(kmip14.TagTemplateAttribute, tree.Struct(kmip14.TagAttribute, tree.Text(kmip14.TagAttributeName, "x-a")))), kmip14.ResultReasonInvalidField},
		"object type as int":  {item(kmip14.OperationCreate, tree.Int(kmip14.TagObjectType, 2)), kmip14.ResultReasonInvalidField},
		"add no attribute":    {item(kmip14.OperationAddAttribute, uidF(uid)), kmip14.ResultReasonInvalidMessage},
		"delete no name":      {item(kmip14.OperationDeleteAttribute, uidF(uid)), kmip14.ResultReasonInvalidMessage},
		"locate max as text":  {item(kmip14.OperationLocate, tree.Text(kmip14.TagMaximumItems, "1")), kmip14.ResultReasonInvalidField},
		"discover bad vers":   {item(kmip14.OperationDiscoverVersions, tree.Text(kmip14.TagProtocolVersion, "1.4")), kmip14.ResultReasonInvalidField},
	} {
		t.Run(name, func(t *testing.T) { wantFail(t, e.do(alice, c.it), 0, c.reason) })
	}
}

// TestNoPlaintextOnDisk registers a known secret and looks for it (and the
// object's name) in every file Badger wrote.
func TestNoPlaintextOnDisk(t *testing.T) {
	e := newRealEnv(t, Options{})
	secret := []byte("kmipd-known-secret-32-bytes!!!!!")
	if len(secret) != 32 {
		t.Fatal("secret length")
	}
	name := "very-distinctive-object-name-4711"
	uid := text(t, okPayload(t, e.do(alice, register(kmip14.ObjectTypeSymmetricKey,
		keyBody(kmip14.TagSymmetricKey, kmip14.KeyFormatTypeRaw, kmip14.CryptographicAlgorithmAES, 256, secret),
		nameAttr(name))), 0), kmip14.TagUniqueIdentifier)
	g := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid))), 0)
	if !bytes.Equal(g.Path(kmip14.TagSymmetricKey, kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial).Bytes, secret) {
		t.Fatal("secret not served back")
	}
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	files := 0
	err := filepath.WalkDir(e.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, needle := range [][]byte{secret, []byte(name), secret[:16]} {
			if bytes.Contains(b, needle) {
				t.Errorf("%s contains %q in the clear", path, needle)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatal("no files written")
	}
}

// panicSealer stands in for a broken lower layer.
type panicSealer struct{}

func (panicSealer) Seal(context.Context, string, []byte, []byte) ([]byte, error) { panic("boom") }
func (panicSealer) OpenInPlace(context.Context, string, []byte, []byte) ([]byte, error) {
	panic("boom")
}

type errSealer struct{ err error }

func (s errSealer) Seal(context.Context, string, []byte, []byte) ([]byte, error) { return nil, s.err }
func (s errSealer) OpenInPlace(context.Context, string, []byte, []byte) ([]byte, error) {
	return nil, s.err
}

type reasonErr struct{}

func (reasonErr) Error() string                     { return "hsm: CKR_DEVICE_ERROR at /dev/secret" }
func (reasonErr) ResultReason() kmip14.ResultReason { return kmip14.ResultReasonCryptographicFailure }
func (reasonErr) ClientMessage() string             { return "HSM unavailable" }
func TestPanicAndLowerErrors(t *testing.T) {
	st := storage.NewMemory()
	e := &env{t: t, p: NewProcessor(st, panicSealer{}, Options{}, hclog.NewNullLogger()), v: version{1, 4}}
	resp := e.do(alice, item(kmip14.OperationQuery), createAES(256))
	okPayload(t, resp, 0)
	if m := wantFail(t, resp, 1, kmip14.ResultReasonGeneralFailure); m != "internal error" {
		t.Fatalf("message %q", m)
	}
	// A lower layer's reason and client text reach the client; its cause does not.
	e.p = NewProcessor(st, errSealer{reasonErr{}}, Options{}, hclog.NewNullLogger())
	if m := wantFail(t, e.do(alice, createAES(256)), 0, kmip14.ResultReasonCryptographicFailure); m != "HSM unavailable" {
		t.Fatalf("message %q", m)
	}
	e.p = NewProcessor(st, errSealer{errors.New("disk path /var/lib/x")}, Options{}, hclog.NewNullLogger())
	if m := wantFail(t, e.do(alice, createAES(256)), 0, kmip14.ResultReasonGeneralFailure); m != "internal error" {
		t.Fatalf("message %q", m)
	}
	// An empty identity never gets a namespace.
	wantFail(t, e.do(Caller{}, item(kmip14.OperationQuery)), 0, kmip14.ResultReasonPermissionDenied)
	wantFail(t, e.do(Caller{Identity: "a/b"}, item(kmip14.OperationQuery)), 0, kmip14.ResultReasonPermissionDenied)
}
