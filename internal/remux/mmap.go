package remux

import (
	"os"
	"syscall"
)

// mapFile maps the regular file f of size bytes read-only, or returns nil (empty or too
// large for an int, or mmap failed: the caller reads the file instead). A mapped input
// that is truncated while it is read kills the process (SIGBUS), as with any reader of a
// mapped file.
func mapFile(f *os.File, size int64) []byte {
	if size <= 0 || int64(int(size)) != size {
		return nil
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil
	}
	_ = syscall.Madvise(b, syscall.MADV_SEQUENTIAL) // read-ahead; a hint only
	return b
}

func unmapFile(b []byte) { _ = syscall.Munmap(b) }
