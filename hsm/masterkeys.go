package hsm

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/pkcs11"
)

const (
	gcmIVLen  = 12
	gcmTagLen = 16
	// maxRandom bounds one Random call; callers want keys and nonces.
	maxRandom = 1 << 16
)

// masterKeys mirrors kek.MasterKeys (kek imports hsm, so hsm cannot import
// kek); kek holds the authoritative check.
type masterKeys interface {
	Random(ctx context.Context, n int) ([]byte, error)
	Wrap(ctx context.Context, plaintext, aad []byte) ([]byte, error)
	Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error)
	MAC(ctx context.Context, data []byte) ([]byte, error)
	VerifyMAC(ctx context.Context, data, mac []byte) error
}

var _ masterKeys = (*HSM)(nil)

// Random returns n bytes from the HSM's generator.
func (h *HSM) Random(ctx context.Context, n int) ([]byte, error) {
	if n < 0 || n > maxRandom {
		return nil, &Error{Op: "random", Err: fmt.Errorf("length %d out of range [0,%d]", n, maxRandom)}
	}
	if n == 0 {
		return []byte{}, nil
	}
	var out []byte
	err := h.do(ctx, "random", func(c opCtx) error {
		b, err := c.call().GenerateRandom(c.sh, n)
		if err != nil {
			return toError("C_GenerateRandom", err)
		}
		out = b
		return nil
	})
	return out, err
}

// Wrap encrypts plaintext under the MKEK with AES-256-GCM inside the HSM,
// binding aad. The result is iv || ciphertext || tag, with a fresh 96-bit IV
// from the HSM's generator.
func (h *HSM) Wrap(ctx context.Context, plaintext, aad []byte) ([]byte, error) {
	return h.WrapLabel(ctx, "", plaintext, aad)
}

// WrapLabel is Wrap under the AES master key labelled label ("" is the
// configured MKEK).
func (h *HSM) WrapLabel(ctx context.Context, label string, plaintext, aad []byte) ([]byte, error) {
	var out []byte
	err := h.do(ctx, "wrap", func(c opCtx) error {
		key, err := c.mkek(label)
		if err != nil {
			return err
		}
		iv, err := c.call().GenerateRandom(c.sh, gcmIVLen)
		if err != nil {
			return toError("C_GenerateRandom", err)
		}
		params := pkcs11.NewGCMParams(iv, aad, gcmTagLen*8)
		defer params.Free()
		mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}
		if err := c.call().EncryptInit(c.sh, mech, key); err != nil {
			return toError("C_EncryptInit", err)
		}
		ct, err := c.call().Encrypt(c.sh, plaintext)
		if err != nil {
			return toError("C_Encrypt", err)
		}
		if len(ct) != len(plaintext)+gcmTagLen {
			return &Error{Op: "wrap", Err: fmt.Errorf("module returned %d bytes for %d of plaintext", len(ct), len(plaintext))}
		}
		out = make([]byte, 0, gcmIVLen+len(ct))
		out = append(append(out, iv...), ct...)
		return nil
	})
	return out, err
}

// Unwrap reverses Wrap. A wrong tag, AAD or a tampered blob is an *Error of
// ClassCrypto (KMIP Cryptographic Failure).
func (h *HSM) Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	return h.UnwrapLabel(ctx, "", wrapped, aad)
}

// UnwrapLabel is Unwrap under the AES master key labelled label ("" is the
// configured MKEK).
func (h *HSM) UnwrapLabel(ctx context.Context, label string, wrapped, aad []byte) ([]byte, error) {
	if len(wrapped) < gcmIVLen+gcmTagLen {
		return nil, &Error{Op: "unwrap", Class: ClassCrypto, Err: errors.New("wrapped value too short")}
	}
	var out []byte
	err := h.do(ctx, "unwrap", func(c opCtx) error {
		key, err := c.mkek(label)
		if err != nil {
			return err
		}
		params := pkcs11.NewGCMParams(wrapped[:gcmIVLen], aad, gcmTagLen*8)
		defer params.Free()
		mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}
		if err := c.call().DecryptInit(c.sh, mech, key); err != nil {
			return toError("C_DecryptInit", err)
		}
		pt, err := c.call().Decrypt(c.sh, wrapped[gcmIVLen:])
		if err != nil {
			// SoftHSM 2.6.1 reports a bad tag as CKR_GENERAL_ERROR, so in
			// this one call that code means "does not authenticate", not
			// "device lost". The decrypt operation ends either way, so the
			// session stays usable.
			if isCode(err, pkcs11.CKR_GENERAL_ERROR) || classify(codeOf(err)) == ClassCrypto {
				return cryptoError("C_Decrypt", err)
			}
			return toError("C_Decrypt", err)
		}
		out = pt
		return nil
	})
	return out, err
}

// MAC returns HMAC-SHA256 of data under the HMAC key, computed in the HSM.
func (h *HSM) MAC(ctx context.Context, data []byte) ([]byte, error) {
	return h.MACLabel(ctx, "", data)
}

// MACLabel is MAC under the HMAC key labelled label ("" is the configured
// one).
func (h *HSM) MACLabel(ctx context.Context, label string, data []byte) ([]byte, error) {
	var out []byte
	err := h.do(ctx, "mac", func(c opCtx) error {
		key, err := c.hmac(label)
		if err != nil {
			return err
		}
		mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)}
		if err := c.call().SignInit(c.sh, mech, key); err != nil {
			return toError("C_SignInit", err)
		}
		mac, err := c.call().Sign(c.sh, data)
		if err != nil {
			return toError("C_Sign", err)
		}
		out = mac
		return nil
	})
	return out, err
}

// VerifyMAC checks mac over data in the HSM; a mismatch is an *Error of
// ClassCrypto.
func (h *HSM) VerifyMAC(ctx context.Context, data, mac []byte) error {
	return h.VerifyMACLabel(ctx, "", data, mac)
}

// VerifyMACLabel is VerifyMAC under the HMAC key labelled label ("" is the
// configured one).
func (h *HSM) VerifyMACLabel(ctx context.Context, label string, data, mac []byte) error {
	if len(mac) != 32 {
		return &Error{Op: "verify mac", Class: ClassCrypto, Err: errors.New("MAC has the wrong length")}
	}
	return h.do(ctx, "verify mac", func(c opCtx) error {
		key, err := c.hmac(label)
		if err != nil {
			return err
		}
		mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)}
		if err := c.call().VerifyInit(c.sh, mech, key); err != nil {
			return toError("C_VerifyInit", err)
		}
		if err := c.call().Verify(c.sh, data, mac); err != nil {
			return toError("C_Verify", err)
		}
		return nil
	})
}

// Check proves the master keys work: a wrap/unwrap round trip and a
// MAC/verify, each also refusing a corrupted input.
func (h *HSM) Check(ctx context.Context) error {
	probe, err := h.Random(ctx, 32)
	if err != nil {
		return err
	}
	aad := []byte("kmipd/hsm-check/v1")
	w, err := h.Wrap(ctx, probe, aad)
	if err != nil {
		return err
	}
	got, err := h.Unwrap(ctx, w, aad)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(got, probe) != 1 {
		return &Error{Op: "check", Class: ClassCrypto, Err: errors.New("unwrap did not return the wrapped value")}
	}
	if _, err := h.Unwrap(ctx, w, []byte("other")); err == nil {
		return &Error{Op: "check", Class: ClassCrypto, Err: errors.New("unwrap accepted the wrong AAD")}
	}
	mac, err := h.MAC(ctx, probe)
	if err != nil {
		return err
	}
	if err := h.VerifyMAC(ctx, probe, mac); err != nil {
		return err
	}
	if err := h.VerifyMAC(ctx, bytes.Repeat([]byte{0}, 8), mac); err == nil {
		return &Error{Op: "check", Class: ClassCrypto, Err: errors.New("MAC verified over the wrong data")}
	}
	return nil
}

// InitMasterKeys creates the MKEK and the HMAC key on the token cfg selects
// if they are absent (idempotent) and returns the labels it created.
func InitMasterKeys(ctx context.Context, cfg Config, log hclog.Logger, opts ...Option) (created []string, err error) {
	h, err := open(ctx, cfg, log, false, opts)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var k keys
	if err := h.do(ctx, "find master keys", func(c opCtx) error { k = c.k; return nil }); err != nil {
		return nil, err
	}
	type spec struct {
		label  string
		have   bool
		mech   uint
		tmpl   []*pkcs11.Attribute
		keyTyp string
	}
	for _, s := range []spec{
		{h.cfg.MKEKLabel, k.mkek != 0, pkcs11.CKM_AES_KEY_GEN, mkekTemplate(h.cfg.MKEKLabel), "AES-256"},
		{h.cfg.HMACLabel, k.hmac != 0, pkcs11.CKM_GENERIC_SECRET_KEY_GEN, hmacTemplate(h.cfg.HMACLabel), "HMAC generic secret"},
	} {
		if s.have {
			continue
		}
		err := h.do(ctx, "create "+s.label, func(c opCtx) error {
			_, err := c.call().GenerateKey(c.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(s.mech, nil)}, s.tmpl)
			if err != nil {
				return toError("C_GenerateKey", err)
			}
			return nil
		})
		if err != nil {
			return created, err
		}
		h.log.Info("created master key", "label", s.label, "type", s.keyTyp)
		created = append(created, s.label)
	}
	h.stateMu.Lock()
	h.loginGen, h.keysGen, h.requireKeys = 0, 0, true
	h.stateMu.Unlock()
	if err := h.Check(ctx); err != nil {
		return created, err
	}
	return created, nil
}

// codeOf is the CKR_ code inside err, or 0.
func codeOf(err error) uint {
	var pe pkcs11.Error
	if errors.As(err, &pe) {
		return uint(pe)
	}
	return 0
}
