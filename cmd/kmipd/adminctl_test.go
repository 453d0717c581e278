package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmipd/kmipd/daemon"
)

// Admin commands fail clearly, exit 1, when the server is not running or
// the configuration has no admin block; bad flags exit 2.
func TestAdminCommandErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := daemon.DevConfig(dir, "127.0.0.1:0", "/usr/lib/softhsm/libsofthsm2.so", 3)
	write := func(c *daemon.Config) string {
		var buf bytes.Buffer
		if err := c.WriteHCL(&buf); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "kmipd.hcl")
		if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	path := write(cfg)
	for args, want := range map[string]string{
		"admin status -config " + path:                 "nothing answers on " + cfg.Admin.Socket,
		"admin backup -config " + path + " -out x.bak": "nothing answers",
		"admin rotate-pkek -config " + path + " -all":  "nothing answers",
		"admin reindex -config " + path + " -all":      "nothing answers",
		"admin status -config " + path + ".missing":    "no such file",
	} {
		var out, errOut bytes.Buffer
		if code := run(strings.Fields(args), &out, &errOut); code != 1 || !strings.Contains(errOut.String(), want) {
			t.Errorf("kmipd %s: exit %d, stderr %q; want 1 and %q", args, code, errOut.String(), want)
		}
	}
	cfg.Admin = nil
	path = write(cfg)
	var out, errOut bytes.Buffer
	if code := run([]string{"admin", "status", "-config", path}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "no admin block") {
		t.Errorf("no admin block: exit %d, %q", code, errOut.String())
	}
	for _, args := range []string{"admin", "admin nope", "admin rotate-pkek -config x", "admin backup -config x", "restore -config x",
		"admin reindex -config x", "admin reindex -config x -all -owner o"} {
		if code := run(strings.Fields(args), &out, &errOut); code != 2 {
			t.Errorf("kmipd %s: exit %d, want 2", args, code)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.bak")); err == nil {
		t.Error("a failed backup left a file")
	}
}
