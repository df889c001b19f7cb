package e2e

import (
	"context"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/rtmp"
	"github.com/livrec/livrec/internal/testenv"
)

// countFrames counts the decoded frames of the first stream of kind ("v" or "a").
func countFrames(t *testing.T, path, kind string) int {
	t.Helper()
	out := mustRun(t, "ffprobe", "-v", "error", "-count_frames", "-select_streams", kind+":0",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path)
	n, err := strconv.Atoi(strings.TrimSpace(strings.Split(strings.TrimSpace(out), "\n")[0]))
	if err != nil {
		t.Fatalf("ffprobe frame count of %s: %q", path, out)
	}
	return n
}

// audioBeforePicture counts the audio packets of path that play before its first
// picture: the mp4 writer leaves them out (its presentation starts at the first picture).
func audioBeforePicture(t *testing.T, path string) int {
	t.Helper()
	out := mustRun(t, "ffprobe", "-v", "error", "-show_entries", "packet=codec_type,pts_time", "-of", "csv=p=0", path)
	first := math.Inf(1)
	var audio []float64
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		typ, ts, _ := strings.Cut(line, ",")
		v, err := strconv.ParseFloat(ts, 64)
		if err != nil {
			continue
		}
		switch typ {
		case "video":
			first = min(first, v)
		case "audio":
			audio = append(audio, v)
		}
	}
	n := 0
	for _, a := range audio {
		if a < first {
			n++
		}
	}
	return n
}

// pushRealTime publishes src in real time to stream of each app at once; Wait returns
// when every publish ended.
func pushRealTime(t *testing.T, s *server, src, stream string, apps ...string) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, app := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := rtmp.Publish(context.Background(), s.rtmpURL(app, stream), rtmp.PublishOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := p.WriteAll(context.Background(), openFLV(t, src), true); err != nil {
				t.Error(err)
			}
			if err := p.Close(); err != nil {
				t.Error(err)
			}
		}()
	}
	return &wg
}

// TestLongKillDuringStitchWindow: a publish ends, its task pauses for the stitch window,
// and livrec is killed (-9) a second later. After the restart every format's recovered
// file holds every frame that was pushed: what was received before the publish ended is
// durable at the pause, not only at the end of the window.
func TestLongKillDuringStitchWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes in real time")
	}
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := makeSource(t, t.TempDir(), 10)
	wantVideo, wantAudio := countFrames(t, src, "v"), countFrames(t, src, "a")
	early := audioBeforePicture(t, src)
	s := startServer(t, t.TempDir(), `
rules:
  - domainName: "*"
    appName: a
    delayTime: 300
    recordFormats: [{format: m3u8, sliceDuration: 30}, {format: flv}, {format: mp4}]
  - domainName: "*"
    appName: b
    delayTime: 300
    recordFormats: [{format: cmaf, sliceDuration: 30}]
`)
	pushRealTime(t, s, src, "window", "a", "b").Wait()
	s.waitIdle()
	time.Sleep(1500 * time.Millisecond) // inside the stitch window
	for _, r := range s.recordings("stream=window") {
		if r.Status != "recording" {
			t.Fatalf("a file was generated before the window ended: %+v", r)
		}
	}
	s.kill()
	s.start()
	recs := s.waitDone("stream=window", 4, 30*time.Second)
	for _, r := range recs {
		p := s.filePath(r.Key)
		decodeClean(t, p)
		gotVideo, gotAudio := countFrames(t, p, "v"), countFrames(t, p, "a")
		wantAudio := wantAudio
		if r.Format == "mp4" {
			wantAudio -= early
		}
		t.Logf("%s: %d/%d video, %d/%d audio frames", r.Format, gotVideo, wantVideo, gotAudio, wantAudio)
		if gotVideo != wantVideo {
			t.Errorf("%s: %d of %d video frames recovered", r.Format, gotVideo, wantVideo)
		}
		if gotAudio < wantAudio {
			t.Errorf("%s: %d of %d audio frames recovered", r.Format, gotAudio, wantAudio)
		}
	}
	s.stop()
}
