package record

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livrec/livrec/internal/catalog"
)

// Leases is stream ownership across the nodes sharing a catalog (cluster.NodeLeases):
// while a node holds a stream key's lease no other node records it. Every catalog write
// of a task carries the lease (catalog.WithFence): once the lease moved on the writes
// are refused.
type Leases interface {
	// Acquire takes the lease of key, or says who holds it.
	Acquire(ctx context.Context, key string) (catalog.Fence, error)
	// Renew extends it; an error wrapping catalog.ErrFenced means it is lost.
	Renew(ctx context.Context, f catalog.Fence) error
	Release(ctx context.Context, f catalog.Fence) error
	// Period is how often a held lease is renewed.
	Period() time.Duration
}

// owner is this node's lease on one stream key. It is held while the key has a live
// publish or a task here (a paused task in its stitch window, an ended one whose files
// are still being generated): refs counts them, under Manager.mu.
type owner struct {
	m     *Manager
	key   StreamKey
	fence catalog.Fence
	refs  int
	// lost is set once the lease moved on or expired: the task's catalog writes stop, the
	// task is abandoned and the publish disconnected.
	lost    atomic.Bool
	stop    context.CancelFunc
	stopped sync.Once
	renewed atomic.Int64 // Unix ms of the last successful renewal (or acquisition)
}

// errLeaseLost ends a publish whose stream this node no longer owns.
var errLeaseLost = errors.New("this node lost the stream's lease: another node owns the stream now")

// leaseTimeout bounds one lease operation.
const leaseTimeout = 10 * time.Second

// acquire takes the lease of key and starts renewing it. Called without m.mu.
func (m *Manager) acquire(key StreamKey) (*owner, error) {
	ctx, cancel := context.WithTimeout(context.Background(), leaseTimeout)
	defer cancel()
	f, err := m.cfg.Leases.Acquire(ctx, key.String())
	if err != nil {
		return nil, err
	}
	rctx, stop := context.WithCancel(context.Background())
	o := &owner{m: m, key: key, fence: f, stop: stop}
	o.renewed.Store(time.Now().UnixMilli())
	go o.renew(rctx)
	return o, nil
}

// renew extends the lease every period until released. A renewal that fails for another
// reason (the catalog is unreachable) is tried again; the lease counts as lost once a
// whole TTL (three periods) passed without a renewal, since another node may own the key
// by then.
func (o *owner) renew(ctx context.Context) {
	period := o.m.cfg.Leases.Period()
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, leaseTimeout)
		err := o.m.cfg.Leases.Renew(rctx, o.fence)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			o.renewed.Store(time.Now().UnixMilli())
		case errors.Is(err, catalog.ErrFenced):
			o.m.leaseLost(o, err)
			return
		default:
			o.m.cfg.Logger.Warn("stream lease renewal failed, retrying", "stream", o.key.String(), "err", err)
			if time.Since(time.UnixMilli(o.renewed.Load())) >= 3*period {
				o.m.leaseLost(o, fmt.Errorf("not renewed for %v: %w", 3*period, err))
				return
			}
		}
	}
}

// hold counts one more user of the key's lease. Called with m.mu held.
func (o *owner) hold() {
	if o != nil {
		o.refs++
	}
}

// unhold drops a user; the last one releases the lease.
func (m *Manager) unhold(o *owner) {
	if o == nil {
		return
	}
	m.mu.Lock()
	o.refs--
	last := o.refs == 0
	if last && m.owners[o.key] == o {
		delete(m.owners, o.key)
	}
	m.mu.Unlock()
	if last {
		o.release()
	}
}

func (o *owner) release() {
	o.stopped.Do(func() {
		o.stop()
		if o.lost.Load() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), leaseTimeout)
		defer cancel()
		if err := o.m.cfg.Leases.Release(ctx, o.fence); err != nil {
			o.m.cfg.Logger.Warn("stream lease release failed: it expires by itself", "stream", o.key.String(), "err", err)
		}
	})
}

// leaseLost handles a lease this node no longer holds: its task stops writing (no more
// catalog rows; its working files stay in the work directory, nothing is stored), the
// publish is disconnected (the encoder reconnects, possibly to the new owner), and a
// record_error event with code lease_lost says so.
func (m *Manager) leaseLost(o *owner, why error) {
	if !o.lost.CompareAndSwap(false, true) {
		return
	}
	o.stop()
	m.mu.Lock()
	if m.owners[o.key] == o {
		delete(m.owners, o.key)
	}
	t := m.tasks[o.key]
	if t != nil && t.owner == o {
		delete(m.tasks, o.key)
	} else {
		t = nil
	}
	m.mu.Unlock()
	ev := Event{Type: EventError, Domain: o.key.Domain, App: o.key.App, Stream: o.key.Stream, Code: "lease_lost",
		Message: fmt.Sprintf("stream lease (generation %d) lost: this node stops recording the stream: %v", o.fence.Generation, why)}
	if t != nil {
		ev.TaskID = t.id
		t.abandon()
	}
	m.cfg.Metrics.CatalogErrors.Inc()
	m.emit(ev)
}
