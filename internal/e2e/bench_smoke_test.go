package e2e

import (
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/loadgen"
	"github.com/livrec/livrec/internal/testenv"
)

const benchSmokeConfig = `
rules:
  - domainName: "*"
    appName: "*"
    streamName: "*"
    delayTime: 15
    recordFormats:
      - format: m3u8
        sliceDuration: 5
      - format: flv
`

// Size of the smoke load: CI runs it on every change, so it stays small.
const (
	smokeStreams  = 20
	smokeDuration = 20 * time.Second
)

// TestLongSmokeLoadBench is the CI smoke version of `livrec bench`: the in-process load
// generator publishes 20 streams for 20 s in real time (a 10 s H.264 + AAC file looped
// twice, jittered starts) to a livrec process recording m3u8 + flv; after SIGTERM every
// stream has one recording per format holding exactly the video frames sent (and the
// flv the audio frames too): zero frames lost.
func TestLongSmokeLoadBench(t *testing.T) {
	if testing.Short() {
		t.Skip("smoke load test: ~30 s")
	}
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src, err := loadgen.LoadFile(makeSource(t, t.TempDir(), 10))
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), benchSmokeConfig)
	sum, err := loadgen.Run(t.Context(), loadgen.Config{URL: "rtmp://127.0.0.1:" + strconv.Itoa(s.rtmpPort) + "/bench",
		Streams: smokeStreams, Duration: smokeDuration, Source: src, Jitter: time.Second, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %d tags (%d video, %d audio frames), %.1f Mbit/s; generator CPU %.2f s (%.1f%% of a core, %.3f%% per stream)",
		sum.Tags, sum.VideoFrames, sum.AudioFrames, sum.Mbps, sum.CPUSeconds, sum.CPUPercent, sum.CPUPercentPer)
	if sum.Errors != 0 || sum.Publishes != smokeStreams {
		t.Fatalf("load generator: %d errors (%v), %d publishes", sum.Errors, sum.ErrorKinds, sum.Publishes)
	}
	s.waitIdle()
	stopped := time.Now()
	s.stop() // finalizes every open recording
	t.Logf("SIGTERM to exit: %v", time.Since(stopped))
	s.start()

	for _, st := range sum.PerStream {
		if st.VideoFrames < 400 { // 20 s at 25 fps, less the jitter
			t.Fatalf("%s: only %d video frames sent", st.Name, st.VideoFrames)
		}
		recs := s.waitDone("app=bench&stream="+st.Name, 2, 5*time.Second)
		byFormat := map[string]recording{}
		for _, r := range recs {
			if r.Status != "done" {
				t.Fatalf("%s: recording %+v", st.Name, r)
			}
			if _, dup := byFormat[r.Format]; dup {
				t.Fatalf("%s: more than one %s recording: %+v", st.Name, r.Format, recs)
			}
			byFormat[r.Format] = r
		}
		fr, ok := byFormat["flv"]
		if !ok {
			t.Fatalf("%s: no flv recording: %+v", st.Name, recs)
		}
		video, audio := countFLVFrames(t, s.filePath(fr.Key))
		if video != st.VideoFrames || audio != st.AudioFrames {
			t.Fatalf("%s: sent %d video + %d audio frames, the flv recording has %d + %d", st.Name,
				st.VideoFrames, st.AudioFrames, video, audio)
		}
		hr, ok := byFormat["m3u8"]
		if !ok {
			t.Fatalf("%s: no m3u8 recording: %+v", st.Name, recs)
		}
		if n := probePackets(t, s.filePath(hr.Key), "v:0"); n != st.VideoFrames {
			t.Fatalf("%s: sent %d video frames, the m3u8 recording has %d", st.Name, st.VideoFrames, n)
		}
	}
}

// countFLVFrames counts the coded video and audio frames of an FLV file.
func countFLVFrames(t *testing.T, path string) (video, audio int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := flv.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for {
		tag, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		switch tag.Type {
		case flv.TagVideo:
			if h, err := flv.ParseVideoTagHeader(tag.Body); err == nil && h.Kind == flv.PacketFrame {
				video++
			}
		case flv.TagAudio:
			if h, err := flv.ParseAudioTagHeader(tag.Body); err == nil && h.Kind == flv.PacketFrame {
				audio++
			}
		}
	}
	if r.Truncated() {
		t.Fatalf("%s: truncated", path)
	}
	return video, audio
}

// probeVideoPackets counts the packets of the first video stream with ffprobe.
// probePackets counts the packets (frames) of one stream, "v:0" or "a:0", with ffprobe.
func probePackets(t *testing.T, path, stream string) int64 {
	t.Helper()
	out := mustRun(t, "ffprobe", "-v", "error", "-select_streams", stream, "-count_packets",
		"-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path)
	// HLS lists the stream once per program as well: the first number is the stream's.
	fields := strings.Fields(out)
	if len(fields) == 0 {
		t.Fatalf("ffprobe %s: no output", path)
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(fields[0], ","), 10, 64)
	if err != nil {
		t.Fatalf("ffprobe %s: %q", path, out)
	}
	return n
}
