package rtmp

import (
	"testing"
	"time"
)

// TestReadBatching checks that a publish at a steady rate gets its socket's SO_RCVLOWAT
// raised, and that bytes below that mark still arrive once the publisher pauses: a last
// tag, then the unpublish commands, each followed by silence.
func TestReadBatching(t *testing.T) {
	h := newRecHandler()
	srv, addr := startServer(t, h, func(s *Server) { s.ReadTimeout = time.Minute })
	c := dialTest(t, addr, false)
	c.connect("live", "rtmp://localhost/live")
	c.publish("key")
	s := h.waitPublish(t)

	// ~3.2 Mbit/s for 1.5 s (80 KB in batchDelay): the mark goes to its largest.
	frame := make([]byte, 4000)
	frame[0], frame[1] = 0x17, 0x01
	start := time.Now()
	var ts uint32
	for time.Since(start) < batchEvery*3/2 {
		c.send(msgVideo, 6, rawStreamID, ts, frame)
		ts += 10
		time.Sleep(10 * time.Millisecond)
	}
	srv.mu.Lock()
	var b *batch
	for x := range srv.batched {
		b = x
	}
	srv.mu.Unlock()
	if b == nil {
		t.Fatal("the publish is not batched")
	}
	b.mu.Lock()
	mark := b.mark
	b.mu.Unlock()
	if mark != batchMax {
		t.Errorf("SO_RCVLOWAT %d after a steady 3.2 Mbit/s, want %d", mark, batchMax)
	}

	// One small tag, then nothing: what is queued below the mark waits for the sweep,
	// and no longer.
	sent := time.Now()
	c.send(msgAudio, 7, rawStreamID, ts, []byte{0xAF, 0x01, 0x21, 0x10})
	waitTags(t, s, int(ts/10)+1, batchStale+2*batchSweep+time.Second)
	took := time.Since(sent)
	t.Logf("the tail of a steady stream arrived %v after it was sent", took.Round(time.Millisecond))
	if took < batchStale/2 {
		t.Errorf("the tail arrived after %v: the kernel did not hold it below the mark", took)
	}

	// The unpublish, then silence (a client waiting for our answer): the session ends.
	c.call(3, 0, "FCUnpublish", 10.0, nil, "key")
	c.call(3, 0, "deleteStream", 0.0, nil, 1.0)
	if err := s.waitClosed(t, batchStale+2*batchSweep+time.Second); err != nil {
		t.Errorf("Close(%v), want nil after unpublish", err)
	}
}

// waitTags waits until s received at least n tags.
func waitTags(t *testing.T, s *recSession, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for len(s.snapshot()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d tags after %v, want %d", len(s.snapshot()), d, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
