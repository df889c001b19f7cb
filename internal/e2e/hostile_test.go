package e2e

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/testenv"
)

// TestHostileRTMPConnections: slowloris handshakes from one address fill that address's
// connection cap, but a real push from another address is recorded meanwhile and
// /healthz answers; a connection over the cap is closed before the handshake, and the
// trickling ones are closed at the publish deadline. Both are counted in the metric.
func TestHostileRTMPConnections(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	const perAddr, deadline = 8, 2 * time.Second
	src := makeSource(t, t.TempDir(), 3)
	s := startServer(t, t.TempDir(), hlsConfig+"rtmpPublishDeadline: 2\nrtmpMaxConnsPerAddr: 8\n")
	rtmpAddr := strings.TrimPrefix(s.rtmpURL("", ""), "rtmp://")
	rtmpAddr = rtmpAddr[:strings.Index(rtmpAddr, "/")]
	dial := func() net.Conn {
		t.Helper()
		nc, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).Dial("tcp", rtmpAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc
	}

	start := time.Now()
	var wg sync.WaitGroup
	closedAfter := make(chan time.Duration, perAddr)
	for range perAddr {
		nc := dial()
		nc.Write([]byte{3}) // C0, then C1 one byte at a time
		wg.Go(func() {
			done := make(chan struct{})
			go func() {
				io.Copy(io.Discard, nc)
				closedAfter <- time.Since(start)
				close(done)
			}()
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					nc.Write([]byte{0})
				case <-time.After(10 * time.Second):
					return
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond) // the server has accepted them
	over := dial()
	over.Write(make([]byte, 1537))
	over.SetReadDeadline(time.Now().Add(5 * time.Second))
	// Closed with our C1 unread, so the close may arrive as a reset.
	if n, err := io.Copy(io.Discard, over); n != 0 || err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("connection over the per-address cap: read %d bytes, %v; want closed at once", n, err)
	}

	if out, err := push(t, src, s.rtmpURL("live", "ok")); err != nil {
		t.Fatalf("push from another address while one address is at its cap: %v\n%s", err, out)
	}
	resp, err := http.Get(s.url("/healthz"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	wg.Wait()
	close(closedAfter)
	for d := range closedAfter {
		if d < deadline-100*time.Millisecond || d > deadline+3*time.Second {
			t.Errorf("trickling handshake closed after %v, want about %v", d, deadline)
		}
	}
	if recs := s.recordings(""); len(recs) != 1 {
		t.Fatalf("%d recordings of the push, want 1", len(recs))
	}
	if v := s.metric(`livrec_rtmp_connections_refused_total{reason="publish_deadline"}`); v != perAddr {
		t.Errorf("publish_deadline refusals %v, want %d", v, perAddr)
	}
	if v := s.metric(`livrec_rtmp_connections_refused_total{reason="max_conns_per_addr"}`); v != 1 {
		t.Errorf("max_conns_per_addr refusals %v, want 1", v)
	}
}

// TestAPITokenWithoutConfig: LIVREC_API_TOKEN protects the JSON API also when livrec
// runs without --config.
func TestAPITokenWithoutConfig(t *testing.T) {
	const token = "e2e-token-0123456789abcdef"
	t.Setenv("LIVREC_API_TOKEN", token)
	s := startServer(t, t.TempDir(), "")
	get := func(auth string) int {
		req, _ := http.NewRequest(http.MethodGet, s.url("/api/v1/recordings"), nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(""); code != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", code)
	}
	if code := get("Bearer " + token); code != 200 {
		t.Errorf("with the token: %d, want 200", code)
	}
}

// TestSmallProtections: /files/ does not follow a symbolic link inside the storage root,
// and a JSON body with data after its object is refused.
func TestSmallProtections(t *testing.T) {
	dataDir := t.TempDir()
	s := startServer(t, dataDir, hlsConfig)
	files := filepath.Join(dataDir, "files")
	secret := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(secret, []byte("not for you"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(files, "live"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(files, "live", "ok.ts"), []byte("media"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Symlink(secret, filepath.Join(files, "live", "leak.ts"))
	os.Symlink(filepath.Dir(secret), filepath.Join(files, "dir"))
	for path, want := range map[string]int{"/files/live/ok.ts": 200, "/files/live/leak.ts": 404, "/files/dir/secret.txt": 404} {
		resp, err := http.Get(s.url(path))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || strings.Contains(string(b), "not for you") {
			t.Errorf("GET %s: %d %q, want %d", path, resp.StatusCode, b, want)
		}
	}

	for _, body := range []string{`{"notifyUrl":"https://cb.example.com/"} {"notifyUrl":"https://other.example.com/"}`,
		`{"notifyUrl":"https://cb.example.com/"}garbage`} {
		req, _ := http.NewRequest(http.MethodPut, s.url("/api/v1/domains/example.com/notify"), strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), "after the object") {
			t.Errorf("body %s: %d %s, want 400 naming the data after the object", body, resp.StatusCode, b)
		}
	}
	resp, err := http.Post(s.url("/api/v1/streams/example.com/live/s/record"), "application/json",
		strings.NewReader(`{"command":"stop"}{"command":"start"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "after the object") {
		t.Errorf("record command with two objects: %d %s", resp.StatusCode, b)
	}
}
