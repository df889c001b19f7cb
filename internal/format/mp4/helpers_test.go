package mp4

import (
	"bytes"
	"encoding/binary"
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

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg1audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	mtscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/storage"
)

// ---------------------------------------------------------------------------------------
// A local-disk create-only store: segtest.Store, shared with the segment formats' tests.

type diskStore = segtest.Store

func newDiskStore(t testing.TB) *diskStore { return segtest.NewStore(t) }

// ---------------------------------------------------------------------------------------
// Real media inputs, encoded once per test binary.

var (
	inputDir string
	inputMu  sync.Mutex
	inputs   = map[string]*input{}
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir) // never returns
	}
	d, err := os.MkdirTemp("", "mp4-test-inputs")
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

// input is a demuxed test recording.
type input struct {
	path     string
	video    *media.Track
	audio    *media.Track
	aus      []*media.AccessUnit // sorted by DTS, as the RTMP demuxer delivers them
	duration time.Duration       // ffprobe's format duration of the .ts
}

// Input variants.
const (
	inH264AAC  = "h264-aac"
	inH265AAC  = "h265-aac"
	inMPEG4MP3 = "mpeg4-mp3"
	inH264MP3  = "h264-mp3"
	inAACOnly  = "aac"
	inputSecs  = "10"
)

func getInput(t testing.TB, name string) *input {
	t.Helper()
	requireFFmpeg(t)
	inputMu.Lock()
	defer inputMu.Unlock()
	if in, ok := inputs[name]; ok {
		return in
	}
	out := filepath.Join(inputDir, name+".ts")
	args := []string{"-nostdin", "-v", "error", "-y"}
	video := []string{"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25"}
	audio := []string{"-f", "lavfi", "-i", "sine=f=440:sample_rate=44100"}
	x264 := []string{"-c:v", "libx264", "-g", "50", "-bf", "2"}
	both := append(append(append(args, video...), audio...), "-t", inputSecs)
	switch name {
	case inH264AAC:
		args = append(append(both, x264...), "-c:a", "aac")
	case inH265AAC:
		args = append(both, "-c:v", "libx265", "-x265-params",
			"keyint=50:min-keyint=50:bframes=2:log-level=error", "-c:a", "aac")
	case inMPEG4MP3:
		args = append(both, "-c:v", "mpeg4", "-g", "50", "-c:a", "libmp3lame")
	case inH264MP3:
		args = append(append(both, x264...), "-c:a", "libmp3lame")
	case inAACOnly:
		args = append(append(args, audio...), "-t", inputSecs, "-c:a", "aac")
	default:
		t.Fatalf("unknown input %s", name)
	}
	args = append(args, "-f", "mpegts", out)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, b)
	}
	in := demuxInput(t, out)
	in.duration = probeFormatDuration(t, out)
	inputs[name] = in
	return in
}

func fromTicks(t int64) time.Duration {
	return time.Duration(t/90000)*time.Second + time.Duration(t%90000)*time.Second/90000
}

// demuxTS reads an MPEG-TS stream the way livrec's ingest delivers units: NALUs without
// AUD and parameter sets (those go into the Track), one AU per audio frame, MPEG-4 Part 2
// frames whole (in-band VOL headers included) with the configuration in the Track.
func demuxTS(t testing.TB, r io.Reader) (video, audio *media.Track, aus []*media.AccessUnit) {
	t.Helper()
	rd := &mpegts.Reader{R: r}
	if err := rd.Initialize(); err != nil {
		t.Fatalf("mpegts reader: %v", err)
	}
	var decErrs []error
	rd.OnDecodeError(func(err error) { decErrs = append(decErrs, err) })
	for _, tr := range rd.Tracks() {
		switch c := tr.Codec.(type) {
		case *mtscodecs.H264, *mtscodecs.H265:
			_, hevc := c.(*mtscodecs.H265)
			video = &media.Track{Codec: media.H264, Width: 160, Height: 120, FrameRate: 25}
			if hevc {
				video.Codec = media.H265
			}
			vt := video
			cb := func(pts, dts int64, au [][]byte) error {
				var nalus [][]byte
				key := false
				for _, n := range au {
					n = bytes.Clone(n)
					if hevc {
						switch typ := int(n[0]>>1) & 0x3F; {
						case typ == 32:
							vt.VPS = n
							continue
						case typ == 33:
							vt.SPS = n
							continue
						case typ == 34:
							vt.PPS = n
							continue
						case typ == 35:
							continue
						default:
							key = key || typ >= 16 && typ <= 23
						}
					} else {
						switch typ := n[0] & 0x1F; typ {
						case 7:
							vt.SPS = n
							continue
						case 8:
							vt.PPS = n
							continue
						case 9:
							continue
						case 5:
							key = true
						}
					}
					nalus = append(nalus, n)
				}
				aus = append(aus, &media.AccessUnit{Track: vt, DTS: fromTicks(dts), PTS: fromTicks(pts), Key: key, NALUs: nalus})
				return nil
			}
			if hevc {
				rd.OnDataH265(tr, cb)
			} else {
				rd.OnDataH264(tr, cb)
			}
		case *mtscodecs.MPEG4Video:
			video = &media.Track{Codec: media.MPEG4Video, Width: 160, Height: 120, FrameRate: 25}
			vt := video
			rd.OnDataMPEG4Video(tr, func(pts int64, frame []byte) error {
				frame = bytes.Clone(frame)
				vop := bytes.Index(frame, []byte{0, 0, 1, 0xB6})
				if vop < 0 || vop+4 >= len(frame) {
					return fmt.Errorf("MPEG-4 frame without VOP")
				}
				if vop > 0 && vt.VideoConfig == nil {
					vt.VideoConfig = bytes.Clone(frame[:vop])
				}
				key := frame[vop+4]>>6 == 0 // I-VOP
				aus = append(aus, &media.AccessUnit{Track: vt, DTS: fromTicks(pts), PTS: fromTicks(pts), Key: key, Data: frame})
				return nil
			})
		case *mtscodecs.MPEG4Audio:
			cfg, err := c.Config.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			audio = &media.Track{Codec: media.AAC, AudioConfig: cfg, SampleRate: c.Config.SampleRate,
				Channels: int(c.Config.ChannelConfig)}
			at := audio
			rd.OnDataMPEG4Audio(tr, func(pts int64, frames [][]byte) error {
				for i, a := range frames {
					ts := fromTicks(pts + int64(i)*1024*90000/int64(at.SampleRate))
					aus = append(aus, &media.AccessUnit{Track: at, DTS: ts, PTS: ts, Key: true, Data: bytes.Clone(a)})
				}
				return nil
			})
		case *mtscodecs.MPEG1Audio:
			audio = &media.Track{Codec: media.MP3}
			at := audio
			rd.OnDataMPEG1Audio(tr, func(pts int64, frames [][]byte) error {
				off := int64(0)
				for _, f := range frames {
					var h mpeg1audio.FrameHeader
					if err := h.Unmarshal(f); err != nil {
						return err
					}
					at.SampleRate = h.SampleRate
					at.Channels = 2
					if h.ChannelMode == mpeg1audio.ChannelModeMono {
						at.Channels = 1
					}
					ts := fromTicks(pts + off)
					aus = append(aus, &media.AccessUnit{Track: at, DTS: ts, PTS: ts, Key: true, Data: bytes.Clone(f)})
					off += int64(h.SampleCount()) * 90000 / int64(h.SampleRate)
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
	if len(decErrs) > 0 {
		t.Errorf("decode errors: %v", decErrs)
	}
	return video, audio, aus
}

func demuxInput(t testing.TB, path string) *input {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	video, audio, aus := demuxTS(t, f)
	sort.SliceStable(aus, func(i, j int) bool { return aus[i].DTS < aus[j].DTS })
	// Rebase so that timestamps start near 0, as timestamp repair delivers them.
	base := aus[0].DTS
	for _, au := range aus {
		au.DTS -= base
		au.PTS -= base
	}
	if video != nil && video.Codec != media.MPEG4Video && (len(video.SPS) == 0 || len(video.PPS) == 0) {
		t.Fatal("input without parameter sets")
	}
	return &input{path: path, video: video, audio: audio, aus: aus}
}

// ---------------------------------------------------------------------------------------
// ffmpeg / ffprobe checks.

// ffmpegDecode decodes a file fully and returns what ffmpeg prints at level error
// (nothing for a clean stream).
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

func ffprobe(t testing.TB, path string, args ...string) string {
	t.Helper()
	all := append([]string{"-v", "error"}, args...)
	b, err := exec.Command("ffprobe", append(all, path)...).Output()
	if err != nil {
		t.Fatalf("ffprobe %v %s: %v", args, path, err)
	}
	return strings.TrimSpace(string(b))
}

func probeFormatDuration(t testing.TB, path string) time.Duration {
	t.Helper()
	return parseSeconds(t, ffprobe(t, path, "-show_entries", "format=duration", "-of", "csv=p=0"))
}

func parseSeconds(t testing.TB, s string) time.Duration {
	t.Helper()
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		t.Fatalf("parse seconds %q: %v", s, err)
	}
	return time.Duration(f * float64(time.Second))
}

// probedStream is one stream as ffprobe reports it.
type probedStream struct {
	kind, codec, tag string
	start            time.Duration
	width, height    int
	frames           int
}

func probeStreams(t testing.TB, path string) []probedStream {
	t.Helper()
	out := ffprobe(t, path, "-count_packets", "-show_entries",
		"stream=codec_type,codec_name,codec_tag_string,start_time,width,height,nb_read_packets", "-of", "csv=p=0:nk=0")
	var res []probedStream
	for _, line := range strings.Split(out, "\n") {
		s := probedStream{}
		for _, kv := range strings.Split(line, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "codec_type":
				s.kind = v
			case "codec_name":
				s.codec = v
			case "codec_tag_string":
				s.tag = v
			case "start_time":
				s.start = parseSeconds(t, v)
			case "width":
				s.width, _ = strconv.Atoi(v)
			case "height":
				s.height, _ = strconv.Atoi(v)
			case "nb_read_packets":
				s.frames, _ = strconv.Atoi(v)
			}
		}
		res = append(res, s)
	}
	return res
}

// topLevelBoxes lists the top-level box types of an MP4 file.
func topLevelBoxes(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for off := uint64(0); off+8 <= uint64(len(b)); {
		size := uint64(binary.BigEndian.Uint32(b[off:]))
		if size == 1 {
			size = binary.BigEndian.Uint64(b[off+8:])
		}
		types = append(types, string(b[off+4:off+8]))
		if size < 8 {
			t.Fatalf("box %q at %d has size %d", b[off+4:off+8], off, size)
		}
		off += size
		if off > uint64(len(b)) {
			t.Fatalf("box %q overruns the file", types[len(types)-1])
		}
	}
	return types
}

// ---------------------------------------------------------------------------------------
// Running the writer.

const testKey = "rec/live/s1/2026-01-01/file.mp4"

// fakeClock returns a fixed start time.
func fakeClock() func() time.Time {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	return func() time.Time { return t0 }
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newTestWriter(t testing.TB, st storage.Store) (*Writer, string) {
	t.Helper()
	dir := t.TempDir()
	w, err := New(Config{WorkDir: dir, Store: st, Now: fakeClock(), Logger: testLogger(t)})
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

// kept returns the units the file must hold, in input order: video from the first
// keyframe on; audio from the first frame that still plays when the first picture
// appears (it ends after it; it does not start before the first video DTS), audio-only:
// everything.
func kept(aus []*media.AccessUnit, hasVideo bool) (video, audio []*media.AccessUnit) {
	started := !hasVideo
	var origin, p0 time.Duration
	for _, au := range aus {
		if au.Track.Codec.IsVideo() {
			if !started && au.Key {
				started, origin, p0 = true, au.DTS, au.PTS
			}
			if started {
				video = append(video, au)
			}
			continue
		}
		if started && (len(audio) > 0 || au.DTS >= origin && au.DTS+audioFrame(au.Track) > p0) {
			audio = append(audio, au)
		}
	}
	return video, audio
}

// audioFrame is the duration of one frame of an audio track (AAC: 1024 samples, MP3:
// 1152, or 576 below 32 kHz).
func audioFrame(t *media.Track) time.Duration {
	n := 1024
	if t.Codec == media.MP3 {
		n = 1152
		if t.SampleRate < 32000 {
			n = 576
		}
	}
	return time.Duration(n) * time.Second / time.Duration(t.SampleRate)
}

// mp4Payload is a unit's payload as the MP4 sample holds it.
func mp4Payload(au *media.AccessUnit) []byte {
	if len(au.NALUs) == 0 {
		return au.Data
	}
	var b []byte
	for _, n := range au.NALUs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
		b = append(b, n...)
	}
	return b
}
