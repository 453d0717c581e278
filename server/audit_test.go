package server

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmipd/kmipd/audit"
	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/kek/kektest"
	"github.com/kmipd/kmipd/kmipops"
	"github.com/kmipd/kmipd/storage"
)

// TestFramingErrorsAudited: every message the server refuses before the
// processor sees it leaves one audit line, written before the connection
// closes, with the caller's identity and CN (none when the TLS handshake
// failed), result "malformed" and a reason, and not a byte of the message;
// the chain verifies.
func TestFramingErrorsAudited(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	sink, err := audit.Open(path, audit.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := storage.NewMemory()
	proc := kmipops.NewProcessor(st, kek.New(kektest.NewMasterKeys(), st, kek.Config{}, nil), kmipops.Options{Audit: sink}, nil)
	e := startServer(t, envOpt{cfg: Config{ReadTimeout: 300 * time.Millisecond}, proc: proc})
	wantIdentity := Identity(e.client.leaf)
	secret := request(1) // carries secretMarker

	cases := []struct {
		name, reason string
		send         func(c net.Conn)
		closes       bool
	}{
		{"bad header", "unparseable message header", func(c net.Conn) {
			c.Write(append([]byte{0x00, 0x00, 0x78, 0x01, 0, 0, 0, 8}, secret[8:]...))
		}, true},
		{"too large", "larger than the limit", func(c net.Conn) {
			c.Write([]byte{0x42, 0x00, 0x78, 0x01, 0x7f, 0xff, 0xff, 0xff})
			_, _ = readResponse(c)
		}, true},
		{"truncated", "closed mid-message", func(c net.Conn) {
			c.Write(secret[:len(secret)-3])
			c.(interface{ CloseWrite() error }).CloseWrite()
		}, true},
		{"read timeout", "read timeout", func(c net.Conn) {
			c.Write(secret[:12])
		}, true},
		{"undecodable", "not decodable", func(c net.Conn) {
			// Framed correctly, but the item's type is unknown: answered,
			// and the connection stays.
			bad := append([]byte{0x42, 0x00, 0x78, 0x01, 0, 0, 0, 0x30, 0x42, 0x00, 0x77, 0x0c, 0, 0, 0, 0x28}, secret[16:16+0x28]...)
			if _, err := roundTrip(c, bad); err != nil {
				t.Errorf("undecodable message not answered: %v", err)
			}
		}, false},
	}
	for _, tc := range cases {
		c := e.mustDial(e.client)
		tc.send(c)
		if tc.closes {
			expectClosed(t, c)
		}
		c.Close()
	}
	// A client that does not speak TLS at all.
	raw, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	raw.Write(secret)
	expectClosed(t, raw)
	raw.Close()

	// The lines are queued before each close; Flush writes them.
	deadline := time.Now().Add(5 * time.Second)
	var lines []map[string]any
	for {
		if err := sink.Flush(); err != nil {
			t.Fatal(err)
		}
		lines = readAuditLines(t, path)
		if len(lines) >= 1+len(cases)+1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.stop()
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(secretMarker)) || bytes.Contains(b, []byte(secret[16:16+0x28])) {
		t.Fatalf("the audit log holds message bytes:\n%s", b)
	}
	if _, err := audit.Verify(bytes.NewReader(b)); err != nil {
		t.Fatalf("chain: %v", err)
	}
	lines = readAuditLines(t, path)
	events := lines[1 : len(lines)-1] // open and close records around them
	if len(events) != len(cases)+1 {
		t.Fatalf("%d event lines, want %d:\n%s", len(events), len(cases)+1, b)
	}
	// Connections end in any order: match each case by its reason.
	for _, tc := range cases {
		found := false
		for _, l := range events {
			if strings.Contains(l["reason"].(string), tc.reason) {
				found = true
				if l["result"] != audit.ResultMalformed || l["identity"] != wantIdentity || l["cn"] != "client-a" ||
					l["batch_index"] != float64(-1) || l["op"] != nil {
					t.Errorf("%s: line %v", tc.name, l)
				}
			}
		}
		if !found {
			t.Errorf("%s: no line with reason %q:\n%s", tc.name, tc.reason, b)
		}
	}
	tlsLine := false
	for _, l := range events {
		if l["reason"] == "TLS handshake failed" {
			tlsLine = l["identity"] == "" && l["cn"] == "" && l["result"] == audit.ResultMalformed
		}
	}
	if !tlsLine {
		t.Errorf("no anonymous line for the failed TLS handshake:\n%s", b)
	}
}

func readAuditLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("%v: %q", err, l)
		}
		out = append(out, m)
	}
	return out
}
