//go:build linux

package storage

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// walVMAs reads /proc/self/smaps and counts the WAL mappings under dir and
// how many of them carry VM_RAND_READ ("rr" in VmFlags).
func walVMAs(t *testing.T, dir string) (wals, random int) {
	t.Helper()
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) > 0 && !strings.HasSuffix(f[0], ":") { // a mapping's header line
			in = false
			if i := strings.IndexByte(line, '/'); i >= 0 {
				path := line[i:]
				in = strings.HasPrefix(path, real+"/") && strings.HasSuffix(path, ".mem")
			}
			if in {
				wals++
			}
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			for _, fl := range strings.Fields(line)[1:] {
				if fl == "rr" {
					random++
				}
			}
			in = false
		}
	}
	return wals, random
}

// Every memtable WAL the store maps, the first and those opened as memtables
// fill, ends up MADV_RANDOM; without it, readahead grows the page-cache
// folios and each sync writes megabytes (waladvice_linux.go).
func TestWALMappingsAdvised(t *testing.T) {
	dir := t.TempDir()
	b, err := openBadger(dir, BadgerOptions{}, testLogger(t), func(o badger.Options) badger.Options {
		return o.WithMemTableSize(1 << 20).WithValueThreshold(64 << 10)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	value := make([]byte, 8<<10)
	for i := range 400 { // about 3 MiB through 1 MiB memtables
		mustPut(t, b, fmt.Sprintf("w/%04d", i), value)
	}
	// The advisor looks again after every 1/64 of a memtable committed, so
	// a WAL opened by the last of those writes is advised once more
	// writes follow: keep writing, as a live store would.
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		wals, random := walVMAs(t, dir)
		if wals >= 1 && random == wals && b.advised.Load() >= 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d WAL mappings, %d of them MADV_RANDOM; %d advised in all (want every one, and at least the first and one rotated WAL)",
				wals, random, b.advised.Load())
		}
		mustPut(t, b, fmt.Sprintf("more/%04d", i), value)
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWALMappingParse(t *testing.T) {
	a := &walAdvisor{dir: "/data/kmipd store/"}
	for _, c := range []struct {
		line string
		ok   bool
	}{
		{"7f35ac000000-7f35b4000000 rw-s 00000000 fe:00 10142041                   /data/kmipd store/00002.mem", true},
		{"7f35ac000000-7f35b4000000 rw-s 00000000 fe:00 10142041 /data/kmipd store/000001.vlog", false},
		{"7f35ac000000-7f35b4000000 rw-s 00000000 fe:00 10142041 /data/other/00002.mem", false},
		{"7f35ac000000-7f35b4000000 rw-s 00000000 fe:00 10142041 /data/kmipd store/00002.mem (deleted)", false},
		{"7f35ac000000-7f35b4000000 rw-p 00000000 00:00 0 ", false},
		{"zz-7f35b4000000 rw-s 00000000 fe:00 1 /data/kmipd store/00002.mem", false},
	} {
		start, end, key, ok := a.walMapping([]byte(c.line))
		if ok != c.ok {
			t.Errorf("%q: ok %v, want %v", c.line, ok, c.ok)
			continue
		}
		if ok && (start != 0x7f35ac000000 || end != 0x7f35b4000000 || key != "7f35ac000000-7f35b4000000 10142041") {
			t.Errorf("%q: %#x-%#x %q", c.line, start, end, key)
		}
	}
}
