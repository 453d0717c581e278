package bench

import (
	"errors"
	"fmt"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipmsg"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// The requests are plain KMIP 1.x trees (TemplateAttribute, Attribute Name /
// Value pairs), the common subset that kmipd and PyKMIP 0.10 both decode, so
// one load generator measures any KMIP server. The protocol version in the
// header is a parameter; 1.2 is the default because it is the highest that
// PyKMIP implements fully and the first with Encrypt.

// protoVersion is the Protocol Version sent in every request header.
type protoVersion = kmipmsg.Version

func parseProtoVersion(s string) (protoVersion, error) {
	var v protoVersion
	if _, err := fmt.Sscanf(s, "%d.%d", &v.Major, &v.Minor); err != nil || v.Major != 1 || v.Minor < 0 || v.Minor > 4 {
		return v, fmt.Errorf("KMIP version %q: want 1.0 … 1.4", s)
	}
	return v, nil
}

// opKind names one KMIP operation for the per-operation breakdown.
type opKind int

const (
	opCreate opKind = iota
	opGet
	opDestroy
	opRegister
	opActivate
	opEncrypt
	opLocate
	numOpKinds
)

var opNames = [numOpKinds]string{"Create", "Get", "Destroy", "Register", "Activate", "Encrypt", "Locate"}

func (k opKind) String() string { return opNames[k] }

var kindOperation = [numOpKinds]kmip14.Operation{
	kmip14.OperationCreate, kmip14.OperationGet, kmip14.OperationDestroy,
	kmip14.OperationRegister, kmip14.OperationActivate, kmip14.OperationEncrypt,
	kmip14.OperationLocate,
}

// message wraps one operation's payload in a single-item RequestMessage.
func message(v protoVersion, k opKind, payload ...*tree.Node) []byte {
	return tree.MustEncode(kmipmsg.Request(v, kmipmsg.Options{}, kmipmsg.Item(kindOperation[k], payload...)))
}

func attr(name string, value *tree.Node) *tree.Node {
	value.Tag = kmip14.TagAttributeValue
	return tree.Struct(kmip14.TagAttribute, tree.Text(kmip14.TagAttributeName, name), value)
}

const usageEncDec = uint32(kmip14.CryptographicUsageMaskEncrypt | kmip14.CryptographicUsageMaskDecrypt)

// createAES256 asks for an AES-256 key usable for Encrypt and Decrypt.
func createAES256(v protoVersion) []byte {
	return message(v, opCreate,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)),
		tree.Struct(kmip14.TagTemplateAttribute,
			attr("Cryptographic Algorithm", tree.Enum(0, uint32(kmip14.CryptographicAlgorithmAES))),
			attr("Cryptographic Length", tree.Int(0, 256)),
			attr("Cryptographic Usage Mask", tree.Int(0, int32(usageEncDec))),
		))
}

// registerAES256 registers the given 32 bytes as a Raw AES-256 key.
func registerAES256(v protoVersion, material []byte) []byte {
	return message(v, opRegister,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)),
		tree.Struct(kmip14.TagTemplateAttribute,
			attr("Cryptographic Usage Mask", tree.Int(0, int32(usageEncDec))),
		),
		tree.Struct(kmip14.TagSymmetricKey,
			tree.Struct(kmip14.TagKeyBlock,
				tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)),
				tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, material)),
				tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmAES)),
				tree.Int(kmip14.TagCryptographicLength, 256),
			),
		))
}

// byUID is Get, Destroy or Activate of one object.
func byUID(v protoVersion, k opKind, uid string) []byte {
	return message(v, k, tree.Text(kmip14.TagUniqueIdentifier, uid))
}

// locateByName asks for the objects named name (an Uninterpreted Text
// String, as PyKMIP's locate(name=...) sends it).
func locateByName(v protoVersion, name string) []byte {
	return message(v, opLocate, attr("Name", tree.Struct(0,
		tree.Text(kmip14.TagNameValue, name),
		tree.Enum(kmip14.TagNameType, uint32(kmip14.NameTypeUninterpretedTextString)),
	)))
}

// locatePage asks for the ten newest symmetric keys: a criterion nearly
// every object matches, with Maximum Items.
func locatePage(v protoVersion) []byte {
	return message(v, opLocate,
		tree.Int(kmip14.TagMaximumItems, 10),
		attr("Object Type", tree.Enum(0, uint32(kmip14.ObjectTypeSymmetricKey))))
}

// encryptGCM asks for AES-GCM with a 16-byte tag and a server-chosen IV: the
// request carries no IV, so the server must generate one and return it.
func encryptGCM(v protoVersion, uid string, data []byte) []byte {
	return message(v, opEncrypt,
		tree.Text(kmip14.TagUniqueIdentifier, uid),
		tree.Struct(kmip14.TagCryptographicParameters,
			tree.Enum(kmip14.TagBlockCipherMode, uint32(kmip14.BlockCipherModeGCM)),
			tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmAES)),
			tree.Bool(kmip14.TagRandomIV, true),
			tree.Int(kmip14.TagTagLength, 16),
		),
		tree.Bytes(kmip14.TagData, data),
	)
}

// opError is a KMIP-level failure: the server answered, with a result
// status other than Success. It keeps the connection usable.
type opError struct {
	Reason  string
	Message string
}

func (e *opError) Error() string {
	if e.Message == "" {
		return "KMIP " + e.Reason
	}
	return "KMIP " + e.Reason + ": " + e.Message
}

// checkResponse validates a raw response message to a k request and returns
// the Unique Identifier of its payload (a view into msg, valid until the
// connection's next read). Beyond the result status it checks that the
// payload carries what the operation promises (an identifier, the key, the
// ciphertext), so a server answering Success with nothing is still counted
// as an error.
//
// It does not build a tree: the load generator shares the cores with the
// server it measures, so it walks msg in place (tree.Item). The whole message is still
// validated as tree.Decode would (framing, lengths, padding, known types,
// UTF-8 text, 0/1 booleans, tree.DefaultLimits), and the fields are looked
// up with the tree's semantics (first child with the tag, typed values).
func checkResponse(k opKind, msg []byte) ([]byte, error) {
	if err := tree.Validate(msg, tree.DefaultLimits); err != nil {
		return nil, err
	}
	m := tree.Item(msg)
	if m.Tag() != kmip14.TagResponseMessage || m.Type() != ttlv.TypeStructure {
		return nil, errors.New("response is not a ResponseMessage")
	}
	var it tree.Item
	items := 0
	for c := range m.Children() {
		if c.Tag() == kmip14.TagBatchItem {
			if items == 0 {
				it = c
			}
			items++
		}
	}
	if items != 1 {
		return nil, fmt.Errorf("response has %d batch items, want 1", items)
	}
	st, ok := it.Child(kmip14.TagResultStatus).EnumValue()
	if !ok {
		return nil, errors.New("response has no Result Status")
	}
	if kmip14.ResultStatus(st) != kmip14.ResultStatusSuccess {
		e := &opError{Reason: kmip14.ResultStatus(st).String()}
		if r, ok := it.Child(kmip14.TagResultReason).EnumValue(); ok {
			e.Reason = kmip14.ResultReason(r).String()
		}
		if m, ok := it.Child(kmip14.TagResultMessage).TextBytes(); ok {
			e.Message = string(m)
		}
		return nil, e
	}
	p := it.Child(kmip14.TagResponsePayload)
	if p == nil {
		return nil, fmt.Errorf("%s: Success without a Response Payload", k)
	}
	uid, ok := p.Child(kmip14.TagUniqueIdentifier).TextBytes()
	if !ok {
		return nil, fmt.Errorf("%s: Success without a Unique Identifier", k)
	}
	switch k {
	case opGet:
		k := p
		for _, t := range [...]ttlv.Tag{kmip14.TagSymmetricKey, kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial} {
			k = k.Child(t)
		}
		if k, _ := k.BytesValue(); len(k) == 0 {
			return nil, errors.New("Get: no symmetric key material in the response")
		}
	case opEncrypt:
		if d, _ := p.Child(kmip14.TagData).BytesValue(); len(d) == 0 {
			return nil, errors.New("Encrypt: no Data in the response")
		}
		if iv, _ := p.Child(kmip14.TagIVCounterNonce).BytesValue(); len(iv) == 0 {
			return nil, errors.New("Encrypt: the server generated no IV (IV/Counter/Nonce missing)")
		}
	}
	return uid, nil
}
