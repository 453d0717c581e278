package hsmfaults_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/kmipd/kmipd/hsm/testmodule"
)

// Another tenant of a shared HSM is this test binary re-executed: it loads
// the same capped module on the same token and state file, opens some
// sessions and holds them until its stdin closes. The cap then counts its
// sessions and kmipd's together, as a network HSM shared by several
// applications does.
const (
	tenantEnv      = "HSMFAULTS_TENANT_SESSIONS"
	tenantSOEnv    = "HSMFAULTS_TENANT_SO"
	devTokenLabel  = "kmipd-dev" // daemon.DevTokenLabel
	softHSMConfEnv = "SOFTHSM2_CONF"
)

// startTenant starts the other tenant with n sessions on the token of the
// dev server in devDir, and returns its pid. It ends at cleanup.
func startTenant(t *testing.T, c *capped, devDir string, n int) int {
	t.Helper()
	cmd, stop := testmodule.StartClient(t, "tenant",
		tenantEnv+"="+strconv.Itoa(n),
		tenantSOEnv+"="+c.so,
		"CAPPED_STATE="+c.state,
		softHSMConfEnv+"="+filepath.Join(devDir, "softhsm2.conf"))
	t.Cleanup(stop)
	return cmd.Process.Pid
}

func tenantMain() int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "tenant: "+format+"\n", a...)
		return 1
	}
	n, err := strconv.Atoi(os.Getenv(tenantEnv))
	if err != nil {
		return fail("%s: %v", tenantEnv, err)
	}
	p := pkcs11.New(os.Getenv(tenantSOEnv))
	if p == nil {
		return fail("cannot load %s", os.Getenv(tenantSOEnv))
	}
	if err := p.Initialize(); err != nil {
		return fail("C_Initialize: %v", err)
	}
	slot, err := testmodule.FindToken(p, devTokenLabel)
	if err != nil {
		return fail("%v", err)
	}
	var shs []pkcs11.SessionHandle
	for i := 0; i < n; i++ {
		sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
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
