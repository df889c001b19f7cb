package service

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// TestHTTPConnCaps: idle sockets beyond httpMaxConnsPerAddr (from one address) and
// httpMaxConns (in total) are closed at once and counted, the others are served, and a
// closed connection gives its place back.
func TestHTTPConnCaps(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int32
	l := newConnCapListener(ln, 3, 2, func(string) { refused.Add(1) }, slog.New(slog.DiscardHandler))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(l)
	defer srv.Close()
	addr := ln.Addr().String()

	dialFrom := func(local string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// get sends a request on c and reports whether it was answered.
	get := func(c net.Conn) bool {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return false
		}
		b := make([]byte, 12)
		_, err := io.ReadFull(c, b)
		return err == nil && string(b) == "HTTP/1.1 200"
	}
	a1, a2 := dialFrom("127.0.0.1"), dialFrom("127.0.0.1")
	defer a1.Close()
	defer a2.Close()
	if !get(a1) || !get(a2) {
		t.Fatal("connections under the caps are not served")
	}
	a3 := dialFrom("127.0.0.1")
	if get(a3) {
		t.Fatal("a third connection from one address was served (httpMaxConnsPerAddr 2)")
	}
	b1 := dialFrom("127.0.0.2")
	defer b1.Close()
	if !get(b1) {
		t.Fatal("another address is not served")
	}
	b2 := dialFrom("127.0.0.2")
	if get(b2) {
		t.Fatal("a fourth connection was served (httpMaxConns 3)")
	}
	if n := refused.Load(); n != 2 {
		t.Fatalf("%d refusals counted, want 2", n)
	}
	a1.Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c := dialFrom("127.0.0.3")
		ok := get(c)
		c.Close()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed connection did not give its place back")
		}
	}
}
