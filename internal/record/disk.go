package record

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/livrec/livrec/internal/format"
)

// DefaultMinFreeBytes is the low-space threshold when Config.MinFreeBytes and
// MinFreePercent are both 0.
const DefaultMinFreeBytes = 1 << 30

// diskFullClear is the free space at which a full disk counts as usable again: enough
// for a few segments of many streams, so recording does not flap at the edge.
const diskFullClear = 8 << 20

// diskWatch is the recorder's view of the data directory's file system: one goroutine
// checks the free space every Config.DiskCheckInterval (statfs) and raises the low-space
// alarm below the threshold; a write that fails for lack of space (ENOSPC) marks the
// disk full at once. While it is full, tasks drop new media (counted in
// livrec_dropped_units_total{reason="disk_full"}) instead of writing it; what was written
// stays. When the check sees diskFullClear bytes free again, recording resumes (segment
// formats with a discontinuity, mp4/flv in a new file).
type diskWatch struct {
	m       *Manager
	dir     string
	minFree func(total uint64) uint64

	mu      sync.Mutex
	full    bool
	episode uint64 // bumped every time the disk becomes full
	low     bool
}

func newDiskWatch(m *Manager) *diskWatch {
	bytes, pct := m.cfg.MinFreeBytes, m.cfg.MinFreePercent
	if bytes == 0 && pct == 0 {
		bytes = DefaultMinFreeBytes
	}
	return &diskWatch{m: m, dir: m.cfg.WorkDir, minFree: func(total uint64) uint64 {
		if pct > 0 {
			return uint64(float64(total) * pct / 100)
		}
		return bytes
	}}
}

// run checks the free space until ctx ends.
func (d *diskWatch) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		d.check()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *diskWatch) check() {
	var st syscall.Statfs_t
	dir := d.dir
	err := syscall.Statfs(dir, &st)
	for errors.Is(err, syscall.ENOENT) && filepath.Dir(dir) != dir {
		dir = filepath.Dir(dir) // not created yet: its file system is its parent's
		err = syscall.Statfs(dir, &st)
	}
	if err != nil {
		d.m.cfg.Logger.Warn("free space check failed", "dir", d.dir, "err", err)
		return
	}
	free, total := st.Bavail*uint64(st.Bsize), st.Blocks*uint64(st.Bsize)
	met := d.m.cfg.Metrics
	met.DiskFree.Set(float64(free))
	min := d.minFree(total)

	d.mu.Lock()
	wasLow, wasFull := d.low, d.full
	d.low = free < min
	if d.full && free >= diskFullClear {
		d.full = false
	}
	low, full := d.low, d.full
	d.mu.Unlock()

	met.DiskLow.Set(b2f(low))
	met.DiskFull.Set(b2f(full))
	switch {
	case low && !wasLow:
		d.m.emit(Event{Type: EventError, Code: "low_disk_space", Message: fmt.Sprintf(
			"data directory %s: %d MiB free, below minFreeSpace (%d MiB): recording stops when the disk is full", d.dir, free>>20, min>>20)})
	case !low && wasLow:
		d.m.cfg.Logger.Info("free space above minFreeSpace again", "dir", d.dir, "free_mib", free>>20)
	}
	if wasFull && !full {
		d.m.cfg.Logger.Info("disk space available again: recording resumes", "dir", d.dir, "free_mib", free>>20)
	}
}

// noteFull marks the disk full after a write failed with err, if err says so; it
// reports whether it did. The first failure of an episode is reported once
// (record_error disk_full, counted in livrec_errors_total and logged).
func (d *diskWatch) noteFull(err error) bool {
	if d == nil || !isDiskFull(err) {
		return false
	}
	d.mu.Lock()
	was := d.full
	if !was {
		d.full = true
		d.episode++
	}
	d.mu.Unlock()
	if !was {
		d.m.cfg.Metrics.DiskFull.Set(1)
		d.m.emit(Event{Type: EventError, Code: "disk_full", Message: fmt.Sprintf(
			"data directory %s is full (%v): new media is dropped until space is freed; what was recorded is kept", d.dir, err)})
	}
	return true
}

// state reports whether the disk is full, and the episode.
func (d *diskWatch) state() (bool, uint64) {
	if d == nil {
		return false, 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.full, d.episode
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// isDiskFull reports an error of a full file system: a write, a store or a catalog
// update (SQLite's "database or disk is full") that may succeed once space is freed.
func isDiskFull(err error) bool {
	if err == nil {
		return false
	}
	if format.IsDiskFull(err) {
		return true
	}
	var coded interface{ Code() int }
	return errors.As(err, &coded) && coded.Code()&0xff == sqliteFull
}

// sqliteFull is SQLITE_FULL, the primary result code of a write that found no space.
const sqliteFull = 13
