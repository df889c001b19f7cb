package remux

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/testenv"
)

// writeLoopedKeepingAudio loops the FLV file src n times into dst the way a looper that
// keeps all the audio does: each loop starts one AAC frame after the last audio tag, so
// the video (which ends earlier) has a gap at every seam that is not a whole number of
// frames. The coded frames repeat, shifted; the other tags go out once.
func writeLoopedKeepingAudio(t *testing.T, src, dst string, n int) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	r, err := flv.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	var tags []flv.Tag
	var span uint32
	for {
		tag, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		tag.Body = bytes.Clone(tag.Body) // the reader reuses its buffer
		tags = append(tags, tag)
		span = max(span, tag.Timestamp+23)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w, err := flv.NewWriter(out, true, true)
	if err != nil {
		t.Fatal(err)
	}
	for k := range n {
		for _, tag := range tags {
			if k > 0 && !codedFrame(tag) {
				continue
			}
			tag.Timestamp += uint32(k) * span
			if err := w.WriteTag(tag); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// codedFrame reports whether tag is an audio or video frame (not a script tag, decoder
// configuration or end of sequence).
func codedFrame(tag flv.Tag) bool {
	switch tag.Type {
	case flv.TagVideo:
		h, err := flv.ParseVideoTagHeader(tag.Body)
		return err == nil && h.Kind == flv.PacketFrame
	case flv.TagAudio:
		h, err := flv.ParseAudioTagHeader(tag.Body)
		return err == nil && h.Kind == flv.PacketFrame
	}
	return false
}

// TestRemuxLoopedVideoGaps: a 25 fps clip with B-frames whose AAC runs 100 ms past its
// video, looped with a video gap of 6¼ frames at each seam, decodes cleanly in every
// format, every frame kept. (The cadence smoothing once snapped the frames after such a
// gap onto the old grid and walked them back 1 ms per frame: B-frames then shared a 1/25 s
// slot, ffmpeg's "non monotonically increasing dts".)
func TestRemuxLoopedVideoGaps(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	dir := t.TempDir()
	clip := filepath.Join(dir, "clip.flv")
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y",
		"-f", "lavfi", "-t", "2", "-i", "testsrc2=size=160x120:rate=25",
		"-f", "lavfi", "-t", "2.1", "-i", "sine=frequency=440:sample_rate=44100",
		"-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", clip).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	const loops = 20
	looped := filepath.Join(dir, "looped.flv")
	writeLoopedKeepingAudio(t, clip, looped, loops)
	if out, _ := exec.Command("ffmpeg", "-v", "error", "-i", looped, "-f", "null", "-").CombinedOutput(); strings.TrimSpace(string(out)) != "" {
		t.Fatalf("the looped input does not decode cleanly itself:\n%s", out)
	}
	for _, formats := range [][]rules.Format{{rules.M3U8, rules.FLV, rules.MP4}, {rules.CMAF}} {
		res, err := Run(t.Context(), looped, filepath.Join(dir, string(formats[0])), Options{Formats: formats, SliceDuration: 5})
		if err != nil || len(res.Errors) > 0 {
			t.Fatalf("%v: %v %v", formats, err, res.Errors)
		}
		if len(res.Files) != len(formats) {
			t.Fatalf("%v: files %+v", formats, res.Files)
		}
		for _, f := range res.Files {
			out, err := exec.Command("ffmpeg", "-v", "error", "-i", f.Path, "-f", "null", "-").CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "" {
				t.Errorf("%s: decoding is not clean (err=%v):\n%.600s", f.Format, err, out)
			}
			if n := videoPackets(t, f.Path); n != 50*loops {
				t.Errorf("%s: %d video frames, want %d", f.Format, n, 50*loops)
			}
		}
	}
}
