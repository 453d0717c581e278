package kmipops

import (
	"crypto/aes"
	"errors"
	"fmt"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/internal/aesmodes"
	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// Key wrapping on Get (KMIP 1.4 §2.1.5–2.1.6, §4.11): the client names one
// of its own AES keys, and the served Key Value is encrypted under it with
// AES Key Wrap (NIST SP 800-38F KW, RFC 3394) or AES Key Wrap with Padding
// (KWP, RFC 5649), both in aesmodes. Only the Encrypt wrapping method is offered: MAC/sign
// wrapping and TR-31 are refused as Feature Not Supported, never ignored.

// wrapSpec is a parsed Key Wrapping Specification.
type wrapSpec struct {
	keyUID    string
	params    *tree.Node             // Cryptographic Parameters as given, or nil
	mode      kmip14.BlockCipherMode // 0: the wrapping key's own, else NIST Key Wrap
	encoding  kmip14.EncodingOption  // 0: absent, which means TTLV encoding
	attrNames []string               // attributes wrapped along with the key
}

func parseWrapSpec(n *tree.Node) (*wrapSpec, error) {
	if n.Type != ttlv.TypeStructure {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Key Wrapping Specification must be a structure")
	}
	m, ok := n.Child(kmip14.TagWrappingMethod).EnumValue()
	if !ok {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "Key Wrapping Specification needs a Wrapping Method")
	}
	if kmip14.WrappingMethod(m) != kmip14.WrappingMethodEncrypt {
		return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "wrapping method %s not supported (Encrypt only)", kmip14.WrappingMethod(m))
	}
	if n.Child(kmip14.TagMACSignatureKeyInformation) != nil {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "the Encrypt wrapping method takes no MAC/Signature Key Information")
	}
	eki := n.Child(kmip14.TagEncryptionKeyInformation)
	if eki == nil {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "the Encrypt wrapping method needs Encryption Key Information")
	}
	ws := &wrapSpec{}
	if ws.keyUID, ok = eki.Child(kmip14.TagUniqueIdentifier).TextValue(); !ok {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Encryption Key Information needs a Unique Identifier")
	}
	if cp := eki.Child(kmip14.TagCryptographicParameters); cp != nil {
		if cp.Type != ttlv.TypeStructure {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Parameters must be a structure")
		}
		ws.params = cp.Clone()
		if bm := cp.Child(kmip14.TagBlockCipherMode); bm != nil {
			v, ok := bm.EnumValue()
			if !ok {
				return nil, Errorf(kmip14.ResultReasonInvalidField, "Block Cipher Mode must be an enumeration")
			}
			ws.mode = kmip14.BlockCipherMode(v)
			if !wrapMode(ws.mode) {
				return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "key wrapping with %s not supported (NISTKeyWrap, AESKeyWrapPadding)", ws.mode)
			}
		}
	}
	if e := n.Child(kmip14.TagEncodingOption); e != nil {
		v, ok := e.EnumValue()
		if !ok || (kmip14.EncodingOption(v) != kmip14.EncodingOptionNoEncoding && kmip14.EncodingOption(v) != kmip14.EncodingOptionTTLVEncoding) {
			return nil, Errorf(kmip14.ResultReasonEncodingOptionError, "unknown Encoding Option")
		}
		ws.encoding = kmip14.EncodingOption(v)
	}
	for _, a := range n.All(kmip14.TagAttributeName) {
		s, ok := a.TextValue()
		if !ok {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Attribute Name must be a text string")
		}
		ws.attrNames = append(ws.attrNames, s)
	}
	return ws, nil
}

func wrapMode(m kmip14.BlockCipherMode) bool {
	return m == kmip14.BlockCipherModeNISTKeyWrap || m == kmip14.BlockCipherModeAESKeyWrapPadding
}

// wrapBody returns a copy of body (object o's, possibly format-converted)
// with its Key Value wrapped as ws asks. The wrapping key must be the caller's, Active,
// with Wrap Key in its usage mask: the checks of every key use.
func (p *Processor) wrapBody(ic *itemCtx, o *object.Object, body tree.View, ws *wrapSpec) (*tree.Node, error) {
	kb := body.Child(kmip14.TagKeyBlock)
	if !kb.Present() {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "a %s has no Key Block to wrap", o.Type())
	}
	if kb.Child(kmip14.TagKeyWrappingData).Present() {
		return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "the object is stored wrapped and cannot be wrapped again")
	}
	if ws.keyUID == o.UID() {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "a key cannot wrap itself")
	}
	k, err := p.useKey(ic, ws.keyUID, keyUse{mask: kmip14.CryptographicUsageMaskWrapKey, protect: true})
	if err != nil {
		return nil, err
	}
	defer k.wipe()
	if k.alg != kmip14.CryptographicAlgorithmAES || k.sym == nil {
		return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "only AES keys wrap keys")
	}
	mode := ws.mode
	if mode == 0 {
		// No mode asked: the wrapping key's own Cryptographic Parameters
		// decide, and NIST Key Wrap is the default for an AES wrapping key.
		mode = kmip14.BlockCipherModeNISTKeyWrap
		for _, cp := range k.o.All(object.AttrCryptoParameters) {
			if v, ok := cp.Value().Child(kmip14.TagBlockCipherMode).EnumValue(); ok && wrapMode(kmip14.BlockCipherMode(v)) {
				mode = kmip14.BlockCipherMode(v)
				break
			}
		}
	}
	plain, err := wrapInput(o, kb, ws)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	wrapped, err := wrapKey(mode, k.sym, plain)
	if err != nil {
		return nil, err
	}
	out := body.Clone()
	okb := out.Child(kmip14.TagKeyBlock)
	for i, c := range okb.Children {
		if c.Tag == kmip14.TagKeyValue {
			okb.Children[i] = tree.Bytes(kmip14.TagKeyValue, wrapped)
		}
	}
	params := ws.params
	if params == nil {
		// Say which mode was used, so the client can unwrap.
		params = tree.Struct(kmip14.TagCryptographicParameters, tree.Enum(kmip14.TagBlockCipherMode, uint32(mode)))
	}
	kwd := tree.Struct(kmip14.TagKeyWrappingData,
		tree.Enum(kmip14.TagWrappingMethod, uint32(kmip14.WrappingMethodEncrypt)),
		tree.Struct(kmip14.TagEncryptionKeyInformation, tree.Text(kmip14.TagUniqueIdentifier, ws.keyUID), params))
	if ws.encoding != 0 {
		kwd.Add(tree.Enum(kmip14.TagEncodingOption, uint32(ws.encoding)))
	}
	okb.Add(kwd)
	return out, nil
}

// wrapInput is what gets encrypted: the Key Value structure, TTLV-encoded,
// with the attributes asked for (the default); or, with No Encoding, the Key
// Material bytes alone, which leaves no room for attributes.
func wrapInput(o *object.Object, kb tree.View, ws *wrapSpec) ([]byte, error) {
	kv := kb.Child(kmip14.TagKeyValue)
	if kv.Type() != ttlv.TypeStructure {
		return nil, Errorf(kmip14.ResultReasonKeyValueNotPresent, "the object has no Key Value to wrap")
	}
	if ws.encoding == kmip14.EncodingOptionNoEncoding {
		km, ok := kv.Child(kmip14.TagKeyMaterial).BytesValue()
		if !ok || len(ws.attrNames) > 0 {
			return nil, Errorf(kmip14.ResultReasonEncodingOptionError, "No Encoding needs byte-string Key Material and no wrapped attributes")
		}
		return append([]byte(nil), km...), nil
	}
	v := kv.Clone()
	for _, name := range ws.attrNames {
		for _, a := range o.All(name) {
			v.Add(a.CompactAttribute())
		}
	}
	b, err := tree.Encode(v)
	if err != nil {
		return nil, fmt.Errorf("encode Key Value for wrapping: %w", err)
	}
	return b, nil
}

// wrapKey wraps plain under the AES key kek with mode (NISTKeyWrap or
// AESKeyWrapPadding), and says in KMIP terms why it cannot.
func wrapKey(mode kmip14.BlockCipherMode, kek, plain []byte) ([]byte, error) {
	wrap := aesmodes.Wrap
	if mode == kmip14.BlockCipherModeAESKeyWrapPadding {
		wrap = aesmodes.WrapPad
	}
	wrapped, err := wrap(kek, plain)
	var kse aes.KeySizeError
	switch {
	case err == nil:
		return wrapped, nil
	case errors.Is(err, aesmodes.ErrLength) && mode == kmip14.BlockCipherModeAESKeyWrapPadding:
		return nil, Errorf(kmip14.ResultReasonInvalidField, "AES Key Wrap with Padding needs 1 to 2^32-1 bytes")
	case errors.Is(err, aesmodes.ErrLength):
		return nil, Errorf(kmip14.ResultReasonInvalidField, "NIST Key Wrap needs a multiple of 8 bytes, at least 16 (got %d); use AESKeyWrapPadding", len(plain))
	case errors.As(err, &kse):
		return nil, Errorf(kmip14.ResultReasonCryptographicFailure, "wrapping key is not a valid AES key")
	}
	return nil, err
}
