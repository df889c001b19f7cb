package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/rtmp"
	"github.com/livrec/livrec/internal/testenv"
	"github.com/livrec/livrec/internal/testmedia"
)

// concatReader yields the tags of several FLV files as one stream, each file's
// timestamps shifted to follow the previous one's.
type concatReader struct {
	files  []*flv.Reader
	offset uint32
	last   uint32
}

func (c *concatReader) ReadTag() (flv.Tag, error) {
	for len(c.files) > 0 {
		t, err := c.files[0].ReadTag()
		if errors.Is(err, io.EOF) {
			c.files = c.files[1:]
			c.offset = c.last + 40
			continue
		}
		if err != nil {
			return t, err
		}
		t.Timestamp += c.offset
		c.last = max(c.last, t.Timestamp)
		return t, nil
	}
	return flv.Tag{}, io.EOF
}

func openFLV(t *testing.T, path string) *flv.Reader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	r, err := flv.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestParameterChange: a new SPS (another resolution) in the middle of a publish. HLS
// and CMAF signal it (discontinuity; a new init segment), FLV and MP4 start a new file;
// the catalog row of each file has its own size.
func TestParameterChange(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	dir := t.TempDir()
	big, err := testmedia.MakeFLV(dir, testmedia.Spec{Video: testmedia.H264, Audio: testmedia.AAC, Seconds: 3, Width: 320, Height: 240})
	if err != nil {
		t.Fatal(err)
	}
	small, err := testmedia.MakeFLV(dir, testmedia.Spec{Video: testmedia.H264, Audio: testmedia.AAC, Seconds: 3, Width: 176, Height: 144})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), allFormatsConfig)
	for _, app := range []string{"a", "b"} {
		p, err := rtmp.Publish(context.Background(), s.rtmpURL(app, "change"), rtmp.PublishOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.WriteAll(context.Background(), &concatReader{files: []*flv.Reader{openFLV(t, big), openFLV(t, small)}}, false); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s.waitIdle()
	s.stop()
	s.start()
	sizes := map[string][]string{}
	for _, r := range s.recordings("stream=change") {
		if r.Status != "done" {
			t.Fatalf("recording not generated: %+v", r)
		}
		decodeClean(t, s.filePath(r.Key))
		sizes[r.Format] = append(sizes[r.Format], fmt.Sprintf("%dx%d", r.Width, r.Height))
		body, _ := os.ReadFile(s.filePath(r.Key))
		switch r.Format {
		case "m3u8":
			if strings.Count(string(body), "#EXT-X-DISCONTINUITY") != 1 {
				t.Fatalf("m3u8 should mark the change with one discontinuity:\n%s", body)
			}
		case "cmaf":
			if !strings.HasSuffix(r.Key, ".m3u8") {
				t.Fatalf("a cmaf recording is an HLS playlist and should be keyed .m3u8: %s", r.Key)
			}
			if strings.Count(string(body), "#EXT-X-MAP") != 2 {
				t.Fatalf("cmaf should have a second init segment:\n%s", body)
			}
		}
	}
	for _, f := range []string{"flv", "mp4"} {
		if got := sizes[f]; len(got) != 2 || got[0] != "320x240" || got[1] != "176x144" {
			t.Fatalf("%s: want two files 320x240 then 176x144, got %v", f, got)
		}
	}
	for _, f := range []string{"m3u8", "cmaf"} {
		if len(sizes[f]) != 1 {
			t.Fatalf("%s: want one file, got %v", f, sizes[f])
		}
	}
}

// TestSameAudioInEveryFormat: one push recorded as m3u8, flv and mp4 holds the same
// number of audio frames in each file (the source's B-frames delay the first picture
// behind the first audio frame, which mp4 used to drop), and the catalog gives every
// format's duration in milliseconds.
func TestSameAudioInEveryFormat(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := makeSource(t, t.TempDir(), 6)
	s := startServer(t, t.TempDir(), `
rules:
  - domainName: "*"
    appName: "*"
    delayTime: 15
    recordFormats: [{format: m3u8, sliceDuration: 5}, {format: flv}, {format: mp4}]
`)
	if out, err := push(t, src, s.rtmpURL("live", "same")); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	s.waitIdle()
	s.stop()
	s.start()
	recs := s.waitDone("stream=same", 3, 5*time.Second)
	want := probePackets(t, src, "a:0")
	for _, r := range recs {
		if got := probePackets(t, s.filePath(r.Key), "a:0"); got != want {
			t.Errorf("%s: %d audio frames, the push has %d", r.Format, got, want)
		}
		if ms := r.Duration * 1000; math.Abs(ms-math.Round(ms)) > 1e-6 {
			t.Errorf("%s: catalog duration %v is not in milliseconds", r.Format, r.Duration)
		}
	}
}

// TestUnsupportedCodec: H.264 with Nellymoser audio records the video and says, in a
// warning, what was skipped.
func TestUnsupportedCodec(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := makeSource(t, t.TempDir(), 3, "-c:a", "nellymoser", "-ar", "22050", "-ac", "1")
	s := startServer(t, t.TempDir(), hlsConfig)
	if out, err := push(t, src, s.rtmpURL("live", "nelly")); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	s.waitIdle()
	if n := s.metric(`livrec_warnings_total{code="unsupported_codec"}`); n != 1 {
		t.Fatalf("want one unsupported_codec warning, got %v", n)
	}
	if !strings.Contains(s.logs.String(), "Nellymoser") {
		t.Fatalf("the warning does not name the codec")
	}
	s.stop()
	s.start()
	r := s.waitDone("stream=nelly", 1, 5*time.Second)[0]
	if r.Codecs != "h264" {
		t.Fatalf("codecs %q, want the video only", r.Codecs)
	}
	decodeClean(t, s.filePath(r.Key))
}

// TestLongKillMP4AndCMAF: kill -9 during mp4 and cmaf recordings; after a restart both
// are generated, playable, and hold the media up to at most 2 s before the kill.
func TestLongKillMP4AndCMAF(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes in real time")
	}
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := makeSource(t, t.TempDir(), 30)
	s := startServer(t, t.TempDir(), `
rules:
  - domainName: "*"
    appName: "*"
    recordFormats: [{format: cmaf, sliceDuration: 10}, {format: mp4}]
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := rtmp.Publish(ctx, s.rtmpURL("live", "crash"), rtmp.PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan rtmp.PublishStats, 1)
	go func() {
		st, _ := p.WriteAll(ctx, openFLV(t, src), true)
		sent <- st
	}()
	time.Sleep(9 * time.Second)
	s.kill()
	st := <-sent
	p.Close()
	s.start()
	recs := s.waitDone("stream=crash", 2, 20*time.Second)
	for _, r := range recs {
		pl := s.filePath(r.Key)
		decodeClean(t, pl)
		got := probeDuration(t, pl)
		if want := st.MediaDuration.Seconds(); got < want-2 || got > want+0.5 {
			t.Fatalf("%s recovered %.2f s; %.2f s were pushed before the kill (at most 2 s may be lost)", r.Format, got, want)
		}
	}
}
