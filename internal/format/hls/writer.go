package hls

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg1audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	mtscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/livrec/livrec/internal/format/segment"
	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/storage"
)

// tsOffset is added to every MPEG-TS timestamp so that PCR, which mediacommon writes
// 100 ms below DTS, never goes negative.
const tsOffset = time.Second

// Errors (shared with the other segmented formats).
var (
	// ErrNoMedia is returned by Finish and Recover when the file holds no complete frame:
	// there is nothing to store, and no playlist was stored.
	ErrNoMedia = segment.ErrNoMedia
	// ErrNoJournal is returned by Recover when the work directory has no journal: nothing
	// was recorded there, or the file was already finished or recovered.
	ErrNoJournal = segment.ErrNoJournal
	// ErrFinished is returned by calls on a Writer after a successful Finish.
	ErrFinished = segment.ErrFinished
	// ErrNoTracks is returned by WriteAU before the first SetTracks.
	ErrNoTracks = segment.ErrNoTracks
)

// Config configures a Writer.
type Config struct {
	// SliceDuration is the target segment length (livrec uses 5–30 s). A segment is cut at
	// the first keyframe at least this long after the segment's start.
	SliceDuration time.Duration
	// WorkDir is a private, existing, empty directory for this file's working data: the
	// segment being written, the journal and the live playlist.
	WorkDir string
	// SegmentKey returns the object key (with extension) of segment seq (0, 1, ...) that
	// started at wall-clock time start.
	SegmentKey func(seq int, start time.Time) string
	// SegmentURI returns the URI of a stored segment in the live playlist, for example
	// "/files/"+key. It is used as is (no escaping). Nil means the key itself.
	SegmentURI func(key string) string
	// Store receives the finished segments and the final playlist.
	Store storage.Store
	// Now is the wall clock (segment start times). Nil means time.Now.
	Now func() time.Time
	// Logger receives warnings (dropped units, store retries). Nil discards.
	Logger *slog.Logger
}

// Segment describes one segment of a recording file.
type Segment = segment.Segment

// Result describes a finished (or recovered) recording file.
type Result = segment.Result

// Writer writes one HLS recording file. Its methods (SetTracks, WriteAU, Discontinuity,
// Duration, Finish, Close, LivePlaylistPath) come from segment.Writer; they are safe for
// concurrent use, but the recording task is expected to drive it from one goroutine;
// Duration and LivePlaylistPath may be called from others.
type Writer struct {
	*segment.Writer
}

// New validates cfg and returns a Writer. Nothing is written until the first access unit
// that can open a segment.
func New(cfg Config) (*Writer, error) {
	sw, err := segment.New(segment.Config{
		Name:          "hls",
		Ext:           ".ts",
		SliceDuration: cfg.SliceDuration,
		WorkDir:       cfg.WorkDir,
		SegmentKey:    cfg.SegmentKey,
		SegmentURI:    cfg.SegmentURI,
		Store:         cfg.Store,
		Now:           cfg.Now,
		Logger:        cfg.Logger,
	}, &tsMuxer{})
	if err != nil {
		return nil, err
	}
	return &Writer{sw}, nil
}

// tsSet is the MPEG-TS description of a track set (segment.Set.State). A new set (after
// a parameter change) gets its own mpegts.Writer.
type tsSet struct {
	tsVideo       *mpegts.Track
	tsAudio       *mpegts.Track
	mp3LSF        bool // audio is MPEG-2/2.5 Layer III, written as raw PES
	mp3LSFChecked bool
}

// tsMuxer is the MPEG-TS segment.Muxer.
type tsMuxer struct {
	mux  *mpegts.Writer
	set  *segment.Set // the set mux was made for
	sink switchWriter

	naluBuf  [][]byte
	audioBuf [][]byte
	batch    audioBatch
}

// switchWriter is the io.Writer the mpegts.Writer writes into: the open segment's file,
// so that continuity counters run on across segments.
type switchWriter struct{ f *segment.File }

func (s *switchWriter) Write(p []byte) (int, error) {
	if s.f == nil {
		return 0, errors.New("hls: no open segment")
	}
	return s.f.Write(p)
}

// NewSet checks the audio codec (segment.Muxer).
func (m *tsMuxer) NewSet(_, audio *media.Track) (any, error) {
	if audio != nil {
		if _, err := audioCodec(audio); err != nil {
			return nil, fmt.Errorf("hls: %w", err)
		}
	}
	return &tsSet{}, nil
}

// Init is never called: MPEG-TS has no initialization segment.
func (m *tsMuxer) Init(*segment.Set, *media.AccessUnit) ([]byte, error) { return nil, nil }

// Begin starts a segment with PAT/PMT (segment.Muxer).
func (m *tsMuxer) Begin(f *segment.File, set *segment.Set, changed bool) error {
	m.sink.f = f
	if changed || m.mux == nil {
		if err := m.newMuxer(set); err != nil {
			return err
		}
	}
	_, err := m.mux.WriteTables()
	return err
}

// End writes the batched audio (segment.Muxer).
func (m *tsMuxer) End(*segment.File, *segment.Set, segment.End) error {
	err := m.flushAudio()
	m.sink.f = nil
	return err
}

// newMuxer makes the mpegts.Writer for set.
func (m *tsMuxer) newMuxer(set *segment.Set) error {
	s := set.State.(*tsSet)
	var tracks []*mpegts.Track
	// Fresh mpegts.Track values: mediacommon keeps per-writer state in them.
	s.tsVideo, s.tsAudio = nil, nil
	if set.Video != nil {
		s.tsVideo = &mpegts.Track{Codec: videoCodec(set.Video.Codec)}
		tracks = append(tracks, s.tsVideo)
	}
	if set.Audio != nil {
		c, err := audioCodec(set.Audio)
		if err != nil {
			return err
		}
		s.tsAudio = &mpegts.Track{Codec: c}
		tracks = append(tracks, s.tsAudio)
	}
	w := &mpegts.Writer{W: &m.sink, Tracks: tracks}
	if err := w.Initialize(); err != nil {
		return fmt.Errorf("mpegts writer: %w", err)
	}
	m.mux = w
	m.set = set
	return nil
}

// ticks converts a duration to the 90 kHz clock without overflow for any realistic value.
func ticks(d time.Duration) int64 {
	return int64(d/time.Second)*90000 + int64(d%time.Second)*90000/int64(time.Second)
}

// Write muxes au into the open segment (segment.Muxer).
func (m *tsMuxer) Write(_ *segment.File, set *segment.Set, kind segment.Kind, au *media.AccessUnit, out time.Duration) error {
	s := set.State.(*tsSet)
	out += tsOffset
	dts := ticks(out)
	pts := dts
	if au.PTS > au.DTS {
		pts = ticks(out + (au.PTS - au.DTS))
	}
	if kind == segment.Video {
		t := set.Video
		switch t.Codec {
		case media.H264:
			return m.mux.WriteH264(s.tsVideo, pts, dts, m.h264AU(t, au))
		case media.H265:
			return m.mux.WriteH265(s.tsVideo, pts, dts, m.h265AU(t, au))
		case media.MPEG4Video:
			frame := au.Data
			if au.Key && len(t.VideoConfig) > 0 && !bytes.HasPrefix(frame, t.VideoConfig) {
				frame = append(append(make([]byte, 0, len(t.VideoConfig)+len(frame)), t.VideoConfig...), frame...)
			}
			// MPEG-4 Part 2 is written with PTS only (mediacommon sets DTS = PTS).
			return m.mux.WriteMPEG4Video(s.tsVideo, pts, frame)
		}
		return fmt.Errorf("unsupported video codec %s", t.Codec)
	}
	return m.queueAudio(set, au, pts)
}

// audioBatch collects contiguous audio frames so that several go into one PES, as ffmpeg
// does. One PES per frame would cost a partly stuffed TS packet per frame and, when audio
// carries the PCR (audio-only), a PAT and PMT per frame too, because mediacommon marks
// every audio PES as a random access point and astits then repeats the tables: about
// three times the audio bitrate.
type audioBatch struct {
	data []byte // frames back to back
	lens []int
	pts  int64         // 90 kHz PTS of the first frame
	next time.Duration // input DTS a contiguous next frame has
	dur  time.Duration // media duration held
}

// maxAudioBatch bounds the media duration of one audio PES.
const maxAudioBatch = 100 * time.Millisecond

// queueAudio adds an audio unit to the batch, writing the batch out first if the unit is
// not contiguous with it, and after if it is full.
func (m *tsMuxer) queueAudio(set *segment.Set, au *media.AccessUnit, pts int64) error {
	fd, err := audioFrameDuration(set, au.Data)
	if err != nil {
		return err
	}
	b := &m.batch
	if len(b.lens) > 0 {
		if d := au.DTS - b.next; d < -fd/4 || d > fd/4 {
			if err := m.flushAudio(); err != nil {
				return err
			}
		}
	}
	if len(b.lens) == 0 {
		b.pts = pts
	}
	b.data = append(b.data, au.Data...)
	b.lens = append(b.lens, len(au.Data))
	b.next = au.DTS + fd
	b.dur += fd
	if b.dur >= maxAudioBatch {
		return m.flushAudio()
	}
	return nil
}

// flushAudio writes the batched audio frames as one PES.
func (m *tsMuxer) flushAudio() error {
	b := &m.batch
	if len(b.lens) == 0 {
		return nil
	}
	set := m.set
	s := set.State.(*tsSet)
	frames := m.audioBuf[:0]
	off := 0
	for _, n := range b.lens {
		frames = append(frames, b.data[off:off+n])
		off += n
	}
	m.audioBuf = frames
	var err error
	switch {
	case set.Audio.Codec == media.AAC:
		err = m.mux.WriteMPEG4Audio(s.tsAudio, b.pts, frames)
	case s.mp3LSF:
		// WriteAC3 writes the bytes as one audio PES without any framing or check.
		err = m.mux.WriteAC3(s.tsAudio, b.pts, b.data)
	default:
		err = m.mux.WriteMPEG1Audio(s.tsAudio, b.pts, frames)
	}
	b.data, b.lens, b.dur = b.data[:0], b.lens[:0], 0
	return err
}

// audioFrameDuration returns the nominal duration of an audio unit (for MP3, of its first
// frame; its header also tells whether the stream is MPEG-2/2.5 "LSF").
func audioFrameDuration(set *segment.Set, data []byte) (time.Duration, error) {
	s := set.State.(*tsSet)
	switch set.Audio.Codec {
	case media.AAC:
		sr := s.tsAudio.Codec.(*mtscodecs.MPEG4Audio).SampleRate
		if sr <= 0 {
			return 0, errors.New("AAC sample rate unknown")
		}
		return 1024 * time.Second / time.Duration(sr), nil
	case media.MP3:
		var h mpeg1audio.FrameHeader
		if err := h.Unmarshal(data); err != nil {
			return 0, fmt.Errorf("MP3 frame: %w", err)
		}
		if !s.mp3LSFChecked {
			s.mp3LSF, s.mp3LSFChecked = h.MPEG2, true
		}
		return time.Duration(h.SampleCount()) * time.Second / time.Duration(h.SampleRate), nil
	}
	return 0, fmt.Errorf("unsupported audio codec %s", set.Audio.Codec)
}

// Access unit delimiters prepended by the writer (mediacommon would otherwise allocate a
// new NALU slice to prepend them).
var (
	h264AUD = []byte{byte(h264.NALUTypeAccessUnitDelimiter), 0xF0}
	h265AUD = []byte{byte(h265.NALUType_AUD_NUT) << 1, 1, 0x50}
)

// h264AU builds AUD [+ SPS + PPS] + NALUs in a reused slice.
func (m *tsMuxer) h264AU(t *media.Track, au *media.AccessUnit) [][]byte {
	b := append(m.naluBuf[:0], h264AUD)
	if au.Key || h264.IsRandomAccess(au.NALUs) {
		if !hasH264Type(au.NALUs, h264.NALUTypeSPS) {
			b = append(b, t.SPS, t.PPS)
		}
	}
	for _, n := range au.NALUs {
		if len(n) == 0 || h264.NALUType(n[0]&0x1F) == h264.NALUTypeAccessUnitDelimiter {
			continue
		}
		b = append(b, n)
	}
	m.naluBuf = b
	return b
}

// h265AU builds AUD [+ VPS + SPS + PPS] + NALUs in a reused slice.
func (m *tsMuxer) h265AU(t *media.Track, au *media.AccessUnit) [][]byte {
	b := append(m.naluBuf[:0], h265AUD)
	if au.Key || isH265IRAP(au.NALUs) {
		if !hasH265Type(au.NALUs, h265.NALUType_SPS_NUT) {
			b = append(b, t.VPS, t.SPS, t.PPS)
		}
	}
	for _, n := range au.NALUs {
		if len(n) < 2 || h265.NALUType((n[0]>>1)&0x3F) == h265.NALUType_AUD_NUT {
			continue
		}
		b = append(b, n)
	}
	m.naluBuf = b
	return b
}

func hasH264Type(nalus [][]byte, typ h264.NALUType) bool {
	for _, n := range nalus {
		if len(n) > 0 && h264.NALUType(n[0]&0x1F) == typ {
			return true
		}
	}
	return false
}

func hasH265Type(nalus [][]byte, typ h265.NALUType) bool {
	for _, n := range nalus {
		if len(n) > 0 && h265.NALUType((n[0]>>1)&0x3F) == typ {
			return true
		}
	}
	return false
}

// isH265IRAP reports whether the unit holds an IRAP picture (NAL types 16–23).
func isH265IRAP(nalus [][]byte) bool {
	for _, n := range nalus {
		if len(n) > 0 {
			if typ := (n[0] >> 1) & 0x3F; typ >= 16 && typ <= 23 {
				return true
			}
		}
	}
	return false
}

func videoCodec(c media.Codec) mtscodecs.Codec {
	switch c {
	case media.H265:
		return &mtscodecs.H265{}
	case media.MPEG4Video:
		return &mtscodecs.MPEG4Video{}
	default:
		return &mtscodecs.H264{}
	}
}

// audioCodec maps an audio track to its mediacommon codec.
func audioCodec(t *media.Track) (mtscodecs.Codec, error) {
	switch t.Codec {
	case media.MP3:
		return &mtscodecs.MPEG1Audio{}, nil
	case media.AAC:
		cfg, err := segment.AACConfig(t)
		if err != nil {
			return nil, err
		}
		switch cfg.Type {
		case 1, mpeg4audio.ObjectTypeAACLC, 3, 4: // AAC Main, LC, SSR, LTP
		case mpeg4audio.ObjectTypeSBR, mpeg4audio.ObjectTypePS:
			// Explicit HE-AAC signalling: ADTS carries the AAC-LC core.
			cfg.Type = mpeg4audio.ObjectTypeAACLC
		default:
			return nil, fmt.Errorf("AAC object type %d cannot be carried in ADTS", cfg.Type)
		}
		return &mtscodecs.MPEG4Audio{Config: cfg}, nil
	}
	return nil, fmt.Errorf("unsupported audio codec %q", t.Codec)
}
