// Package hsmtest gives tests a real SoftHSM2 token with kmipd's master keys.
package hsmtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/hsm"
)

// ModulePath is where Debian/Ubuntu's softhsm2 package installs the module.
const ModulePath = "/usr/lib/softhsm/libsofthsm2.so"

// Test PINs: SoftHSM tokens made here are throw-away.
const (
	SOPIN   = "kmipd-so-pin"
	UserPIN = "kmipd-user-pin"
)

var (
	setupOnce sync.Once
	setupErr  error
	tokenDir  string
	counter   atomic.Uint64
)

// setup creates one token directory and SoftHSM config per test binary.
// SoftHSM reads SOFTHSM2_CONF once, at C_Initialize, so this must happen
// before any test initialises the module.
func setup() {
	dir, err := os.MkdirTemp("", "kmipd-softhsm-")
	if err != nil {
		setupErr = err
		return
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		setupErr = err
		return
	}
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		setupErr = err
		return
	}
	setupErr = os.Setenv("SOFTHSM2_CONF", conf)
	tokenDir = dir
}

// TokenDir is the per-binary SoftHSM directory (empty before the first SoftHSM call).
func TokenDir() string { return tokenDir }

// SoftHSM initialises a fresh SoftHSM token with a unique label and creates
// the master keys on it, returning a Config ready for hsm.Open (short
// timeouts suitable for tests). It skips the test if SoftHSM is not installed.
func SoftHSM(t testing.TB) hsm.Config {
	t.Helper()
	if _, err := os.Stat(ModulePath); err != nil {
		t.Skipf("SoftHSM2 not installed (%s missing); install softhsm2 to run HSM tests", ModulePath)
	}
	setupOnce.Do(setup)
	if setupErr != nil {
		t.Fatalf("hsmtest: SoftHSM setup: %v", setupErr)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	label := fmt.Sprintf("kmipd-t%d-%s", counter.Add(1), hex.EncodeToString(rnd[:]))
	if err := hsm.InitToken(ModulePath, label, SOPIN, UserPIN); err != nil {
		t.Fatalf("hsmtest: init token %s: %v", label, err)
	}
	cfg := hsm.Config{
		ModulePath:  ModulePath,
		TokenLabel:  label,
		PIN:         UserPIN,
		MaxSessions: 4,
		WaitTimeout: 2 * time.Second,
		IdleTimeout: 30 * time.Second,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := hsm.InitMasterKeys(ctx, cfg, hclog.NewNullLogger()); err != nil {
		t.Fatalf("hsmtest: init master keys on %s: %v", label, err)
	}
	return cfg
}
