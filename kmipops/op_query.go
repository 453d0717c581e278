package kmipops

import (
	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// VendorIdentification is what Query answers for Query Server Information.
const VendorIdentification = "kmipd"

// registrableTypes are the object types Register accepts (and Query lists).
var registrableTypes = []kmip14.ObjectType{
	kmip14.ObjectTypeCertificate, kmip14.ObjectTypeSymmetricKey,
	kmip14.ObjectTypePublicKey, kmip14.ObjectTypePrivateKey,
	kmip14.ObjectTypeSplitKey, kmip14.ObjectTypeSecretData,
	kmip14.ObjectTypeOpaqueObject, kmip14.ObjectTypePGPKey, kmip14.ObjectTypeTemplate,
}

// opSince is the KMIP 1.x minor version that introduced an operation, for
// those newer than 1.0: Query does not offer them to older clients, and
// dispatch answers them Operation Not Supported in an older request.
var opSince = map[kmip14.Operation]int32{kmip14.OperationDiscoverVersions: 1, kmip14.OperationReKeyKeyPair: 1,
	kmip14.OperationEncrypt: 2, kmip14.OperationDecrypt: 2, kmip14.OperationSign: 2, kmip14.OperationSignatureVerify: 2,
	kmip14.OperationMAC: 2, kmip14.OperationMACVerify: 2, kmip14.OperationRNGRetrieve: 2, kmip14.OperationRNGSeed: 2,
	kmip14.OperationHash: 2, kmip14.OperationCreateSplitKey: 2, kmip14.OperationJoinSplitKey: 2,
	kmip14.OperationImport: 4, kmip14.OperationExport: 4}

func opQuery(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	want := map[kmip14.QueryFunction]bool{}
	for _, f := range payload.All(kmip14.TagQueryFunction) {
		v, ok := f.EnumValue()
		if !ok {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Query Function must be an enumeration")
		}
		want[kmip14.QueryFunction(v)] = true
	}
	r := tree.Struct(kmip14.TagResponsePayload)
	if want[kmip14.QueryFunctionQueryOperations] {
		for _, op := range operationOrder {
			if opSince[op] <= ic.v.minor && p.offers(op) {
				r.Add(tree.Enum(kmip14.TagOperation, uint32(op)))
			}
		}
	}
	if want[kmip14.QueryFunctionQueryObjects] {
		for _, t := range registrableTypes {
			if t == kmip14.ObjectTypePGPKey && ic.v.minor < 2 {
				continue
			}
			r.Add(tree.Enum(kmip14.TagObjectType, uint32(t)))
		}
	}
	if want[kmip14.QueryFunctionQueryServerInformation] {
		r.Add(tree.Text(kmip14.TagVendorIdentification, VendorIdentification),
			tree.Struct(kmip14.TagServerInformation))
	}
	// The other functions (namespaces, extensions, RNGs, profiles, ...) have
	// nothing to report: an empty answer is the correct one.
	return r, nil
}

func opDiscoverVersions(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	r := tree.Struct(kmip14.TagResponsePayload)
	asked := payload.All(kmip14.TagProtocolVersion)
	add := func(v version) {
		r.Add(tree.Struct(kmip14.TagProtocolVersion,
			tree.Int(kmip14.TagProtocolVersionMajor, v.major),
			tree.Int(kmip14.TagProtocolVersionMinor, v.minor)))
	}
	if len(asked) == 0 {
		for _, v := range supportedVersions {
			add(v)
		}
		return r, nil
	}
	// The client's list is in its order of preference; answer the ones we
	// support, keeping that order.
	for _, n := range asked {
		v, ok := parseVersion(n)
		if !ok {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "malformed Protocol Version")
		}
		if v.supported() {
			add(v)
		}
	}
	return r, nil
}
