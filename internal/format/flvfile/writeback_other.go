//go:build !(linux && (amd64 || arm64 || riscv64 || s390x || loong64))

package flvfile

import "os"

// startWriteback does nothing where sync_file_range(2) is not available: the final fsync
// writes what the kernel has not written back by itself.
func startWriteback(f *os.File, off, n int64) {}
