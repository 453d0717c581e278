package isolation_test

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"maps"
	"slices"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/tests/hostile"
)

// opCase is one operation that names an object: how to ask for it, and
// the kind of object on which the same request succeeds for its owner (the
// control that shows the request itself is sound).
type opCase struct {
	build func(uid string) *tree.Node // uid "" leaves it to the ID Placeholder
	kind  string
}

func uidFields(uid string, rest ...*tree.Node) []*tree.Node {
	if uid == "" {
		return rest
	}
	return append([]*tree.Node{hostile.UID(uid)}, rest...)
}

func params(children ...*tree.Node) *tree.Node {
	return tree.Struct(kmip14.TagCryptographicParameters, children...)
}

var (
	ecb     = params(tree.Enum(kmip14.TagBlockCipherMode, uint32(kmip14.BlockCipherModeECB)), tree.Enum(kmip14.TagPaddingMethod, uint32(kmip14.PaddingMethodNone)))
	rsaSig  = params(tree.Enum(kmip14.TagPaddingMethod, uint32(kmip14.PaddingMethodPKCS1V1_5)), tree.Enum(kmip14.TagHashingAlgorithm, uint32(kmip14.HashingAlgorithmSHA_256)))
	hmacAlg = params(tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmHMAC_SHA256)))
	block   = tree.Bytes(kmip14.TagData, bytes.Repeat([]byte{7}, 16))
)

func simple(op kmip14.Operation, kind string, rest ...*tree.Node) opCase {
	return opCase{kind: kind, build: func(uid string) *tree.Node {
		return hostile.Item(op, uidFields(uid, cloneAll(rest)...)...)
	}}
}

func cloneAll(ns []*tree.Node) []*tree.Node {
	out := make([]*tree.Node, len(ns))
	for i, n := range ns {
		out[i] = n.Clone()
	}
	return out
}

// uidOps covers every operation kmipd implements that acts on a Unique
// Identifier. Operations a later kmipd adds are still attacked, with a
// bare Unique Identifier, by TestEveryOperationIsolated.
var uidOps = map[kmip14.Operation]opCase{
	kmip14.OperationGet:              simple(kmip14.OperationGet, kindKey),
	kmip14.OperationGetAttributes:    simple(kmip14.OperationGetAttributes, kindKey),
	kmip14.OperationGetAttributeList: simple(kmip14.OperationGetAttributeList, kindKey),
	kmip14.OperationAddAttribute:     simple(kmip14.OperationAddAttribute, kindKey, hostile.Attr("x-intruder", tree.Text(0, "was here"))),
	kmip14.OperationModifyAttribute:  simple(kmip14.OperationModifyAttribute, kindKey, hostile.Name("renamed by intruder")),
	kmip14.OperationDeleteAttribute:  simple(kmip14.OperationDeleteAttribute, kindKey, tree.Text(kmip14.TagAttributeName, "Name")),
	kmip14.OperationActivate:         simple(kmip14.OperationActivate, kindKey),
	kmip14.OperationRevoke: simple(kmip14.OperationRevoke, kindActive, tree.Struct(kmip14.TagRevocationReason,
		tree.Enum(kmip14.TagRevocationReasonCode, uint32(kmip14.RevocationReasonCodeKeyCompromise)))),
	kmip14.OperationDestroy:         simple(kmip14.OperationDestroy, kindKey),
	kmip14.OperationExport:          simple(kmip14.OperationExport, kindKey),
	kmip14.OperationObtainLease:     simple(kmip14.OperationObtainLease, kindActive),
	kmip14.OperationEncrypt:         simple(kmip14.OperationEncrypt, kindActive, ecb, block),
	kmip14.OperationDecrypt:         simple(kmip14.OperationDecrypt, kindActive, ecb, block),
	kmip14.OperationSign:            simple(kmip14.OperationSign, kindPrivate, rsaSig, block),
	kmip14.OperationSignatureVerify: simple(kmip14.OperationSignatureVerify, kindPublic, rsaSig, block, tree.Bytes(kmip14.TagSignatureData, make([]byte, 256))),
	kmip14.OperationMAC:             simple(kmip14.OperationMAC, kindActive, hmacAlg, block),
	kmip14.OperationMACVerify:       simple(kmip14.OperationMACVerify, kindActive, hmacAlg, block, tree.Bytes(kmip14.TagMACData, make([]byte, 32))),
	kmip14.OperationCertify: simple(kmip14.OperationCertify, kindPublic, tree.Struct(kmip14.TagTemplateAttribute,
		hostile.Attr("Certificate Type", tree.Enum(0, uint32(kmip14.CertificateTypeX_509))),
		hostile.Attr("X.509 Certificate Subject", tree.Struct(0, tree.Bytes(kmip14.TagSubjectDistinguishedName, isolationSubject))))),
}

// isolationSubject is the DER subject CN=isolation, for Certify.
var isolationSubject, _ = asn1.Marshal(pkix.Name{CommonName: "isolation"}.ToRDNSequence())

// objectless operations act on no existing object of the caller's. Import
// names a uid of the caller's choosing, in the caller's own namespace
// (TestImportIsolated); here it is attacked with a bare uid as well.
var objectless = map[kmip14.Operation]bool{
	kmip14.OperationQuery: true, kmip14.OperationDiscoverVersions: true, kmip14.OperationCreate: true,
	kmip14.OperationCreateKeyPair: true, kmip14.OperationRegister: true, kmip14.OperationLocate: true,
	kmip14.OperationHash: true, kmip14.OperationRNGRetrieve: true, kmip14.OperationRNGSeed: true,
}

// supported asks the server which operations it implements.
func supported(t *testing.T, c *hostile.Conn) []kmip14.Operation {
	t.Helper()
	p := hostile.WantOK(t, c.One(t, hostile.Item(kmip14.OperationQuery,
		tree.Enum(kmip14.TagQueryFunction, uint32(kmip14.QueryFunctionQueryOperations)))))
	var ops []kmip14.Operation
	for _, n := range p.All(kmip14.TagOperation) {
		ops = append(ops, kmip14.Operation(n.Int))
	}
	if len(ops) == 0 {
		t.Fatal("Query lists no operations")
	}
	return ops
}

// TestEveryOperationIsolated: Bob runs every object operation the server
// offers against each of Alice's objects (and against spellings of her
// uids that try to leave his namespace). Each answer must be Item Not
// Found, byte for byte the answer for a uid nobody owns, and Alice's stored
// records must be exactly as they were.
func TestEveryOperationIsolated(t *testing.T) {
	e := hostile.StartServer(t, hostile.Options{})
	a, b := e.Dial(alice), e.Dial(bob)
	victim := makeObjects(t, a, "alice")
	makeObjects(t, b, "bob")
	// Alice reads everything once, so what Bob sees next is settled state
	// (Fresh flips on the first Get).
	for _, uid := range victim {
		a.One(t, hostile.Item(kmip14.OperationGet, hostile.UID(uid)))
	}
	before := snapshot(t, e, e.Owners[alice])

	ops := supported(t, b)
	covered := 0
	for _, op := range ops {
		if objectless[op] {
			continue
		}
		oc, known := uidOps[op]
		if !known {
			// A new operation: attack it with a bare uid and say so.
			t.Logf("operation %s has no dedicated isolation case; trying it with a bare Unique Identifier", op)
			oc = simple(op, "")
		}
		covered++
		t.Run(op.String(), func(t *testing.T) {
			for _, uid := range victim {
				targets := append([]string{uid}, traversals(e.Owners[alice], uid)...)
				for _, target := range targets {
					resp := sameAsNobodys(t, b, func(u string) *tree.Node { return hostile.Request(oc.build(u)) }, target)
					if known {
						hostile.WantFailure(t, hostile.Only(t, resp), kmip14.ResultReasonItemNotFound)
					}
					leaks(t, resp, victim)
				}
			}
		})
	}
	if covered < len(uidOps) {
		t.Errorf("the server offers %d object operations; %d have isolation cases — is Query complete?", covered, len(uidOps))
	}
	sameSnapshot(t, before, snapshot(t, e, e.Owners[alice]))

	// Controls: the same requests succeed for the owner, so the refusals
	// above are isolation, not malformed requests.
	for _, op := range ops {
		oc, known := uidOps[op]
		if !known {
			continue
		}
		t.Run("control "+op.String(), func(t *testing.T) {
			fresh := makeObjects(t, a, "control")
			hostile.WantOK(t, a.One(t, oc.build(fresh[oc.kind])))
		})
	}
}

// TestPlaceholdersAndBatches: the ID Placeholder only ever carries the
// caller's own uids, so batches that chain from a failed lookup of Alice's
// object, or from Bob's own objects, never reach hers.
func TestPlaceholdersAndBatches(t *testing.T) {
	e := hostile.StartServer(t, hostile.Options{})
	a, b := e.Dial(alice), e.Dial(bob)
	victim := makeObjects(t, a, "alice")
	own := makeObjects(t, b, "bob")
	before := snapshot(t, e, e.Owners[alice])
	revoke := uidOps[kmip14.OperationRevoke].build
	destroy := uidOps[kmip14.OperationDestroy].build
	get := uidOps[kmip14.OperationGet].build

	batches := map[string]func(uid string) *tree.Node{
		"lookup then placeholder ops": func(u string) *tree.Node {
			return hostile.ContinueOnError(get(u), uidOps[kmip14.OperationGetAttributes].build(""),
				uidOps[kmip14.OperationEncrypt].build(""), revoke(""), destroy(""))
		},
		"own object, then hers, then placeholder": func(u string) *tree.Node {
			return hostile.ContinueOnError(get(own[kindKey]), uidOps[kmip14.OperationAddAttribute].build(u),
				uidOps[kmip14.OperationModifyAttribute].build(""), destroy(""))
		},
		"stop at the first failure": func(u string) *tree.Node {
			return hostile.Request(uidOps[kmip14.OperationActivate].build(u), revoke(""), destroy(""))
		},
		"undo after failing on her uid": func(u string) *tree.Node {
			m := tree.Struct(kmip14.TagRequestMessage, hostile.Header(1, 4, 3,
				tree.Enum(kmip14.TagBatchErrorContinuationOption, uint32(kmip14.BatchErrorContinuationOptionUndo))))
			return m.Add(uidOps[kmip14.OperationAddAttribute].build(own[kindKey]), uidOps[kmip14.OperationModifyAttribute].build(u),
				destroy(own[kindSecret]))
		},
		"every object operation on her uid": func(u string) *tree.Node {
			var items []*tree.Node
			// In a fixed order: both requests must be the same but for the uid.
			for _, op := range slices.Sorted(maps.Keys(uidOps)) {
				items = append(items, uidOps[op].build(u))
			}
			return hostile.ContinueOnError(items...)
		},
	}
	for name, build := range batches {
		t.Run(name, func(t *testing.T) {
			for _, uid := range victim {
				resp := sameAsNobodys(t, b, build, uid)
				leaks(t, resp, victim)
			}
		})
	}
	t.Run("Locate of her name feeds the placeholder", func(t *testing.T) {
		build := func(name string) *tree.Node {
			return hostile.ContinueOnError(hostile.Item(kmip14.OperationLocate, hostile.Name(name)), get(""), destroy(""))
		}
		for kind := range victim {
			got := roundTrip(t, b, build("alice "+kind))
			nobody := roundTrip(t, b, build("nobody's "+kind))
			if !bytes.Equal(normalized(got), normalized(nobody)) {
				t.Fatalf("Locate of Alice's %s answered differently from an unknown name:\n%v\n%v", kind, hostile.Results(got), hostile.Results(nobody))
			}
			leaks(t, got, victim)
		}
	})
	sameSnapshot(t, before, snapshot(t, e, e.Owners[alice]))
	// Bob's placeholder chains do work on his own objects.
	rs := b.Do(t, hostile.Request(get(own[kindKey]), uidOps[kmip14.OperationActivate].build("")))
	hostile.WantOK(t, rs[1])
}
