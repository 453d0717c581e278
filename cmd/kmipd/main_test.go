package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmipd/kmipd/daemon"
)

// A startup failure must be an error message and exit 1, never a panic, and
// the error must not carry the PIN.
func TestServeStartupErrorsAreClean(t *testing.T) {
	dir := t.TempDir()
	cfg := daemon.DevConfig(dir, "127.0.0.1:0", "/usr/lib/softhsm/libsofthsm2.so", 3)
	var buf bytes.Buffer
	if err := cfg.WriteHCL(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "kmipd.hcl")
	cases := map[string]string{
		"unset pin env":    strings.Replace(buf.String(), "file:"+filepath.Join(dir, daemon.DevPINFile), "env:KMIPD_TEST_UNSET_PIN", 1),
		"missing pin file": buf.String(), // hsm.pin was never written
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			code := run([]string{"serve", "-config", path}, &out, &errOut)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, errOut.String())
			}
			if !strings.Contains(errOut.String(), "kmipd: ") || strings.Contains(errOut.String(), "panic") {
				t.Fatalf("stderr:\n%s", errOut.String())
			}
		})
	}
}

func TestUsageExitCodes(t *testing.T) {
	for args, want := range map[string]int{"": 2, "nope": 2, "version": 0, "serve": 2, "serve -h": 0, "certs": 2, "hsm": 2} {
		var out, errOut bytes.Buffer
		if got := run(strings.Fields(args), &out, &errOut); got != want {
			t.Errorf("kmipd %s: exit %d, want %d", args, got, want)
		}
	}
}
