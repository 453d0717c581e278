package object

import (
	"context"
	"errors"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// ErrExists answers an Import, without Replace Existing, of a uid the
// caller's owner already has an object under.
var ErrExists = errorf(kmip14.ResultReasonObjectAlreadyExists, "an object with this Unique Identifier exists")

// ValidUID reports whether uid can name an object: printable ASCII without
// '/', 1 to 128 bytes. The uids the server draws always are; a client's
// (Import) is checked with it.
func ValidUID(uid string) bool { return validUID(uid) }

// Supplied is one attribute instance a KMIP Import gives, and whether the
// client named its Attribute Index.
type Supplied struct {
	Attr    Attr
	Indexed bool
}

// NewImported builds the object a KMIP 1.4 Import stores under uid. The
// supplied attributes are kept as given, server-managed ones included
// (State, Initial Date, Digest, ...): for Import "the attribute rules for
// each attribute for 'Initially set by' and 'When implicitly set' SHALL NOT
// be enforced as all attributes MUST be set to the supplied values rather
// than any server generated values". What the client does not give is what
// New would set from s. Still refused (Invalid Field): a Unique Identifier,
// Object Type or Certificate Type contradicting the request (its uid, its
// object), a State that is none, a single-instance attribute given twice or
// with an index other than 0, and an index given twice. A Destroyed (or
// Destroyed Compromised) object is stored without its material, as Destroy
// leaves one.
func NewImported(s Spec, uid string, supplied []Supplied) (*Object, error) {
	if s.Body == nil {
		return nil, errorf(kmip14.ResultReasonInvalidMessage, "Import needs the object")
	}
	given := map[string]int{}
	var settable []Attr
	for _, sa := range supplied {
		name := sa.Attr.name
		d, known := defs[name]
		given[name]++
		if known && !d.multi && given[name] > 1 {
			return nil, errorf(kmip14.ResultReasonInvalidField, "attribute %q given more than once", name)
		}
		if known && d.rules&setClient != 0 {
			// So that what New derives from them (Always Sensitive,
			// Never Extractable) agrees when the client omits those.
			settable = append(settable, sa.Attr)
		}
	}
	s.Attrs = settable
	base, err := New(s)
	if err != nil {
		return nil, err
	}
	o := &Object{uid: uid, typ: s.Type, body: s.Body}
	for _, a := range base.attrs {
		if given[a.name] == 0 {
			o.attrs = append(o.attrs, a)
		}
	}
	used := map[string]map[int32]bool{}
	take := func(name string, i int32) bool {
		if used[name] == nil {
			used[name] = map[int32]bool{}
		}
		if used[name][i] {
			return false
		}
		used[name][i] = true
		return true
	}
	// Named indices are kept; the others take the next free one, in order.
	for _, sa := range supplied {
		if d, known := defs[sa.Attr.name]; sa.Indexed && known && !d.multi && sa.Attr.index != 0 {
			return nil, errorf(kmip14.ResultReasonInvalidField, "attribute %q has a single instance, index 0", sa.Attr.name)
		}
		if sa.Indexed && !take(sa.Attr.name, sa.Attr.index) {
			return nil, errorf(kmip14.ResultReasonInvalidField, "attribute %q index %d given twice", sa.Attr.name, sa.Attr.index)
		}
	}
	for _, sa := range supplied {
		a := Attr{name: sa.Attr.name, index: sa.Attr.index, node: withUsageCount(sa.Attr.name, sa.Attr.value())}
		if !sa.Indexed {
			a.index = 0
			for !take(a.name, a.index) {
				a.index++
			}
		}
		o.attrs = append(o.attrs, a)
	}
	if err := o.checkImported(uid); err != nil {
		return nil, err
	}
	o.Set(AttrUniqueIdentifier, tree.Text(0, uid))
	if o.Destroyed() {
		o.body = nil
	}
	return o, nil
}

// checkImported refuses supplied attributes that contradict the request
// or the object itself.
func (o *Object) checkImported(uid string) error {
	if v := o.Get(AttrUniqueIdentifier); v.Present() {
		if s, _ := v.TextValue(); s != uid {
			return errorf(kmip14.ResultReasonInvalidField, "the Unique Identifier attribute differs from the request's")
		}
	}
	if v, _ := o.Get(AttrObjectType).EnumValue(); kmip14.ObjectType(v) != o.typ {
		return errorf(kmip14.ResultReasonInvalidField, "the Object Type attribute differs from the request's")
	}
	if o.typ == kmip14.ObjectTypeCertificate {
		ct := o.body.Child(kmip14.TagCertificateType)
		if v, _ := o.Get(AttrCertificateType).EnumValue(); ct == nil || ct.Type != ttlv.TypeEnumeration || int64(v) != ct.Int {
			return errorf(kmip14.ResultReasonInvalidField, "the Certificate Type attribute differs from the certificate's")
		}
	}
	if o.Has(AttrState) {
		switch o.State() {
		case kmip14.StatePreActive, kmip14.StateActive, kmip14.StateDeactivated, kmip14.StateCompromised,
			kmip14.StateDestroyed, kmip14.StateDestroyedCompromised:
		default:
			return errorf(kmip14.ResultReasonInvalidField, "State %d is not a KMIP state", uint32(o.State()))
		}
	}
	return nil
}

// Import stores o (from NewImported) under its uid, as KMIP Import does:
// as a new object, or, when replace is set, in place of the owner's object
// under that uid, whose index entries it moves in the same write. Without
// replace an existing object is ErrExists. An object of another credential
// identity is ErrDenied whether or not it is replaced (access.go); archived
// objects are replaced like the others. Another owner's objects are under
// another prefix: the same uid there is neither seen nor touched.
func (s *Scope) Import(ctx context.Context, o *Object, replace bool) error {
	if !validUID(o.uid) {
		return errorf(kmip14.ResultReasonInvalidField, "Unique Identifier must be 1 to 128 printable ASCII characters without '/'")
	}
	defer s.r.locks.lock(s.owner, o.uid)()
	if s.bound && o.creator == "" {
		o.creator = s.principal
	}
	o.stamp = s.r.stamp.next()
	for try := 0; ; try++ {
		old, raw, err := s.read(ctx, o.uid, s.r.shared != nil)
		switch {
		case errors.Is(err, ErrNotFound):
			if err := s.create(ctx, o); err != nil {
				if errors.Is(err, storage.ErrExists) { // made meanwhile by another replica
					return ErrExists
				}
				return err
			}
			return nil
		case err != nil:
			return err
		case !s.allowed(old):
			return ErrDenied
		case !replace:
			return ErrExists
		}
		// A compare-and-set on a shared store: the entries moved are
		// those of the record replaced, whoever wrote it last.
		_, err = s.save(ctx, old, o, raw)
		if retryConflict(ctx, err, try) {
			continue
		}
		return contended(err)
	}
}
