package kmipops

import (
	"sort"
	"sync"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// Object groups (KMIP 1.1+ §3.33) and Locate's Object Group Member (§4.9).
// Which member a group serves is server policy; kmipd's:
//
//   - Group Member Fresh: the group's Fresh members (§3.34: not served to a
//     client yet), oldest first, so a pool of keys made ahead is handed out
//     in the order it was filled. If the group is the server's default
//     group (Options.DefaultObjectGroup; "default" in kmipd.hcl) and has no
//     Fresh member left, the server makes one on the fly (§4.9 allows it):
//     an AES-256 key for Encrypt and Decrypt in that group, Pre-Active, if
//     it matches every criterion of the Locate.
//   - Group Member Default: the group's members in turn (round robin), the
//     Active ones if it has any: the default member is the one after the
//     member a Get last served from the group, in the order the members
//     were made. The rotation is kept in memory per kmipd process, per
//     owner, credential identity and group; after a restart it starts
//     again at the oldest member.
//
// A server MAY also put every object whose client names no group into its
// default group (§3.33); kmipd does so only with Options.AssignDefaultGroup
// (kmip.assign_default_group), off by default: clients that list all
// attributes then see an Object Group they never set.

// assignedGroup is the Object Group a new object gets when its client
// names none: the default group, if Options.AssignDefaultGroup.
func (p *Processor) assignedGroup() string {
	if p.opts.AssignDefaultGroup {
		return p.opts.DefaultObjectGroup
	}
	return ""
}

// DefaultObjectGroup is the name KMIP reserves for the default group
// (§3.33), kmipd.hcl's kmip.default_object_group unless set otherwise.
const DefaultObjectGroup = "default"

// Default group's generated members: what the server makes on the fly.
const (
	defaultGroupAlg    = kmip14.CryptographicAlgorithmAES
	defaultGroupLength = 256
	defaultGroupMask   = uint32(kmip14.CryptographicUsageMaskEncrypt | kmip14.CryptographicUsageMaskDecrypt)
)

// maxRotations bounds the rotation table; beyond it an arbitrary entry is
// forgotten (that group starts its rotation again).
const maxRotations = 10000

// groupMember is a Locate match, with what the member policies need.
type groupMember struct {
	uid    string
	order  int64
	active bool
}

// rotations remembers, per owner, credential identity and group, the last
// member a Get served, for Group Member Default.
type rotations struct {
	mu   sync.Mutex
	last map[string]groupMember
}

func newRotations() *rotations { return &rotations{last: map[string]groupMember{}} }

func rotationKey(ic *itemCtx, group string) string {
	return ic.caller.Identity + "\x00" + ic.objects.Principal() + "\x00" + group
}

// pick returns the default member of a group among hits: the first, in
// order of making, after the one a Get last served (wrapping around),
// among the Active members if there are any. It starts remembering the
// group when group is not empty.
func (r *rotations) pick(ic *itemCtx, group string, hits []groupMember) groupMember {
	var active []groupMember
	for _, h := range hits {
		if h.active {
			active = append(active, h)
		}
	}
	if len(active) > 0 {
		hits = active
	}
	sort.Slice(hits, func(i, j int) bool { return before(hits[i], hits[j]) })
	var last groupMember
	if group != "" {
		key := rotationKey(ic, group)
		r.mu.Lock()
		var ok bool
		if last, ok = r.last[key]; !ok {
			if len(r.last) >= maxRotations {
				for k := range r.last {
					delete(r.last, k)
					break
				}
			}
			r.last[key] = groupMember{}
		}
		r.mu.Unlock()
	}
	for _, h := range hits {
		if before(last, h) {
			return h
		}
	}
	return hits[0]
}

// served advances the rotation of every group of o that is remembered.
func (r *rotations) served(ic *itemCtx, o *object.Object) {
	groups := o.All(object.AttrObjectGroup)
	if len(groups) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, g := range groups {
		name, _ := g.Value().TextValue()
		key := rotationKey(ic, name)
		if _, ok := r.last[key]; ok {
			r.last[key] = groupMember{uid: o.UID(), order: o.Order()}
		}
	}
}

// before orders members as they were made (uid breaks ties).
func before(a, b groupMember) bool {
	if a.order != b.order {
		return a.order < b.order
	}
	return a.uid < b.uid
}

// locatedGroup is the one Object Group a Locate names ("" for none or
// several).
func locatedGroup(crit []object.Attr) string {
	group, n := "", 0
	for _, c := range crit {
		if c.Name() == object.AttrObjectGroup {
			group, _ = c.Value().TextValue()
			n++
		}
	}
	if n != 1 {
		return ""
	}
	return group
}

// freshDefaultMember makes a Fresh member of the server's default group
// for a Locate that found none, if the Locate asks for the default group
// and the new key would match every criterion; nil otherwise.
func (p *Processor) freshDefaultMember(ic *itemCtx, group string, m *matcher) (*object.Object, error) {
	if p.opts.DefaultObjectGroup == "" || group != p.opts.DefaultObjectGroup {
		return nil, nil
	}
	attrs := []object.Attr{
		object.NewAttr(object.AttrCryptoAlgorithm, tree.Enum(0, uint32(defaultGroupAlg))),
		object.NewAttr(object.AttrCryptoLength, tree.Int(0, defaultGroupLength)),
		object.NewAttr(object.AttrUsageMask, tree.Int(0, int32(defaultGroupMask))),
		object.NewAttr(object.AttrObjectGroup, tree.Text(0, group)),
	}
	o, err := p.newSymmetric(ic, attrs, nil)
	if err != nil {
		return nil, err
	}
	if !m.match(o) {
		return nil, nil
	}
	if err := ic.objects.Insert(ic.ctx, o); err != nil {
		return nil, err
	}
	return o, nil
}
