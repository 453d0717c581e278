// Package testkit runs whole kmipd servers for tests: it builds the real
// binary, starts `kmipd dev` as a subprocess on free loopback ports, and gives
// tests KMIP clients (the dev identity or fresh ones from the dev CA), the
// server's log, its readiness and its Prometheus metrics.
//
// It is ordinary (non-test) Go so that any test suite can import it; it
// depends on package testing only for testing.TB.
package testkit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// BuildKmipd builds ./cmd/kmipd once per test binary and returns the path of
// the executable. The binary lives in the user cache directory (a per-test
// TempDir would vanish when the first test using it ends), under a folder
// named after the module root, so test binaries of different checkouts do not
// share one. go build's own cache makes a rebuild of unchanged sources cheap.
//
// When the test binary itself is built with -race, kmipd is too, so data
// races inside the server under fault injection surface in its log (and
// (*Dev).Stop fails the test on them).
func BuildKmipd(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { buildPath, buildErr = buildKmipd() })
	if buildErr != nil {
		t.Fatalf("testkit: building kmipd: %v", buildErr)
	}
	return buildPath
}

func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	// CI puts the toolchain in /usr/local/go; a test may run without it on PATH.
	p := "/usr/local/go/bin/go"
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("the go tool is not on PATH nor at %s", p)
	}
	return p, nil
}

// kmipdModule is the module whose ./cmd/kmipd BuildKmipd builds.
const kmipdModule = "github.com/kmipd/kmipd"

func buildKmipd() (string, error) {
	gotool, err := goTool()
	if err != nil {
		return "", err
	}
	// The kmipd module's own folder, not the current module's: a nested test
	// module (tests/ovhclient) reaches kmipd through a replace directive, and
	// kmipd must build from its own go.mod, as it ships.
	out, err := exec.Command(gotool, "list", "-m", "-f", "{{.Dir}}", kmipdModule).Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %v (not inside the kmipd module or one replacing it?)", kmipdModule, err)
	}
	root := strings.TrimSpace(string(out))
	if root == "" {
		return "", fmt.Errorf("go list -m %s: no module folder", kmipdModule)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	flavour := "plain"
	args := []string{"build", "-o"}
	if raceEnabled {
		flavour = "race"
	}
	sum := sha256.Sum256([]byte(root + "\x00" + flavour))
	dir := filepath.Join(base, "kmipd-testkit", hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Build under a private name and rename into place: concurrent test
	// binaries (go test ./... runs packages in parallel) never exec a
	// half-written file, and a running kmipd keeps its old inode.
	tmp, err := os.CreateTemp(dir, "kmipd-*.tmp")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	args = append(args, tmp.Name())
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/kmipd")
	cmd := exec.Command(gotool, args...)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, msg)
	}
	bin := filepath.Join(dir, "kmipd")
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", err
	}
	return bin, nil
}
