package hsm

import (
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// findSlot returns the slot holding the token cfg selects. Caller holds m.mu.RLock.
func findSlot(p *pkcs11.Ctx, cfg Config) (uint, pkcs11.TokenInfo, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, pkcs11.TokenInfo{}, toError("C_GetSlotList", err)
	}
	for _, s := range slots {
		if cfg.Slot != nil && s != *cfg.Slot {
			continue
		}
		ti, err := p.GetTokenInfo(s)
		if err != nil {
			continue // a slot that cannot describe its token is not ours
		}
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		if cfg.TokenLabel != "" && ti.Label != cfg.TokenLabel {
			continue
		}
		if cfg.TokenSerial != "" && ti.SerialNumber != cfg.TokenSerial {
			continue
		}
		return s, ti, nil
	}
	return 0, pkcs11.TokenInfo{}, &Error{Op: "select token", Code: pkcs11.CKR_TOKEN_NOT_PRESENT, Class: ClassDevice,
		Err: fmt.Errorf("no initialised token with %s in %s", cfg.tokenDesc(), cfg.ModulePath)}
}

// sessionLimit is the token's own limit on R/W sessions, or 0 if it reports none.
func sessionLimit(ti pkcs11.TokenInfo) int {
	limit := 0
	for _, v := range []uint{ti.MaxSessionCount, ti.MaxRwSessionCount} {
		if v == pkcs11.CK_EFFECTIVELY_INFINITE || v == pkcs11.CK_UNAVAILABLE_INFORMATION {
			continue
		}
		if limit == 0 || int(v) < limit {
			limit = int(v)
		}
	}
	return limit
}

// login logs the user in, tolerating an existing login (login state is
// per application and token, shared by all our sessions).
func login(p *pkcs11.Ctx, sh pkcs11.SessionHandle, pin string) error {
	if err := p.Login(sh, pkcs11.CKU_USER, pin); err != nil && !isCode(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		return toError("C_Login", err)
	}
	return nil
}

// findKey returns the handle of the one secret key with label and keyType,
// or 0 if there is none.
func findKey(p *pkcs11.Ctx, sh pkcs11.SessionHandle, label string, keyType uint) (pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, keyType),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
	}
	if err := p.FindObjectsInit(sh, tmpl); err != nil {
		return 0, toError("C_FindObjectsInit", err)
	}
	objs, _, err := p.FindObjects(sh, 2)
	if ferr := p.FindObjectsFinal(sh); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return 0, toError("C_FindObjects", err)
	}
	switch len(objs) {
	case 0:
		return 0, nil
	case 1:
		return objs[0], nil
	}
	return 0, &Error{Op: "find key", Class: ClassOther, Err: fmt.Errorf("several keys labelled %q on the token; remove the extra ones", label)}
}

// InitToken initialises a token labelled label in a free slot of the module
// at modulePath, with the given SO and user PINs. If a token with that label
// already exists it does nothing. `kmipd dev` and hsmtest use it to create
// SoftHSM tokens through PKCS#11 itself. SoftHSM 2.6.1 offers a new free
// slot right after C_InitToken without re-initialisation (verified), so one
// process can create many tokens.
func InitToken(modulePath, label, soPIN, userPIN string) error {
	if label == "" || len(label) > 32 {
		return errors.New("hsm: init token: the label must be 1 to 32 bytes")
	}
	m, err := acquireModule(modulePath)
	if err != nil {
		return err
	}
	defer m.release()
	m.initTokenMu.Lock()
	defer m.initTokenMu.Unlock()
	m.mu.RLock()
	defer m.mu.RUnlock()
	p := m.p11

	want := Config{ModulePath: modulePath, TokenLabel: label}
	if _, _, err := findSlot(p, want); err == nil {
		return nil
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		return toError("C_GetSlotList", err)
	}
	free, found := uint(0), false
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err == nil && ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			free, found = s, true
			break
		}
	}
	if !found {
		return &Error{Op: "init token", Class: ClassOther, Err: fmt.Errorf("no free (uninitialised) slot in %s", modulePath)}
	}
	if err := p.InitToken(free, soPIN, label); err != nil {
		return toError("C_InitToken", err)
	}
	// Some modules renumber slots once a token is initialised: find it again.
	slot, _, err := findSlot(p, want)
	if err != nil {
		return err
	}
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return toError("C_OpenSession", err)
	}
	defer func() { _ = p.CloseSession(sh) }()
	if err := p.Login(sh, pkcs11.CKU_SO, soPIN); err != nil {
		return toError("C_Login(SO)", err)
	}
	defer func() { _ = p.Logout(sh) }()
	if err := p.InitPIN(sh, userPIN); err != nil {
		return toError("C_InitPIN", err)
	}
	return nil
}

// mkekTemplate and hmacTemplate describe the master keys: token objects,
// private, sensitive and never extractable, so they never leave the HSM.
func mkekTemplate(label string) []*pkcs11.Attribute {
	return masterKeyTemplate(label, pkcs11.CKK_AES,
		pkcs11.CKA_ENCRYPT, pkcs11.CKA_DECRYPT, pkcs11.CKA_WRAP, pkcs11.CKA_UNWRAP)
}

func hmacTemplate(label string) []*pkcs11.Attribute {
	return masterKeyTemplate(label, pkcs11.CKK_GENERIC_SECRET, pkcs11.CKA_SIGN, pkcs11.CKA_VERIFY)
}

// masterKeyTemplate is the template both master keys share: a 32-byte secret
// key of keyType with the protections above, allowed only the given usages.
func masterKeyTemplate(label string, keyType uint, usages ...uint) []*pkcs11.Attribute {
	t := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, keyType),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
	}
	for _, u := range usages {
		t = append(t, pkcs11.NewAttribute(u, true))
	}
	return t
}

// TokenInfo identifies the token an HSM uses (for logs and `kmipd hsm` output).
type TokenInfo struct {
	Slot   uint
	Label  string
	Serial string
	Model  string
}

// TokenInfo describes the token as it was last selected.
func (h *HSM) TokenInfo() TokenInfo {
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	return h.token
}
