package kmipops

import (
	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Meta-data only keys (KMIP 1.2 §2.1.3, §3.41, §3.42). From KMIP 1.2 on, a
// client may register a key's Key Block without its Key Value: the server
// then holds what is known about a key kept elsewhere (Key Value Location)
// and sets Key Value Present to false. Get serves the Key Block as it is;
// every operation that needs the value (cryptography, derivation, splitting,
// wrapping, format conversion) refuses with Key Value Not Present.

// metaDataOnlyTypes are the object types a Key Value Present attribute
// applies to.
var metaDataOnlyTypes = map[kmip14.ObjectType]bool{
	kmip14.ObjectTypeSymmetricKey: true,
	kmip14.ObjectTypePrivateKey:   true,
	kmip14.ObjectTypePublicKey:    true,
	kmip14.ObjectTypeSplitKey:     true,
	kmip14.ObjectTypeSecretData:   true,
}

// errNoKeyValue answers a use of a meta-data only key's value.
func errNoKeyValue() error {
	return Errorf(kmip14.ResultReasonKeyValueNotPresent, "the object has no Key Value: it is kept outside the server")
}

// requireKeyValue refuses a Key Block that has neither a Key Value nor Key
// Wrapping Data (whose Key Value the wrapped-key checks look at).
func requireKeyValue(kb tree.View) error {
	if !kb.Child(kmip14.TagKeyValue).Present() && !kb.Child(kmip14.TagKeyWrappingData).Present() {
		return errNoKeyValue()
	}
	return nil
}

// checkMetaDataOnly admits a registered Key Block without a Key Value: only
// from KMIP 1.2 on, only for the types Key Value Present applies to, and
// with nothing wrapped (there is no value to have been wrapped).
func checkMetaDataOnly(ot kmip14.ObjectType, kb *tree.Node, minor int32) error {
	switch {
	case minor < 2:
		return Errorf(kmip14.ResultReasonInvalidMessage, "Key Block needs a Key Value (KMIP 1.%d)", minor)
	case !metaDataOnlyTypes[ot]:
		return Errorf(kmip14.ResultReasonInvalidMessage, "a %s needs a Key Value", ot)
	case kb.Child(kmip14.TagKeyWrappingData) != nil:
		return Errorf(kmip14.ResultReasonInvalidMessage, "Key Wrapping Data without a Key Value")
	}
	return nil
}
