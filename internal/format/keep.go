package format

import (
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Hold accounts the bytes writers keep in memory because the disk was full (KeepWriter).
// The recording task bounds them: past its bound it drops new media before it reaches
// the writers, so what a writer accepted is never lost.
type Hold interface {
	// Kept reports delta bytes more kept in memory (negative: written out or given up).
	// err is the write error when a writer starts keeping bytes, nil otherwise.
	Kept(delta int64, err error)
}

// Keeper is implemented by writers whose files keep media in memory while the disk is
// full (KeepWriter). WriteKept writes what they keep as far as the disk takes it now; it
// reports the disk's error while some stays in memory. The recording task calls it when
// space returned while it feeds the writer nothing (past the hold bound, it drops).
type Keeper interface {
	WriteKept() error
}

// Unbounded is a Hold that accounts nothing.
type Unbounded struct{}

func (Unbounded) Kept(int64, error) {}

// keepRetry is how often a KeepWriter holding bytes tries the disk again on a write: a
// full disk answers every try with an error, and a stream writes many times a second.
const keepRetry = 250 * time.Millisecond

// KeepWriter is a working file that keeps in memory, in order, what the file system
// refuses for lack of space (a full disk, an exhausted quota) and writes it once space
// returns: the writer above it (a muxer, a bufio.Writer, which would hold the error for
// good and lose the bytes it accepted) goes on as if the write had succeeded, and a
// segment or fragment being written when the disk filled is written whole later. Without
// a Hold a refused write fails as any other (offline conversions keep nothing).
type KeepWriter struct {
	F     *os.File
	Hold  Hold
	kept  []byte
	tried time.Time
}

// Write writes p, or keeps it while the disk is full (or keeps what did not fit).
func (k *KeepWriter) Write(p []byte) (int, error) {
	if len(k.kept) > 0 {
		if now := time.Now(); now.Sub(k.tried) < keepRetry || k.Flush() != nil {
			k.tried = now
			k.kept = append(k.kept, p...)
			k.Hold.Kept(int64(len(p)), nil)
			return len(p), nil
		}
	}
	n, err := k.write(p)
	if err != nil && IsDiskFull(err) && k.Hold != nil {
		k.kept = append(k.kept, p[n:]...)
		k.tried = time.Now()
		k.Hold.Kept(int64(len(p)-n), err)
		return len(p), nil
	}
	return n, err
}

// WriteBuffers writes bufs in order, as Write would write them one after the other,
// in one writev(2) while the disk takes them: a fragment written from its tracks'
// arenas goes out in one call, not one per piece. What the call did not write (a
// partial write, a full disk) goes through Write.
func (k *KeepWriter) WriteBuffers(bufs [][]byte) error {
	if len(k.kept) == 0 && len(bufs) > 1 && len(bufs) <= maxIOV && !fakeFull.Load() {
		n, err := writev(k.F, bufs)
		if err != nil && !IsDiskFull(err) {
			return err
		}
		for len(bufs) > 0 && n >= len(bufs[0]) {
			n -= len(bufs[0])
			bufs = bufs[1:]
		}
		if len(bufs) > 0 {
			bufs[0] = bufs[0][n:]
		}
	}
	for _, b := range bufs {
		if _, err := k.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// maxIOV is Linux's IOV_MAX, the most pieces one writev takes.
const maxIOV = 1024

// writev is one writev(2) of bufs to f (retried on EINTR); it returns the bytes written.
func writev(f *os.File, bufs [][]byte) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.Writev(int(fd), bufs)
			if werr != unix.EINTR {
				return true
			}
		}
	})
	if err == nil {
		err = werr
	}
	if n < 0 {
		n = 0
	}
	if err != nil {
		err = &os.PathError{Op: "writev", Path: f.Name(), Err: err}
	}
	return n, err
}

// Holding reports whether bytes are kept in memory (not in the file yet).
func (k *KeepWriter) Holding() bool { return len(k.kept) > 0 }

// Kept is the number of bytes kept in memory.
func (k *KeepWriter) Kept() int { return len(k.kept) }

// Flush writes the kept bytes; while the disk stays full it fails and keeps the rest.
// A nil KeepWriter (no file yet) has nothing to write.
func (k *KeepWriter) Flush() error {
	for k != nil && len(k.kept) > 0 {
		n, err := k.write(k.kept)
		k.kept = k.kept[n:]
		if n > 0 {
			k.Hold.Kept(-int64(n), nil)
		}
		if err != nil {
			return err
		}
	}
	if k != nil {
		k.kept = nil
	}
	return nil
}

// Drop gives up the kept bytes (the file is abandoned: a shutdown on a full disk).
func (k *KeepWriter) Drop() {
	if len(k.kept) > 0 {
		k.Hold.Kept(-int64(len(k.kept)), nil)
	}
	k.kept = nil
}

func (k *KeepWriter) write(p []byte) (int, error) {
	if fakeFull.Load() {
		return 0, &os.PathError{Op: "write", Path: k.F.Name(), Err: syscall.ENOSPC}
	}
	return k.F.Write(p)
}

// fakeFull is FakeDiskFull's switch.
var fakeFull atomic.Bool

// FakeDiskFull makes every KeepWriter of the process answer as on a full disk (ENOSPC)
// while full is set: the media of every writer, and nothing else (journals, playlists).
// Only tests use it, to play a disk that fills and frees at a chosen unit.
func FakeDiskFull(full bool) { fakeFull.Store(full) }
