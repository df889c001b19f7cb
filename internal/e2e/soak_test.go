package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/loadgen"
	"github.com/livrec/livrec/internal/testenv"
)

// soakEnv reads a positive integer setting of the soak test, or def.
func soakEnv(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// TestLongSoak: real-time publishers with random disconnects (each reconnects within the
// stitch window), hostile connections (slow handshakes, chunk headers announcing 1 MiB
// messages, both trickling a byte a second) from ten addresses, and a data directory
// that fills up and frees once, all at the same time. While the disk is full livrec
// holds media in memory up to small bounds (diskFullHoldPerStream 256KiB, diskFullHold
// 32MiB), so both are reached at the size. Afterwards: every frame livrec
// accepted is in the flv recordings (sent = recorded + counted as dropped past the
// bounds), every generated file decodes, livrec's RSS stayed bounded, and once
// the load is gone its goroutines and open descriptors are back to what they were.
//
// CI runs 20 streams for 60 s and 50 hostile connections; LIVREC_SOAK_STREAMS,
// LIVREC_SOAK_SECONDS and LIVREC_SOAK_HOSTILE make it the soak (200 streams,
// 600 s, 500 hostile connections).
func TestLongSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("a real-time soak")
	}
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	streams := soakEnv(t, "LIVREC_SOAK_STREAMS", 20)
	seconds := soakEnv(t, "LIVREC_SOAK_SECONDS", 60)
	hostile := soakEnv(t, "LIVREC_SOAK_HOSTILE", 50)
	duration := time.Duration(seconds) * time.Second

	// A light source (160x120, ~100 kbit/s) keeps the disk small at 200 streams.
	srcPath := makeSource(t, t.TempDir(), 10, "-s", "160x120", "-b:v", "60k", "-maxrate", "80k", "-bufsize", "80k", "-b:a", "32k")
	src, err := loadgen.LoadFile(srcPath)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(srcPath)
	// Two formats, with room for the catalog and the working copies of files being
	// finalized; the filler takes what is left at fill time anyway.
	diskMiB := int(2.5*float64(fi.Size())/10*float64(streams)*float64(seconds)/(1<<20)) + 64
	data := smallDisk(t, diskMiB)
	s := startServer(t, data, fmt.Sprintf(`
minFreeSpace: 16MiB
diskFullHold: 32MiB
diskFullHoldPerStream: 256KiB
rtmpPublishDeadline: 5
rtmpMaxConnsPerAddr: %d # the publishers all come from 127.0.0.1
rules:
  - domainName: "*"
    appName: soak
    delayTime: 15
    recordFormats: [{format: flv}, {format: m3u8, sliceDuration: 5}]
`, max(64, streams+16)))
	pid := s.cmd.Process.Pid
	// The baseline is taken once livrec has settled: the job queue starts its
	// maintenance goroutines a moment after the service is up (its leader election).
	baseGoroutines := s.metric("go_goroutines")
	for end, same := time.Now().Add(20*time.Second), 0; same < 6 && time.Now().Before(end); {
		time.Sleep(500 * time.Millisecond)
		g := s.metric("go_goroutines")
		if g > baseGoroutines {
			baseGoroutines, same = g, 0
		} else {
			same++
		}
	}
	baseFDs := s.metric("process_open_fds")
	baseRSS := rssKiB(t, pid)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var bg sync.WaitGroup
	// RSS and the media held on the full disk, sampled every 500 ms.
	var peakRSS, peakHeld atomic.Int64
	bg.Go(func() {
		for ctx.Err() == nil {
			if r := rssKiB(t, pid); r > peakRSS.Load() {
				peakRSS.Store(r)
			}
			if h := int64(s.metric("livrec_disk_full_held_bytes")); h > peakHeld.Load() {
				peakHeld.Store(h)
			}
			sleepCtx(ctx, 500*time.Millisecond)
		}
	})
	// Hostile connections, redialled whenever livrec closes them.
	rtmpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.rtmpPort))
	var hostileDials, hostileClosed atomic.Int64
	for i := range hostile {
		bg.Go(func() {
			local := &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i%10))}
			for ctx.Err() == nil {
				nc, err := (&net.Dialer{LocalAddr: local}).DialContext(ctx, "tcp", rtmpAddr)
				if err != nil {
					sleepCtx(ctx, time.Second)
					continue
				}
				hostileDials.Add(1)
				stop := context.AfterFunc(ctx, func() { nc.Close() })
				hostileConn(nc, i%2 == 1)
				if stop() {
					hostileClosed.Add(1) // livrec closed it
				}
				nc.Close()
			}
		})
	}

	// The disk fills at a third of the run and is freed at half of it.
	filled := make(chan struct{})
	bg.Go(func() {
		defer close(filled)
		if sleepCtx(ctx, duration/3) != nil {
			return
		}
		filler := filepath.Join(data, "filler")
		fill(t, filler)
		t.Logf("disk full at %v", duration/3)
		if sleepCtx(ctx, duration/2-duration/3) != nil {
			return
		}
		os.Remove(filler)
		t.Logf("disk freed at %v", duration/2)
	})

	sum, err := loadgen.Run(ctx, loadgen.Config{URL: "rtmp://127.0.0.1:" + strconv.Itoa(s.rtmpPort) + "/soak",
		Streams: streams, Duration: duration, Source: src, Jitter: 2 * time.Second, ReconnectEvery: duration / 3, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	<-filled
	cancel()
	bg.Wait()
	t.Logf("load: %d streams, %d publishes (%d reconnects), %d video + %d audio frames, %.1f Mbit/s, %d errors %v, max lag %.2f s",
		streams, sum.Publishes, sum.Reconnects, sum.VideoFrames, sum.AudioFrames, sum.Mbps, sum.Errors, sum.ErrorKinds, sum.MaxLagSeconds)
	t.Logf("hostile: %d connections of %d at once, %d closed by livrec; refused %v",
		hostileDials.Load(), hostile, hostileClosed.Load(), map[string]float64{
			"publish_deadline":   s.metric(`livrec_rtmp_connections_refused_total{reason="publish_deadline"}`),
			"max_conns_per_addr": s.metric(`livrec_rtmp_connections_refused_total{reason="max_conns_per_addr"}`)})
	if sum.Errors != 0 {
		t.Errorf("publishers saw %d errors: %v", sum.Errors, sum.ErrorKinds)
	}
	if hostileClosed.Load() == 0 {
		t.Error("livrec closed no hostile connection")
	}
	s.waitIdle()

	// Every recording is generated once the stitch windows are over.
	deadline := time.Now().Add(60*time.Second + time.Duration(streams)*100*time.Millisecond)
	var recs []recording
	for {
		recs = allRecordings(s, "app=soak")
		pending := 0
		for _, r := range recs {
			if r.Status == "recording" {
				pending++
			}
		}
		if pending == 0 && s.metric("livrec_finalize_pending") == 0 && len(recs) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d files still recording", pending, len(recs))
		}
		time.Sleep(time.Second)
	}
	dropped := s.metric(`livrec_dropped_units_total{reason="disk_full"}`)
	var recorded int64
	files := map[string]int{}
	for _, r := range recs {
		if r.Status != "done" {
			t.Errorf("%s %s #%d: %s (%s)", r.Key, r.Format, r.Sequence, r.Status, r.Error)
			continue
		}
		files[r.Format]++
		if r.Format == "flv" {
			v, a := countFLVFrames(t, s.filePath(r.Key))
			recorded += v + a
		}
	}
	sent := sum.VideoFrames + sum.AudioFrames
	t.Logf("files %v; frames sent %d = recorded in flv %d + dropped past the hold bounds %.0f + lost %d; held at most %.1f MiB",
		files, sent, recorded, dropped, sent-recorded-int64(dropped), float64(peakHeld.Load())/(1<<20))
	if peakHeld.Load() == 0 {
		t.Error("nothing was held in memory: the disk did not fill")
	}
	if n := s.metric("livrec_disk_full_held_bytes"); n != 0 {
		t.Errorf("%g bytes still held after the space returned", n)
	}
	// Units are dropped before they reach the writers, once for all formats; a file
	// that could not open on the full disk (a reconnect then) counts the unit that found
	// it so, for that format alone (unaccounted below 0).
	if lost := sent - recorded - int64(dropped); lost > 0 {
		t.Errorf("%d accepted frames lost (sent %d, recorded %d, dropped %.0f)", lost, sent, recorded, dropped)
	}
	// A sample of the files decodes clean (all of them at CI's size).
	for i, r := range recs {
		if r.Status == "done" && i%max(1, len(recs)/40) == 0 {
			if out, err := run(t, "ffmpeg", "-v", "error", "-i", s.filePath(r.Key), "-f", "null", "-"); err != nil || out != "" {
				t.Errorf("%s does not decode clean: %v\n%s", r.Key, err, out)
				if keep := os.Getenv("LIVREC_SOAK_KEEP"); keep != "" { // a directory for the bad files
					exec.Command("cp", s.filePath(r.Key), keep).Run()
				}
			}
		}
	}

	peak := peakRSS.Load()
	limit := baseRSS + 64<<10 + 32<<10 + int64(streams)*1536 + int64(hostile)*64 // KiB; 32 MiB: diskFullHold
	t.Logf("RSS: %d MiB at start, peak %d MiB (bound %d MiB)", baseRSS>>10, peak>>10, limit>>10)
	if peak > limit {
		t.Errorf("RSS peaked at %d MiB, over the bound of %d MiB", peak>>10, limit>>10)
	}
	// The load is gone: goroutines and descriptors come back (a few may be the HTTP
	// connections of this test's own requests).
	var g, fds float64
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		g, fds = s.metric("go_goroutines"), s.metric("process_open_fds")
		if g <= baseGoroutines+8 && fds <= baseFDs+4 || time.Now().After(end) {
			break
		}
	}
	t.Logf("goroutines %.0f before the load, %.0f after; open descriptors %.0f before, %.0f after", baseGoroutines, g, baseFDs, fds)
	if g > baseGoroutines+8 || fds > baseFDs+4 {
		t.Errorf("leak: goroutines %.0f → %.0f, descriptors %.0f → %.0f", baseGoroutines, g, baseFDs, fds)
	}
	s.stop()
}

// hostileConn plays one hostile client on nc until livrec closes it: a handshake sent a
// byte a second, or a handshake done right and then a chunk header announcing a 1 MiB
// command message whose body comes a byte a second.
func hostileConn(nc net.Conn, hugeHeader bool) {
	trickle := func() {
		for {
			if _, err := nc.Write([]byte{0}); err != nil {
				return
			}
			nc.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := nc.Read(make([]byte, 4096)); err != nil && !isTimeout(err) {
				return
			}
		}
	}
	if !hugeHeader {
		nc.Write([]byte{3})
		trickle()
		return
	}
	c1 := make([]byte, 1537)
	c1[0] = 3
	rand.Read(c1[9:])
	if _, err := nc.Write(c1); err != nil {
		return
	}
	s := make([]byte, 1+1536+1536)
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(nc, s); err != nil {
		return
	}
	if _, err := nc.Write(s[1 : 1+1536]); err != nil { // C2 echoes S1
		return
	}
	// fmt 0, chunk stream 3; timestamp 0; length 1 MiB; type 20 (AMF0 command); stream 0.
	if _, err := nc.Write([]byte{0x03, 0, 0, 0, 0x10, 0, 0, 20, 0, 0, 0, 0}); err != nil {
		return
	}
	trickle()
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// allRecordings pages through the recordings of query.
func allRecordings(s *server, query string) []recording {
	var out []recording
	for {
		page := s.recordings(fmt.Sprintf("%s&limit=1000&offset=%d", query, len(out)))
		out = append(out, page...)
		if len(page) < 1000 {
			return out
		}
	}
}

// rssKiB is the resident set of process pid.
func rssKiB(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
