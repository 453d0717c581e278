package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmipd/kmipd/audit"
)

func TestAuditVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	s, err := audit.Open(path, audit.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	logN := func(n int) {
		for i := range n {
			ev := audit.Event{Time: time.Now(), Identity: "ab", CommonName: "alice", Version: "1.4", Operation: "Get",
				RequestUIDs: []string{"u"}, Result: "Success", Duration: time.Duration(i)}
			if err := s.Log(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	logN(4)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	logN(3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	verify := func(files ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(append([]string{"audit", "verify"}, files...), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	if code, out, errOut := verify(path+".1", path); code != 0 || !strings.Contains(out, "intact; last seq 11") {
		t.Fatalf("intact files: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := verify(path, path+".1"); code != 1 || !strings.Contains(errOut, path+".1:1: unlinked") {
		t.Fatalf("files out of order: exit %d\n%s", code, errOut)
	}
	if code, _, _ := verify(); code != 2 {
		t.Fatalf("no files: exit %d", code)
	}

	// Change one field in line 3 of the rotated file.
	b, err := os.ReadFile(path + ".1")
	if err != nil {
		t.Fatal(err)
	}
	ls := bytes.SplitAfter(b, []byte("\n"))
	ls[2] = bytes.Replace(ls[2], []byte(`"cn":"alice"`), []byte(`"cn":"mallo"`), 1)
	if err := os.WriteFile(path+".1", bytes.Join(ls, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := verify(path+".1", path); code != 1 || !strings.Contains(errOut, path+".1:3: changed") {
		t.Fatalf("changed line: exit %d\n%s", code, errOut)
	}
}
