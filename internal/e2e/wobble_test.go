package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/rtmp"
	"github.com/livrec/livrec/internal/testenv"
	"github.com/livrec/livrec/internal/testmedia"
)

// TestVideoWobbleSmoothed: H.264 (B-frames) + AAC at 25 fps whose video timestamps
// wobble by ±12 ms is recorded in every format with the video snapped back onto its
// 40 ms cadence: ffmpeg decodes every recording without a word, where the pushed file
// itself makes it complain; the smoothing is counted once per recording task.
func TestVideoWobbleSmoothed(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	dir := t.TempDir()
	src, err := testmedia.MakeFLV(dir, testmedia.Spec{Video: testmedia.H264, Audio: testmedia.AAC, Seconds: 12,
		Width: 320, Height: 240, FPS: 25, GOP: 50})
	if err != nil {
		t.Fatal(err)
	}
	wobbly := filepath.Join(dir, "wobbly.flv")
	if err := testmedia.Wobble(src, wobbly, 12*time.Millisecond, 11); err != nil {
		t.Fatal(err)
	}
	if out, _ := run(t, "ffmpeg", "-v", "error", "-i", wobbly, "-f", "null", "-"); strings.TrimSpace(out) == "" {
		t.Fatal("ffmpeg does not complain about the wobbly source: the test proves nothing")
	}
	s := startServer(t, t.TempDir(), allFormatsConfig)
	for _, app := range []string{"a", "b"} {
		if _, err := rtmp.PublishFile(context.Background(), s.rtmpURL(app, "wobble"), wobbly, false, rtmp.PublishOptions{}); err != nil {
			t.Fatalf("push to %s: %v", app, err)
		}
	}
	s.waitIdle()
	if n := s.metric(`livrec_timestamp_repairs_total{kind="cadence"}`); n != 2 {
		t.Errorf("cadence repairs counted %v, want one per task (2)", n)
	}
	s.stop()
	s.start()
	want := probeDuration(t, src)
	for _, format := range []string{"m3u8", "flv", "mp4", "cmaf"} {
		app := "a"
		if format == "cmaf" {
			app = "b"
		}
		t.Run(format, func(t *testing.T) {
			recs := s.waitDone(fmt.Sprintf("app=%s&stream=wobble&format=%s", app, format), 1, 5*time.Second)
			path := s.filePath(recs[0].Key)
			decodeClean(t, path)
			if got := probeDuration(t, path); got < want-0.2 || got > want+0.2 {
				t.Fatalf("duration %.3f s, pushed %.3f s", got, want)
			}
		})
	}
}
