package hsm_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/pkcs11"

	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/hsm/hsmtest"
)

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "hsm", Level: hclog.Warn, Output: testWriter{t}})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func open(t testing.TB, cfg hsm.Config) *hsm.HSM {
	t.Helper()
	h, err := hsm.Open(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func TestOpenClose(t *testing.T) {
	cfg := hsmtest.SoftHSM(t)
	h, err := hsm.Open(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	st := h.Stats()
	if !h.Ready() || st.Open != 1 || st.Idle != 1 || st.MaxSessions != 4 || st.EffectiveCap != 4 {
		t.Fatalf("after Open: ready=%v %+v", h.Ready(), st)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if h.Ready() {
		t.Fatal("Ready after Close")
	}
	if _, err := h.Random(context.Background(), 8); !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("Random after Close: %v, want ErrUnavailable", err)
	}
	if err := h.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	// Reopen after the module was finalised (ref count reached zero).
	h2 := open(t, cfg)
	if _, err := h2.Random(context.Background(), 8); err != nil {
		t.Fatal(err)
	}
}

func TestOpenSelectors(t *testing.T) {
	cfg := hsmtest.SoftHSM(t)
	// A wrong PIN is only noticed while nobody in this process is logged in
	// to the token (PKCS#11 login state is per application), so check it first.
	badPIN := cfg
	badPIN.PIN = "wrong"
	if _, err := hsm.Open(context.Background(), badPIN, nil); err == nil || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("Open with a wrong PIN: %v", err)
	}
	open(t, cfg)

	none := cfg
	none.TokenLabel = ""
	if _, err := hsm.Open(context.Background(), none, nil); err == nil {
		t.Fatal("Open with no token selector succeeded")
	}
	two := cfg
	two.TokenSerial = "1234"
	if _, err := hsm.Open(context.Background(), two, nil); err == nil {
		t.Fatal("Open with two token selectors succeeded")
	}
	one := cfg
	one.MaxSessions = 1
	if _, err := hsm.Open(context.Background(), one, nil); err == nil {
		t.Fatal("Open with max_sessions 1 succeeded")
	}
	missing := cfg
	missing.TokenLabel = "no-such-token"
	if _, err := hsm.Open(context.Background(), missing, nil); err == nil {
		t.Fatal("Open of a missing token succeeded")
	}
}

func TestOpenWithoutMasterKeys(t *testing.T) {
	cfg := hsmtest.SoftHSM(t)
	bare := cfg
	bare.TokenLabel = cfg.TokenLabel + "-bare"
	if err := hsm.InitToken(cfg.ModulePath, bare.TokenLabel, hsmtest.SOPIN, hsmtest.UserPIN); err != nil {
		t.Fatal(err)
	}
	_, err := hsm.Open(context.Background(), bare, nil)
	if err == nil || !strings.Contains(err.Error(), "kmipd hsm init") {
		t.Fatalf("Open without master keys: %v, want a hint to run kmipd hsm init", err)
	}
	created, err := hsm.InitMasterKeys(context.Background(), bare, nil)
	if err != nil || len(created) != 2 {
		t.Fatalf("InitMasterKeys: %v %v", created, err)
	}
	created, err = hsm.InitMasterKeys(context.Background(), bare, nil)
	if err != nil || len(created) != 0 {
		t.Fatalf("second InitMasterKeys (idempotent): %v %v", created, err)
	}
	if err := hsm.InitToken(cfg.ModulePath, bare.TokenLabel, hsmtest.SOPIN, hsmtest.UserPIN); err != nil {
		t.Fatal("InitToken of an existing label:", err)
	}
	h := open(t, bare)
	if err := h.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestExercise(t *testing.T) {
	h := open(t, hsmtest.SoftHSM(t))
	hsmtest.Exercise(t, h)
}

func TestWrapBoundToToken(t *testing.T) {
	// Another token's MKEK must not open our blobs.
	h1 := open(t, hsmtest.SoftHSM(t))
	h2 := open(t, hsmtest.SoftHSM(t))
	ctx := context.Background()
	w, err := h1.Wrap(ctx, []byte("0123456789abcdef0123456789abcdef"), []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = h2.Unwrap(ctx, w, []byte("a"))
	var he *hsm.Error
	if !errors.As(err, &he) || he.Class != hsm.ClassCrypto {
		t.Fatalf("unwrap under another MKEK: %v", err)
	}
}

func TestCallsCounter(t *testing.T) {
	h := open(t, hsmtest.SoftHSM(t))
	ctx := context.Background()
	if _, err := h.Random(ctx, 8); err != nil { // settles login state
		t.Fatal(err)
	}
	c0 := h.Stats().Calls
	if _, err := h.Random(ctx, 8); err != nil {
		t.Fatal(err)
	}
	c1 := h.Stats().Calls
	if _, err := h.Wrap(ctx, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	c2 := h.Stats().Calls
	if c1-c0 != 1 || c2-c1 != 3 {
		t.Fatalf("calls: Random made %d, Wrap made %d; want 1 and 3", c1-c0, c2-c1)
	}
}

func TestErrorType(t *testing.T) {
	busy := &hsm.Error{Op: "x", Class: hsm.ClassBusy}
	if !errors.Is(busy, hsm.ErrBusy) || errors.Is(busy, hsm.ErrUnavailable) {
		t.Fatal("busy class must match ErrBusy only")
	}
	if busy.ClientMessage() != "HSM busy" {
		t.Fatalf("busy: %q", busy.ClientMessage())
	}
	dev := &hsm.Error{Op: "x", Code: pkcs11.CKR_DEVICE_ERROR, Class: hsm.ClassDevice, Err: pkcs11.Error(pkcs11.CKR_DEVICE_ERROR)}
	if !errors.Is(dev, hsm.ErrUnavailable) || dev.ClientMessage() != "HSM unavailable" {
		t.Fatal("device class must match ErrUnavailable")
	}
	var pe pkcs11.Error
	if !errors.As(dev, &pe) || uint(pe) != pkcs11.CKR_DEVICE_ERROR {
		t.Fatal("Unwrap must expose the PKCS#11 error")
	}
	cr := &hsm.Error{Class: hsm.ClassCrypto}
	if errors.Is(cr, hsm.ErrBusy) || errors.Is(cr, hsm.ErrUnavailable) || cr.ClientMessage() != "cryptographic failure" {
		t.Fatal("crypto class")
	}
	if hsm.ErrBusy.ClientMessage() != "HSM busy" || hsm.ErrUnavailable.ClientMessage() != "HSM unavailable" {
		t.Fatal("sentinel messages")
	}
}
