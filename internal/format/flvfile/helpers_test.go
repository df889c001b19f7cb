package flvfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/format/segment/segtest"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	mtscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/storage"
)

// ---------------------------------------------------------------------------------------
// Real media inputs, encoded once per test binary.

var (
	inputMu  sync.Mutex
	inputs   = map[string]*input{}
	inputDir string
)

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "flvfile-test-inputs")
	if err != nil {
		panic(err)
	}
	inputDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// requireFFmpeg skips the test without ffmpeg and ffprobe.
var requireFFmpeg = segtest.RequireFFmpeg

// input is a demuxed test recording, as livrec's ingest delivers it.
type input struct {
	path         string // the ffmpeg output the units come from
	video, audio *media.Track
	aus          []*media.AccessUnit
}

// Input variants.
const (
	inH264AAC   = "h264-aac" // with B-frames
	inH264MP3   = "h264-mp3"
	inMPEG4MP3  = "mpeg4-mp3"
	inH265AAC   = "h265-aac" // with B-frames, via MPEG-TS (ffmpeg 5.1 cannot put HEVC in FLV)
	inAACOnly   = "aac"
	inputLength = "8"
)

func getInput(t testing.TB, name string) *input {
	t.Helper()
	requireFFmpeg(t)
	inputMu.Lock()
	defer inputMu.Unlock()
	if in, ok := inputs[name]; ok {
		return in
	}
	args := []string{"-nostdin", "-v", "error", "-y"}
	video := []string{"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25"}
	audio := []string{"-f", "lavfi", "-i", "sine=f=440:sample_rate=44100"}
	x264 := []string{"-c:v", "libx264", "-g", "50", "-bf", "2"}
	ext := ".flv"
	switch name {
	case inH264AAC:
		args = append(append(append(append(args, video...), audio...), "-t", inputLength), append(x264, "-c:a", "aac")...)
	case inH264MP3:
		args = append(append(append(append(args, video...), audio...), "-t", inputLength), append(x264, "-c:a", "libmp3lame")...)
	case inMPEG4MP3:
		args = append(append(append(args, video...), audio...), "-t", inputLength,
			"-c:v", "mpeg4", "-g", "50", "-c:a", "libmp3lame", "-strict", "-1")
	case inH265AAC:
		args = append(append(append(args, video...), audio...), "-t", inputLength,
			"-c:v", "libx265", "-x265-params", "keyint=50:min-keyint=50:bframes=2:log-level=error", "-c:a", "aac")
		ext = ".ts"
	case inAACOnly:
		args = append(append(args, audio...), "-t", inputLength, "-c:a", "aac")
	default:
		t.Fatalf("unknown input %s", name)
	}
	out := filepath.Join(inputDir, name+ext)
	args = append(args, out)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, b)
	}
	var in *input
	if ext == ".ts" {
		in = demuxTSFile(t, out)
	} else {
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		in = demuxFLV(t, b)
	}
	in.path = out
	if len(in.aus) < 100 {
		t.Fatalf("%s: only %d access units", name, len(in.aus))
	}
	inputs[name] = in
	return in
}

// demuxFLV runs livrec's own demuxer over an FLV file (the ingest path).
func demuxFLV(t testing.TB, b []byte) *input {
	t.Helper()
	r, err := flv.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	in := &input{}
	d := &media.Demuxer{}
	d.OnTracks = func(v, a *media.Track) {
		if in.video != nil && v != in.video || in.audio != nil && a != in.audio {
			t.Errorf("track change while demuxing")
		}
		in.video, in.audio = v, a
	}
	d.OnAccessUnit = func(au *media.AccessUnit) { in.aus = append(in.aus, au) }
	d.OnWarning = func(code, msg string) { t.Errorf("demuxer warning %s: %s", code, msg) }
	for {
		tag, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			break
		}
		if err := d.WriteTag(tag); err != nil {
			t.Fatal(err)
		}
	}
	d.Flush()
	if r.Truncated() || r.Mismatches != 0 {
		t.Errorf("FLV truncated %v, %d PreviousTagSize mismatches", r.Truncated(), r.Mismatches)
	}
	return in
}

// demuxTSFile reads an H.265 + AAC MPEG-TS file the way livrec's ingest delivers units:
// NAL units without AUD and parameter sets (those go into the Track), one AU per audio
// frame, sorted by DTS and rebased to start near 0.
func demuxTSFile(t testing.TB, path string) *input {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd := &mpegts.Reader{R: f}
	if err := rd.Initialize(); err != nil {
		t.Fatalf("mpegts reader: %v", err)
	}
	rd.OnDecodeError(func(err error) { t.Errorf("mpegts decode error: %v", err) })
	in := &input{}
	for _, tr := range rd.Tracks() {
		switch c := tr.Codec.(type) {
		case *mtscodecs.H265:
			in.video = &media.Track{Codec: media.H265, Width: 160, Height: 120, FrameRate: 25}
			vt := in.video
			rd.OnDataH265(tr, func(pts, dts int64, au [][]byte) error {
				var nalus [][]byte
				key := false
				for _, n := range au {
					n = bytes.Clone(n)
					typ := int(n[0]>>1) & 0x3F
					switch typ {
					case 32:
						vt.VPS = n
						continue
					case 33:
						vt.SPS = n
						continue
					case 34:
						vt.PPS = n
						continue
					case 35:
						continue
					}
					key = key || typ >= 16 && typ <= 23
					nalus = append(nalus, n)
				}
				in.aus = append(in.aus, &media.AccessUnit{Track: vt, DTS: ticksDur(dts), PTS: ticksDur(pts), Key: key, NALUs: nalus})
				return nil
			})
		case *mtscodecs.MPEG4Audio:
			cfg, err := c.Config.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			in.audio = &media.Track{Codec: media.AAC, AudioConfig: cfg, SampleRate: c.Config.SampleRate,
				Channels: int(c.Config.ChannelConfig)}
			at := in.audio
			rd.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) error {
				for i, a := range aus {
					ts := ticksDur(pts + int64(i)*1024*90000/int64(at.SampleRate))
					in.aus = append(in.aus, &media.AccessUnit{Track: at, DTS: ts, PTS: ts, Key: true, Data: bytes.Clone(a)})
				}
				return nil
			})
		default:
			t.Fatalf("unexpected codec %T", c)
		}
	}
	for {
		if err := rd.Read(); err != nil {
			if errors.Is(err, io.EOF) || strings.Contains(err.Error(), "EOF") {
				break
			}
			t.Fatalf("mpegts read: %v", err)
		}
	}
	sort.SliceStable(in.aus, func(i, j int) bool { return in.aus[i].DTS < in.aus[j].DTS })
	base := in.aus[0].DTS
	for _, au := range in.aus {
		au.DTS -= base
		au.PTS -= base
	}
	if in.video == nil || len(in.video.SPS) == 0 {
		t.Fatal("no H.265 parameter sets in the input")
	}
	return in
}

func ticksDur(t int64) time.Duration {
	return time.Duration(t/90000)*time.Second + time.Duration(t%90000)*time.Second/90000
}

// ---------------------------------------------------------------------------------------
// Running the writer.

const testKey = "rec/live/s1/2026-01-01/file.flv"

var testStart = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newStore(t testing.TB) *storage.Local {
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func storedPath(t testing.TB, st *storage.Local, key string) string {
	p, err := st.Path(key)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newTestWriter(t testing.TB, st storage.Store) (*Writer, string) {
	t.Helper()
	dir := t.TempDir()
	w, err := New(Config{WorkDir: dir, Store: st, Now: func() time.Time { return testStart }, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return w, dir
}

func feed(t testing.TB, w *Writer, aus []*media.AccessUnit) {
	t.Helper()
	for _, au := range aus {
		if err := w.WriteAU(au); err != nil {
			t.Fatalf("WriteAU(dts %v): %v", au.DTS, err)
		}
	}
}

// expectedUnits applies the file rules to a feed: nothing before the first video keyframe
// (audio-only: the first unit), and, after resumeAt (index into aus, -1 for none), no
// video until a keyframe. Timestamps stay as fed; the base is returned.
func expectedUnits(aus []*media.AccessUnit, resumeAt int) ([]*media.AccessUnit, time.Duration) {
	var out []*media.AccessUnit
	started, wait := false, false
	var base time.Duration
	hasVideo := anyVideo(aus)
	for i, au := range aus {
		video := au.Track.Codec.IsVideo()
		if i == resumeAt {
			wait = true
		}
		if !started {
			if hasVideo && (!video || !au.Key) {
				continue
			}
			started, base = true, au.DTS
		}
		if video && wait {
			if !au.Key {
				continue
			}
			wait = false
		}
		if au.DTS < base {
			continue
		}
		out = append(out, au)
	}
	return out, base
}

func anyVideo(aus []*media.AccessUnit) bool {
	for _, au := range aus {
		if au.Track.Codec.IsVideo() {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------------------
// Reading a file back.

// fileInfo is what readBack finds in an FLV file.
type fileInfo struct {
	path       string
	size       int64
	header     flv.Header
	firstTag   flv.Tag // body copied
	md         flv.Metadata
	kfTimes    []float64
	kfPos      []float64
	video      *media.Track
	audio      *media.Track
	aus        []*media.AccessUnit
	tagOffsets map[int64]flv.Tag // every tag by offset (bodies copied)
	keyTags    []int64           // offsets of the keyframe video frame tags
}

// readBack parses an FLV file with package flv and runs livrec's demuxer over it.
func readBack(t testing.TB, path string) *fileInfo {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi := &fileInfo{path: path, size: int64(len(b)), tagOffsets: map[int64]flv.Tag{}}
	r, err := flv.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	fi.header = r.Header()
	d := &media.Demuxer{}
	tracks := 0
	d.OnTracks = func(v, a *media.Track) {
		tracks++
		fi.video, fi.audio = v, a
	}
	d.OnAccessUnit = func(au *media.AccessUnit) { fi.aus = append(fi.aus, au) }
	d.OnWarning = func(code, msg string) { t.Errorf("demuxer warning on our file %s: %s", code, msg) }
	off := int64(13)
	for i := 0; ; i++ {
		tag, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			break
		}
		tag.Body = bytes.Clone(tag.Body)
		fi.tagOffsets[off] = tag
		if i == 0 {
			fi.firstTag = tag
		}
		if tag.Type == flv.TagVideo {
			h, err := flv.ParseVideoTagHeader(tag.Body)
			if err != nil {
				t.Fatalf("video tag at %d: %v", off, err)
			}
			if h.Kind == flv.PacketFrame && h.Key() {
				fi.keyTags = append(fi.keyTags, off)
			}
		}
		if err := d.WriteTag(tag); err != nil {
			t.Fatal(err)
		}
		off += 11 + int64(len(tag.Body)) + 4
	}
	d.Flush()
	if r.Truncated() || r.Mismatches != 0 {
		t.Errorf("%s: truncated %v, %d PreviousTagSize mismatches", path, r.Truncated(), r.Mismatches)
	}
	if off != fi.size {
		t.Errorf("%s: tags end at %d, file is %d bytes", path, off, fi.size)
	}
	if tracks != 1 {
		t.Errorf("demuxer announced the tracks %d times, want 1", tracks)
	}
	if fi.firstTag.Type != flv.TagScript {
		t.Fatalf("first tag is of type %d, not a script tag", fi.firstTag.Type)
	}
	fi.md, err = flv.ParseMetadata(fi.firstTag.Body)
	if err != nil {
		t.Fatalf("onMetaData: %v", err)
	}
	data, err := amf0.Unmarshal(fi.firstTag.Body)
	if err != nil || len(data) < 2 {
		t.Fatalf("onMetaData AMF: %v (%d values)", err, len(data))
	}
	// After the name and the array: only padding (strings of zeros, nulls).
	for i, v := range data[2:] {
		if s, ok := v.(string); v != nil && (!ok || strings.Trim(s, "\x00") != "") {
			t.Errorf("onMetaData value %d after the array is %T, not padding", i+2, v)
		}
	}
	arr, ok := data[1].(amf0.ECMAArray)
	if !ok {
		t.Fatalf("onMetaData value is %T", data[1])
	}
	if v, ok := amf0.Object(arr).Get("keyframes"); ok {
		kf, ok := v.(amf0.Object)
		if !ok {
			t.Fatalf("keyframes is %T", v)
		}
		get := func(k string) []float64 {
			v, _ := kf.Get(k)
			sa, ok := v.(amf0.StrictArray)
			if !ok {
				t.Fatalf("keyframes.%s is %T", k, v)
			}
			out := make([]float64, len(sa))
			for i, x := range sa {
				out[i] = x.(float64)
			}
			return out
		}
		fi.kfTimes, fi.kfPos = get("times"), get("filepositions")
	}
	return fi
}

// metaNumber returns a number from the onMetaData array.
func metaValue(t testing.TB, fi *fileInfo, key string) any {
	t.Helper()
	data, _ := amf0.Unmarshal(fi.firstTag.Body)
	v, ok := amf0.Object(data[1].(amf0.ECMAArray)).Get(key)
	if !ok {
		t.Errorf("onMetaData has no %q", key)
	}
	return v
}

// checkKeyframeIndex verifies that the keyframes index lists exactly the keyframe video
// tags of the file, at their offsets and timestamps.
func checkKeyframeIndex(t testing.TB, fi *fileInfo) {
	t.Helper()
	if len(fi.kfPos) != len(fi.keyTags) || len(fi.kfTimes) != len(fi.kfPos) {
		t.Fatalf("keyframes index: %d times, %d positions; file has %d keyframe tags",
			len(fi.kfTimes), len(fi.kfPos), len(fi.keyTags))
	}
	for i, p := range fi.kfPos {
		if int64(p) != fi.keyTags[i] {
			t.Errorf("keyframe %d: fileposition %v, tag at %d", i, p, fi.keyTags[i])
			continue
		}
		tag := fi.tagOffsets[int64(p)]
		if want := int64(fi.kfTimes[i]*1000 + 0.5); int64(tag.Timestamp) != want {
			t.Errorf("keyframe %d: time %v s, tag timestamp %d ms", i, fi.kfTimes[i], tag.Timestamp)
		}
	}
}

// compareUnits checks that got holds the same units as want, in the same order per track,
// with the same bytes, key flags and timestamps (want rebased by base; tolerance tol for
// inputs whose timestamps are not whole milliseconds).
func compareUnits(t testing.TB, want []*media.AccessUnit, base time.Duration, got []*media.AccessUnit, tol time.Duration) {
	t.Helper()
	split := func(aus []*media.AccessUnit) (v, a []*media.AccessUnit) {
		for _, au := range aus {
			if au.Track.Codec.IsVideo() {
				v = append(v, au)
			} else {
				a = append(a, au)
			}
		}
		return v, a
	}
	wv, wa := split(want)
	gv, ga := split(got)
	for _, p := range []struct {
		name      string
		want, got []*media.AccessUnit
	}{{"video", wv, gv}, {"audio", wa, ga}} {
		if len(p.want) != len(p.got) {
			t.Errorf("%s: %d units read back, %d written", p.name, len(p.got), len(p.want))
		}
		bad := 0
		for i := range min(len(p.want), len(p.got)) {
			w, g := p.want[i], p.got[i]
			var msg string
			switch {
			case !bytes.Equal(payload(w), payload(g)):
				msg = "payload differs"
			case w.Key != g.Key:
				msg = fmt.Sprintf("key %v, want %v", g.Key, w.Key)
			case absDur(g.DTS-(w.DTS-base)) > tol || absDur(g.PTS-(w.PTS-base)) > tol:
				msg = fmt.Sprintf("DTS/PTS %v/%v, want %v/%v", g.DTS, g.PTS, w.DTS-base, w.PTS-base)
			}
			if msg != "" {
				if bad++; bad <= 5 {
					t.Errorf("%s unit %d: %s", p.name, i, msg)
				}
			}
		}
		if bad > 5 {
			t.Errorf("%s: %d units differ", p.name, bad)
		}
	}
}

// payload serializes a unit's elementary-stream bytes (length-prefixed NAL units).
func payload(au *media.AccessUnit) []byte {
	if au.Data != nil {
		return au.Data
	}
	var b []byte
	for _, n := range au.NALUs {
		b = append(b, byte(len(n)>>24), byte(len(n)>>16), byte(len(n)>>8), byte(len(n)))
		b = append(b, n...)
	}
	return b
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// ---------------------------------------------------------------------------------------
// ffmpeg / ffprobe checks.

// ffmpegDecode decodes a file fully and returns what ffmpeg prints at level error.
func ffmpegDecode(t testing.TB, path string) string {
	t.Helper()
	cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Sprintf("ffmpeg failed: %v: %s", err, stderr.String())
	}
	return stderr.String()
}

// probe returns ffprobe's format duration and the codec names of the streams.
func probe(t testing.TB, path string) (time.Duration, []string) {
	t.Helper()
	b, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name",
		"-of", "default=nw=1", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var dur time.Duration
	var codecs []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "duration":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("ffprobe duration %q", v)
			}
			dur = time.Duration(f * float64(time.Second))
		case "codec_name":
			codecs = append(codecs, v)
		}
	}
	sort.Strings(codecs)
	return dur, codecs
}

// framemd5 returns ffmpeg's per-packet lines (stream, dts, pts, size, md5; the duration
// column is left out) of a stream-copied file.
func framemd5(t testing.TB, path string) []string {
	t.Helper()
	b, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", "0", "-c", "copy",
		"-f", "framemd5", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg framemd5 %s: %v", path, err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) != 6 {
			t.Fatalf("framemd5 line %q", line)
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		out = append(out, strings.Join([]string{f[0], f[1], f[2], f[4], f[5]}, ","))
	}
	return out
}
