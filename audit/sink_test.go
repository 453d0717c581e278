package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func testEvent(i int) Event {
	return Event{
		Time: time.Date(2025, 1, 2, 3, 4, 5, i, time.UTC), Identity: strings.Repeat("ab", 32), CommonName: "alice",
		Version: "1.4", Operation: "Get", BatchIndex: i % 3, BatchItemID: []byte{byte(i)},
		RequestUIDs: []string{"uid-req"}, ResponseUIDs: []string{"uid-resp"},
		Result: "Success", Duration: time.Duration(i) * time.Microsecond,
	}
}

func openT(t *testing.T, path string, opts Options) *Sink {
	t.Helper()
	s, err := Open(path, opts, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func verifyFile(t *testing.T, path string) Report {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := Verify(f)
	if err != nil {
		t.Fatalf("Verify %s: %v", filepath.Base(path), err)
	}
	return rep
}

// lines returns the JSON objects of a log file, one per line.
func lines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range bytes.SplitAfter(b, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("line %d is not JSON: %v: %q", len(out)+1, err, l)
		}
		out = append(out, m)
	}
	return out
}

func TestSinkConcurrentEventsVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := openT(t, path, Options{MaxPending: 2048, FlushBytes: 512})
	const workers, each = 4, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := s.Log(context.Background(), testEvent(w*each+i)); err != nil {
					t.Errorf("Log: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Log(context.Background(), testEvent(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Log after Close: %v, want ErrClosed", err)
	}
	rep := verifyFile(t, path)
	if want := workers*each + 2; rep.Records != want || rep.FirstSeq != 1 || rep.LastSeq != uint64(want) ||
		rep.FirstPrev != GenesisHash || !rep.Closed || rep.Opens != 1 {
		t.Fatalf("report %+v, want %d records from genesis, closed", rep, want)
	}
	ls := lines(t, path)
	if ls[0]["audit"] != "open" || ls[len(ls)-1]["audit"] != "close" {
		t.Fatalf("first/last lines %v / %v", ls[0], ls[len(ls)-1])
	}
	seen := map[float64]bool{}
	for _, l := range ls[1 : len(ls)-1] {
		if l["op"] != "Get" || l["cn"] != "alice" || l["result"] != "Success" || l["version"] != "1.4" {
			t.Fatalf("event line %v", l)
		}
		if u := l["request_uids"].([]any); len(u) != 1 || u[0] != "uid-req" {
			t.Fatalf("request_uids %v", u)
		}
		seen[l["duration_ns"].(float64)] = true
	}
	if len(seen) != workers*each {
		t.Fatalf("%d distinct events, want %d", len(seen), workers*each)
	}
}

func TestSinkHostileStrings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := openT(t, path, Options{})
	e := testEvent(1)
	e.CommonName = "a\"b\\c\nd\x00e\u2028f\xffg</script>"
	long := strings.Repeat("é", 1000)
	many := make([]string, MaxUIDs+5)
	for i := range many {
		many[i] = "u"
	}
	e.RequestUIDs, e.ResponseUIDs, e.UIDsOmitted = []string{long}, many, 2
	e.BatchItemID = bytes.Repeat([]byte{0xaa}, 1000)
	if err := s.Log(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	verifyFile(t, path)
	l := lines(t, path)[1]
	if want := "a\"b\\c\nd\x00e\u2028f\ufffdg</script>"; l["cn"] != want {
		t.Fatalf("cn %q, want %q", l["cn"], want)
	}
	u := l["request_uids"].([]any)[0].(string)
	if !strings.HasSuffix(u, "…") || len(u) > maxField+len("…") || !strings.HasPrefix(u, "éé") {
		t.Fatalf("long uid not cut on a rune boundary: %d bytes %q", len(u), u[len(u)-8:])
	}
	if n := len(l["response_uids"].([]any)); n != MaxUIDs {
		t.Fatalf("%d response uids, want %d", n, MaxUIDs)
	}
	if n := l["uids_omitted"].(float64); n != 7 {
		t.Fatalf("uids_omitted %v, want 7", n)
	}
	if id := l["batch_item_id"].(string); len(id) != 2*maxBatchItemID {
		t.Fatalf("batch_item_id %d hex digits", len(id))
	}
}

func TestSinkResumesExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	for round := range 3 {
		s := openT(t, path, Options{})
		for i := range 5 {
			if err := s.Log(context.Background(), testEvent(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if rep := verifyFile(t, path); rep.Opens != round+1 || rep.Records != 7*(round+1) {
			t.Fatalf("round %d: %+v", round, rep)
		}
	}
}

func TestSinkResumesAfterCrashMidLine(t *testing.T) {
	dir := t.TempDir()
	write := func(name string) (string, []byte) {
		path := filepath.Join(dir, name)
		s := openT(t, path, Options{})
		for i := range 3 {
			_ = s.Log(context.Background(), testEvent(i))
		}
		s.Close()
		b, _ := os.ReadFile(path)
		return path, b
	}

	// A fragment of a line: kept, ended, and reported by Verify; the
	// sink goes on after it.
	path, b := write("cut.log")
	if err := os.WriteFile(path, append(b, `{"seq":6,"prev":"00`...), 0o600); err != nil {
		t.Fatal(err)
	}
	s := openT(t, path, Options{})
	_ = s.Log(context.Background(), testEvent(9))
	s.Close()
	f, _ := os.Open(path)
	_, err := Verify(f)
	f.Close()
	var p *Problem
	if !errors.As(err, &p) || p.Line != 6 || p.Kind != Malformed {
		t.Fatalf("Verify after a cut line: %v, want malformed line 6", err)
	}

	// A last record that only lost its '\n' lost nothing: the chain goes on from it.
	path, b = write("nl.log")
	if err := os.WriteFile(path, b[:len(b)-1], 0o600); err != nil {
		t.Fatal(err)
	}
	s = openT(t, path, Options{})
	s.Close()
	if rep := verifyFile(t, path); rep.Records != 7 {
		t.Fatalf("%+v", rep)
	}
}

func TestSinkRefusesForeignFile(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"text":    "hello\nworld\n",
		"json":    `{"level":"info"}` + "\n",
		"long":    strings.Repeat("x", 3*maxLine),
		"oneline": `{"seq":1}` + "\n",
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if s, err := Open(path, Options{}, nil); err == nil {
			s.Close()
			t.Errorf("%s: Open appended to a file that is not an audit log", name)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Errorf("%s: file changed", name)
		}
	}
}

func TestSinkRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	s := openT(t, path, Options{})
	logN := func(n int) {
		for i := range n {
			if err := s.Log(context.Background(), testEvent(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// SIGHUP without a rotation: the same file goes on.
	logN(3)
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	// logrotate renames, then signals; lines logged in between go to the
	// renamed file.
	for i := 1; i <= 2; i++ {
		logN(4)
		if err := os.Rename(path, filepath.Join(dir, "audit.log."+string(rune('0'+3-i)))); err != nil {
			t.Fatal(err)
		}
		logN(2)
		if err := s.Reopen(); err != nil {
			t.Fatal(err)
		}
	}
	logN(5)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files := []string{"audit.log.2", "audit.log.1", "audit.log"}
	var reps []Report
	for i, name := range files {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var rep Report
		if i == 0 {
			rep, err = Verify(f)
		} else {
			rep, err = VerifyAfter(reps[i-1], f)
		}
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !rep.Closed || rep.Opens != 1 {
			t.Fatalf("%s: %+v, want one open and a close record", name, rep)
		}
		reps = append(reps, rep)
	}
	if reps[0].FirstPrev != GenesisHash || reps[1].FirstPrev != reps[0].LastHash || reps[2].FirstSeq != reps[1].LastSeq+1 {
		t.Fatalf("files do not link: %+v", reps)
	}
	total := reps[0].Records + reps[1].Records + reps[2].Records
	if want := 3 + 2*6 + 5 + 2*3; total != want {
		t.Fatalf("%d records, want %d", total, want)
	}

	// Checked in the wrong order, or with the middle file missing.
	check := func(a, b string, kind Kind) {
		t.Helper()
		fa, _ := os.Open(filepath.Join(dir, a))
		ra, err := Verify(fa)
		fa.Close()
		if err != nil {
			t.Fatal(err)
		}
		fb, _ := os.Open(filepath.Join(dir, b))
		_, err = VerifyAfter(ra, fb)
		fb.Close()
		var p *Problem
		if !errors.As(err, &p) || p.Line != 1 || p.Kind != kind {
			t.Fatalf("%s then %s: %v, want %s at line 1", a, b, err, kind)
		}
	}
	check("audit.log.2", "audit.log", Removed)
	check("audit.log", "audit.log.1", Reordered)

	// A log started afresh after the old one was moved away does not
	// continue it.
	if err := os.Rename(path, filepath.Join(dir, "old.log")); err != nil {
		t.Fatal(err)
	}
	s = openT(t, path, Options{})
	s.Close()
	check("old.log", "audit.log", Unlinked)
}

// gatedWriter blocks every Write until the gate is open.
type gatedWriter struct {
	gate chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	<-w.gate
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func TestSinkBackpressureNeverDrops(t *testing.T) {
	w := &gatedWriter{gate: make(chan struct{})}
	s := NewStream(w, Options{MaxPending: 1, FlushBytes: 1}, nil)
	accepted := 0
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		err := s.Log(ctx, testEvent(i))
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Log: %v", err)
			}
			break
		}
		accepted++
		if i > 100 {
			t.Fatal("a blocked writer never pushed back")
		}
	}
	close(w.gate)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(bytes.NewReader(w.buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != accepted+2 {
		t.Fatalf("%d records for %d accepted events", rep.Records, accepted)
	}
}

// failingWriter fails its first writes (disk full), then works; it records
// each successful Write.
type failingWriter struct {
	mu     sync.Mutex
	fails  int
	writes [][]byte
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fails > 0 {
		w.fails--
		// A short write, as a filling disk gives.
		n := len(p) / 3
		w.writes = append(w.writes, append([]byte(nil), p[:n]...))
		return n, errors.New("no space left on device")
	}
	w.writes = append(w.writes, append([]byte(nil), p...))
	return len(p), nil
}

func TestSinkWriteFailuresKeepLines(t *testing.T) {
	w := &failingWriter{fails: 5}
	s := NewStream(w, Options{FlushInterval: time.Millisecond, FlushBytes: 300}, nil)
	for i := range 200 {
		if err := s.Log(context.Background(), testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(bytes.NewReader(bytes.Join(w.writes, nil)))
	if err != nil || rep.Records != 202 {
		t.Fatalf("%+v, %v: want 202 records intact", rep, err)
	}
}

func TestStreamWritesWholeLines(t *testing.T) {
	w := &failingWriter{}
	s := NewStream(w, Options{FlushBytes: 64 << 10, FlushInterval: time.Hour}, nil)
	for i := range 100 {
		_ = s.Log(context.Background(), testEvent(i))
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if len(w.writes) < 2 {
		t.Fatalf("%d writes", len(w.writes))
	}
	for i, p := range w.writes {
		if len(p) > pipeBuf || p[len(p)-1] != '\n' {
			t.Fatalf("write %d: %d bytes, ends %q", i, len(p), p[len(p)-1])
		}
	}
}
