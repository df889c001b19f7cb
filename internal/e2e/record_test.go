package e2e

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/testenv"
)

// allFormatsConfig records app "a" as m3u8, flv and mp4 and app "b" as cmaf (cmaf
// cannot share a rule with m3u8).
const allFormatsConfig = `
rules:
  - domainName: "*"
    appName: a
    recordFormats: [{format: m3u8, sliceDuration: 5}, {format: flv}, {format: mp4}]
  - domainName: "*"
    appName: b
    recordFormats: [{format: cmaf, sliceDuration: 5}]
`

const hlsConfig = `
rules:
  - domainName: "*"
    appName: "*"
    streamName: "*"
    delayTime: 15
    recordFormats:
      - format: m3u8
        sliceDuration: 5
`

// TestRecordHLS: a push of H.264 (B-frames) + AAC becomes a clean HLS recording with the
// pushed duration and the pushed video bytes, listed in the catalog.
func TestRecordHLS(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	dir := t.TempDir()
	src := makeSource(t, dir, 12)
	s := startServer(t, t.TempDir(), hlsConfig)
	if out, err := push(t, src, s.rtmpURL("live", "cam1")+"?vhost=example.com"); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	// The stream ended: the task is paused for the stitch window; shutdown finalizes now.
	s.waitIdle()
	s.stop()
	s.start()
	recs := s.waitDone("domain=example.com&app=live&stream=cam1", 1, 5*time.Second)
	if len(recs) != 1 {
		t.Fatalf("want 1 recording, got %+v", recs)
	}
	r := recs[0]
	if r.Format != "m3u8" || !strings.HasPrefix(r.Key, "record/live/cam1/") || !strings.HasSuffix(r.Key, ".m3u8") {
		t.Fatalf("unexpected recording %+v", r)
	}
	if r.Width != 320 || r.Height != 240 || r.Codecs != "h264,aac" {
		t.Fatalf("catalog row lacks stream facts: %+v", r)
	}
	pl := s.filePath(r.Key)
	body, err := os.ReadFile(pl)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-ENDLIST", "#EXT-X-TARGETDURATION:"} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("playlist lacks %s:\n%s", want, body)
		}
	}
	decodeClean(t, pl)
	want, got := probeDuration(t, src), probeDuration(t, pl)
	if math.Abs(want-got) > 0.1 {
		t.Fatalf("duration: pushed %.3f s, recorded %.3f s", want, got)
	}
	if math.Abs(r.Duration-got) > 0.1 {
		t.Fatalf("catalog duration %.3f vs ffprobe %.3f", r.Duration, got)
	}
	sameNALUs(t, videoNALUs(t, src), videoNALUs(t, pl))

	// Served over HTTP with the HLS content type, Range requests on segments.
	resp, err := httpGet(s.url("/files/" + r.Key))
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.apple.mpegurl" {
		t.Fatalf("GET playlist: %v %+v", err, resp)
	}
	decodeClean(t, s.url("/files/"+r.Key))
}

// TestBadNameRefused: names outside [A-Za-z0-9_-] are refused; nothing is recorded.
func TestBadNameRefused(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := makeSource(t, t.TempDir(), 2)
	s := startServer(t, t.TempDir(), hlsConfig)
	out, err := push(t, src, s.rtmpURL("live", "bad.name"))
	if err == nil {
		t.Fatalf("push with a bad stream name succeeded:\n%s", out)
	}
	time.Sleep(200 * time.Millisecond)
	if !strings.Contains(s.logs.String(), `bad.name`) {
		t.Fatalf("log does not name the bad value")
	}
	if recs := s.recordings(""); len(recs) != 0 {
		t.Fatalf("a refused push was recorded: %+v", recs)
	}
}

// TestSecondPublisherRefused: a second publisher on a live stream key is refused and the
// first keeps going; the in-progress recording is playable from its live playlist.
func TestSecondPublisherRefused(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := makeSource(t, t.TempDir(), 8)
	s := startServer(t, t.TempDir(), hlsConfig)
	first := make(chan error, 1)
	go func() {
		out, err := push(t, src, s.rtmpURL("live", "dup"), "-re")
		if err != nil {
			err = fmt.Errorf("%v: %s", err, out)
		}
		first <- err
	}()
	time.Sleep(6500 * time.Millisecond)
	if out, err := push(t, src, s.rtmpURL("live", "dup")); err == nil {
		t.Fatalf("second publisher accepted:\n%s", out)
	}

	// While recording: the live EVENT playlist lists the segments stored so far.
	recs := s.recordings("app=live&stream=dup&status=recording")
	if len(recs) != 1 {
		t.Fatalf("want 1 recording in progress, got %+v", recs)
	}
	resp, err := http.Get(s.url("/live/" + recs[0].ID + ".m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	live, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(live), "#EXT-X-PLAYLIST-TYPE:EVENT") || strings.Contains(string(live), "ENDLIST") {
		t.Fatalf("live playlist (%d):\n%s", resp.StatusCode, live)
	}
	var seg string
	for _, l := range strings.Split(string(live), "\n") {
		if strings.HasPrefix(l, "/files/") {
			seg = l
			break
		}
	}
	if seg == "" {
		t.Fatalf("live playlist names no segment:\n%s", live)
	}
	decodeClean(t, s.url(seg))
	if n := s.metric(`livrec_segments_written_total{format="m3u8"}`); n < 1 {
		t.Fatalf("segments are counted as they are stored: want ≥ 1 while recording, got %v", n)
	}

	if err := <-first; err != nil {
		t.Fatalf("the first publisher was disturbed: %v", err)
	}
	s.waitIdle()
	s.stop()
	s.start()
	r := s.waitDone("app=live&stream=dup", 1, 5*time.Second)[0]
	if want := probeDuration(t, src); math.Abs(r.Duration-want) > 0.1 {
		t.Fatalf("recorded %.3f s of %.3f s", r.Duration, want)
	}
}
