package record

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/format/segment"
	"github.com/livrec/livrec/internal/rtmp"
	"github.com/livrec/livrec/internal/rules"
)

// stuckDisk makes every fsync of the segment engine (segments, journals) wait until
// release is called: a disk that stopped keeping up.
func stuckDisk(t *testing.T) (release func()) {
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	prev := segment.SetSync(func(f *os.File) error { <-gate; return f.Sync() })
	t.Cleanup(func() { release(); segment.SetSync(prev) })
	return release
}

func syncRig(t *testing.T, backlog int64) *rig {
	r := newRig(t, m3u8Rule(15, rules.M3U8), nil)
	r.cfg.SyncBacklog, r.cfg.SyncSlowAfter = backlog, 50*time.Millisecond
	r.m = NewManager(r.cfg)
	t.Cleanup(r.m.Drain)
	return r
}

// feedAsync feeds n fixture spans on another goroutine; the channel is closed when done.
func feedAsync(t *testing.T, s rtmp.Session, n int) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		feed(t, s, n, 0)
	}()
	return done
}

// TestSyncOffTheConnection: with every fsync stuck, a publisher's tags are still all
// taken (the segments wait for the sync pool), nothing is stored or listed before its
// sync, and the pause waits for the syncs before the task says paused.
func TestSyncOffTheConnection(t *testing.T) {
	release := stuckDisk(t)
	r := syncRig(t, 1<<30)
	s := r.publish("p")
	select {
	case <-feedAsync(t, s, 10): // 20.8 s of media: four segments closed
	case <-time.After(30 * time.Second):
		t.Fatal("Tag waited for an fsync")
	}
	if n := testutil.ToFloat64(r.m.cfg.Metrics.SyncPending); n <= 0 {
		t.Fatalf("livrec_sync_pending_bytes = %v while the syncs are stuck", n)
	}
	if n := testutil.ToFloat64(r.m.cfg.Metrics.SegmentsWritten.WithLabelValues("m3u8")); n != 0 {
		t.Fatalf("%v segments stored before their sync", n)
	}
	s.Close(nil) // pause: its sync waits for the pool
	time.Sleep(100 * time.Millisecond)
	if r.has(EventPaused, "") {
		t.Fatal("record_paused before the segments were synced")
	}
	release()
	r.m.Drain()
	if n := testutil.ToFloat64(r.m.cfg.Metrics.SegmentsWritten.WithLabelValues("m3u8")); n < 4 {
		t.Fatalf("%v segments stored after the syncs, want ≥ 4", n)
	}
	if tasks := r.tasks("p"); tasks[0].State != catalog.TaskPaused {
		t.Fatalf("task state %q after the syncs, want paused", tasks[0].State)
	}
	if n := testutil.ToFloat64(r.m.cfg.Metrics.SyncPending); n != 0 {
		t.Fatalf("livrec_sync_pending_bytes = %v after the syncs", n)
	}
}

// TestSyncBacklogBound: once the bytes waiting for a sync pass the bound, the publisher's
// next tag waits (backpressure) and the disk's lag is reported; when the disk catches up
// everything received is recorded.
func TestSyncBacklogBound(t *testing.T) {
	release := stuckDisk(t)
	r := syncRig(t, 1) // any closed segment exceeds it
	s := r.publish("p")
	done := feedAsync(t, s, 10)
	deadline := time.Now().Add(10 * time.Second)
	for !r.has(EventWarning, "disk_slow") {
		if time.Now().After(deadline) {
			t.Fatal("no record_warning disk_slow while the backlog is over its bound")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("the publisher went on with a backlog over the bound")
	default:
	}
	// One writer hands over at most one segment past the bound before its next unit waits.
	pending := testutil.ToFloat64(r.m.cfg.Metrics.SyncPending)
	if pending <= 0 || pending > 2<<20 {
		t.Fatalf("livrec_sync_pending_bytes = %v, want one segment (> 0, ≤ 2 MiB)", pending)
	}
	release()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the publisher stayed blocked after the disk caught up")
	}
	s.Close(nil)
	r.m.Drain()
	if n := testutil.ToFloat64(r.m.cfg.Metrics.SegmentsWritten.WithLabelValues("m3u8")); n < 4 {
		t.Fatalf("%v segments stored, want ≥ 4", n)
	}
}

// has reports an event of type typ (and code, if set) so far, without waiting for the
// pipeline (Drain would wait for the stuck syncs).
func (r *rig) has(typ, code string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		if ev.Type == typ && (code == "" || ev.Code == code) {
			return true
		}
	}
	return false
}

// TestSyncPoolWaitReleases: a unit held back by the backlog first has its connection
// give back its read buffer (beforeBlock), and a unit not held back does not.
func TestSyncPoolWaitReleases(t *testing.T) {
	p := newSyncPool(nil, 0, 10, time.Hour)
	released := 0
	p.wait(func() { released++ })
	if released != 0 {
		t.Fatalf("released %d times without a backlog", released)
	}
	p.mu.Lock()
	p.pending, p.since = 100, time.Now() // a backlog above the bound
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		p.wait(func() { released++ })
		close(done)
	}()
	time.Sleep(50 * time.Millisecond)
	p.mu.Lock()
	p.pending = 0 // as a worker that synced it would
	close(p.drained)
	p.drained = make(chan struct{})
	p.mu.Unlock()
	<-done
	if released != 1 {
		t.Fatalf("released %d times for one held-back unit, want 1", released)
	}
}
