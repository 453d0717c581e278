package testkit

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/conformance"
	"github.com/kmipd/kmipd/kmipmsg"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// DefaultTimeout bounds one request of a Client unless Client.Timeout says otherwise.
const DefaultTimeout = 30 * time.Second

// maxIdleConns bounds the connections a Client keeps open between requests.
const maxIdleConns = 16

// Client is a KMIP 1.4 client for one identity. It is safe for concurrent
// use: each request takes an idle connection or dials a new one (mutual TLS),
// and gives it back afterwards, as Barbican's workers each hold their own.
// A connection that failed at the transport is closed, never reused.
type Client struct {
	Name              string
	CertFile, KeyFile string // the identity's PEM files
	CAFile            string
	Owner             string // kmipd's identity for this certificate
	// Timeout bounds each request (dial included); DefaultTimeout if zero.
	Timeout time.Duration

	addr string
	tls  *tls.Config

	mu   sync.Mutex
	idle []conformance.Conn
}

// Error is a KMIP failure: the batch item's Result Status, Result Reason and
// Result Message.
type Error struct {
	Operation     kmip14.Operation
	ResultStatus  kmip14.ResultStatus
	ResultReason  kmip14.ResultReason
	ResultMessage string
}

func (e *Error) Error() string {
	return fmt.Sprintf("kmip %s: %s: %s: %s", e.Operation, e.ResultStatus, e.ResultReason, e.ResultMessage)
}

// Close closes the idle connections; the Client stays usable.
func (c *Client) Close() {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	for _, cn := range idle {
		_ = cn.Close()
	}
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

func (c *Client) conn(ctx context.Context) (conformance.Conn, error) {
	c.mu.Lock()
	if n := len(c.idle); n > 0 {
		cn := c.idle[n-1]
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return cn, nil
	}
	c.mu.Unlock()
	return conformance.DialTLS(ctx, c.addr, c.tls)
}

func (c *Client) release(cn conformance.Conn) {
	c.mu.Lock()
	if len(c.idle) < maxIdleConns {
		c.idle = append(c.idle, cn)
		cn = nil
	}
	c.mu.Unlock()
	if cn != nil {
		_ = cn.Close()
	}
}

// Do sends one request with one batch item (protocol 1.4) and returns the
// item's Response Payload, or an *Error when the item failed. Transport
// failures are returned as other errors.
func (c *Client) Do(ctx context.Context, op kmip14.Operation, payload ...*tree.Node) (*tree.Node, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	req := kmipmsg.Request(kmipmsg.Version{Major: 1, Minor: 4}, kmipmsg.Options{}, kmipmsg.Item(op, payload...))
	cn, err := c.conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("testkit: %s: dial %s: %w", op, c.addr, err)
	}
	resp, err := cn.RoundTrip(ctx, req)
	if err != nil {
		_ = cn.Close()
		return nil, fmt.Errorf("testkit: %s: %w", op, err)
	}
	c.release(cn)
	return parseResponse(op, resp)
}

func parseResponse(op kmip14.Operation, resp *tree.Node) (*tree.Node, error) {
	if resp.Tag != kmip14.TagResponseMessage {
		return nil, fmt.Errorf("testkit: %s: response is a %s, not a Response Message", op, resp.Tag)
	}
	rs := kmipmsg.Results(resp)
	if len(rs) != 1 {
		return nil, fmt.Errorf("testkit: %s: %d batch items in the response, want 1", op, len(rs))
	}
	r := rs[0]
	if r.Status == kmipmsg.NoStatus {
		return nil, fmt.Errorf("testkit: %s: response item without a Result Status", op)
	}
	if !r.OK() {
		return nil, &Error{Operation: op, ResultStatus: r.Status, ResultReason: r.Reason, ResultMessage: r.Message}
	}
	if r.Operation != 0 && r.Operation != op {
		return nil, fmt.Errorf("testkit: %s: response names operation %s", op, r.Operation)
	}
	if r.Payload == nil {
		return nil, fmt.Errorf("testkit: %s: successful item without a Response Payload", op)
	}
	return r.Payload, nil
}

func attribute(name string, v *tree.Node) *tree.Node {
	v.Tag = kmip14.TagAttributeValue
	return tree.Struct(kmip14.TagAttribute, tree.Text(kmip14.TagAttributeName, name), v)
}

func uidOf(op kmip14.Operation, p *tree.Node) (string, error) {
	uid, ok := p.Child(kmip14.TagUniqueIdentifier).TextValue()
	if !ok || uid == "" {
		return "", fmt.Errorf("testkit: %s: no Unique Identifier in the response", op)
	}
	return uid, nil
}

// Create makes an AES-256 symmetric key (Encrypt|Decrypt) and returns its uid.
func (c *Client) Create() (string, error) {
	p, err := c.Do(context.Background(), kmip14.OperationCreate,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)),
		tree.Struct(kmip14.TagTemplateAttribute,
			attribute("Cryptographic Algorithm", tree.Enum(0, uint32(kmip14.CryptographicAlgorithmAES))),
			attribute("Cryptographic Length", tree.Int(0, 256)),
			attribute("Cryptographic Usage Mask", tree.Int(0,
				int32(kmip14.CryptographicUsageMaskEncrypt|kmip14.CryptographicUsageMaskDecrypt)))))
	if err != nil {
		return "", err
	}
	return uidOf(kmip14.OperationCreate, p)
}

// Register stores secret as Secret Data (a password, opaque format, as
// Barbican stores passphrases) and returns its uid.
func (c *Client) Register(secret []byte) (string, error) {
	p, err := c.Do(context.Background(), kmip14.OperationRegister,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSecretData)),
		tree.Struct(kmip14.TagTemplateAttribute),
		tree.Struct(kmip14.TagSecretData,
			tree.Enum(kmip14.TagSecretDataType, uint32(kmip14.SecretDataTypePassword)),
			tree.Struct(kmip14.TagKeyBlock,
				tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeOpaque)),
				tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, secret)))))
	if err != nil {
		return "", err
	}
	return uidOf(kmip14.OperationRegister, p)
}

// Get returns the object's key material (Key Block / Key Value / Key Material).
func (c *Client) Get(uid string) ([]byte, error) {
	p, err := c.Do(context.Background(), kmip14.OperationGet, tree.Text(kmip14.TagUniqueIdentifier, uid))
	if err != nil {
		return nil, err
	}
	if got, _ := p.Child(kmip14.TagUniqueIdentifier).TextValue(); got != uid {
		return nil, fmt.Errorf("testkit: Get %s: response is for %q", uid, got)
	}
	if m := findBytes(p, kmip14.TagKeyMaterial); m != nil {
		return m, nil
	}
	return nil, fmt.Errorf("testkit: Get %s: no Key Material in the response", uid)
}

// Destroy destroys the object.
func (c *Client) Destroy(uid string) error {
	p, err := c.Do(context.Background(), kmip14.OperationDestroy, tree.Text(kmip14.TagUniqueIdentifier, uid))
	if err != nil {
		return err
	}
	if got, _ := p.Child(kmip14.TagUniqueIdentifier).TextValue(); got != uid {
		return fmt.Errorf("testkit: Destroy %s: response is for %q", uid, got)
	}
	return nil
}

// findBytes returns the first byte string with tag, depth first.
func findBytes(n *tree.Node, tag ttlv.Tag) []byte {
	if n == nil {
		return nil
	}
	if n.Tag == tag && n.Type == ttlv.TypeByteString {
		return bytes.Clone(n.Bytes)
	}
	for _, c := range n.Children {
		if b := findBytes(c, tag); b != nil {
			return b
		}
	}
	return nil
}

// IsReason reports whether err is a KMIP failure with the given reason.
func IsReason(err error, reason kmip14.ResultReason) bool {
	var e *Error
	return errors.As(err, &e) && e.ResultReason == reason
}
