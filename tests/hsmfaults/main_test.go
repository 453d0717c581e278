// Package hsmfaults_test holds issue 3's "done when" tests: whole kmipd
// servers (the real binary, through testkit) in front of libcapped.so, the
// PKCS#11 shim that behaves like a shared, session-capped HSM with fault
// injection. Each test drives concurrent KMIP clients at the server, breaks
// the HSM in one way, and asserts what a client and the HSM would see.
package hsmfaults_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/kmipd/kmipd/hsm/testmodule"
	"github.com/kmipd/kmipd/testkit"
)

func TestMain(m *testing.M) {
	// A re-executed copy of this binary may be asked to play another tenant
	// of the shared HSM (see tenant_test.go).
	if os.Getenv(tenantEnv) != "" {
		os.Exit(tenantMain())
	}
	os.Exit(m.Run())
}

// capped is a kmipd dev server in front of the capped module, and the
// Control steering that "HSM".
type capped struct {
	dev   *testkit.Dev
	ctl   *testmodule.Control
	state string
	so    string
}

// startCapped starts kmipd over a fresh capped HSM whose cap is moduleCap and
// which refuses beyond it with CKR_DEVICE_MEMORY, as a Proteccio does. The
// state file is seeded by the module itself from CAPPED_* in kmipd's
// environment, the way an operator would configure it.
func startCapped(t *testing.T, moduleCap int, opts testkit.DevOptions) *capped {
	t.Helper()
	so := testmodule.Build(t) // skips, saying why, without gcc or SoftHSM
	state := filepath.Join(t.TempDir(), "capped.state")
	env := map[string]string{
		"CAPPED_STATE":        state,
		"CAPPED_MAX_SESSIONS": strconv.Itoa(moduleCap),
		"CAPPED_REFUSE":       "CKR_DEVICE_MEMORY",
	}
	for k, v := range opts.Env {
		env[k] = v
	}
	opts.Env, opts.Module = env, so
	d := testkit.StartDev(t, opts)
	ctl, err := testmodule.OpenControl(state)
	if err != nil {
		t.Fatalf("OpenControl: %v", err)
	}
	t.Cleanup(func() { ctl.Close() })
	if st := ctl.Stats(); st.Cap != moduleCap || st.RefuseCode != testmodule.RefuseDeviceMemory || !st.TokenPresent {
		t.Fatalf("the capped HSM is not as configured: %+v", st)
	}
	return &capped{dev: d, ctl: ctl, state: state, so: so}
}

// identities mints n fresh owners from the dev CA.
func identities(t *testing.T, d *testkit.Dev, prefix string, n int) []*testkit.Client {
	t.Helper()
	out := make([]*testkit.Client, n)
	for i := range out {
		out[i] = d.NewIdentity(t, prefix+strconv.Itoa(i))
	}
	return out
}

// freshPool pre-mints n owners that the load hands out one by one, so pKEKs
// keep being created (Random, Wrap and MAC in the HSM) during the load
// rather than only at its start. Minting in advance keeps certificate work
// and t.Fatal out of the workers.
func freshPool(t *testing.T, d *testkit.Dev, n int) chan *testkit.Client {
	t.Helper()
	ch := make(chan *testkit.Client, n)
	for _, c := range identities(t, d, "fresh", n) {
		ch <- c
	}
	return ch
}
