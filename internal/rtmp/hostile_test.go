package rtmp

import (
	"context"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/handshake"
)

// rawHandshake dials addr (from local IP laddr if not empty) and completes the client
// handshake, returning the raw connection.
func rawHandshake(t *testing.T, addr, laddr string) net.Conn {
	t.Helper()
	d := net.Dialer{}
	if laddr != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(laddr)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := handshake.DoClient(nc, false, false); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return nc
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestHostileAnnouncedMessagesMemory: connections that complete the handshake and then
// announce large messages on several chunk streams, sending a few bytes of each, must
// not make the server allocate the announced sizes before a publish is accepted. Before
// the fix each such connection pinned about 1.1 MiB (one body allocated whole, the
// others 16 KiB each).
func TestHostileAnnouncedMessagesMemory(t *testing.T) {
	const (
		conns     = 100
		streams   = 8
		announced = 1 << 20
	)
	_, addr := startServer(t, newRecHandler(), func(s *Server) { s.MaxConnsPerAddr = 2 * conns })
	var e chunkEnc
	for cs := uint32(3); cs < 3+streams; cs++ {
		e.type0(cs, 0, announced, msgVideo, 1)
		e.data([]byte("0123456789"))
	}
	hostile := e.Bytes()

	before := heapInUse()
	ncs := make([]net.Conn, conns)
	for i := range ncs {
		ncs[i] = rawHandshake(t, addr, "")
		if _, err := ncs[i].Write(hostile); err != nil {
			t.Fatal(err)
		}
	}
	// The server reads the headers as soon as they arrive; give its goroutines time.
	time.Sleep(500 * time.Millisecond)
	after := heapInUse()
	perConn := (int64(after) - int64(before)) / conns
	t.Logf("heap growth per hostile connection (handshake, %d chunk streams announcing %d bytes, 10 bytes each): %d bytes",
		streams, announced, perConn)
	// A connection's fixed cost is its 16 KiB read buffer, goroutine and handshake; the
	// bodies must cost what was received, not what was announced.
	if perConn > 48<<10 {
		t.Errorf("each hostile connection holds %d bytes of heap, want < 48 KiB", perConn)
	}
	for _, nc := range ncs {
		nc.Close()
	}
}

// TestPublishDeadline: a client that trickles its handshake (one byte at a time) or
// completes the handshake and connect but never publishes is closed PublishDeadline
// after it connected, and counted; an accepted publish is not subject to it.
func TestPublishDeadline(t *testing.T) {
	const deadline = 300 * time.Millisecond
	h := newRecHandler()
	var mu sync.Mutex
	refused := map[string]int{}
	_, addr := startServer(t, h, func(s *Server) {
		s.PublishDeadline = deadline
		s.OnRefused = func(r string) { mu.Lock(); refused[r]++; mu.Unlock() }
	})

	// Slowloris: C0 then one byte of C1 every 50 ms, each well within ReadTimeout.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		readAll(nc)
		closed <- time.Since(start)
	}()
	nc.Write([]byte{3})
	trickle := time.NewTicker(50 * time.Millisecond)
	defer trickle.Stop()
wait:
	for {
		select {
		case d := <-closed:
			if d < deadline-50*time.Millisecond || d > deadline+2*time.Second {
				t.Errorf("trickling handshake closed after %v, want about %v", d, deadline)
			}
			break wait
		case <-trickle.C:
			nc.Write([]byte{0})
		case <-time.After(5 * time.Second):
			t.Fatal("a handshake sending a byte every 50 ms is still open after 5 s")
		}
	}

	// Handshake and connect, then nothing.
	c := dialTest(t, addr, false)
	c.connect("live", "rtmp://127.0.0.1/live")
	start = time.Now()
	c.expectClosed()
	if d := time.Since(start); d > deadline+2*time.Second {
		t.Errorf("connection without publish closed after %v", d)
	}

	// A publish outlives the deadline.
	c = dialTest(t, addr, false)
	c.connect("live", "rtmp://127.0.0.1/live")
	c.publish("k")
	s := h.waitPublish(t)
	time.Sleep(2 * deadline)
	c.send(msgVideo, 6, rawStreamID, 0, []byte{0x17, 0, 0, 0, 0, 1})
	c.call(3, 0, "deleteStream", 6.0, nil, 1.0)
	if err := s.waitClosed(t, 5*time.Second); err != nil {
		t.Errorf("publish ended with %v", err)
	}
	if n := len(s.snapshot()); n != 1 {
		t.Errorf("%d tags after the deadline, want 1", n)
	}

	mu.Lock()
	defer mu.Unlock()
	if refused[RefusedPublishDeadline] != 2 {
		t.Errorf("refusals %v, want 2 %s", refused, RefusedPublishDeadline)
	}
}

// TestConnectionCaps: connections beyond MaxConnsPerAddr from one address, or beyond
// MaxConns in total, are closed before the handshake and counted; a closed connection
// frees its place.
func TestConnectionCaps(t *testing.T) {
	var mu sync.Mutex
	refused := map[string]int{}
	_, addr := startServer(t, newRecHandler(), func(s *Server) {
		s.MaxConns, s.MaxConnsPerAddr = 3, 2
		s.OnRefused = func(r string) { mu.Lock(); refused[r]++; mu.Unlock() }
	})
	a1 := rawHandshake(t, addr, "127.0.0.1")
	rawHandshake(t, addr, "127.0.0.1")
	expectRefused := func(laddr string) {
		t.Helper()
		nc, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(laddr)}}).Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.Write(make([]byte, 1537)) // C0 C1
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := readAll(nc); err != nil || n != 0 {
			t.Errorf("connection from %s over the cap: read %d bytes, %v; want closed without a handshake", laddr, n, err)
		}
	}
	expectRefused("127.0.0.1")
	rawHandshake(t, addr, "127.0.0.2")
	expectRefused("127.0.0.3")

	a1.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		// The server notices the close asynchronously: retry until the place is free.
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		_, _, err = handshake.DoClient(nc, false, false)
		nc.Close()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection accepted after one was closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if refused[RefusedMaxConnsPerAddr] != 1 || refused[RefusedMaxConns] < 1 {
		t.Errorf("refusals %v, want 1 %s and at least 1 %s", refused, RefusedMaxConnsPerAddr, RefusedMaxConns)
	}
}

// levelRecorder is a slog.Handler that keeps the records' messages by level.
type levelRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *levelRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *levelRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r)
	l.mu.Unlock()
	return nil
}
func (l *levelRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levelRecorder) WithGroup(string) slog.Handler      { return l }

func (l *levelRecorder) find(level slog.Level, msg string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		if r.Level == level && (msg == "" || r.Message == msg) {
			s := r.Message
			r.Attrs(func(a slog.Attr) bool { s += " " + a.String(); return true })
			out = append(out, s)
		}
	}
	return out
}

// TestClientDisconnectLogLevel: a client that ends its publish and closes its socket
// with our answers unread (the kernel then sends a reset) is logged at INFO, not WARN;
// a protocol error still is a WARN.
func TestClientDisconnectLogLevel(t *testing.T) {
	h := newRecHandler()
	logs := &levelRecorder{}
	srv, addr := startServer(t, h, func(s *Server) { s.Logger = slog.New(logs) })

	for _, withDelete := range []bool{true, false} {
		c := dialTest(t, addr, false)
		c.connect("live", "rtmp://127.0.0.1/live")
		c.publish("k")
		s := h.waitPublish(t)
		if withDelete {
			c.call(3, 0, "FCUnpublish", 6.0, nil, "k") // answered: unread at close
			c.call(3, 0, "deleteStream", 7.0, nil, 1.0)
			s.waitClosed(t, 5*time.Second)
		}
		time.Sleep(50 * time.Millisecond) // our answer is in the client's receive buffer
		c.nc.(*net.TCPConn).SetLinger(0)  // close with a reset
		c.nc.Close()
		s.waitClosed(t, 5*time.Second)
	}
	waitConns(t, srv, 0)
	if w := logs.find(slog.LevelWarn, ""); len(w) > 0 {
		t.Errorf("client disconnects logged as WARN:\n%s", strings.Join(w, "\n"))
	}
	if n := len(logs.find(slog.LevelInfo, "rtmp connection closed")); n != 1 {
		t.Errorf("%d INFO 'rtmp connection closed' records, want 1 (after deleteStream)", n)
	}

	// A protocol error during a publish stays a warning.
	c := dialTest(t, addr, false)
	c.connect("live", "rtmp://127.0.0.1/live")
	c.publish("k")
	s := h.waitPublish(t)
	c.send(msgSetChunkSize, 2, 0, 0, be32(0))
	if err := s.waitClosed(t, 5*time.Second); err == nil {
		t.Fatal("publish ended cleanly after Set Chunk Size 0")
	}
	if w := logs.find(slog.LevelWarn, "rtmp publish ended"); len(w) != 1 {
		t.Errorf("protocol error: WARN records %q, want one 'rtmp publish ended'", w)
	}
}

// waitConns waits until the server has n connections open.
func waitConns(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		got := len(s.conns)
		s.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
