package e2e

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

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
	needTools(t)
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
	needTools(t)
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
