package testmedia

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/testenv"
)

// makeFLV is MakeFLV for a test that needs ffmpeg.
func makeFLV(t *testing.T, dir string, s Spec) string {
	t.Helper()
	testenv.Require(t, testenv.FFmpeg)
	path, err := MakeFLV(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func readTags(t *testing.T, path string) []flv.Tag {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := flv.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var tags []flv.Tag
	for {
		tg, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			break
		}
		tg.Body = bytes.Clone(tg.Body)
		tags = append(tags, tg)
	}
	if r.Truncated() || r.Mismatches != 0 {
		t.Fatalf("truncated %v, %d PreviousTagSize mismatches", r.Truncated(), r.Mismatches)
	}
	return tags
}

var videoCodecs = map[string]media.Codec{
	H264: media.H264, H265: media.H265, H265Legacy: media.H265, MPEG4: media.MPEG4Video,
}

var audioCodecs = map[string]media.Codec{AAC: media.AAC, MP3: media.MP3}

// TestMakeFLV checks every codec combination through media.Demuxer: the expected tracks,
// every frame, key frames at the GOP interval, composition offsets where B-frames are
// used, and the durations.
func TestMakeFLV(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{H264, H265, H265Legacy, MPEG4, ""} {
		for _, a := range []string{AAC, MP3, ""} {
			if v == "" && a == "" {
				continue
			}
			s := Spec{Video: v, Audio: a}
			t.Run(s.Name(), func(t *testing.T) {
				path := makeFLV(t, dir, s)
				checkFixture(t, s.withDefaults(), readTags(t, path))
			})
		}
	}
}

func checkFixture(t *testing.T, s Spec, tags []flv.Tag) {
	t.Helper()
	var tracks [][2]*media.Track
	var aus []*media.AccessUnit
	d := &media.Demuxer{
		OnTracks:     func(v, a *media.Track) { tracks = append(tracks, [2]*media.Track{v, a}) },
		OnAccessUnit: func(au *media.AccessUnit) { aus = append(aus, au) },
		OnWarning:    func(code, msg string) { t.Errorf("demuxer warning %s: %s", code, msg) },
	}
	for _, tg := range tags {
		if err := d.WriteTag(tg); err != nil {
			t.Fatal(err)
		}
	}
	d.Flush()
	if len(tracks) != 1 {
		t.Fatalf("OnTracks called %d times, want 1", len(tracks))
	}
	vt, at := tracks[0][0], tracks[0][1]

	if s.Video == "" {
		if vt != nil {
			t.Errorf("unexpected video track %+v", vt)
		}
	} else {
		if vt == nil || vt.Codec != videoCodecs[s.Video] {
			t.Fatalf("video track %+v, want %s", vt, videoCodecs[s.Video])
		}
		if vt.Width != s.Width || vt.Height != s.Height || vt.FrameRate != float64(s.FPS) {
			t.Errorf("video %dx%d @%v, want %dx%d @%d", vt.Width, vt.Height, vt.FrameRate, s.Width, s.Height, s.FPS)
		}
		if s.Video == MPEG4 && !bytes.HasPrefix(vt.VideoConfig, []byte{0, 0, 1, 0xb0}) {
			t.Errorf("MPEG-4 configuration %x", vt.VideoConfig)
		}
		checkVideoTags(t, s, tags)
	}
	if s.Audio == "" {
		if at != nil {
			t.Errorf("unexpected audio track %+v", at)
		}
	} else {
		if at == nil || at.Codec != audioCodecs[s.Audio] {
			t.Fatalf("audio track %+v, want %s", at, audioCodecs[s.Audio])
		}
		if at.SampleRate != AudioSampleRate || at.Channels != 1 {
			t.Errorf("audio %d Hz %d channels", at.SampleRate, at.Channels)
		}
	}

	wantDur := time.Duration(s.Seconds * float64(time.Second))
	var nVideo, nAudio, keys int
	var sawCTS bool
	var lastV, lastA, firstA, endV time.Duration = -1, -1, 0, 0
	startV := time.Duration(1 << 62)
	for i, au := range aus {
		if au.Size() == 0 {
			t.Fatalf("AU %d is empty", i)
		}
		if au.PTS < au.DTS {
			t.Errorf("AU %d: PTS %v before DTS %v", i, au.PTS, au.DTS)
		}
		if au.Track.Codec.IsVideo() {
			if au.Track != vt {
				t.Fatalf("AU %d on an unannounced track", i)
			}
			if nVideo == 0 && (!au.Key || au.DTS > 100*time.Millisecond) {
				t.Errorf("first video AU: key %v, DTS %v", au.Key, au.DTS)
			}
			if au.Key {
				keys++
				if nVideo%s.GOP != 0 {
					t.Errorf("key frame at frame %d, GOP %d", nVideo, s.GOP)
				}
			}
			if au.DTS < lastV {
				t.Errorf("video DTS %v after %v", au.DTS, lastV)
			}
			lastV = au.DTS
			endV = max(endV, au.PTS)
			startV = min(startV, au.PTS)
			sawCTS = sawCTS || au.PTS != au.DTS
			nVideo++
		} else {
			if au.Track != at {
				t.Fatalf("AU %d on an unannounced track", i)
			}
			if nAudio == 0 {
				firstA = au.DTS
				if au.DTS > 100*time.Millisecond {
					t.Errorf("first audio AU at %v", au.DTS)
				}
			}
			if au.DTS < lastA {
				t.Errorf("audio DTS %v after %v", au.DTS, lastA)
			}
			lastA = au.DTS
			nAudio++
		}
	}
	if s.Video != "" {
		frames := int(s.Seconds * float64(s.FPS))
		if nVideo != frames {
			t.Errorf("%d video AUs, want %d", nVideo, frames)
		}
		if want := (frames + s.GOP - 1) / s.GOP; keys != want {
			t.Errorf("%d key frames, want %d", keys, want)
		}
		frameDur := time.Second / time.Duration(s.FPS)
		if d := endV - startV + frameDur; d < wantDur-frameDur/2 || d > wantDur+frameDur/2 {
			t.Errorf("video lasts %v (PTS %v to %v), want %v", d, startV, endV, wantDur)
		}
		if wantCTS := s.Video != MPEG4; sawCTS != wantCTS {
			t.Errorf("composition offsets: %v, want %v", sawCTS, wantCTS)
		}
	}
	if s.Audio != "" {
		// Encoder delay and padding add up to a frame or two (23 ms AAC, 26 ms MP3).
		if d := lastA - firstA; d < wantDur-60*time.Millisecond || d > wantDur+60*time.Millisecond {
			t.Errorf("audio frames from %v to %v for a %v fixture (%d frames)", firstA, lastA, wantDur, nAudio)
		}
	}
}

// checkVideoTags checks the FLV signalling of the video codec.
func checkVideoTags(t *testing.T, s Spec, tags []flv.Tag) {
	t.Helper()
	var configs, framesX int
	for _, tg := range tags {
		if tg.Type != flv.TagVideo {
			continue
		}
		h, err := flv.ParseVideoTagHeader(tg.Body)
		if err != nil {
			t.Fatal(err)
		}
		wantEnhanced := s.Video == H265
		if h.Enhanced != wantEnhanced {
			t.Fatalf("video tag enhanced=%v (%s)", h.Enhanced, h.CodecDescription())
		}
		switch s.Video {
		case H265:
			if h.FourCC != flv.FourCCHEVC {
				t.Fatalf("FourCC %s", h.FourCC)
			}
			if h.PacketType == flv.VideoExCodedFramesX {
				framesX++
			}
		case H265Legacy:
			if h.CodecID != flv.CodecIDHEVC {
				t.Fatalf("codec id %d", h.CodecID)
			}
		}
		if h.Kind == flv.PacketConfig {
			configs++
		}
	}
	if configs != 1 {
		t.Errorf("%d video config tags", configs)
	}
	if s.Video == H265 && framesX == 0 {
		t.Error("no CodedFramesX tag (frames with composition time 0)")
	}
}

func TestMakeFLVOptions(t *testing.T) {
	dir := t.TempDir()
	s := Spec{Video: H265Legacy, Audio: AAC, Seconds: 1, Width: 192, Height: 108, FPS: 30, GOP: 10}
	path := makeFLV(t, dir, s)
	checkFixture(t, s, readTags(t, path))

	// A second call reuses the file.
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	path2, err := MakeFLV(dir, s)
	if err != nil || path2 != path {
		t.Fatalf("second MakeFLV: %q %v", path2, err)
	}
	st2, _ := os.Stat(path2)
	if !st2.ModTime().Equal(st.ModTime()) {
		t.Error("file rewritten")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d files in the directory, want 1", len(entries))
	}

	for _, bad := range []Spec{{}, {Video: "vp9"}, {Audio: "opus"}, {Video: H264, Width: 161}} {
		if _, err := MakeFLV(dir, bad); err == nil {
			t.Errorf("spec %+v accepted", bad)
		}
	}
}

// TestHEVCDecodable decodes the H.265 of the fixtures we write ourselves with ffmpeg: the
// configuration record's parameter sets followed by every frame's NAL units, as Annex B.
func TestHEVCDecodable(t *testing.T) {
	ffprobe := testenv.Path(t, testenv.FFprobe)
	dir := t.TempDir()
	for _, v := range []string{H265, H265Legacy} {
		s := Spec{Video: v, Audio: MP3}.withDefaults()
		tags := readTags(t, makeFLV(t, dir, s))
		var annexB []byte
		sc := []byte{0, 0, 0, 1}
		for _, tg := range tags {
			if tg.Type != flv.TagVideo {
				continue
			}
			h, err := flv.ParseVideoTagHeader(tg.Body)
			if err != nil {
				t.Fatal(err)
			}
			switch h.Kind {
			case flv.PacketConfig:
				cfg, err := flv.ParseHEVCConfig(h.Data)
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range [][]byte{cfg.VPS[0], cfg.SPS[0], cfg.PPS[0]} {
					annexB = append(append(annexB, sc...), n...)
				}
			case flv.PacketFrame:
				for b := h.Data; len(b) > 0; {
					n := int(binary.BigEndian.Uint32(b))
					annexB = append(append(annexB, sc...), b[4:4+n]...)
					b = b[4+n:]
				}
			}
		}
		es := filepath.Join(dir, v+".h265")
		if err := os.WriteFile(es, annexB, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-select_streams", "v",
			"-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "csv=p=0", es).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "hevc,160,120,50" {
			t.Errorf("%s: ffprobe: %v\n%s", v, err, out)
		}
	}
}

// TestWobble: video tag timestamps move by at most the jitter (and some do), everything
// else is copied unchanged.
func TestWobble(t *testing.T) {
	dir := t.TempDir()
	src := makeFLV(t, dir, Spec{Video: H264, Audio: AAC})
	dst := filepath.Join(dir, "wobbly.flv")
	if err := Wobble(src, dst, 12*time.Millisecond, 1); err != nil {
		t.Fatal(err)
	}
	a, b := readTags(t, src), readTags(t, dst)
	if len(a) != len(b) {
		t.Fatalf("%d tags, want %d", len(b), len(a))
	}
	moved := 0
	for i := range a {
		d := int64(b[i].Timestamp) - int64(a[i].Timestamp)
		if a[i].Type != b[i].Type || !bytes.Equal(a[i].Body, b[i].Body) {
			t.Fatalf("tag %d changed", i)
		}
		if a[i].Type != flv.TagVideo && d != 0 || d < -12 || d > 12 {
			t.Fatalf("tag %d (type %d) moved by %d ms", i, a[i].Type, d)
		}
		if d != 0 {
			moved++
		}
	}
	if moved < len(a)/4 {
		t.Fatalf("only %d of %d tags moved", moved, len(a))
	}
}
