package e2e

import (
	"testing"
	"time"

	"github.com/livrec/livrec/internal/testenv"
)

// TestRecordingURLs: every recording row of the JSON API carries the URL a player opens:
// liveUrl (the live playlist) while an m3u8 or cmaf file is recorded, url (/files/{key})
// once it is stored; ffmpeg decodes both as given.
func TestRecordingURLs(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := makeSource(t, t.TempDir(), 12) // segments of 6 s (keyframes every 2 s): the first is stored while paused
	s := startServer(t, t.TempDir(), `
rules:
  - domainName: "*"
    appName: a
    delayTime: 15
    recordFormats: [{format: m3u8, sliceDuration: 5}, {format: mp4}]
  - domainName: "*"
    appName: b
    delayTime: 15
    recordFormats: [{format: cmaf, sliceDuration: 5}]
`)
	for _, app := range []string{"a", "b"} {
		if out, err := push(t, src, s.rtmpURL(app, "u")); err != nil {
			t.Fatalf("push: %v\n%s", err, out)
		}
	}
	s.waitIdle()
	// The stitch window runs: the files are still being recorded.
	live := 0
	for _, r := range s.recordings("stream=u") {
		switch {
		case r.Status != "recording" || r.URL != "":
			t.Errorf("%s in the stitch window: status %s, url %q", r.Format, r.Status, r.URL)
		case r.Format == "mp4" && r.LiveURL != "":
			t.Errorf("mp4 has no live playlist, got liveUrl %q", r.LiveURL)
		case r.Format != "mp4":
			if want := "/live/" + r.ID + ".m3u8"; r.LiveURL != want {
				t.Errorf("%s: liveUrl %q, want %q", r.Format, r.LiveURL, want)
				continue
			}
			decodeClean(t, s.url(r.LiveURL))
			live++
		}
	}
	if live != 2 {
		t.Fatalf("%d live playlists opened, want 2 (m3u8, cmaf)", live)
	}
	s.stop()
	s.start()
	recs := s.waitDone("stream=u", 3, 5*time.Second)
	for _, r := range recs {
		if want := "/files/" + r.Key; r.URL != want || r.LiveURL != "" {
			t.Errorf("%s done: url %q liveUrl %q, want url %q", r.Format, r.URL, r.LiveURL, want)
			continue
		}
		decodeClean(t, s.url(r.URL))
		if got := probeDuration(t, s.url(r.URL)); got < 11.5 {
			t.Errorf("%s at %s: %.3f s, pushed 12 s", r.Format, r.URL, got)
		}
	}
}
