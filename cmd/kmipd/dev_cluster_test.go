package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The error for a replica that did not start carries its log's last lines:
// a test's folder, and the log with it, is gone when someone reads CI.
func TestLogTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replica-1.log")
	var b strings.Builder
	for i := range 30 {
		b.WriteString("line " + string(rune('a'+i%26)) + "\n")
	}
	b.WriteString("kmipd: listen tcp 127.0.0.1:1: bind: address already in use\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	got := logTail(path, 3)
	want := "\n    line c\n    line d\n    kmipd: listen tcp 127.0.0.1:1: bind: address already in use"
	if got != want {
		t.Fatalf("logTail = %q, want %q", got, want)
	}
	if got := logTail(filepath.Join(t.TempDir(), "none.log"), 3); got != "" {
		t.Fatalf("missing log: %q", got)
	}
}
