package testmodule

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/miekg/pkcs11"
)

// WriteSoftHSMConf creates dir/tokens and dir/softhsm2.conf (file object
// store, errors-only logging) and returns the conf path. SoftHSM2 reads the
// file named by SOFTHSM2_CONF at C_Initialize.
func WriteSoftHSMConf(dir string) (string, error) {
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return "", err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return "", err
	}
	return conf, nil
}

// InitToken initialises a token labelled label on SoftHSM's free slot through
// ctx (already C_Initialize'd), sets the user PIN, and returns the token's
// slot. SoftHSM gives an initialised token a new slot ID at the next
// C_Initialize: after a C_Finalize, look the slot up again with FindToken.
// The sessions it opens are closed before it returns.
func InitToken(ctx *pkcs11.Ctx, label, soPIN, userPIN string) (uint, error) {
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("C_GetSlotList: %w", err)
	}
	free, found := uint(0), false
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err != nil {
			return 0, fmt.Errorf("C_GetTokenInfo(%d): %w", s, err)
		}
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			free, found = s, true
			break
		}
	}
	if !found {
		return 0, fmt.Errorf("no uninitialised token among slots %v", slots)
	}
	if err := ctx.InitToken(free, soPIN, label); err != nil {
		return 0, fmt.Errorf("C_InitToken: %w", err)
	}
	slot, err := FindToken(ctx, label)
	if err != nil {
		return 0, err
	}
	sh, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return 0, fmt.Errorf("C_OpenSession: %w", err)
	}
	defer ctx.CloseSession(sh)
	if err := ctx.Login(sh, pkcs11.CKU_SO, soPIN); err != nil {
		return 0, fmt.Errorf("C_Login(SO): %w", err)
	}
	defer ctx.Logout(sh)
	if err := ctx.InitPIN(sh, userPIN); err != nil {
		return 0, fmt.Errorf("C_InitPIN: %w", err)
	}
	return slot, nil
}

// FindToken returns the slot of the present token labelled label.
func FindToken(ctx *pkcs11.Ctx, label string) (uint, error) {
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("C_GetSlotList: %w", err)
	}
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err == nil && strings.TrimRight(ti.Label, " ") == label {
			return s, nil
		}
	}
	return 0, fmt.Errorf("no token labelled %q", label)
}
