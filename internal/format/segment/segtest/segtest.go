// Package segtest holds test helpers shared by the segmented format writers (hls, cmaf):
// a local-disk create-only store, real media inputs encoded with ffmpeg and demuxed the
// way livrec's ingest delivers them, ffmpeg/ffprobe checks and playlist checks.
package segtest

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
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg1audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	mtscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/livrec/livrec/internal/format/segment"
	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/storage"
	"github.com/livrec/livrec/internal/testenv"
)

// ---------------------------------------------------------------------------------------
// A local-disk create-only store.

// Store is a local-disk storage.Store for tests.
type Store struct {
	Root string

	mu   sync.Mutex
	Fail func(key string) error // injected failure, checked before storing
	keys []string
}

// NewStore returns a Store in a test temporary directory.
func NewStore(t testing.TB) *Store {
	return &Store{Root: t.TempDir()}
}

// Store implements storage.Store (hard link, then remove the local file).
func (s *Store) Store(_ context.Context, key, path string) error {
	s.mu.Lock()
	fail := s.Fail
	s.mu.Unlock()
	if fail != nil {
		if err := fail(key); err != nil {
			return err
		}
	}
	dst := filepath.Join(s.Root, filepath.FromSlash(key))
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

// Open implements storage.Store.
func (s *Store) Open(_ context.Context, key string) (storage.Object, error) {
	f, err := os.Open(filepath.Join(s.Root, filepath.FromSlash(key)))
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

// Describe implements storage.Store.
func (s *Store) Describe() string { return "test:" + s.Root }

// Path returns the local path of the object key.
func (s *Store) Path(key string) string { return filepath.Join(s.Root, filepath.FromSlash(key)) }

// Stored returns the keys stored so far, in order.
func (s *Store) Stored() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.keys...)
}

// ---------------------------------------------------------------------------------------
// Real media inputs, encoded once per test binary.

var (
	inputDir string
	inputMu  sync.Mutex
	inputs   = map[string]*Input{}
)

// Main runs the tests of a package using the inputs and removes them afterwards.
func Main(m *testing.M) {
	d, err := os.MkdirTemp("", "segtest-inputs")
	if err != nil {
		panic(err)
	}
	inputDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// RequireFFmpeg fails the test if ffmpeg or ffprobe is missing (see testenv.Require).
func RequireFFmpeg(t testing.TB) {
	t.Helper()
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
}

// Input is a demuxed test recording.
type Input struct {
	Path     string
	Video    *media.Track
	Audio    *media.Track
	AUs      []*media.AccessUnit // sorted by DTS, as the RTMP demuxer delivers them
	Duration time.Duration       // ffprobe's format duration
}

// Input variants: 12 s (H264AAC2: 6 s), 25 fps, keyframe every 2 s, 2 B-frames.
const (
	H264AAC   = "h264-aac"
	H264AAC2  = "h264-aac-176x144"
	H265AAC   = "h265-aac"
	H264MP3   = "h264-mp3"
	MPEG4MP3  = "mpeg4-mp3"
	AACOnly   = "aac"
	inputSecs = "12"
)

// GetInput encodes (once) and demuxes the input name.
func GetInput(t testing.TB, name string) *Input {
	t.Helper()
	RequireFFmpeg(t)
	inputMu.Lock()
	defer inputMu.Unlock()
	if in, ok := inputs[name]; ok {
		return in
	}
	if inputDir == "" {
		t.Fatal("segtest: call segtest.Main from TestMain")
	}
	out := filepath.Join(inputDir, name+".ts")
	args := []string{"-v", "error", "-y"}
	video := []string{"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25"}
	audio := []string{"-f", "lavfi", "-i", "sine=f=440"}
	x264 := []string{"-c:v", "libx264", "-g", "50", "-bf", "2"}
	av := append(append(append(args, video...), audio...), "-t", inputSecs)
	switch name {
	case H264AAC:
		args = append(av, append(x264, "-c:a", "aac")...)
	case H264AAC2:
		args = append(args, "-f", "lavfi", "-i", "testsrc2=size=176x144:rate=25")
		args = append(append(append(args, audio...), "-t", "6"), append(x264, "-c:a", "aac")...)
	case H265AAC:
		args = append(av, "-c:v", "libx265", "-x265-params", "keyint=50:min-keyint=50:bframes=2:log-level=error", "-c:a", "aac")
	case H264MP3:
		args = append(av, append(x264, "-c:a", "libmp3lame")...)
	case MPEG4MP3:
		args = append(av, "-c:v", "mpeg4", "-g", "50", "-bf", "2", "-c:a", "libmp3lame")
	case AACOnly:
		args = append(append(args, audio...), "-t", inputSecs, "-c:a", "aac")
	default:
		t.Fatalf("unknown input %s", name)
	}
	args = append(args, "-f", "mpegts", out)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, b)
	}
	in := demuxInput(t, out)
	in.Duration = ProbeDuration(t, out)
	inputs[name] = in
	return in
}

// Demuxed is what DemuxTS returns: tracks and units in file order.
type Demuxed struct {
	Video, Audio *media.Track
	AUs          []*media.AccessUnit
	Order        []bool // per PES in file order: true for video
}

// FromTicks converts 90 kHz ticks to a duration.
func FromTicks(t int64) time.Duration {
	return time.Duration(t/90000)*time.Second + time.Duration(t%90000)*time.Second/90000
}

// DemuxTS reads an MPEG-TS stream the way livrec's ingest delivers units: NALUs without
// AUD and parameter sets (those go into the Track), MPEG-4 Part 2 frames as is (the
// configuration before the first VOP goes into the Track), one AU per audio frame, 90 kHz
// timestamps as time.Duration (not rebased).
func DemuxTS(t testing.TB, r io.Reader) *Demuxed {
	t.Helper()
	rd := &mpegts.Reader{R: r}
	if err := rd.Initialize(); err != nil {
		t.Fatalf("mpegts reader: %v", err)
	}
	var decErrs []error
	rd.OnDecodeError(func(err error) { decErrs = append(decErrs, err) })
	d := &Demuxed{}
	for _, tr := range rd.Tracks() {
		switch c := tr.Codec.(type) {
		case *mtscodecs.H264, *mtscodecs.H265:
			_, hevc := c.(*mtscodecs.H265)
			d.Video = &media.Track{Codec: media.H264}
			if hevc {
				d.Video.Codec = media.H265
			}
			cb := func(pts, dts int64, au [][]byte) error {
				d.Order = append(d.Order, true)
				d.AUs = append(d.AUs, h26xUnit(d.Video, hevc, au, FromTicks(dts), FromTicks(pts)))
				return nil
			}
			if hevc {
				rd.OnDataH265(tr, cb)
			} else {
				rd.OnDataH264(tr, cb)
			}
		case *mtscodecs.MPEG4Video:
			d.Video = &media.Track{Codec: media.MPEG4Video, Width: 160, Height: 120}
			vt := d.Video
			rd.OnDataMPEG4Video(tr, func(pts int64, frame []byte) error {
				d.Order = append(d.Order, true)
				frame = bytes.Clone(frame)
				i := bytes.Index(frame, []byte{0, 0, 1, 0xB6})
				key := false
				if i >= 0 && i+4 < len(frame) {
					key = frame[i+4]>>6 == 0 // I-VOP
					if i > 0 && vt.VideoConfig == nil {
						vt.VideoConfig = frame[:i:i]
					}
				}
				// The TS carries PTS only: DTS are derived after sorting (see demuxInput).
				ts := FromTicks(pts)
				d.AUs = append(d.AUs, &media.AccessUnit{Track: vt, DTS: ts, PTS: ts, Key: key, Data: frame})
				return nil
			})
		case *mtscodecs.MPEG4Audio:
			cfg, err := c.Config.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			d.Audio = &media.Track{Codec: media.AAC, AudioConfig: cfg, SampleRate: c.Config.SampleRate,
				Channels: int(c.Config.ChannelConfig)}
			at := d.Audio
			rd.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) error {
				d.Order = append(d.Order, false)
				for i, a := range aus {
					ts := FromTicks(pts + int64(i)*1024*90000/int64(at.SampleRate))
					d.AUs = append(d.AUs, &media.AccessUnit{Track: at, DTS: ts, PTS: ts, Key: true, Data: bytes.Clone(a)})
				}
				return nil
			})
		case *mtscodecs.MPEG1Audio:
			d.Audio = &media.Track{Codec: media.MP3}
			at := d.Audio
			rd.OnDataMPEG1Audio(tr, func(pts int64, frames [][]byte) error {
				d.Order = append(d.Order, false)
				off := int64(0)
				for _, f := range frames {
					var h mpeg1audio.FrameHeader
					if err := h.Unmarshal(f); err != nil {
						return err
					}
					at.SampleRate, at.Channels = h.SampleRate, 2
					if h.ChannelMode == mpeg1audio.ChannelModeMono {
						at.Channels = 1
					}
					ts := FromTicks(pts + off)
					d.AUs = append(d.AUs, &media.AccessUnit{Track: at, DTS: ts, PTS: ts, Key: true, Data: bytes.Clone(f)})
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

// h26xUnit turns an H.264/H.265 access unit into a media unit: parameter sets go into
// the track, AUDs are dropped.
func h26xUnit(vt *media.Track, hevc bool, au [][]byte, dts, pts time.Duration) *media.AccessUnit {
	var nalus [][]byte
	key := false
	for _, n := range au {
		n = bytes.Clone(n)
		if hevc {
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
		} else {
			typ := int(n[0] & 0x1F)
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
	return &media.AccessUnit{Track: vt, DTS: dts, PTS: pts, Key: key, NALUs: nalus}
}

func demuxInput(t testing.TB, path string) *Input {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := DemuxTS(t, f)
	aus := d.AUs
	if d.Video != nil && d.Video.Codec == media.MPEG4Video {
		// PTS only in the TS: with B-frames, DTS is the sorted PTS sequence shifted by
		// one frame (the decoder's reorder delay), as an FLV demuxer would deliver it.
		var pts []time.Duration
		for _, au := range aus {
			if au.Track == d.Video {
				pts = append(pts, au.PTS)
			}
		}
		sort.Slice(pts, func(i, j int) bool { return pts[i] < pts[j] })
		i := 0
		for _, au := range aus {
			if au.Track == d.Video {
				au.DTS = pts[i] - 40*time.Millisecond
				i++
			}
		}
	}
	sort.SliceStable(aus, func(i, j int) bool { return aus[i].DTS < aus[j].DTS })
	// Rebase so that timestamps start near 0, as timestamp repair delivers them.
	base := aus[0].DTS
	for _, au := range aus {
		au.DTS -= base
		au.PTS -= base
	}
	if d.Video != nil && d.Video.Codec != media.MPEG4Video && (len(d.Video.SPS) == 0 || len(d.Video.PPS) == 0) {
		t.Fatal("input without parameter sets")
	}
	return &Input{Path: path, Video: d.Video, Audio: d.Audio, AUs: aus}
}

// ---------------------------------------------------------------------------------------
// ffmpeg / ffprobe checks.

// Decode decodes a playlist or file fully and returns what ffmpeg prints at level error
// (nothing for a clean stream).
func Decode(t testing.TB, path string) string {
	t.Helper()
	cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Sprintf("ffmpeg failed: %v: %s", err, stderr.String())
	}
	return stderr.String()
}

// ProbeDuration returns ffprobe's format duration of path.
func ProbeDuration(t testing.TB, path string) time.Duration {
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
// Running a writer.

// FakeClock returns a clock that advances one second per call.
func FakeClock() func() time.Time {
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

// Logger logs warnings and errors to t.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Feed writes every unit, failing the test on an error.
func Feed(t testing.TB, w interface{ WriteAU(*media.AccessUnit) error }, aus []*media.AccessUnit) {
	t.Helper()
	for _, au := range aus {
		if err := w.WriteAU(au); err != nil {
			t.Fatalf("WriteAU(dts %v): %v", au.DTS, err)
		}
	}
}

// ---------------------------------------------------------------------------------------
// Output checks.

// ReadPlaylist parses a media playlist (with several EXT-X-MAP, only the last one is
// kept in Map).
func ReadPlaylist(t testing.TB, path string) (*playlist.Media, string) {
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

// CheckVOD verifies the stored VOD playlist against res (EXTINF, discontinuities, URIs,
// target duration, total) and decodes it with ffmpeg; wantDur > 0 is checked within
// 1 ms. version is the expected #EXT-X-VERSION.
func CheckVOD(t *testing.T, st *Store, res segment.Result, wantDur time.Duration, version int) *playlist.Media {
	t.Helper()
	path := st.Path(res.PlaylistKey)
	m, text := ReadPlaylist(t, path)
	if m.PlaylistType == nil || *m.PlaylistType != playlist.MediaPlaylistTypeVOD || !m.Endlist || m.Version != version {
		t.Errorf("not a version-%d VOD playlist with ENDLIST:\n%s", version, text)
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
	if m.Map != nil {
		if _, err := os.Stat(filepath.Join(filepath.Dir(path), filepath.FromSlash(m.Map.URI))); err != nil {
			t.Errorf("map URI %q does not resolve: %v", m.Map.URI, err)
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
	if out := Decode(t, path); out != "" {
		t.Errorf("ffmpeg decode of the playlist reported:\n%s", out)
	}
	if got := ProbeDuration(t, path); AbsDur(got-res.Duration) > 100*time.Millisecond {
		t.Errorf("ffprobe duration %v, playlist duration %v", got, res.Duration)
	}
	return m
}

// Discontinuities returns the indexes of the segments of m marked #EXT-X-DISCONTINUITY.
func Discontinuities(m *playlist.Media) []int {
	var idx []int
	for i, s := range m.Segments {
		if s.Discontinuity {
			idx = append(idx, i)
		}
	}
	return idx
}

// AbsDur returns |d|.
func AbsDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// VCL serializes the VCL NAL units of the video units (length-prefixed), from the first
// keyframe on; MPEG-4 Part 2 frames are taken whole.
func VCL(aus []*media.AccessUnit, hevc bool) []byte {
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
		if len(au.NALUs) == 0 {
			fmt.Fprintf(&out, "%d:", len(au.Data))
			out.Write(au.Data)
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

// ExpectedDuration is what a writer should measure for a continuous feed: from the first
// lead unit (video keyframe, else audio) to the end of the last frame of either track
// (last DTS plus its last DTS spacing).
func ExpectedDuration(aus []*media.AccessUnit, hasVideo bool) time.Duration {
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
