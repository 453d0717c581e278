package kmipclient

import (
	"context"
	"fmt"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// KeySpec describes a key for Create or CreateKeyPair.
type KeySpec struct {
	Algorithm kmip14.CryptographicAlgorithm
	Length    int32                   // bits; 0 leaves it to the server (AES: 256)
	Curve     kmip14.RecommendedCurve // EC key pairs: the curve, instead of Length
	// UsageMask, when non-zero, replaces the server's default usage.
	UsageMask kmip14.CryptographicUsageMask
	// Attributes are added to the template (Name, Activation Date, ...);
	// for a key pair, to both keys.
	Attributes []Attribute
}

func (s KeySpec) attributes() []Attribute {
	l := []Attribute{Algorithm(s.Algorithm)}
	if s.Length != 0 {
		l = append(l, Length(s.Length))
	}
	if s.Curve != 0 {
		l = append(l, Attr("Cryptographic Domain Parameters",
			tree.Struct(0, tree.Enum(kmip14.TagRecommendedCurve, uint32(s.Curve)))))
	}
	if s.UsageMask != 0 {
		l = append(l, UsageMask(s.UsageMask))
	}
	return append(l, s.Attributes...)
}

func uid(p *tree.Node, op kmip14.Operation) (string, error) {
	return text(p, op, kmip14.TagUniqueIdentifier)
}

// text reads a required text field of a payload.
func text(p *tree.Node, op kmip14.Operation, tag ttlv.Tag) (string, error) {
	s, ok := p.Child(tag).TextValue()
	if !ok || s == "" {
		return "", &Error{Kind: Protocol, Operation: op, Err: fmt.Errorf("no %s in the response", TagName(tag))}
	}
	return s, nil
}

// Create makes a symmetric key on the server and returns its Unique
// Identifier.
func (c *Client) Create(ctx context.Context, s KeySpec) (string, error) {
	p, err := c.Do(ctx, kmip14.OperationCreate,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)),
		template(kmip14.TagTemplateAttribute, s.attributes()))
	if err != nil {
		return "", err
	}
	return uid(p, kmip14.OperationCreate)
}

// CreateKeyPair makes an asymmetric key pair and returns the Unique
// Identifiers of its private and public keys.
func (c *Client) CreateKeyPair(ctx context.Context, s KeySpec) (private, public string, err error) {
	const op = kmip14.OperationCreateKeyPair
	p, err := c.Do(ctx, op, template(kmip14.TagCommonTemplateAttribute, s.attributes()))
	if err != nil {
		return "", "", err
	}
	if private, err = text(p, op, kmip14.TagPrivateKeyUniqueIdentifier); err != nil {
		return "", "", err
	}
	public, err = text(p, op, kmip14.TagPublicKeyUniqueIdentifier)
	return private, public, err
}

// Register stores o with attrs and returns its Unique Identifier.
func (c *Client) Register(ctx context.Context, o *Object, attrs ...Attribute) (string, error) {
	body, err := o.body()
	if err != nil {
		return "", err
	}
	p, err := c.Do(ctx, kmip14.OperationRegister,
		tree.Enum(kmip14.TagObjectType, uint32(o.Type)),
		// Register requires the Template-Attribute, even an empty one.
		template(kmip14.TagTemplateAttribute, attrs),
		body)
	if err != nil {
		return "", err
	}
	return uid(p, kmip14.OperationRegister)
}

// Get returns the object; format, when non-zero, asks the server for that
// Key Format Type (a key converted from the one it was stored in).
func (c *Client) Get(ctx context.Context, id string, format kmip14.KeyFormatType) (*Object, error) {
	const op = kmip14.OperationGet
	var f *tree.Node
	if format != 0 {
		f = tree.Enum(kmip14.TagKeyFormatType, uint32(format))
	}
	p, err := c.Do(ctx, op, tree.Text(kmip14.TagUniqueIdentifier, id), f)
	if err != nil {
		return nil, err
	}
	t, ok := p.Child(kmip14.TagObjectType).EnumValue()
	if !ok {
		return nil, &Error{Kind: Protocol, Operation: op, Err: fmt.Errorf("no Object Type in the response")}
	}
	o, err := objectOf(kmip14.ObjectType(t), p)
	if err != nil {
		return nil, &Error{Kind: Protocol, Operation: op, Err: err}
	}
	return o, nil
}

// Locate returns the identifiers of the caller's objects that have every
// attribute in attrs; maxItems, when positive, caps how many.
func (c *Client) Locate(ctx context.Context, maxItems int32, attrs ...Attribute) ([]string, error) {
	var fields []*tree.Node
	if maxItems > 0 {
		fields = append(fields, tree.Int(kmip14.TagMaximumItems, maxItems))
	}
	for _, a := range attrs {
		fields = append(fields, a.Node())
	}
	p, err := c.Do(ctx, kmip14.OperationLocate, fields...)
	if err != nil {
		return nil, err
	}
	ids := []string{}
	for _, n := range p.All(kmip14.TagUniqueIdentifier) {
		if s, ok := n.TextValue(); ok {
			ids = append(ids, s)
		}
	}
	return ids, nil
}

// GetAttributes returns the object's attributes named in names, or all of
// them when names is empty.
func (c *Client) GetAttributes(ctx context.Context, id string, names ...string) ([]Attribute, error) {
	fields := []*tree.Node{tree.Text(kmip14.TagUniqueIdentifier, id)}
	for _, n := range names {
		fields = append(fields, tree.Text(kmip14.TagAttributeName, n))
	}
	p, err := c.Do(ctx, kmip14.OperationGetAttributes, fields...)
	if err != nil {
		return nil, err
	}
	return attributesOf(p), nil
}

// Activate makes a Pre-Active object Active.
func (c *Client) Activate(ctx context.Context, id string) error {
	_, err := c.Do(ctx, kmip14.OperationActivate, tree.Text(kmip14.TagUniqueIdentifier, id))
	return err
}

// Revoke revokes the object for reason code (with an optional message): a
// compromise makes it Compromised, anything else Deactivated.
func (c *Client) Revoke(ctx context.Context, id string, code kmip14.RevocationReasonCode, message string) error {
	rr := tree.Struct(kmip14.TagRevocationReason, tree.Enum(kmip14.TagRevocationReasonCode, uint32(code)))
	if message != "" {
		rr.Add(tree.Text(kmip14.TagRevocationMessage, message))
	}
	_, err := c.Do(ctx, kmip14.OperationRevoke, tree.Text(kmip14.TagUniqueIdentifier, id), rr)
	return err
}

// Destroy destroys the object's material; its attributes remain.
func (c *Client) Destroy(ctx context.Context, id string) error {
	_, err := c.Do(ctx, kmip14.OperationDestroy, tree.Text(kmip14.TagUniqueIdentifier, id))
	return err
}

// ServerInfo is what Query reports.
type ServerInfo struct {
	Operations  []kmip14.Operation
	ObjectTypes []kmip14.ObjectType
	Vendor      string
}

// Query asks the server for its operations, object types and vendor.
func (c *Client) Query(ctx context.Context) (*ServerInfo, error) {
	p, err := c.Do(ctx, kmip14.OperationQuery,
		tree.Enum(kmip14.TagQueryFunction, uint32(kmip14.QueryFunctionQueryOperations)),
		tree.Enum(kmip14.TagQueryFunction, uint32(kmip14.QueryFunctionQueryObjects)),
		tree.Enum(kmip14.TagQueryFunction, uint32(kmip14.QueryFunctionQueryServerInformation)))
	if err != nil {
		return nil, err
	}
	info := &ServerInfo{}
	for _, n := range p.All(kmip14.TagOperation) {
		v, _ := n.EnumValue()
		info.Operations = append(info.Operations, kmip14.Operation(v))
	}
	for _, n := range p.All(kmip14.TagObjectType) {
		v, _ := n.EnumValue()
		info.ObjectTypes = append(info.ObjectTypes, kmip14.ObjectType(v))
	}
	info.Vendor, _ = p.Child(kmip14.TagVendorIdentification).TextValue()
	return info, nil
}
