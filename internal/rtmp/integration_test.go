package rtmp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/testenv"
)

// runFFmpeg pushes 3 s of test pattern and tone to url with the given codec options.
func runFFmpeg(t *testing.T, ffmpeg, url string, codecArgs ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine", "-t", "3"}
	args = append(args, codecArgs...)
	args = append(args, "-f", "flv", url)
	out, err := exec.CommandContext(ctx, ffmpeg, args...).CombinedOutput()
	return string(out), err
}

// checkStream checks what an ffmpeg push of 3 s at 25 fps delivered.
func checkStream(t *testing.T, tags []flv.Tag, videoCodec, audioFormat byte) {
	t.Helper()
	var nScript, nAudio, nVideo, nKey int
	var firstVideo, firstAudio []byte
	last := map[uint8]uint32{}
	for i, tg := range tags {
		if prev, ok := last[tg.Type]; ok && tg.Timestamp < prev {
			t.Errorf("tag %d (type %d): timestamp %d after %d", i, tg.Type, tg.Timestamp, prev)
		}
		last[tg.Type] = tg.Timestamp
		switch tg.Type {
		case flv.TagScript:
			nScript++
			if !hasAMF0StringPrefix(tg.Body, "onMetaData") {
				t.Errorf("script tag %d does not start with onMetaData: %x", i, head(tg.Body))
			}
		case flv.TagAudio:
			nAudio++
			if firstAudio == nil {
				firstAudio = tg.Body
			}
			if tg.Body[0]>>4 != audioFormat {
				t.Errorf("audio tag %d: format %d", i, tg.Body[0]>>4)
			}
		case flv.TagVideo:
			if firstVideo == nil {
				firstVideo = tg.Body
			}
			if tg.Body[0]&0x0F == videoCodec {
				nVideo++
				if tg.Body[0]>>4 == 1 {
					nKey++
				}
			}
		default:
			t.Errorf("tag %d has type %d", i, tg.Type)
		}
	}
	if nScript == 0 || tags[0].Type != flv.TagScript {
		t.Errorf("%d script tags; first tag type %d", nScript, tags[0].Type)
	}
	if nAudio < 50 || nVideo < 70 || nKey < 3 {
		t.Errorf("%d audio, %d video (%d key) tags; want ≥50, ≥70 (≥3)", nAudio, nVideo, nKey)
	}
	if firstVideo == nil || firstVideo[0] != 0x10|videoCodec {
		t.Errorf("first video tag %x", head(firstVideo))
	}
	if last[flv.TagVideo] < 2800 || last[flv.TagVideo] > 3500 {
		t.Errorf("last video timestamp %d ms for a 3 s push", last[flv.TagVideo])
	}
	if audioFormat == 10 && (firstAudio == nil || firstAudio[0] != 0xAF || firstAudio[1] != 0) {
		t.Errorf("first audio tag is no AAC sequence header: %x", head(firstAudio))
	}
}

// checkEnd accepts Close(nil) (ffmpeg's FCUnpublish/deleteStream) or a disconnect.
func checkEnd(t *testing.T, s *recSession) {
	t.Helper()
	err := s.waitClosed(t, 10*time.Second)
	if err != nil && !strings.Contains(err.Error(), "client disconnected") {
		t.Errorf("Close(%v), want nil or a disconnect", err)
	}
}

func TestFFmpegPublish(t *testing.T) {
	ffmpeg := testenv.Path(t, testenv.FFmpeg)
	for _, tc := range []struct {
		name       string
		codecArgs  []string
		videoCodec byte
		audioFmt   byte
	}{
		{"h264+aac", []string{"-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac"}, 7, 10},
		// FLV video codec id 9 (MPEG-4 Part 2), which gortmplib's message layer rejects.
		{"mpeg4+mp3", []string{"-c:v", "mpeg4", "-strict", "-1", "-g", "25", "-c:a", "libmp3lame"}, 9, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newRecHandler()
			_, addr := startServer(t, h, nil)
			out, err := runFFmpeg(t, ffmpeg, "rtmp://"+addr+"/live/test?vhost=example.com&token=x%20y", tc.codecArgs...)
			if err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, out)
			}
			s := h.waitPublish(t)
			checkEnd(t, s)
			reqs := h.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d publish requests", len(reqs))
			}
			r := reqs[0]
			if r.App != "live" || r.Stream != "test" || r.Domain != "example.com" ||
				r.Args.Get("vhost") != "example.com" || r.Args.Get("token") != "x y" ||
				r.TcURL != "rtmp://"+addr+"/live" {
				t.Errorf("request %+v", r)
			}
			checkStream(t, s.snapshot(), tc.videoCodec, tc.audioFmt)
		})
	}
}

func TestFFmpegRefused(t *testing.T) {
	ffmpeg := testenv.Path(t, testenv.FFmpeg)
	h := newRecHandler()
	h.refuse = fmt.Errorf("no rule for this key: %w", ErrBadName)
	_, addr := startServer(t, h, nil)
	out, err := runFFmpeg(t, ffmpeg, "rtmp://"+addr+"/live/test", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac")
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("ffmpeg succeeded or did not run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "no rule for this key") {
		t.Errorf("ffmpeg output lacks the refusal description:\n%s", out)
	}
	if n := len(h.requests()); n != 1 {
		t.Errorf("%d publish requests", n)
	}
}

// TestGortmplibClient publishes with gortmplib's own client and writer: legacy H264 +
// AAC, and Enhanced RTMP HEVC.
func TestGortmplibClient(t *testing.T) {
	h := newRecHandler()
	_, addr := startServer(t, h, nil)

	publish := func(t *testing.T, stream string, tracks []*gortmplib.Track, write func(*gortmplib.Writer) error) *recSession {
		t.Helper()
		u, err := url.Parse("rtmp://" + addr + "/app#" + stream)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c := &gortmplib.Client{URL: u, Publish: true}
		if err := c.Initialize(ctx); err != nil {
			t.Fatalf("client: %v", err)
		}
		s := h.waitPublish(t)
		w := &gortmplib.Writer{Conn: c, Tracks: tracks}
		if err := w.Initialize(); err != nil {
			t.Fatal(err)
		}
		if err := write(w); err != nil {
			t.Fatal(err)
		}
		c.Close()
		if err := s.waitClosed(t, 5*time.Second); err == nil || !strings.Contains(err.Error(), "disconnected") {
			t.Errorf("Close(%v), want a disconnect", err)
		}
		return s
	}

	t.Run("h264+aac", func(t *testing.T) {
		video := &gortmplib.Track{Codec: &codecs.H264{
			SPS: []byte{0x67, 0x64, 0x00, 0x0c, 0xac, 0x3b, 0x50, 0xb0, 0x4b, 0x42, 0x00, 0x00, 0x03,
				0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x3d, 0x08},
			PPS: []byte{0x68, 0xee, 0x3c, 0x80},
		}}
		audio := &gortmplib.Track{Codec: &codecs.MPEG4Audio{Config: &mpeg4audio.AudioSpecificConfig{
			Type: 2, SampleRate: 44100, ChannelCount: 2,
		}}}
		s := publish(t, "cam?vhost=go.example", []*gortmplib.Track{video, audio}, func(w *gortmplib.Writer) error {
			for i := range 10 {
				ts := time.Duration(i) * 40 * time.Millisecond
				nalu := []byte{0x41, 0x9a, byte(i)} // non-IDR slice
				if i == 0 {
					nalu = []byte{0x65, 0x88, 0x84} // IDR slice
				}
				if err := w.WriteH264(video, ts, ts, [][]byte{nalu}); err != nil {
					return err
				}
				if err := w.WriteMPEG4Audio(audio, ts, []byte{0x21, 0x10, byte(i)}); err != nil {
					return err
				}
			}
			return nil
		})
		req := h.requests()[len(h.requests())-1]
		if req.App != "app" || req.Stream != "cam" || req.Domain != "go.example" {
			t.Errorf("request %+v", req)
		}
		tags := s.snapshot()
		if len(tags) != 1+2+20 {
			t.Fatalf("%d tags, want 23", len(tags))
		}
		if tags[0].Type != flv.TagScript || !hasAMF0StringPrefix(tags[0].Body, "onMetaData") {
			t.Errorf("first tag %d %x", tags[0].Type, head(tags[0].Body))
		}
		var video0, audio0 []byte
		for _, tg := range tags {
			if tg.Type == flv.TagVideo && video0 == nil {
				video0 = tg.Body
			}
			if tg.Type == flv.TagAudio && audio0 == nil {
				audio0 = tg.Body
			}
		}
		if len(video0) < 2 || video0[0] != 0x17 || video0[1] != 0 {
			t.Errorf("first video tag %x, want an AVC sequence header", head(video0))
		}
		if len(audio0) < 2 || audio0[0] != 0xAF || audio0[1] != 0 {
			t.Errorf("first audio tag %x, want an AAC sequence header", head(audio0))
		}
		lastVideo := tags[len(tags)-2]
		if lastVideo.Type != flv.TagVideo || lastVideo.Timestamp != 360 ||
			!bytes.HasSuffix(lastVideo.Body, []byte{0x41, 0x9a, 9}) {
			t.Errorf("last video tag ts %d body %x", lastVideo.Timestamp, lastVideo.Body)
		}
	})

	t.Run("hevc", func(t *testing.T) {
		video := &gortmplib.Track{Codec: &codecs.H265{}}
		s := publish(t, "hevc", []*gortmplib.Track{video}, func(w *gortmplib.Writer) error {
			return w.WriteH265(video, 0, 0, [][]byte{{0x26, 0x01, 0xaf}})
		})
		tags := s.snapshot()
		if len(tags) != 3 {
			t.Fatalf("%d tags, want 3", len(tags))
		}
		// Enhanced RTMP: IsExHeader bit, PacketType SequenceStart, FourCC "hvc1".
		if b := tags[1].Body; len(b) < 5 || b[0]&0x8F != 0x80 || string(b[1:5]) != "hvc1" {
			t.Errorf("sequence start %x", head(b))
		}
	})
}
