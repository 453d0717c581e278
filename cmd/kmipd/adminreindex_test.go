package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kmipd/kmipd/admin"
	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/testkit"
)

// `kmipd admin reindex` against `kmipd dev` (a subprocess, on SoftHSM):
// every owner's index is rebuilt online, the report counts the objects,
// Locate finds the same before and after, and bad owners and flags fail
// clearly.
func TestAdminReindexCommand(t *testing.T) {
	dev := testkit.StartDev(t, testkit.DevOptions{})
	for _, n := range []string{"a", "b", "a"} {
		client(t, dev, nil, "create", "-name", n).ok(t)
	}
	before := locate(t, dev, "-name", "a")
	if len(before) != 2 {
		t.Fatalf("Locate -name a: %v", before)
	}
	cfg := filepath.Join(dev.Dir, daemon.DevConfigFile)
	var out, errOut bytes.Buffer
	if code := run([]string{"admin", "reindex", "-config", cfg, "-all", "-json"}, &out, &errOut); code != 0 {
		t.Fatalf("reindex -all: exit %d, %s", code, errOut.String())
	}
	var res daemon.ReindexResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if len(res.Owners) != 1 || res.Owners[0].Objects != 3 || res.Owners[0].Written != 0 || res.Owners[0].Removed != 0 {
		t.Fatalf("reindex -all of an index the writes kept: %+v", res)
	}
	owner := res.Owners[0].Owner
	out.Reset()
	errOut.Reset()
	if code := run([]string{"admin", "reindex", "-config", cfg, "-owner", owner}, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), owner+": index rebuilt, 3 objects, 0 entries written, 0 removed") {
		t.Fatalf("reindex -owner: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	// Both rebuilds show in admin status, text and JSON, as completed.
	out.Reset()
	if code := run([]string{"admin", "status", "-config", cfg, "-json"}, &out, &errOut); code != 0 {
		t.Fatalf("status -json: exit %d, %s", code, errOut.String())
	}
	var st admin.Status
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if len(st.Index.Running) != 0 || len(st.Index.Failed) != 0 || st.Index.Ended["completed"] != 2 {
		t.Fatalf("status -json after two reindexes: %+v", st.Index)
	}
	out.Reset()
	if code := run([]string{"admin", "status", "-config", cfg}, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "index:     rebuilds running 0; since start 2 completed, 0 failed, 0 stopped") {
		t.Fatalf("status: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	if after := locate(t, dev, "-name", "a"); !slices.Equal(slices.Sorted(slices.Values(after)), slices.Sorted(slices.Values(before))) {
		t.Fatalf("Locate after reindex: %v, before %v", after, before)
	}
	for args, want := range map[string]string{
		"-owner nobody":   `owner "nobody" has no pKEK`,
		"-owner a/b":      "not an owner identity",
		"-owner x -all":   "Usage",
		"":                "Usage",
		"-owner " + owner: "", // and a good one still works after them
	} {
		out.Reset()
		errOut.Reset()
		code := run(append([]string{"admin", "reindex", "-config", cfg}, strings.Fields(args)...), &out, &errOut)
		switch {
		case want == "" && code != 0:
			t.Errorf("reindex %s: exit %d, %s", args, code, errOut.String())
		case want != "" && (code == 0 || !strings.Contains(errOut.String(), want)):
			t.Errorf("reindex %s: exit %d, stderr %q; want %q", args, code, errOut.String(), want)
		}
	}
}
