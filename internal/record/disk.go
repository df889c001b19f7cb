package record

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
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
// disk full at once. While it is full, the writers keep in memory what the disk refuses,
// within memHold's bounds, and write it out once space returns; past the bounds tasks
// drop new media (counted in livrec_dropped_units_total{reason="disk_full"}); what was
// written or accepted stays. When the check sees diskFullClear bytes free again, the
// disk counts as usable (a file whose generation waits for space is tried again).
type diskWatch struct {
	m       *Manager
	dir     string
	minFree func(total uint64) uint64

	mu   sync.Mutex
	full bool
	low  bool
	// usable is closed when a full disk counts as usable again (a new one is made when
	// it fills): retries waiting for space wake at once.
	usable chan struct{}
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
		close(d.usable)
	}
	low, full := d.low, d.full
	d.mu.Unlock()

	met.DiskLow.Set(b2f(low))
	met.DiskFull.Set(b2f(full))
	switch {
	case low && !wasLow:
		d.m.emit(Event{Type: EventError, Code: "low_disk_space", Message: fmt.Sprintf(
			"data directory %s: %d MiB free, below minFreeSpace (%d MiB): once the disk is full, media waits in memory up to diskFullHold, then new media is dropped", d.dir, free>>20, min>>20)})
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
		d.usable = make(chan struct{})
	}
	d.mu.Unlock()
	if !was {
		d.m.cfg.Metrics.DiskFull.Set(1)
		d.m.emit(Event{Type: EventError, Code: "disk_full", Message: fmt.Sprintf(
			"data directory %s is full (%v): media waits in memory up to diskFullHold (%d MiB), then new media is dropped until space is freed; what was recorded is kept",
			d.dir, err, d.m.hold.max>>20)})
	}
	return true
}

// isFull reports whether the disk is marked full (a write failed for lack of space
// and the free-space check has not seen enough free space since).
func (d *diskWatch) isFull() bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.full
}

// whenUsable returns a channel closed once the disk is usable (nil without the
// disk-full handling: never).
func (d *diskWatch) whenUsable() <-chan struct{} {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.full {
		c := make(chan struct{})
		close(c)
		return c
	}
	return d.usable
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

// Defaults of Config.DiskFullHold and DiskFullHoldPerStream: 16 MiB is about 20 s of a
// 2 Mbit/s stream recorded in three formats; 256 MiB covers 16 such streams at once.
const (
	DefaultDiskFullHold          = 256 << 20
	DefaultDiskFullHoldPerStream = 16 << 20
)

// holdLogEvery is how often the media dropped past the hold bound is logged.
const holdLogEvery = 10 * time.Second

// memHold bounds the bytes the writers keep in memory while the disk is full
// (format.KeepWriter): each task's share and the whole process. Within the bounds a
// full disk loses nothing: what the writers accepted is written in order once space
// returns (a segment is stored only once written whole). Past them a task drops new
// media before it reaches the writers, so what they accepted stays whole.
type memHold struct {
	m            *Manager
	max, perTask int64
	n            atomic.Int64

	mu      sync.Mutex
	dropped int64 // since the last log
	logged  time.Time
}

func newMemHold(m *Manager) *memHold {
	h := &memHold{m: m, max: m.cfg.DiskFullHold, perTask: m.cfg.DiskFullHoldPerStream}
	if h.max == 0 {
		h.max = DefaultDiskFullHold
	}
	if h.perTask == 0 {
		h.perTask = DefaultDiskFullHoldPerStream
	}
	h.max, h.perTask = max(h.max, 0), max(h.perTask, 0)
	return h
}

// taskHold is one task's share of memHold: the format.Hold of its writers.
type taskHold struct {
	all *memHold
	n   atomic.Int64
}

func (h *taskHold) Kept(delta int64, err error) {
	h.n.Add(delta)
	h.all.n.Add(delta)
	h.all.m.cfg.Metrics.DiskHeld.Add(float64(delta))
	if err != nil {
		h.all.m.disk.noteFull(err)
	}
}

// over reports whether the task's writers may take no more media: the task's share or
// the process's bound is spent. Once over, the task resumes when it is back below half
// of them (resume), so it does not flap at the edge while space returns.
func (h *taskHold) over(resume bool) bool {
	task, all := h.all.perTask, h.all.max
	if resume {
		task, all = task/2, all/2
	}
	return h.n.Load() > task || h.all.n.Load() > all
}

// release gives up what the task's writers still keep (they were dropped unfinished).
func (h *taskHold) release() {
	if n := h.n.Swap(0); n != 0 {
		h.all.n.Add(-n)
		h.all.m.cfg.Metrics.DiskHeld.Add(float64(-n))
	}
}

// exceeded reports that task t starts dropping media: once per task and gap, as a
// record_error event (disk_full_dropping) and a log line.
func (h *memHold) exceeded(t *Task) {
	ev := t.event(EventError)
	ev.Code = "disk_full_dropping"
	ev.Message = fmt.Sprintf("the disk is full and %s of this stream (%s of all streams) wait in memory, the bound (diskFullHoldPerStream %s, diskFullHold %s): new media is dropped until space returns; what was received before is kept",
		mib(t.hold.n.Load()), mib(h.n.Load()), mib(h.perTask), mib(h.max))
	h.m.emit(ev)
}

// mib formats a byte count for a message.
func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// drop counts an access unit dropped past the bound (livrec_dropped_units_total
// {reason="disk_full"}) and logs the drops at most every holdLogEvery.
func (h *memHold) drop() {
	h.m.cfg.Metrics.DroppedUnits.WithLabelValues("disk_full").Inc()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropped++
	if now := time.Now(); now.Sub(h.logged) >= holdLogEvery {
		h.m.cfg.Logger.Warn("disk full and the memory bound reached: new media dropped", "dropped_units", h.dropped,
			"held_mib", h.n.Load()>>20, "dir", h.m.cfg.WorkDir)
		h.dropped, h.logged = 0, now
	}
}
