package testmodule

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"
)

const (
	tokenLabel = "capped-test"
	soPIN      = "1234"
	userPIN    = "5678"
)

// The SoftHSM token is made once per test binary (tokens persist in the conf's
// tokendir); every test gets a fresh state file, i.e. a fresh "HSM".
var (
	setupOnce sync.Once
	setupErr  error
	tmpRoot   string
	soPath    string
	mod       *pkcs11.Ctx // one handle for the binary: SoftHSM is process-global
	slot      uint        // the token's slot in the current C_Initialize
)

func TestMain(m *testing.M) {
	if os.Getenv("CAPPED_TEST_CHILD") != "" {
		os.Exit(childMain())
	}
	code := m.Run()
	if tmpRoot != "" {
		os.RemoveAll(tmpRoot)
	}
	os.Exit(code)
}

func setup(t *testing.T) {
	t.Helper()
	so := Build(t) // skips without gcc / SoftHSM
	setupOnce.Do(func() {
		soPath = so
		if tmpRoot, setupErr = os.MkdirTemp("", "capped-test-"); setupErr != nil {
			return
		}
		var conf string
		if conf, setupErr = WriteSoftHSMConf(tmpRoot); setupErr != nil {
			return
		}
		os.Setenv("SOFTHSM2_CONF", conf) // inherited by child processes too
		os.Setenv("CAPPED_STATE", filepath.Join(tmpRoot, "init.state"))
		if mod = pkcs11.New(so); mod == nil {
			setupErr = fmt.Errorf("pkcs11.New(%s) failed", so)
			return
		}
		if setupErr = mod.Initialize(); setupErr != nil {
			return
		}
		_, setupErr = InitToken(mod, tokenLabel, soPIN, userPIN)
		if err := mod.Finalize(); setupErr == nil {
			setupErr = err
		}
	})
	if setupErr != nil {
		t.Fatalf("setup: %v", setupErr)
	}
}

// hsm gives the test a fresh state file with the given cap and an initialised
// module; the module is finalised when the test ends.
func hsm(t *testing.T, capN int) *Control {
	t.Helper()
	setup(t)
	state := filepath.Join(t.TempDir(), "state")
	ctl, err := OpenControl(state)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	ctl.SetCap(capN)
	t.Setenv("CAPPED_STATE", state)
	if err := mod.Initialize(); err != nil {
		t.Fatalf("C_Initialize: %v", err)
	}
	t.Cleanup(func() { mod.Finalize() })
	// SoftHSM renumbers an initialised token's slot at C_Initialize.
	s, err := FindToken(mod, tokenLabel)
	if err != nil {
		t.Fatal(err)
	}
	slot = s
	return ctl
}

func open(t *testing.T) pkcs11.SessionHandle {
	t.Helper()
	sh, err := mod.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		t.Fatalf("C_OpenSession: %v", err)
	}
	return sh
}

func login(t *testing.T, sh pkcs11.SessionHandle) {
	t.Helper()
	if err := mod.Login(sh, pkcs11.CKU_USER, userPIN); err != nil {
		t.Fatalf("C_Login: %v", err)
	}
}

// isRV reports whether err is the PKCS#11 error rv.
func isRV(err error, rv uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == rv
}

func wantRV(t *testing.T, what string, err error, rv uint) {
	t.Helper()
	if !isRV(err, rv) {
		t.Fatalf("%s: got %v, want %v", what, err, pkcs11.Error(rv))
	}
}

func wantOpen(t *testing.T, ctl *Control, n int) {
	t.Helper()
	if got := ctl.Open(); got != n {
		t.Fatalf("open sessions = %d, want %d (stats %+v)", got, n, ctl.Stats())
	}
}

// child starts this test binary as a second PKCS#11 client on the same state
// file: it opens n sessions, says "ready", and on stdin EOF closes them and
// finalises. The returned function ends it that way; kill it to simulate a crash.
func child(t *testing.T, n int) (*exec.Cmd, func()) {
	t.Helper()
	return StartClient(t, "child", "CAPPED_TEST_CHILD=1", "CAPPED_TEST_SO="+soPath,
		"CAPPED_TEST_N="+strconv.Itoa(n), "CAPPED_TEST_SLOT="+strconv.FormatUint(uint64(slot), 10))
}

func childMain() int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "child: "+format+"\n", a...)
		return 1
	}
	n, _ := strconv.Atoi(os.Getenv("CAPPED_TEST_N"))
	s, _ := strconv.ParseUint(os.Getenv("CAPPED_TEST_SLOT"), 10, 64)
	p := pkcs11.New(os.Getenv("CAPPED_TEST_SO"))
	if p == nil {
		return fail("pkcs11.New")
	}
	if err := p.Initialize(); err != nil {
		return fail("C_Initialize: %v", err)
	}
	var shs []pkcs11.SessionHandle
	for i := 0; i < n; i++ {
		sh, err := p.OpenSession(uint(s), pkcs11.CKF_SERIAL_SESSION)
		if err != nil {
			return fail("C_OpenSession %d: %v", i, err)
		}
		shs = append(shs, sh)
	}
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
	for _, sh := range shs {
		if err := p.CloseSession(sh); err != nil {
			return fail("C_CloseSession: %v", err)
		}
	}
	if err := p.Finalize(); err != nil {
		return fail("C_Finalize: %v", err)
	}
	return 0
}
