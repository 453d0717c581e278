package kmipops

import (
	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Leases (KMIP 1.4 §3.15, §4.17). Every cryptographic object carries a Lease
// Time, the longest a client may keep using it before asking again: the
// server's policy (Options.LeaseTime), stored when the object is made. A
// lease is the client's obligation, so the server's whole part is deciding,
// at Obtain Lease, whether the object may still be leased and for how long.

// leasable reports which object types take a lease: the cryptographic
// objects. An Opaque Object is not one (§2.2.8): the server cannot know how
// its content is used, so a lease on it would promise nothing.
func leasable(t kmip14.ObjectType) bool {
	switch t {
	case kmip14.ObjectTypeCertificate, kmip14.ObjectTypeSymmetricKey, kmip14.ObjectTypePublicKey,
		kmip14.ObjectTypePrivateKey, kmip14.ObjectTypeSplitKey, kmip14.ObjectTypeSecretData,
		kmip14.ObjectTypePGPKey:
		return true
	}
	return false
}

// opObtainLease grants a lease on an Active cryptographic object. Only Active
// objects are leased: a lease lets a client use the object without asking
// again, and an object in any other state may be used for processing at most
// (Deactivated, Compromised), or not at all, so each such use should be
// checked. The lease is the object's Lease Time, shortened to the current
// policy if that has been lowered since the object was made.
func opObtainLease(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	uid, err := uidArg(ic, payload)
	if err != nil {
		return nil, err
	}
	o, err := p.view(ic, uid)
	if err != nil {
		return nil, err
	}
	if !leasable(o.Type()) {
		return nil, denied("a %s is not a cryptographic object and takes no lease", o.Type())
	}
	if s := o.State(); s != kmip14.StateActive {
		return nil, denied("object is %s; only an Active object is leased", s)
	}
	lease := p.opts.LeaseTime
	if v, ok := o.LeaseTime(); ok {
		lease = min(lease, v)
	}
	lcd, ok := o.LastChangeDate()
	if !ok {
		lcd, _ = o.InitialDate()
	}
	ic.placeholder = uid
	return respUID(uid,
		tree.Interval(kmip14.TagLeaseTime, lease),
		tree.Time(kmip14.TagLastChangeDate, lcd)), nil
}
