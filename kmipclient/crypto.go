package kmipclient

import (
	"context"
	"errors"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Cipher is what Encrypt and Decrypt send besides the key and the data.
// Zero fields are left out, and the server then uses the key's own
// Cryptographic Parameters, if it has any.
type Cipher struct {
	Mode    kmip14.BlockCipherMode // symmetric keys: GCM, CBC, CTR, ECB
	Padding kmip14.PaddingMethod   // CBC and ECB: PKCS5 or None; RSA: OAEP or PKCS1 v1.5
	Hash    kmip14.HashingAlgorithm
	// TagLength is GCM's tag length in bytes for Encrypt (0: 16).
	TagLength int32
	// IV is the IV/Counter/Nonce. Encrypt without one in a mode that needs
	// one asks the server for a random one, which comes back in
	// Ciphertext.IV; Decrypt needs the one Encrypt used.
	IV  []byte
	AAD []byte // GCM's additional authenticated data
	Tag []byte // Decrypt in GCM: the tag Encrypt returned
}

var errNoData = errors.New("no Data in the response")

// Ciphertext is what Encrypt returns.
type Ciphertext struct {
	Data []byte
	IV   []byte // the server's IV, when it chose one
	Tag  []byte // GCM's Authenticated Encryption Tag
}

func (p Cipher) params(encrypt bool) *tree.Node {
	n := tree.Struct(kmip14.TagCryptographicParameters)
	if p.Mode != 0 {
		n.Add(tree.Enum(kmip14.TagBlockCipherMode, uint32(p.Mode)))
	}
	if p.Padding != 0 {
		n.Add(tree.Enum(kmip14.TagPaddingMethod, uint32(p.Padding)))
	}
	if p.Hash != 0 {
		n.Add(tree.Enum(kmip14.TagHashingAlgorithm, uint32(p.Hash)))
	}
	switch p.Mode {
	case kmip14.BlockCipherModeCBC, kmip14.BlockCipherModeCTR, kmip14.BlockCipherModeGCM:
		if encrypt && p.IV == nil {
			n.Add(tree.Bool(kmip14.TagRandomIV, true))
		}
	}
	if p.TagLength != 0 {
		n.Add(tree.Int(kmip14.TagTagLength, p.TagLength))
	}
	if len(n.Children) == 0 {
		return nil
	}
	return n
}

// fields are the request payload in KMIP 1.4 §4.29/§4.30's order.
func (p Cipher) fields(id string, data []byte, encrypt bool) []*tree.Node {
	if data == nil {
		data = []byte{} // the encoder leaves a nil byte string out
	}
	f := []*tree.Node{tree.Text(kmip14.TagUniqueIdentifier, id), p.params(encrypt),
		tree.Bytes(kmip14.TagData, data)}
	if p.IV != nil {
		f = append(f, tree.Bytes(kmip14.TagIVCounterNonce, p.IV))
	}
	if p.AAD != nil {
		f = append(f, tree.Bytes(kmip14.TagAuthenticatedEncryptionAdditionalData, p.AAD))
	}
	if !encrypt && p.Tag != nil {
		f = append(f, tree.Bytes(kmip14.TagAuthenticatedEncryptionTag, p.Tag))
	}
	return f
}

// Encrypt encrypts data with the key id in one request.
func (c *Client) Encrypt(ctx context.Context, id string, data []byte, p Cipher) (*Ciphertext, error) {
	r, err := c.Do(ctx, kmip14.OperationEncrypt, p.fields(id, data, true)...)
	if err != nil {
		return nil, err
	}
	d, ok := r.Child(kmip14.TagData).BytesValue()
	if !ok {
		return nil, &Error{Kind: Protocol, Operation: kmip14.OperationEncrypt, Err: errNoData}
	}
	out := &Ciphertext{Data: d}
	out.IV, _ = r.Child(kmip14.TagIVCounterNonce).BytesValue()
	out.Tag, _ = r.Child(kmip14.TagAuthenticatedEncryptionTag).BytesValue()
	return out, nil
}

// Decrypt decrypts data with the key id in one request.
func (c *Client) Decrypt(ctx context.Context, id string, data []byte, p Cipher) ([]byte, error) {
	r, err := c.Do(ctx, kmip14.OperationDecrypt, p.fields(id, data, false)...)
	if err != nil {
		return nil, err
	}
	out, ok := r.Child(kmip14.TagData).BytesValue()
	if !ok {
		return nil, &Error{Kind: Protocol, Operation: kmip14.OperationDecrypt, Err: errNoData}
	}
	return out, nil
}
