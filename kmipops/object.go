package kmipops

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"sync"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// Private tags of the stored record, in the extension range KMIP reserves
// for vendors (0x54xxxx), so a record can never be mistaken for a message.
const (
	tagRecord        = ttlv.Tag(0x540001)
	tagRecordVersion = ttlv.Tag(0x540002)
)

const recordVersion = 1

// object is one managed object: its type, every attribute instance (known,
// unknown and custom, kept verbatim) and its body, the KMIP object structure
// (SymmetricKey, PrivateKey, ...). body is nil once destroyed.
type object struct {
	uid   string
	typ   kmip14.ObjectType
	attrs []attr
	body  *tree.Node
}

// attr is one attribute instance. Its value (tag AttributeValue) is either
// decoded in node or, for an object read from storage, still encoded in raw:
// a Get reads a handful of a record's attributes, and decoding all of them
// was most of what a Get allocated. Read it with value(), which decodes on
// first use; encode writes an undecoded raw back verbatim.
type attr struct {
	name  string
	index int32
	node  *tree.Node
	raw   tree.Item
}

// value is the decoded value (nil for an attribute without one). It decodes
// raw once, into a; on a copy, only the copy keeps the result.
func (a *attr) value() *tree.Node {
	if a.node == nil && a.raw != nil {
		// raw was validated with its whole record (decodeObject), so
		// Decode cannot fail on it.
		a.node, _ = tree.Decode(a.raw, tree.DefaultLimits)
		a.raw = nil
	}
	return a.node
}

// setValue replaces the value with a decoded one.
func (a *attr) setValue(v *tree.Node) { a.node, a.raw = v, nil }

// stored is the value as the record encoder writes it: raw stays encoded.
func (a *attr) stored() *tree.Node {
	if a.node == nil && a.raw != nil {
		return tree.Raw(a.raw)
	}
	return a.node
}

// attribute renders the instance as a KMIP Attribute structure. Index 0 is left
// out, as the OASIS test cases show servers do.
func (a attr) attribute() *tree.Node {
	n := tree.Struct(kmip14.TagAttribute, tree.Text(kmip14.TagAttributeName, a.name))
	if a.index != 0 {
		n.Add(tree.Int(kmip14.TagAttributeIndex, a.index))
	}
	return n.Add(a.value().Clone())
}

func objectKey(owner, uid string) string { return "obj/" + owner + "/" + uid }

func ownerPrefix(owner string) string { return "obj/" + owner + "/" }

// encode serialises the object as the private record structure.
func (o *object) encode() ([]byte, error) {
	r := tree.Struct(tagRecord,
		tree.Int(tagRecordVersion, recordVersion),
		tree.Enum(kmip14.TagObjectType, uint32(o.typ)),
		tree.Text(kmip14.TagUniqueIdentifier, o.uid),
	)
	for _, a := range o.attrs {
		n := tree.Struct(kmip14.TagAttribute, tree.Text(kmip14.TagAttributeName, a.name))
		if a.index != 0 {
			// decodeObject reads an absent index as 0; leaving it out
			// takes a fifth of the nodes out of every record decode.
			n.Add(tree.Int(kmip14.TagAttributeIndex, a.index))
		}
		r.Add(n.Add(a.stored()))
	}
	if o.body != nil {
		r.Add(o.body)
	}
	return tree.Encode(r)
}

// decodeObject reads a record. It validates all of b, as tree.Decode would,
// but decodes only the object's body: attribute values are copied, still
// encoded, into one buffer and decoded when first used (attr.value). The
// result shares nothing with b, which the caller clears.
func decodeObject(uid string, b []byte) (*object, error) {
	if err := tree.Validate(b, tree.DefaultLimits); err != nil {
		return nil, err
	}
	r := tree.Item(b)
	if r.Tag() != tagRecord || r.Type() != ttlv.TypeStructure {
		return nil, fmt.Errorf("not an object record")
	}
	if v, _ := r.Child(tagRecordVersion).IntValue(); v != recordVersion {
		return nil, fmt.Errorf("record version %d not supported", v)
	}
	t, ok := r.Child(kmip14.TagObjectType).EnumValue()
	if !ok {
		return nil, fmt.Errorf("record without object type")
	}
	if id, _ := r.Child(kmip14.TagUniqueIdentifier).TextBytes(); string(id) != uid {
		// The AAD already binds the uid; this catches programming errors.
		return nil, fmt.Errorf("record uid mismatch")
	}
	// Sized once: nearly every child is an attribute.
	n, rawLen := 0, 0
	for c := range r.Children() {
		if c.Tag() == kmip14.TagAttribute {
			n++
			rawLen += len(c.Child(kmip14.TagAttributeValue))
		}
	}
	o := &object{uid: uid, typ: kmip14.ObjectType(t), attrs: make([]attr, 0, n)}
	raw := make([]byte, 0, rawLen)
	for c := range r.Children() {
		switch c.Tag() {
		case tagRecordVersion, kmip14.TagObjectType, kmip14.TagUniqueIdentifier:
		case kmip14.TagAttribute:
			name, _ := c.Child(kmip14.TagAttributeName).TextBytes()
			idx, _ := c.Child(kmip14.TagAttributeIndex).IntValue()
			val := c.Child(kmip14.TagAttributeValue)
			if len(name) == 0 || val == nil {
				return nil, fmt.Errorf("malformed attribute in record")
			}
			start := len(raw)
			raw = append(raw, val...)
			o.attrs = append(o.attrs, attr{name: internName(name), index: idx, raw: raw[start:len(raw):len(raw)]})
		default:
			body, err := tree.Decode(c, tree.DefaultLimits)
			if err != nil {
				return nil, err
			}
			o.body = body
		}
	}
	return o, nil
}

var errNotFound = Errorf(kmip14.ResultReasonItemNotFound, "object not found")

// validUID bounds what a client-supplied identifier may be before it goes
// into a storage key; anything else simply does not exist.
func validUID(uid string) bool {
	if uid == "" || len(uid) > 128 {
		return false
	}
	for _, r := range uid {
		if r < 0x21 || r > 0x7e || r == '/' {
			return false
		}
	}
	return true
}

// load reads and opens the caller's object uid. Another owner's uid is
// simply not under this caller's prefix, so it is not found either.
func (p *Processor) load(ic *itemCtx, uid string) (*object, error) {
	if !validUID(uid) {
		return nil, errNotFound
	}
	owner, key := ic.caller.Identity, objectKey(ic.caller.Identity, uid)
	read := p.objects.begin(owner)
	o, sealed, err := p.objects.fetch(ic.ctx, p.st, read, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read object: %w", err)
	}
	if o != nil {
		return o, nil
	}
	keep := p.objects.mayKeep(read)
	var record []byte
	if keep {
		record = bytes.Clone(sealed) // opening overwrites sealed
	}
	plain, err := p.seal.OpenInPlace(ic.ctx, owner, []byte(uid), sealed)
	if err != nil {
		return nil, fmt.Errorf("open object: %w", err)
	}
	o, err = decodeObject(uid, plain)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("decode object record: %w", err)
	}
	if !keep {
		return o, nil
	}
	p.objects.put(read, owner, key, record, o)
	return o.clone(), nil
}

func (p *Processor) sealObject(ic *itemCtx, o *object) ([]byte, error) {
	plain, err := o.encode()
	if err != nil {
		return nil, fmt.Errorf("encode object record: %w", err)
	}
	defer clear(plain)
	sealed, err := p.seal.Seal(ic.ctx, ic.caller.Identity, []byte(o.uid), plain)
	if err != nil {
		return nil, fmt.Errorf("seal object: %w", err)
	}
	return sealed, nil
}

// save overwrites an existing object (the caller holds its lock).
func (p *Processor) save(ic *itemCtx, o *object) error {
	sealed, err := p.sealObject(ic, o)
	if err != nil {
		return err
	}
	if err := p.undoBefore(ic, o.uid, false); err != nil {
		return err
	}
	key := objectKey(ic.caller.Identity, o.uid)
	defer p.objects.drop(key) // also after a failed write, whose outcome is unknown
	if err := p.st.Put(ic.ctx, key, sealed); err != nil {
		return fmt.Errorf("write object: %w", err)
	}
	ic.undoAfter(o.uid, sealed)
	return nil
}

// insert stores a new object under a fresh random uid.
func (p *Processor) insert(ic *itemCtx, o *object) error {
	uid, err := p.newUID()
	if err != nil {
		return err
	}
	o.uid = uid
	return p.insertWithUID(ic, o)
}

// insertWithUID stores a new object under o.uid, which must be fresh: with
// 122 random bits a collision means a broken RNG, so it is an error.
func (p *Processor) insertWithUID(ic *itemCtx, o *object) error {
	o.set(attrUniqueIdentifier, tree.Text(kmip14.TagAttributeValue, o.uid))
	sealed, err := p.sealObject(ic, o)
	if err != nil {
		return err
	}
	if err := p.undoBefore(ic, o.uid, true); err != nil {
		return err
	}
	err = p.st.Create(ic.ctx, objectKey(ic.caller.Identity, o.uid), sealed)
	if err != nil {
		return fmt.Errorf("create object: %w", err)
	}
	ic.undoAfter(o.uid, sealed)
	return nil
}

// remove deletes a stored object (used to roll back half a key pair).
func (p *Processor) remove(ic *itemCtx, uid string) error {
	if err := p.undoBefore(ic, uid, false); err != nil {
		return err
	}
	key := objectKey(ic.caller.Identity, uid)
	defer p.objects.drop(key)
	if err := p.st.Delete(ic.ctx, key); err != nil {
		return err
	}
	ic.undoAfter(uid, nil)
	return nil
}

// newUID returns a random 128-bit identifier in UUID form.
func (p *Processor) newUID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(p.opts.Rand, b[:]); err != nil {
		return "", fmt.Errorf("random uid: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// lockMap serialises read-modify-write operations per object with a fixed
// set of stripes, so memory stays bounded however many objects exist.
type lockMap struct{ stripes [256]sync.Mutex }

func newLockMap() *lockMap { return &lockMap{} }

func (l *lockMap) lock(owner, uid string) func() {
	h := fnv.New32a()
	h.Write([]byte(owner))
	h.Write([]byte{0})
	h.Write([]byte(uid))
	m := &l.stripes[h.Sum32()%uint32(len(l.stripes))]
	m.Lock()
	return m.Unlock
}

// update runs fn on the caller's object uid under its lock and saves the
// result when fn reports a change.
func (p *Processor) update(ic *itemCtx, uid string, fn func(o *object) (changed bool, err error)) (*object, error) {
	if !validUID(uid) {
		return nil, errNotFound
	}
	defer p.locks.lock(ic.caller.Identity, uid)()
	o, err := p.load(ic, uid)
	if err != nil {
		return nil, err
	}
	changed, err := fn(o)
	if err != nil {
		return nil, err
	}
	if changed {
		if err := p.save(ic, o); err != nil {
			return nil, err
		}
	}
	return o, nil
}
