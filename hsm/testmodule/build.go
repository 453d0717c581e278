// Package testmodule builds and controls libcapped.so, a PKCS#11 module written
// in C that wraps a real module (SoftHSM2 by default) and behaves like a shared,
// session-limited network HSM such as a Trustway Proteccio: one session cap
// across every process sharing a state file, the Proteccio's CKR_DEVICE_MEMORY
// refusal, a delay on every call like a network round trip, runtime fault
// injection (every k-th crypto call fails, invalidation of all open sessions,
// token removal), and CKM_AES_CBC_PAD key wrapping, which SoftHSM2 lacks and
// Barbican's p11_crypto needs.
//
// A test builds the module with Build, points CAPPED_STATE at a state file,
// loads the returned path with any PKCS#11 client, and steers or inspects the
// "HSM" through a Control on the same file, from this or any other process.
// Outside Go (tests/barbican_e2e drives it from Python), compile it the way
// build does and read the state file at the offsets in capped_state.h.
//
// Environment read by the module:
//
//	CAPPED_STATE          state file path (required; created if missing)
//	CAPPED_REAL_MODULE    wrapped module (default /usr/lib/softhsm/libsofthsm2.so)
//	CAPPED_MAX_SESSIONS   initial cap, 0 = none (default 0)
//	CAPPED_REFUSE         CKR_DEVICE_MEMORY (default), CKR_SESSION_COUNT, or a number
//	CAPPED_FAIL_EVERY_K   initial fail_every_k (default 0 = off)
//	CAPPED_TOKEN_PRESENT  initial token presence, 1 or 0 (default 1)
//	CAPPED_DELAY_US       initial delay of every call in µs (default 0 = none)
//
// The last five only seed a state file when it is created; after that the
// file is the truth and Control changes it. The layout is documented in
// capped_state.h and mirrored in control.go.
package testmodule

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

//go:embed capped.c capped_state.h capped_fwd.h capped_cbcpad.h include/*.h
var sources embed.FS

// DefaultRealModule is the SoftHSM2 library wrapped unless CAPPED_REAL_MODULE says otherwise.
const DefaultRealModule = "/usr/lib/softhsm/libsofthsm2.so"

// cflags are the compiler flags Build uses.
var cflags = []string{"-shared", "-fPIC", "-O2", "-Wall", "-Wextra"}

// RealModule is the path of the module libcapped.so wraps.
func RealModule() string {
	if p := os.Getenv("CAPPED_REAL_MODULE"); p != "" {
		return p
	}
	return DefaultRealModule
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Build compiles libcapped.so (once per test binary) and returns its path. It
// skips the test if gcc or the real module is missing and fails it if the
// build fails. The library is cached under the user cache directory, keyed by
// a hash of the sources and flags, so repeated runs do not recompile; a
// per-test t.TempDir would be deleted when the first test using it ends.
func Build(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skipf("testmodule: gcc not found, cannot build the capped PKCS#11 module: %v", err)
	}
	if _, err := os.Stat(RealModule()); err != nil {
		t.Skipf("testmodule: SoftHSM2 not installed (%v); apt-get install softhsm2", err)
	}
	buildOnce.Do(func() { buildPath, buildErr = build() })
	if buildErr != nil {
		t.Fatalf("testmodule: %v", buildErr)
	}
	return buildPath
}

func build() (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, cflags)
	err := fs.WalkDir(sources, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := sources.ReadFile(p)
		fmt.Fprintf(h, "%s %d\n", p, len(b))
		h.Write(b)
		return err
	})
	if err != nil {
		return "", err
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "kmipd-testmodule", hex.EncodeToString(h.Sum(nil))[:16])
	so := filepath.Join(dir, "libcapped.so")
	if _, err := os.Stat(so); err == nil {
		return so, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Compile in a private directory and rename the result into place, so
	// concurrent test binaries never load a half-written library.
	work, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	if err := os.CopyFS(work, sources); err != nil {
		return "", err
	}
	out := filepath.Join(work, "libcapped.so")
	args := append(append([]string{}, cflags...), "-o", out, "capped.c", "-Iinclude", "-ldl", "-lpthread")
	cmd := exec.Command("gcc", args...)
	cmd.Dir = work
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("gcc %v: %v\n%s", args, err, msg)
	}
	if err := os.Rename(out, so); err != nil {
		return "", err
	}
	return so, nil
}
