package testmodule

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
)

func TestCapRefusesWithDeviceMemory(t *testing.T) {
	ctl := hsm(t, 3)
	var shs []pkcs11.SessionHandle
	for i := 0; i < 3; i++ {
		shs = append(shs, open(t))
	}
	_, err := mod.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	wantRV(t, "4th C_OpenSession", err, pkcs11.CKR_DEVICE_MEMORY)
	wantOpen(t, ctl, 3)

	if err := mod.CloseSession(shs[0]); err != nil {
		t.Fatal(err)
	}
	wantOpen(t, ctl, 2)
	shs[0] = open(t) // the freed slot is usable again
	wantOpen(t, ctl, 3)

	ti, err := mod.GetTokenInfo(slot)
	if err != nil {
		t.Fatal(err)
	}
	if ti.MaxSessionCount != 3 || ti.SessionCount != 3 {
		t.Errorf("token info sessions %d/%d, want 3/3", ti.SessionCount, ti.MaxSessionCount)
	}
	for _, sh := range shs {
		if err := mod.CloseSession(sh); err != nil {
			t.Fatal(err)
		}
	}
	st := ctl.Stats()
	if st.Open != 0 || st.Peak != 3 || st.Refusals != 1 {
		t.Fatalf("open %d peak %d refusals %d, want 0 3 1", st.Open, st.Peak, st.Refusals)
	}
	ctl.ResetPeak()
	if ctl.Peak() != 0 {
		t.Fatalf("peak after reset = %d", ctl.Peak())
	}
	if st.Session == 0 || st.General == 0 || st.Calls < st.Session+st.General {
		t.Fatalf("class counters not kept: %+v", st)
	}
}

func TestCapRefusesWithSessionCount(t *testing.T) {
	ctl := hsm(t, 1)
	ctl.SetRefuse(RefuseSessionCount)
	sh := open(t)
	_, err := mod.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	wantRV(t, "2nd C_OpenSession", err, pkcs11.CKR_SESSION_COUNT)
	ctl.SetCap(2) // the cap is live
	open(t)
	mod.CloseSession(sh)
}

// The module, not the Control, creates the state file from the env defaults.
func TestStateSeededFromEnv(t *testing.T) {
	setup(t)
	state := filepath.Join(t.TempDir(), "state")
	t.Setenv("CAPPED_STATE", state)
	t.Setenv("CAPPED_MAX_SESSIONS", "2")
	t.Setenv("CAPPED_REFUSE", "CKR_SESSION_COUNT")
	t.Setenv("CAPPED_FAIL_EVERY_K", "7")
	err := mod.Initialize()
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Finalize()
	if slot, err = FindToken(mod, tokenLabel); err != nil {
		t.Fatal(err)
	}
	ctl, err := OpenControl(state)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	st := ctl.Stats()
	if st.Cap != 2 || st.RefuseCode != RefuseSessionCount || st.FailEveryK != 7 || !st.TokenPresent {
		t.Fatalf("seeded state %+v", st)
	}
	if st.Procs[os.Getpid()] != 0 || len(st.Procs) != 1 {
		t.Fatalf("process table %v, want this process with 0 sessions", st.Procs)
	}
	open(t)
	open(t)
	_, err = mod.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	wantRV(t, "3rd C_OpenSession", err, pkcs11.CKR_SESSION_COUNT)
}

func TestCapIsSharedAcrossProcesses(t *testing.T) {
	ctl := hsm(t, 4)
	mine := open(t)
	_, stop := child(t, 2)
	wantOpen(t, ctl, 3)
	open(t)
	_, err := mod.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	wantRV(t, "5th C_OpenSession (2 in the child)", err, pkcs11.CKR_DEVICE_MEMORY)
	if p := ctl.Peak(); p != 4 {
		t.Fatalf("peak = %d, want 4", p)
	}
	stop() // the child closes its sessions and finalises
	wantOpen(t, ctl, 2)
	open(t)
	open(t)
	mod.CloseSession(mine)
}

func TestCrashedProcessSessionsAreReclaimed(t *testing.T) {
	ctl := hsm(t, 3)
	cmd, _ := child(t, 3)
	_, err := mod.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	wantRV(t, "C_OpenSession while the child holds the cap", err, pkcs11.CKR_DEVICE_MEMORY)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	wantOpen(t, ctl, 3) // nothing notices a crash until the cap is hit
	open(t)             // ...and then the dead process's sessions are reclaimed
	st := ctl.Stats()
	if st.Open != 1 || st.Reclaimed != 3 {
		t.Fatalf("after reclaim open %d reclaimed %d, want 1 3", st.Open, st.Reclaimed)
	}
}

func TestFinalizeReleasesThisProcess(t *testing.T) {
	ctl := hsm(t, 2)
	open(t)
	open(t)
	wantOpen(t, ctl, 2)
	if err := mod.Finalize(); err != nil {
		t.Fatal(err)
	}
	wantOpen(t, ctl, 0)
	if err := mod.Initialize(); err != nil {
		t.Fatal(err)
	}
	open(t)
	open(t)
	wantOpen(t, ctl, 2)
}

// Many goroutines contend for a small cap while another keeps invalidating
// every session under them (so sessions die while calls on them are in
// flight): the cap must hold and every session must be given back.
func TestConcurrentClientsRespectCap(t *testing.T) {
	const capN, workers, rounds = 4, 16, 60
	ctl := hsm(t, capN)
	login(t, open(t)) // one long-lived login session, as kmipd keeps
	done := make(chan struct{})
	invalidator := make(chan struct{})
	go func() {
		defer close(invalidator)
		for {
			select {
			case <-done:
				return
			case <-time.After(200 * time.Microsecond):
				ctl.InvalidateAll()
			}
		}
	}()
	var wg sync.WaitGroup
	var refused atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				sh, err := mod.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
				if isRV(err, pkcs11.CKR_DEVICE_MEMORY) {
					refused.Add(1)
					continue
				}
				if err != nil {
					t.Errorf("C_OpenSession: %v", err)
					return
				}
				for j := 0; j < 3; j++ {
					if _, err := mod.GenerateRandom(sh, 16); err != nil && !isRV(err, pkcs11.CKR_SESSION_HANDLE_INVALID) {
						t.Errorf("C_GenerateRandom: %v", err)
					}
					time.Sleep(50 * time.Microsecond) // hold it: make the cap bite
				}
				if err := mod.CloseSession(sh); err != nil && !isRV(err, pkcs11.CKR_SESSION_HANDLE_INVALID) {
					t.Errorf("C_CloseSession: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	<-invalidator
	mod.GetSlotList(true) // any call lets this process sweep invalidated sessions
	st := ctl.Stats()
	t.Logf("refused %d, invalidated %d, peak %d", refused.Load(), st.Invalidated, st.Peak)
	if st.Peak > capN || st.Peak < 2 || st.Open != 0 || st.Refusals != uint64(refused.Load()) {
		t.Fatalf("peak %d open %d refusals %d/%d, want 2..%d, 0 and equal (%+v)",
			st.Peak, st.Open, st.Refusals, refused.Load(), capN, st)
	}
}

func TestCompilesWithoutWarnings(t *testing.T) {
	Build(t) // for the skip conditions
	dir := t.TempDir()
	if err := os.CopyFS(dir, sources); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror",
		"-o", filepath.Join(dir, "libcapped.so"), "capped.c", "-Iinclude", "-ldl", "-lpthread")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
}
