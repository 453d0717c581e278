package hsm

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/miekg/pkcs11"
)

// labelCache holds the handles of master keys found by label other than the
// current pair: during a rotation the HSM uses the old and the new MKEK
// (or HMAC key) side by side. Handles are valid in one module generation.
type labelCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[string]pkcs11.ObjectHandle
}

// ErrNoKey: no master key with the label asked for is on the token.
var ErrNoKey = errors.New("master key not on the token")

// mkek is the handle of the AES master key labelled label ("" or the
// current label: the current MKEK).
func (c opCtx) mkek(label string) (pkcs11.ObjectHandle, error) {
	if label == "" || label == c.k.mkekLabel {
		if c.k.mkek == 0 {
			return 0, &Error{Op: "find MKEK", Class: ClassOther, Err: fmt.Errorf("%w: %q", ErrNoKey, c.k.mkekLabel)}
		}
		return c.k.mkek, nil
	}
	return c.byLabel(label, pkcs11.CKK_AES, "MKEK")
}

// hmac is mkek for the HMAC key.
func (c opCtx) hmac(label string) (pkcs11.ObjectHandle, error) {
	if label == "" || label == c.k.hmacLabel {
		if c.k.hmac == 0 {
			return 0, &Error{Op: "find HMAC key", Class: ClassOther, Err: fmt.Errorf("%w: %q", ErrNoKey, c.k.hmacLabel)}
		}
		return c.k.hmac, nil
	}
	return c.byLabel(label, pkcs11.CKK_GENERIC_SECRET, "HMAC key")
}

func (c opCtx) byLabel(label string, keyType uint, what string) (pkcs11.ObjectHandle, error) {
	lc := &c.h.byLabel
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.gen != c.gen || lc.m == nil {
		lc.gen, lc.m = c.gen, map[string]pkcs11.ObjectHandle{}
	}
	if h, ok := lc.m[label]; ok {
		return h, nil
	}
	c.h.calls.Add(3)
	h, err := findKey(c.p, c.sh, label, keyType)
	if err != nil {
		return 0, err
	}
	if h == 0 {
		return 0, &Error{Op: "find " + what, Class: ClassOther, Err: fmt.Errorf(
			"%w: no %s labelled %q on %s (a pKEK record or a rotation names it)", ErrNoKey, what, label, c.h.cfg.tokenDesc())}
	}
	lc.m[label] = h
	return h, nil
}

// forget drops label's cached handle (the key was retired or destroyed).
func (h *HSM) forget(label string) {
	h.byLabel.mu.Lock()
	delete(h.byLabel.m, label)
	h.byLabel.mu.Unlock()
}

// KeyKind selects a master key's kind.
type KeyKind int

const (
	KindMKEK KeyKind = iota // AES-256: wraps pKEKs
	KindHMAC                // generic secret: MACs pKEK records
)

func (k KeyKind) keyType() uint {
	if k == KindHMAC {
		return pkcs11.CKK_GENERIC_SECRET
	}
	return pkcs11.CKK_AES
}

// HasMasterKey reports whether a master key of kind labelled label is on
// the token.
func (h *HSM) HasMasterKey(ctx context.Context, kind KeyKind, label string) (bool, error) {
	var found bool
	err := h.do(ctx, "find master key", func(c opCtx) error {
		c.h.calls.Add(3)
		k, err := findKey(c.p, c.sh, label, kind.keyType())
		found = k != 0
		return err
	})
	return found, err
}

// CreateMasterKey creates a master key of kind labelled label (a token
// object, sensitive, never extractable); it is idempotent, so a resumed
// rotation finds the key it created before a crash.
func (h *HSM) CreateMasterKey(ctx context.Context, kind KeyKind, label string) (created bool, err error) {
	if label == "" {
		return false, &Error{Op: "create master key", Err: errors.New("empty label")}
	}
	mech, tmpl := uint(pkcs11.CKM_AES_KEY_GEN), mkekTemplate(label)
	if kind == KindHMAC {
		mech, tmpl = pkcs11.CKM_GENERIC_SECRET_KEY_GEN, hmacTemplate(label)
	}
	err = h.do(ctx, "create master key", func(c opCtx) error {
		c.h.calls.Add(3)
		k, err := findKey(c.p, c.sh, label, kind.keyType())
		if err != nil || k != 0 {
			return err
		}
		if _, err := c.call().GenerateKey(c.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, tmpl); err != nil {
			return toError("C_GenerateKey", err)
		}
		created = true
		return nil
	})
	if created {
		h.log.Info("created master key", "label", label)
	}
	return created, err
}

// RetireMasterKey makes the master key labelled label unusable for opening:
// with destroy it is destroyed, else its encrypt, decrypt, wrap and unwrap
// (or, for an HMAC key, sign and verify) usages are switched off. The current keys are
// never retired here (SetCurrentMasterKey moves on first). A token that
// refuses the change is an error that says to destroy instead.
func (h *HSM) RetireMasterKey(ctx context.Context, kind KeyKind, label string, destroy bool) error {
	if cm, ch := h.CurrentLabels(); label == "" || (kind == KindMKEK && label == cm) || (kind == KindHMAC && label == ch) {
		return &Error{Op: "retire master key", Err: fmt.Errorf("%q is the current master key", label)}
	}
	defer h.forget(label)
	return h.do(ctx, "retire master key", func(c opCtx) error {
		c.h.calls.Add(3)
		k, err := findKey(c.p, c.sh, label, kind.keyType())
		if err != nil || k == 0 {
			return err // already gone
		}
		if destroy {
			if err := c.call().DestroyObject(c.sh, k); err != nil {
				return toError("C_DestroyObject", err)
			}
			return nil
		}
		// Encrypt and wrap go too: a kmipd restarted on a config still
		// naming this key must fail loudly, not wrap new pKEKs under a key
		// that can no longer open them.
		attrs := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false), pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false), pkcs11.NewAttribute(pkcs11.CKA_WRAP, false)}
		if kind == KindHMAC {
			attrs = []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_SIGN, false), pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false)}
		}
		if err := c.call().SetAttributeValue(c.sh, k, attrs); err != nil {
			e := toError("C_SetAttributeValue", err)
			e.Err = fmt.Errorf("the token will not disable %q (%v); retire it with -destroy-old", label, e.Err)
			return e
		}
		return nil
	})
}

// ConfiguredLabels are the labels of the configured MKEK and HMAC key:
// what pKEK record entries without a label mean.
func (h *HSM) ConfiguredLabels() (mkek, hmac string) { return h.cfg.MKEKLabel, h.cfg.HMACLabel }

// CurrentLabels are the labels of the master keys Wrap, MAC and Check use
// (and a device recovery looks up): the configured ones until
// SetCurrentMasterKey moves on.
func (h *HSM) CurrentLabels() (mkek, hmac string) {
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	return h.curMKEK, h.curHMAC
}

// SetCurrentMasterKey makes the key of kind labelled label the current one
// (a master-key rotation's target), so the key it replaces can be retired
// while kmipd runs. The key must be on the token: the handles are looked up
// again before the next operation, and a missing key fails it.
func (h *HSM) SetCurrentMasterKey(ctx context.Context, kind KeyKind, label string) error {
	if have, err := h.HasMasterKey(ctx, kind, label); err != nil {
		return err
	} else if !have {
		return &Error{Op: "set current master key", Err: fmt.Errorf("%w: %q", ErrNoKey, label)}
	}
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	cur := &h.curMKEK
	if kind == KindHMAC {
		cur = &h.curHMAC
	}
	if *cur != label {
		*cur, h.keysGen = label, 0
	}
	return nil
}
