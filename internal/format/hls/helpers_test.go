package hls

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg1audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	mtscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/storage"
)

// ---------------------------------------------------------------------------------------
// A local-disk create-only store.

type diskStore struct {
	root string

	mu   sync.Mutex
	fail func(key string) error // injected failure, checked before storing
	keys []string
}

func newDiskStore(t testing.TB) *diskStore {
	return &diskStore{root: t.TempDir()}
}

func (s *diskStore) Store(_ context.Context, key, path string) error {
	s.mu.Lock()
	fail := s.fail
	s.mu.Unlock()
	if fail != nil {
		if err := fail(key); err != nil {
			return err
		}
	}
	dst := filepath.Join(s.root, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Link(path, dst); err != nil {
		if errors.Is(err, os.ErrExist) {
			return storage.ErrExists
		}
		return err
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	s.mu.Lock()
	s.keys = append(s.keys, key)
	s.mu.Unlock()
	return nil
}

type diskObject struct {
	*os.File
	fi os.FileInfo
}

func (o diskObject) Size() int64        { return o.fi.Size() }
func (o diskObject) ModTime() time.Time { return o.fi.ModTime() }

func (s *diskStore) Open(_ context.Context, key string) (storage.Object, error) {
	f, err := os.Open(filepath.Join(s.root, filepath.FromSlash(key)))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, storage.ErrNotFound
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return diskObject{f, fi}, nil
}

func (s *diskStore) Describe() string { return "test:" + s.root }

func (s *diskStore) path(key string) string { return filepath.Join(s.root, filepath.FromSlash(key)) }

func (s *diskStore) stored() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.keys...)
}

// ---------------------------------------------------------------------------------------
// Real media inputs, encoded once per test binary.

var (
	inputDir  string
	inputMu   sync.Mutex
	inputs    = map[string]*input{}
	ffmpegErr error
)

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "hls-test-inputs")
	if err != nil {
		panic(err)
	}
	inputDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

func requireFFmpeg(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
}

// input is a demuxed test recording.
type input struct {
	path     string
	video    *media.Track
	audio    *media.Track
	aus      []*media.AccessUnit // sorted by DTS, as the RTMP demuxer delivers them
	duration time.Duration       // ffprobe's format duration
}

// Input variants.
const (
	inH264AAC   = "h264-aac"
	inH264AAC2  = "h264-aac-176x144"
	inH265AAC   = "h265-aac"
	inH264MP3   = "h264-mp3"
	inAACOnly   = "aac"
	inputLength = "12"
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
	args := []string{"-v", "error", "-y"}
	video := []string{"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25"}
	audio := []string{"-f", "lavfi", "-i", "sine=f=440"}
	x264 := []string{"-c:v", "libx264", "-g", "50", "-bf", "2"}
	switch name {
	case inH264AAC:
		args = append(append(append(append(args, video...), audio...), "-t", inputLength), append(x264, "-c:a", "aac")...)
	case inH264AAC2:
		args = append(args, "-f", "lavfi", "-i", "testsrc2=size=176x144:rate=25")
		args = append(append(append(args, audio...), "-t", "6"), append(x264, "-c:a", "aac")...)
	case inH265AAC:
		args = append(append(append(args, video...), audio...), "-t", inputLength,
			"-c:v", "libx265", "-x265-params", "keyint=50:min-keyint=50:bframes=2:log-level=error", "-c:a", "aac")
	case inH264MP3:
		args = append(append(append(append(args, video...), audio...), "-t", inputLength), append(x264, "-c:a", "libmp3lame")...)
	case inAACOnly:
		args = append(append(args, audio...), "-t", inputLength, "-c:a", "aac")
	default:
		t.Fatalf("unknown input %s", name)
	}
	args = append(args, "-f", "mpegts", out)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, b)
	}
	in := demuxInput(t, out)
	in.duration = probeDuration(t, out)
	inputs[name] = in
	return in
}

// demuxed is what demuxTS returns: tracks and units in file order.
type demuxed struct {
	video, audio *media.Track
	aus          []*media.AccessUnit
	order        []bool // per PES in file order: true for video
}

// demuxTS reads an MPEG-TS stream the way livrec's ingest delivers units: NALUs without
// AUD and parameter sets (those go into the Track), one AU per audio frame, 90 kHz
// timestamps as time.Duration (not rebased).
func demuxTS(t testing.TB, r io.Reader) *demuxed {
	t.Helper()
	rd := &mpegts.Reader{R: r}
	if err := rd.Initialize(); err != nil {
		t.Fatalf("mpegts reader: %v", err)
	}
	var decErrs []error
	rd.OnDecodeError(func(err error) { decErrs = append(decErrs, err) })
	d := &demuxed{}
	dur := func(ticks int64) time.Duration { return fromTicks(ticks) }
	for _, tr := range rd.Tracks() {
		switch c := tr.Codec.(type) {
		case *mtscodecs.H264, *mtscodecs.H265:
			hevc := false
			codec := media.H264
			if _, ok := c.(*mtscodecs.H265); ok {
				hevc, codec = true, media.H265
			}
			d.video = &media.Track{Codec: codec}
			vt := d.video
			cb := func(pts, dts int64, au [][]byte) error {
				d.order = append(d.order, true)
				var nalus [][]byte
				key := false
				for _, n := range au {
					n = bytes.Clone(n)
					var typ int
					if hevc {
						typ = int(n[0]>>1) & 0x3F
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
					} else {
						typ = int(n[0] & 0x1F)
						switch typ {
						case 7:
							vt.SPS = n
							continue
						case 8:
							vt.PPS = n
							continue
						case 9:
							continue
						}
						key = key || typ == 5
					}
					nalus = append(nalus, n)
				}
				d.aus = append(d.aus, &media.AccessUnit{Track: vt, DTS: dur(dts), PTS: dur(pts), Key: key, NALUs: nalus})
				return nil
			}
			if hevc {
				rd.OnDataH265(tr, cb)
			} else {
				rd.OnDataH264(tr, cb)
			}
		case *mtscodecs.MPEG4Audio:
			cfg, err := c.Config.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			d.audio = &media.Track{Codec: media.AAC, AudioConfig: cfg, SampleRate: c.Config.SampleRate,
				Channels: int(c.Config.ChannelConfig)}
			at := d.audio
			rd.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) error {
				d.order = append(d.order, false)
				for i, a := range aus {
					ts := dur(pts + int64(i)*1024*90000/int64(at.SampleRate))
					d.aus = append(d.aus, &media.AccessUnit{Track: at, DTS: ts, PTS: ts, Key: true, Data: bytes.Clone(a)})
				}
				return nil
			})
		case *mtscodecs.MPEG1Audio:
			d.audio = &media.Track{Codec: media.MP3}
			at := d.audio
			rd.OnDataMPEG1Audio(tr, func(pts int64, frames [][]byte) error {
				d.order = append(d.order, false)
				off := int64(0)
				for _, f := range frames {
					var h mpeg1audio.FrameHeader
					if err := h.Unmarshal(f); err != nil {
						return err
					}
					at.SampleRate = h.SampleRate
					ts := dur(pts + off)
					d.aus = append(d.aus, &media.AccessUnit{Track: at, DTS: ts, PTS: ts, Key: true, Data: bytes.Clone(f)})
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
			if errors.Is(err, io.EOF) || strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "no more packets") {
				break
			}
			t.Fatalf("mpegts read: %v", err)
		}
	}
	if len(decErrs) > 0 {
		t.Errorf("decode errors: %v", decErrs)
	}
	return d
}

func demuxInput(t testing.TB, path string) *input {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := demuxTS(t, f)
	aus := d.aus
	sort.SliceStable(aus, func(i, j int) bool { return aus[i].DTS < aus[j].DTS })
	// Rebase so that timestamps start near 0, as timestamp repair delivers them.
	base := aus[0].DTS
	for _, au := range aus {
		au.DTS -= base
		au.PTS -= base
	}
	if d.video != nil && (len(d.video.SPS) == 0 || len(d.video.PPS) == 0) {
		t.Fatal("input without parameter sets")
	}
	return &input{path: path, video: d.video, audio: d.audio, aus: aus}
}

// ---------------------------------------------------------------------------------------
// ffmpeg / ffprobe checks.

// ffmpegDecode decodes a playlist or file fully and returns what ffmpeg prints at level
// error (nothing for a clean stream).
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

func probeDuration(t testing.TB, path string) time.Duration {
	t.Helper()
	b, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil {
		t.Fatalf("ffprobe %s: %q: %v", path, b, err)
	}
	return time.Duration(f * float64(time.Second))
}

// ---------------------------------------------------------------------------------------
// Running the writer.

const (
	testPlaylistKey = "rec/live/s1/2026-01-01/index.m3u8"
	testSlice       = 4 * time.Second
)

func testSegmentKey(seq int, _ time.Time) string {
	return fmt.Sprintf("rec/live/s1/2026-01-01/seg/%03d.ts", seq)
}

// fakeClock returns a clock that advances one second per call.
func fakeClock() func() time.Time {
	var mu sync.Mutex
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	n := 0
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		n++
		return t0.Add(time.Duration(n) * time.Second)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newTestWriter(t testing.TB, st *diskStore, slice time.Duration) (*Writer, string) {
	t.Helper()
	dir := t.TempDir()
	w, err := New(Config{
		SliceDuration: slice,
		WorkDir:       dir,
		SegmentKey:    testSegmentKey,
		SegmentURI:    st.path, // absolute paths: the live playlist is playable from disk
		Store:         st,
		Now:           fakeClock(),
		Logger:        testLogger(t),
	})
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

// ---------------------------------------------------------------------------------------
// Output checks.

func readPlaylist(t testing.TB, path string) (*playlist.Media, string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m playlist.Media
	if err := m.Unmarshal(b); err != nil {
		t.Fatalf("playlist %s: %v\n%s", path, err, b)
	}
	return &m, string(b)
}

// checkVOD verifies the stored VOD playlist against res and decodes it with ffmpeg. It
// returns the parsed playlist.
func checkVOD(t *testing.T, st *diskStore, res Result, wantDur time.Duration) *playlist.Media {
	t.Helper()
	path := st.path(res.PlaylistKey)
	m, text := readPlaylist(t, path)
	if m.PlaylistType == nil || *m.PlaylistType != playlist.MediaPlaylistTypeVOD || !m.Endlist || m.Version != 3 {
		t.Errorf("not a version-3 VOD playlist with ENDLIST:\n%s", text)
	}
	if len(m.Segments) != len(res.Segments) {
		t.Fatalf("playlist has %d segments, result %d", len(m.Segments), len(res.Segments))
	}
	var sum time.Duration
	maxSec := 0.0
	for i, s := range m.Segments {
		sum += s.Duration
		maxSec = math.Max(maxSec, s.Duration.Seconds())
		if d := s.Duration - res.Segments[i].Duration; d < -10*time.Microsecond || d > 10*time.Microsecond {
			t.Errorf("segment %d: EXTINF %v, result %v", i, s.Duration, res.Segments[i].Duration)
		}
		if s.Discontinuity != res.Segments[i].Discontinuity {
			t.Errorf("segment %d: discontinuity %v, result %v", i, s.Discontinuity, res.Segments[i].Discontinuity)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(path), filepath.FromSlash(s.URI))); err != nil {
			t.Errorf("segment %d: URI %q does not resolve: %v", i, s.URI, err)
		}
	}
	if d := sum - res.Duration; d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("EXTINF sum %v, result duration %v", sum, res.Duration)
	}
	if m.TargetDuration != int(math.Ceil(maxSec)) {
		t.Errorf("TARGETDURATION %d, longest EXTINF %.5f", m.TargetDuration, maxSec)
	}
	if wantDur > 0 {
		if d := res.Duration - wantDur; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("duration %v, want %v", res.Duration, wantDur)
		}
	}
	if out := ffmpegDecode(t, path); out != "" {
		t.Errorf("ffmpeg decode of the playlist reported:\n%s", out)
	}
	if got := probeDuration(t, path); absDur(got-res.Duration) > 100*time.Millisecond {
		t.Errorf("ffprobe duration %v, playlist duration %v", got, res.Duration)
	}
	return m
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// checkSegmentStarts verifies every stored segment begins with PAT, and that its first
// PES is a video keyframe carrying its parameter sets (or audio for audio-only).
func checkSegmentStarts(t *testing.T, st *diskStore, res Result, hasVideo bool) {
	t.Helper()
	for i, s := range res.Segments {
		b, err := os.ReadFile(st.path(s.Key))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 || len(b)%188 != 0 {
			t.Fatalf("segment %d: size %d is not a whole number of TS packets", i, len(b))
		}
		if s.Bytes != int64(len(b)) {
			t.Errorf("segment %d: Bytes %d, object %d", i, s.Bytes, len(b))
		}
		if pid := int(b[1]&0x1F)<<8 | int(b[2]); pid != 0 {
			t.Errorf("segment %d: first packet PID %d, want PAT", i, pid)
		}
		d := demuxTS(t, bytes.NewReader(b))
		if len(d.order) == 0 {
			t.Fatalf("segment %d: no PES", i)
		}
		if !hasVideo {
			continue
		}
		// File order (the reader delivers unbounded video PES late): video comes first.
		sc, err := scanTS(bytes.NewReader(b))
		if err != nil || len(sc.pes) == 0 || !sc.pes[0].video {
			t.Errorf("segment %d: does not start with a video PES", i)
		}
		var first *media.AccessUnit
		for _, au := range d.aus {
			if au.Track == d.video {
				first = au
				break
			}
		}
		if first == nil || !first.Key {
			t.Errorf("segment %d: does not start with a keyframe", i)
		}
		if len(d.video.SPS) == 0 || len(d.video.PPS) == 0 || d.video.Codec == media.H265 && len(d.video.VPS) == 0 {
			t.Errorf("segment %d: no parameter sets", i)
		}
	}
}

// vcl serializes the VCL NAL units of the video units (length-prefixed), from the first
// keyframe on.
func vcl(aus []*media.AccessUnit, hevc bool) []byte {
	var out bytes.Buffer
	started := false
	for _, au := range aus {
		if !au.Track.Codec.IsVideo() {
			continue
		}
		started = started || au.Key
		if !started {
			continue
		}
		for _, n := range au.NALUs {
			var isVCL bool
			if hevc {
				isVCL = (n[0]>>1)&0x3F < 32
			} else {
				typ := n[0] & 0x1F
				isVCL = typ >= 1 && typ <= 5
			}
			if isVCL {
				fmt.Fprintf(&out, "%d:", len(n))
				out.Write(n)
			}
		}
	}
	return out.Bytes()
}

// concatSegments returns the stored segments back to back (a valid TS: the continuity
// counters run on).
func concatSegments(t testing.TB, st *diskStore, segs []Segment) []byte {
	var all []byte
	for _, s := range segs {
		b, err := os.ReadFile(st.path(s.Key))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// expectedDuration is what the writer should measure for a continuous feed: from the
// first video keyframe to the last video unit plus one frame (audio-only: audio units).
func expectedDuration(aus []*media.AccessUnit, hasVideo bool) time.Duration {
	// The lead track (video if any) decides where the recording starts; it lasts until
	// the end of the last frame of either track (last DTS + its last frame spacing).
	var first time.Duration
	started := false
	var end time.Duration
	var last, prev [2]time.Duration
	var n [2]int
	for _, au := range aus {
		lead := au.Track.Codec.IsVideo() == hasVideo
		if !started {
			if !lead || !au.Key && hasVideo {
				continue
			}
			first, started = au.DTS, true
		}
		if au.DTS < first {
			continue
		}
		k := 0
		if !lead {
			k = 1
		}
		prev[k], last[k] = last[k], au.DTS
		n[k]++
	}
	for k := range 2 {
		if n[k] > 1 {
			end = max(end, last[k]+(last[k]-prev[k]))
		}
	}
	return end - first
}

var _ = h264.NALUTypeIDR
