package service

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// serveFiles serves dir like /files/ does (http.ServeContent through http.FileServer)
// with the given write timeout, with or without writeProgress.
func serveFiles(t *testing.T, dir string, timeout time.Duration, progress bool) string {
	t.Helper()
	var h http.Handler = http.FileServer(http.Dir(dir))
	if progress {
		h = writeProgress(h, timeout)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A small send buffer: the kernel wakes a blocked writer when a third or so of the
	// buffer is free, so with the default (autotuned to MiBs) a write may wait for more
	// than the test's short timeout even while the client reads steadily.
	srv := &http.Server{Handler: h, WriteTimeout: timeout, ConnContext: func(ctx context.Context, c net.Conn) context.Context {
		c.(*net.TCPConn).SetWriteBuffer(64 << 10)
		return ctx
	}}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String()
}

// download GETs /big from url on a raw connection, pausing for pause first, then
// reading step bytes every every, and returns how many bytes (headers included) arrived.
func download(t *testing.T, url string, step int, every, pause time.Duration) (int64, error) {
	t.Helper()
	c, err := net.Dial("tcp", url[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A small receive buffer makes the server block on writes when we do not read.
	c.(*net.TCPConn).SetReadBuffer(16 << 10)
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	time.Sleep(pause)
	var total int64
	buf := make([]byte, step)
	for {
		n, err := io.ReadFull(c, buf)
		total += int64(n)
		if err != nil {
			if err == io.ErrUnexpectedEOF || err == io.EOF {
				return total, nil
			}
			return total, err
		}
		time.Sleep(every)
	}
}

// TestWriteProgress: with the write timeout measured from the last progress, a download
// that lasts several times the timeout completes, and a client that stops reading is
// cut off after about the timeout; without it (plain WriteTimeout) the slow download is
// cut short.
func TestWriteProgress(t *testing.T) {
	const timeout = 400 * time.Millisecond
	dir := t.TempDir()
	const size = 6 << 20
	if err := os.WriteFile(filepath.Join(dir, "big"), bytes.Repeat([]byte("x"), size), 0o644); err != nil {
		t.Fatal(err)
	}
	// 6 MiB at 64 KiB every 20 ms: about 2 s, five times the timeout.
	start := time.Now()
	n, err := download(t, serveFiles(t, dir, timeout, true), 64<<10, 20*time.Millisecond, 0)
	if n < size || err != nil {
		t.Errorf("steady download with writeProgress: %d of %d bytes (%v) in %v", n, size, err, time.Since(start))
	}
	if d := time.Since(start); d < 2*timeout {
		t.Logf("download took only %v: the test did not outlast the timeout", d)
	}
	n, _ = download(t, serveFiles(t, dir, timeout, false), 64<<10, 20*time.Millisecond, 0)
	if n >= size {
		t.Errorf("the plain WriteTimeout did not cut the slow download (%d bytes): the test proves nothing", n)
	}
	// A client that stops reading: the server gives up after about the timeout, so the
	// client later finds the body cut short.
	n, _ = download(t, serveFiles(t, dir, timeout, true), 64<<10, 0, 5*timeout)
	if n >= size {
		t.Errorf("a client that read nothing for %v got the whole file", 5*timeout)
	}
}

// TestConnCap: the RTMP connection cap is the configured one unless the descriptor limit
// minus the reserve is lower (never below minConnCap).
func TestConnCap(t *testing.T) {
	limit, ok := fdLimit()
	if !ok {
		t.Skip("no RLIMIT_NOFILE here")
	}
	log := slog.New(slog.DiscardHandler)
	if got := connCap(10, 100, log); got != 10 {
		t.Errorf("connCap(10, 100) = %d with nofile %d", got, limit)
	}
	if limit < 1<<30 {
		if got, want := connCap(1<<30, 100, log), int(limit)-100; got != max(want, minConnCap) {
			t.Errorf("connCap(huge, 100) = %d, want %d (nofile %d)", got, want, limit)
		}
	}
	if got := connCap(1<<30, 1<<30, log); got != minConnCap {
		t.Errorf("connCap with a reserve beyond the limit = %d, want %d", got, minConnCap)
	}
}
