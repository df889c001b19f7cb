//go:build linux && (amd64 || arm64 || riscv64 || s390x || loong64)

package flvfile

import (
	"os"
	"syscall"
)

// syncFileRangeWrite is SYNC_FILE_RANGE_WRITE: start writeback of the dirty pages in the
// range that are not already under writeback, without waiting for it.
const syncFileRangeWrite = 2

// startWriteback asks the kernel to start writing [off, off+n) of f to disk now, so the
// data is on disk, or on its way, long before the final fsync. Best effort: errors are
// ignored (the fsync at the end is what makes the file durable). It does not block: the
// system call, which can wait while the device's queue is full (many publishes ending at
// once), runs in a goroutine on a duplicate of the descriptor, so f may be written to and
// closed meanwhile.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	fd := -1
	_ = rc.Control(func(orig uintptr) {
		fd, err = syscall.Dup(int(orig))
	})
	if err != nil || fd < 0 {
		return
	}
	go func() {
		_, _, _ = syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, uintptr(fd), uintptr(off), uintptr(n), syncFileRangeWrite, 0, 0)
		_ = syscall.Close(fd)
	}()
}
