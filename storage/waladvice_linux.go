//go:build linux

package storage

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// walAdvisor marks badger's memtable write-ahead logs MADV_RANDOM.
//
// Badger appends each commit to a memory-mapped WAL file (*.mem) and msyncs
// it. Faulting in the pages of that sparse file sequentially looks like a
// sequential read to the kernel, whose readahead then hands out ever larger
// page-cache folios (recent kernels give ext4 large folios: seen on 6.18,
// where with an 8 MiB device readahead they reach 2 MiB). Dirtiness is tracked per folio, so once the
// folios are large every sync of a few KiB writes megabytes: measured on
// kmipd's benchmark VM, 2 MiB per commit and 1.6 GB/s of disk writes for
// 6 MB/s of records, halving synced-write throughput as each 64 MiB
// memtable filled (BenchmarkSustainedCreate). MADV_RANDOM turns readahead
// off for the mapping, so pages stay 4 KiB and a sync writes what changed.
//
// Badger exposes neither its files nor a hook, so the advisor finds the
// mappings in /proc/self/maps: once at open, and then whenever another
// 1/64 of a memtable has been committed (a new WAL only appears when a
// write fills the memtable, and the folios only grow over megabytes), at
// most every advisePeriod. An idle store costs nothing, and a busy one a
// few reads of the maps file per second.
type walAdvisor struct {
	dir     string // resolved, as the kernel prints it
	every   int64  // committed bytes between scans
	pending atomic.Int64
	log     hclog.Logger
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	advised map[string]bool // "range inode" of mappings advised
	count   *atomic.Uint64
	once    sync.Once
}

const advisePeriod = 50 * time.Millisecond

func startWALAdvisor(dir string, memTableSize int64, count *atomic.Uint64, log hclog.Logger) *walAdvisor {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	a := &walAdvisor{dir: dir + string(filepath.Separator), every: max(memTableSize/64, 1), log: log, kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}), advised: map[string]bool{}, count: count}
	go a.run()
	return a
}

// poke reports n more bytes committed, asking for a scan once they add up
// to a.every; it never blocks.
func (a *walAdvisor) poke(n int) {
	if a == nil || a.pending.Add(int64(n)) < a.every {
		return
	}
	a.pending.Store(0)
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *walAdvisor) close() {
	if a == nil {
		return
	}
	a.once.Do(func() { close(a.stop) })
	<-a.done
}

func (a *walAdvisor) run() {
	defer close(a.done)
	if !a.scan() {
		return
	}
	for {
		select {
		case <-a.stop:
			return
		case <-a.kick:
		}
		if !a.scan() {
			return
		}
		select {
		case <-a.stop:
			return
		case <-time.After(advisePeriod):
		}
	}
}

// scan advises every WAL mapping of this store not advised yet; false means
// /proc is unusable and the advisor gives up.
func (a *walAdvisor) scan() bool {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		a.log.Debug("cannot read /proc/self/maps; WAL readahead stays on", "error", err)
		return false
	}
	seen := make(map[string]bool, len(a.advised))
	for line := range bytes.Lines(maps) {
		line = bytes.TrimRight(line, "\n")
		start, end, key, ok := a.walMapping(line)
		if !ok {
			continue
		}
		seen[key] = true
		if a.advised[key] {
			continue
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, start, end-start, syscall.MADV_RANDOM); errno != 0 {
			// EINVAL or ENOMEM: badger unmapped it since the read.
			a.log.Debug("madvise of a WAL mapping failed", "error", errno)
			continue
		}
		a.count.Add(1)
	}
	a.advised = seen // forget unmapped WALs
	return true
}

// walMapping parses one /proc/self/maps line ("start-end perms offset dev
// inode path") and reports whether it maps a WAL file of this store.
func (a *walAdvisor) walMapping(line []byte) (start, end uintptr, key string, ok bool) {
	slash := bytes.IndexByte(line, '/')
	if slash < 0 {
		return 0, 0, "", false
	}
	path := line[slash:]
	if !bytes.HasPrefix(path, []byte(a.dir)) || !bytes.HasSuffix(path, []byte(".mem")) {
		return 0, 0, "", false
	}
	f := bytes.Fields(line[:slash])
	if len(f) != 5 {
		return 0, 0, "", false
	}
	lo, hi, found := bytes.Cut(f[0], []byte("-"))
	s, err1 := strconv.ParseUint(string(lo), 16, 64)
	e, err2 := strconv.ParseUint(string(hi), 16, 64)
	if !found || err1 != nil || err2 != nil || e <= s {
		return 0, 0, "", false
	}
	return uintptr(s), uintptr(e), string(f[0]) + " " + string(f[4]), true
}
