package rtmp

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Read batching. A publisher writes a tag or a chunk at a time, so a connection read as
// soon as bytes arrive wakes its goroutine 50–100 times a second for a few hundred
// bytes to a few KiB each; at hundreds of streams, those wakeups (netpoll, the
// scheduler, two read(2) per wakeup) cost more than parsing the media. Once a publish is
// accepted, the socket's SO_RCVLOWAT asks the kernel to signal it readable only when
// about batchDelay of the stream's own rate is queued (at most readBufferSize, one
// read into a lent buffer), measured over batchEvery: a 1.5 Mbit/s stream wakes ~5 times
// a second instead of ~50, a 64 kbit/s audio-only one 5 times instead of ~40.
//
// Bytes below the mark wait in the kernel, so one goroutine of the server (not a timer
// per connection) sweeps the batched connections every batchSweep: a connection that
// read nothing for batchStale (a publisher pausing, or its last command before it waits
// for our answer) gets its mark back to 1, which the kernel checks at once (a lowered
// SO_RCVLOWAT signals a socket holding data readable), and the next measurement sets it
// again. A publish thus never waits more than batchStale+batchSweep for bytes it sent,
// and the read timeout still counts from the last byte received.
const (
	batchDelay = 200 * time.Millisecond
	batchEvery = time.Second
	batchStale = 500 * time.Millisecond
	batchSweep = 250 * time.Millisecond
	batchMax   = readBufferSize
)

// batch is the read batching state of one connection. Its reader updates it on every
// read (onRead); the sweeper only lowers the mark.
type batch struct {
	rc syscall.RawConn

	// Owned by the reading goroutine.
	bytes int64     // read since since
	since time.Time // start of the current measurement

	lastRead atomic.Int64 // UnixNano of the last read that returned bytes

	mu   sync.Mutex // orders setsockopt calls of the reader and the sweeper
	mark int        // SO_RCVLOWAT as last set (1 after a sweep)
}

// newBatch returns the batching state of nc, or nil if nc is not a TCP connection (a
// test's pipe, a wrapped connection).
func newBatch(nc net.Conn, now time.Time) *batch {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	b := &batch{rc: rc, since: now, mark: 1}
	b.lastRead.Store(now.UnixNano())
	return b
}

// onRead accounts n bytes read at now and, once per batchEvery, sets the mark to what
// the stream sends in batchDelay.
func (b *batch) onRead(n int, now time.Time) {
	if n <= 0 {
		return
	}
	b.lastRead.Store(now.UnixNano())
	b.bytes += int64(n)
	el := now.Sub(b.since)
	if el < batchEvery {
		return
	}
	want := int(float64(b.bytes) * float64(batchDelay) / float64(el))
	want = min(max(want, 1), batchMax)
	b.bytes, b.since = 0, now
	b.mu.Lock()
	if want != b.mark && b.set(want) {
		b.mark = want
	}
	b.mu.Unlock()
}

// sweep lowers the mark of a connection that read nothing since stale (UnixNano).
func (b *batch) sweep(stale int64) {
	if b.lastRead.Load() > stale {
		return
	}
	b.mu.Lock()
	if b.mark > 1 && b.set(1) {
		b.mark = 1
	}
	b.mu.Unlock()
}

// set sets SO_RCVLOWAT; false if the socket refused or is closed.
func (b *batch) set(v int) bool {
	var serr error
	err := b.rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, v)
	})
	return err == nil && serr == nil
}

// startBatching makes c's reads batched (see batch) and registers it with the sweeper.
func (s *Server) startBatching(c *conn) {
	b := newBatch(c.nc, time.Now())
	if b == nil {
		return
	}
	c.dc.batch = b
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.batched == nil {
		s.batched = make(map[*batch]struct{})
	}
	s.batched[b] = struct{}{}
	if !s.sweeping {
		s.sweeping = true
		go s.sweepBatches()
	}
}

// sweepBatches runs while batched connections exist (see batch).
func (s *Server) sweepBatches() {
	t := time.NewTicker(batchSweep)
	defer t.Stop()
	var list []*batch
	for now := range t.C {
		s.mu.Lock()
		if s.closed || len(s.batched) == 0 {
			s.sweeping = false
			s.mu.Unlock()
			return
		}
		list = list[:0]
		for b := range s.batched {
			list = append(list, b)
		}
		s.mu.Unlock()
		stale := now.Add(-batchStale).UnixNano()
		for _, b := range list {
			b.sweep(stale)
		}
		clear(list)
	}
}
