//go:build linux

package audit

import (
	"os"
	"syscall"
)

// startWriteback starts writing back the n bytes of f at off
// (sync_file_range with SYNC_FILE_RANGE_WRITE: it does not wait for them).
// A failure only leaves the work to the kernel's flusher.
func startWriteback(f *os.File, off, n int64) {
	const syncFileRangeWrite = 2 // SYNC_FILE_RANGE_WRITE
	_, _, _ = syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, f.Fd(), uintptr(off), uintptr(n), syncFileRangeWrite, 0, 0)
}
