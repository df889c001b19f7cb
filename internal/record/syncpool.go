package record

import (
	"fmt"
	"sync"
	"time"

	"github.com/livrec/livrec/internal/format"
)

// Defaults of the sync pool (Config.SyncWorkers, SyncSlowAfter; SyncBacklog:
// DefaultSyncBacklog).
const (
	DefaultSyncWorkers   = 16
	DefaultSyncSlowAfter = 10 * time.Second
)

// Bounds of DefaultSyncBacklog.
const (
	minDefaultSyncBacklog = 256 << 20
	maxDefaultSyncBacklog = 8 << 30
)

// DefaultSyncBacklog returns the bound on the bytes waiting for their fsync when
// Config.SyncBacklog is 0: an eighth of the machine's memory, from 256 MiB to 8 GiB
// (256 MiB where the memory is unknown). What waits is page cache, not livrec's memory,
// and a fixed bound is wrong both ways. Streams that started together close their
// segments together: one cut of 1000 × 1.5 Mbit/s with 10 s segments queues ~1.9 GB at
// once on a healthy disk, and with 256 MiB every cut held the publishers back for ~2 s,
// with what they had read parked in memory (+90 KiB per stream). And the kernel throttles
// writes itself once dirty pages reach vm.dirty_ratio (20 % of the memory by default):
// under that, the backpressure is livrec's, reported, not write(2) stalling.
func DefaultSyncBacklog() int64 {
	return min(max(physicalMemory()/8, minDefaultSyncBacklog), maxDefaultSyncBacklog)
}

// syncPool runs the fsyncs of finished segments (and what follows them) for every task,
// off the publishers' goroutines: a disk that falls behind then never stalls reading an
// RTMP connection inside an fsync. What waits is bounded in bytes: above the bound a
// publisher's next unit waits (wait) before it is written, so its connection stops
// reading and the publisher sees TCP backpressure, not a timeout. A backlog older than
// slowAfter is reported once per episode (record_warning disk_slow, logged).
type syncPool struct {
	m         *Manager
	limit     int64
	slowAfter time.Duration

	mu      sync.Mutex
	queue   []syncJob
	pending int64     // bytes queued or being synced
	jobs    int       // jobs queued or running
	since   time.Time // when the backlog became non-empty
	slow    bool      // the current episode was reported
	wake    *sync.Cond
	drained chan struct{} // closed and replaced whenever pending drops
}

type syncJob struct {
	bytes int64
	fn    func() error
}

func newSyncPool(m *Manager, workers int, limit int64, slowAfter time.Duration) *syncPool {
	p := &syncPool{m: m, limit: limit, slowAfter: slowAfter, drained: make(chan struct{})}
	p.wake = sync.NewCond(&p.mu)
	for range workers {
		go p.work()
	}
	return p
}

// Go implements format.Syncer.
func (p *syncPool) Go(bytes int64, fn func() error) {
	p.mu.Lock()
	if p.pending == 0 {
		p.since = time.Now()
	}
	p.pending += bytes
	p.jobs++
	p.queue = append(p.queue, syncJob{bytes, fn})
	p.m.cfg.Metrics.SyncPending.Set(float64(p.pending))
	p.mu.Unlock()
	p.wake.Signal()
}

var _ format.Syncer = (*syncPool)(nil)

func (p *syncPool) work() {
	p.mu.Lock()
	for {
		for len(p.queue) == 0 {
			p.wake.Wait()
		}
		j := p.queue[0]
		p.queue = p.queue[1:]
		p.mu.Unlock()
		start := time.Now()
		err := j.fn()
		if j.bytes > 0 {
			p.m.cfg.Metrics.SyncSeconds.Observe(time.Since(start).Seconds())
		}
		if err != nil && !p.m.disk.noteFull(err) {
			p.m.cfg.Logger.Error("sync failed", "err", err) // the job says what it loses (a segment is dropped)
		}
		p.mu.Lock()
		p.pending -= j.bytes
		p.jobs--
		if p.pending <= 0 && len(p.queue) == 0 {
			p.pending = 0
			if p.slow {
				p.m.cfg.Logger.Info("the disk caught up: nothing waits to be synced", "behind", time.Since(p.since).Round(time.Millisecond))
			}
			p.slow = false
		}
		p.m.cfg.Metrics.SyncPending.Set(float64(p.pending))
		close(p.drained)
		p.drained = make(chan struct{})
		p.checkSlow()
	}
}

// checkSlow reports a backlog older than slowAfter, once per episode. Called with p.mu held.
func (p *syncPool) checkSlow() {
	if p.slow || p.pending == 0 || time.Since(p.since) < p.slowAfter {
		return
	}
	p.slow = true
	ev := Event{Type: EventWarning, Code: "disk_slow", Message: fmt.Sprintf(
		"the disk has been behind for %s: %d MiB wait to be synced (bound %d MiB); publishers are slowed when the bound is reached, nothing received is dropped",
		time.Since(p.since).Round(time.Second), p.pending>>20, p.limit>>20)}
	go p.m.emit(ev) // not with p.mu held: OnEvent hooks may take time
}

// idle waits until no job is queued or running (Drain).
func (p *syncPool) idle() {
	if p == nil {
		return
	}
	p.mu.Lock()
	for p.jobs > 0 {
		ch := p.drained
		p.mu.Unlock()
		<-ch
		p.mu.Lock()
	}
	p.mu.Unlock()
}

// wait blocks while the bytes waiting to be synced exceed the bound. It is called before
// a publisher's unit is written, with no lock held; before blocking it calls
// beforeBlock (the connection gives back its read buffer), if set.
func (p *syncPool) wait(beforeBlock func()) {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.pending > p.limit && beforeBlock != nil {
		p.mu.Unlock()
		beforeBlock()
		p.mu.Lock()
	}
	for p.pending > p.limit {
		ch := p.drained
		p.checkSlow()
		p.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(time.Second):
		}
		p.mu.Lock()
	}
	p.mu.Unlock()
}
