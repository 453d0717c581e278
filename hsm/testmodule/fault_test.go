package testmodule

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
)

func TestFailEveryKthRandom(t *testing.T) {
	ctl := hsm(t, 0)
	sh := open(t)
	ctl.SetFailEveryK(3)
	for i := 1; i <= 12; i++ {
		_, err := mod.GenerateRandom(sh, 8)
		if i%3 == 0 {
			wantRV(t, "C_GenerateRandom", err, pkcs11.CKR_DEVICE_ERROR)
		} else if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if f := ctl.Stats().Faults; f != 4 {
		t.Fatalf("faults = %d, want 4", f)
	}
	ctl.SetFailEveryK(0)
	for i := 0; i < 10; i++ {
		if _, err := mod.GenerateRandom(sh, 8); err != nil {
			t.Fatal(err)
		}
	}
}

// A fault on C_Encrypt must end the operation like a real device error, so
// the next C_EncryptInit works; length queries are neither counted nor failed.
func TestFailEveryKthEncrypt(t *testing.T) {
	ctl := hsm(t, 0)
	sh := open(t)
	login(t, sh)
	key, err := mod.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)},
		[]*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
		})
	if err != nil {
		t.Fatalf("C_GenerateKey: %v", err)
	}
	ecb := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_ECB, nil)}
	plain := bytes.Repeat([]byte("0123456789abcdef"), 2)

	// Counted calls per round: C_EncryptInit, C_Encrypt (miekg's length query
	// is free). With k=4 every second round fails in C_Encrypt.
	ctl.SetFailEveryK(4)
	var ct []byte
	for round := 1; round <= 6; round++ {
		if err := mod.EncryptInit(sh, ecb, key); err != nil {
			t.Fatalf("round %d C_EncryptInit: %v", round, err)
		}
		out, err := mod.Encrypt(sh, plain)
		if round%2 == 0 {
			wantRV(t, "C_Encrypt", err, pkcs11.CKR_DEVICE_ERROR)
			continue
		}
		if err != nil {
			t.Fatalf("round %d C_Encrypt: %v", round, err)
		}
		ct = out
	}
	// Now the 13th counted call is C_DecryptInit, the 16th C_Decrypt's.
	for i, wantFail := range []bool{false, false, false, true} {
		var err error
		if i%2 == 0 {
			err = mod.DecryptInit(sh, ecb, key)
		} else {
			var pt []byte
			pt, err = mod.Decrypt(sh, ct)
			if err == nil && !bytes.Equal(pt, plain) {
				t.Fatalf("decrypt mismatch")
			}
		}
		if wantFail {
			wantRV(t, "C_Decrypt", err, pkcs11.CKR_DEVICE_ERROR)
		} else if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if err := mod.DecryptInit(sh, ecb, key); err != nil {
		t.Fatalf("C_DecryptInit after a faulted C_Decrypt: %v", err)
	}
}

func TestInvalidateAll(t *testing.T) {
	ctl := hsm(t, 3)
	old := []pkcs11.SessionHandle{open(t), open(t), open(t)}
	login(t, old[0])
	ctl.InvalidateAll()
	for _, sh := range old {
		_, err := mod.GenerateRandom(sh, 8)
		wantRV(t, "C_GenerateRandom on a voided session", err, pkcs11.CKR_SESSION_HANDLE_INVALID)
	}
	wantOpen(t, ctl, 0) // voided sessions no longer count against the cap
	fresh := []pkcs11.SessionHandle{open(t), open(t), open(t)}
	for _, sh := range fresh {
		if _, err := mod.GenerateRandom(sh, 8); err != nil {
			t.Fatalf("new session: %v", err)
		}
	}
	login(t, fresh[0])       // the voided login is gone too
	for _, sh := range old { // handles are never reused, so the old ones stay dead
		wantRV(t, "C_CloseSession on a voided session", mod.CloseSession(sh), pkcs11.CKR_SESSION_HANDLE_INVALID)
	}
	if st := ctl.Stats(); st.Invalidated != 3 || st.Open != 3 {
		t.Fatalf("invalidated %d open %d, want 3 3", st.Invalidated, st.Open)
	}
}

func TestTokenRemovalAndRecovery(t *testing.T) {
	ctl := hsm(t, 4)
	sh := open(t)
	login(t, sh)
	ctl.SetTokenPresent(false)

	slots, err := mod.GetSlotList(true)
	if err != nil || len(slots) != 0 {
		t.Fatalf("C_GetSlotList(present) = %v, %v; want none", slots, err)
	}
	if all, err := mod.GetSlotList(false); err != nil || len(all) == 0 {
		t.Fatalf("C_GetSlotList(all) = %v, %v; want the slots", all, err)
	}
	si, err := mod.GetSlotInfo(slot)
	if err != nil || si.Flags&pkcs11.CKF_TOKEN_PRESENT != 0 {
		t.Fatalf("C_GetSlotInfo = %+v, %v; want no CKF_TOKEN_PRESENT", si, err)
	}
	_, err = mod.GetTokenInfo(slot)
	wantRV(t, "C_GetTokenInfo", err, pkcs11.CKR_TOKEN_NOT_PRESENT)
	_, err = mod.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	wantRV(t, "C_OpenSession", err, pkcs11.CKR_TOKEN_NOT_PRESENT)
	_, err = mod.GenerateRandom(sh, 8)
	wantRV(t, "C_GenerateRandom", err, pkcs11.CKR_DEVICE_REMOVED)
	wantRV(t, "C_Login", mod.Login(sh, pkcs11.CKU_USER, userPIN), pkcs11.CKR_TOKEN_NOT_PRESENT)
	wantOpen(t, ctl, 0)

	// kmipd's recovery: token back, C_Finalize + C_Initialize, log in again.
	ctl.SetTokenPresent(true)
	if err := mod.Finalize(); err != nil {
		t.Fatal(err)
	}
	if err := mod.Initialize(); err != nil {
		t.Fatal(err)
	}
	s, err := FindToken(mod, tokenLabel)
	if err != nil || s != slot {
		t.Fatalf("token after reinsertion: slot %d, %v", s, err)
	}
	_, err = mod.GenerateRandom(sh, 8)
	wantRV(t, "old handle after recovery", err, pkcs11.CKR_SESSION_HANDLE_INVALID)
	sh2 := open(t)
	login(t, sh2)
	if _, err := mod.GenerateRandom(sh2, 8); err != nil {
		t.Fatal(err)
	}
	wantOpen(t, ctl, 1)
}

// Every call pays the delay, so n calls take at least n×delay; only that lower
// bound is checked (a loaded machine makes calls slower, never faster).
func TestDelayEveryCall(t *testing.T) {
	ctl := hsm(t, 0)
	sh := open(t)
	const delay, n = 20 * time.Millisecond, 5
	ctl.SetDelay(delay)
	if got := ctl.Stats().Delay; got != delay {
		t.Fatalf("Stats().Delay = %v, want %v", got, delay)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := mod.GenerateRandom(sh, 8); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took < n*delay {
		t.Fatalf("%d calls with a %v delay took %v", n, delay, took)
	}
	ctl.SetDelay(-time.Second)
	if got := ctl.Delay(); got != 0 {
		t.Fatalf("SetDelay(-1s) left Delay = %v, want 0", got)
	}
}

// CAPPED_DELAY_US seeds a new state file, like the other CAPPED_* variables.
func TestDelayFromEnv(t *testing.T) {
	t.Setenv("CAPPED_DELAY_US", "1500")
	ctl, err := OpenControl(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	if got := ctl.Delay(); got != 1500*time.Microsecond {
		t.Fatalf("Delay = %v, want 1.5ms", got)
	}
}
