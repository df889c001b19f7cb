package e2e

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/testenv"
)

// TestStitchInsideWindow: a reconnect within delayTime continues the same playlist after
// an #EXT-X-DISCONTINUITY.
func TestStitchInsideWindow(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := makeSource(t, t.TempDir(), 6)
	s := startServer(t, t.TempDir(), hlsConfig)
	for i := 0; i < 2; i++ {
		if out, err := push(t, src, s.rtmpURL("live", "stitch")); err != nil {
			t.Fatalf("push %d: %v\n%s", i, err, out)
		}
	}
	s.waitIdle()
	s.stop()
	s.start()
	recs := s.waitDone("app=live&stream=stitch", 1, 5*time.Second)
	if len(recs) != 1 {
		t.Fatalf("want one stitched recording, got %d: %+v", len(recs), recs)
	}
	pl := s.filePath(recs[0].Key)
	body, _ := os.ReadFile(pl)
	if n := strings.Count(string(body), "#EXT-X-DISCONTINUITY\n"); n != 1 {
		t.Fatalf("want 1 discontinuity, got %d:\n%s", n, body)
	}
	decodeClean(t, pl)
	want := 2 * probeDuration(t, src)
	if got := recs[0].Duration; math.Abs(got-want) > 0.2 {
		t.Fatalf("stitched duration %.3f, want %.3f", got, want)
	}
	w := videoNALUs(t, src)
	sameNALUs(t, append(w, w...), videoNALUs(t, pl))
}

// TestLongStitchOutsideWindow: a reconnect after the window yields a second file; the
// first is generated when the window expires (delayTime 15 s, the minimum).
func TestLongStitchOutsideWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 15 s stitch window")
	}
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := makeSource(t, t.TempDir(), 4)
	s := startServer(t, t.TempDir(), hlsConfig)
	if out, err := push(t, src, s.rtmpURL("live", "twice")); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	start := time.Now()
	first := s.waitDone("app=live&stream=twice", 1, 25*time.Second)
	if el := time.Since(start); el < 14*time.Second {
		t.Fatalf("file generated after %v, before the 15 s stitch window", el)
	}
	if out, err := push(t, src, s.rtmpURL("live", "twice")); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	s.waitIdle()
	s.stop()
	s.start()
	recs := s.waitDone("app=live&stream=twice", 2, 5*time.Second)
	if len(recs) != 2 || recs[0].TaskID == recs[1].TaskID || recs[0].ID != first[0].ID {
		t.Fatalf("want two recordings of two tasks, got %+v", recs)
	}
	for _, r := range recs {
		body, _ := os.ReadFile(s.filePath(r.Key))
		if strings.Contains(string(body), "DISCONTINUITY") {
			t.Fatalf("separate recordings must not be stitched:\n%s", body)
		}
		decodeClean(t, s.filePath(r.Key))
	}
}

// TestLongCycle: 2.5 cycles of media pushed faster than real time split into files of
// cycle, cycle and half-cycle length (media time, not wall time).
func TestLongCycle(t *testing.T) {
	if testing.Short() {
		t.Skip("encodes and records 37.5 minutes of media")
	}
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	const cycle = 900
	dir := t.TempDir()
	src := dir + "/long.flv"
	mustRun(t, "ffmpeg", "-v", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=64x48:rate=10:duration=%d", cycle*5/2),
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=8000:duration=%d", cycle*5/2),
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "16k", "-f", "flv", src)
	s := startServer(t, t.TempDir(), fmt.Sprintf(`
rules:
  - domainName: "*"
    appName: live
    delayTime: 15
    recordFormats:
      - format: m3u8
        sliceDuration: 30
        cycleDuration: %d
`, cycle))
	// 150× real time. Not "as fast as possible": ffmpeg closes its socket without reading
	// the server's last acknowledgements, its kernel then resets the connection and drops
	// whatever ffmpeg had not sent yet — with an unthrottled push that is megabytes.
	if out, err := push(t, src, s.rtmpURL("live", "long"), "-readrate", "150"); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	s.waitIdle()
	s.stop()
	s.start()
	recs := s.waitDone("app=live&stream=long", 3, 5*time.Second)
	if len(recs) != 3 {
		t.Fatalf("want 3 files, got %d: %+v", len(recs), recs)
	}
	wants := []float64{cycle, cycle, cycle / 2}
	keys := map[string]bool{}
	for i, r := range recs {
		if r.Sequence != i {
			t.Fatalf("file %d has sequence %d", i, r.Sequence)
		}
		if math.Abs(r.Duration-wants[i]) > 1.1 {
			t.Fatalf("file %d lasts %.2f s, want %.0f s (±1 GOP)", i, r.Duration, wants[i])
		}
		keys[r.Key] = true
		decodeClean(t, s.filePath(r.Key))
	}
	if len(keys) != 3 {
		t.Fatalf("files share keys: %+v", recs)
	}
}

// TestLongKillAndRecover: kill -9 mid-stream, restart: the recording so far becomes a
// finalized, playable file.
func TestLongKillAndRecover(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes in real time")
	}
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := makeSource(t, t.TempDir(), 30)
	s := startServer(t, t.TempDir(), hlsConfig)
	pushDone := make(chan struct{})
	go func() {
		push(t, src, s.rtmpURL("live", "crash"), "-re")
		close(pushDone)
	}()
	time.Sleep(9 * time.Second)
	s.kill()
	<-pushDone
	s.start()
	recs := s.waitDone("app=live&stream=crash", 1, 10*time.Second)
	r := recs[0]
	pl := s.filePath(r.Key)
	decodeClean(t, pl)
	body, _ := os.ReadFile(pl)
	if !strings.Contains(string(body), "#EXT-X-ENDLIST") {
		t.Fatalf("recovered playlist not finalized:\n%s", body)
	}
	// About 9 s were pushed; the segment in progress at the kill is recovered too.
	if got := probeDuration(t, pl); got < 6.5 || got > 10 {
		t.Fatalf("recovered duration %.2f s, want about 9 s (at most 2 s lost)", got)
	}
}
