package cmaf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg1audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	mp4codecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/format/moof"
	"github.com/livrec/livrec/internal/format/segment"
	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/storage"
)

// FragmentDuration bounds the media held in memory before a fragment (moof+mdat) is
// appended to the segment's working file: what a crash can lose, plus one torn fragment.
const FragmentDuration = 500 * time.Millisecond

// videoTimeScale is the time scale of video tracks.
const videoTimeScale = 90000

// Errors (shared with the other segmented formats).
var (
	// ErrNoMedia is returned by Finish and Recover when the file holds no complete frame.
	ErrNoMedia = segment.ErrNoMedia
	// ErrNoJournal is returned by Recover when the work directory has no journal.
	ErrNoJournal = segment.ErrNoJournal
	// ErrFinished is returned by calls on a Writer after a successful Finish.
	ErrFinished = segment.ErrFinished
	// ErrNoTracks is returned by WriteAU before the first SetTracks.
	ErrNoTracks = segment.ErrNoTracks
)

// Config configures a Writer.
type Config struct {
	// SliceDuration is the target segment length. A segment is cut at the first keyframe
	// at least this long after the segment's start (audio-only: on time).
	SliceDuration time.Duration
	// WorkDir is a private, existing, empty directory for this file's working data.
	WorkDir string
	// SegmentKey returns the full object key (extension included) of media segment seq
	// (0, 1, ...) that started at wall-clock time start.
	SegmentKey func(seq int, start time.Time) string
	// InitKey returns the full object key of initialization segment n (0 for the first
	// track set, 1 after the first parameter change, ...).
	InitKey func(n int) string
	// SegmentURI returns the URI of a stored object (segment or initialization segment)
	// in the live playlist. It is used as is. Nil means the key itself.
	SegmentURI func(key string) string
	// Store receives the finished objects and the final playlist.
	Store storage.Store
	// Now is the wall clock (segment start times). Nil means time.Now.
	Now func() time.Time
	// Logger receives warnings. Nil discards.
	Logger *slog.Logger
	// NoSync is for offline conversion: the input remains, so nothing is fsync'd; a crash
	// means rerun (segment.Config.NoSync). Default: durable.
	NoSync bool
	// Syncer, if set, syncs finished segments off the caller's goroutine
	// (segment.Config.Syncer).
	Syncer format.Syncer
	// Hold, if set, accounts the segment bytes kept in memory while the disk is full
	// (segment.Config.Hold).
	Hold format.Hold
	// Resume continues a file another node began (segment.Config.Resume).
	Resume []byte
}

// Writer writes one CMAF recording file. SetTracks, WriteAU, Discontinuity, Duration,
// Close, Abandon and LivePlaylistPath come from segment.Writer; they are safe for
// concurrent use.
type Writer struct {
	*segment.Writer
}

var _ format.Writer = (*Writer)(nil)

// New validates cfg and returns a Writer. Nothing is written until the first access unit
// that can open a segment.
func New(cfg Config) (*Writer, error) {
	if cfg.InitKey == nil {
		return nil, errors.New("cmaf: InitKey is required")
	}
	sw, err := segment.New(segment.Config{
		Name:          "cmaf",
		Ext:           ".m4s",
		SliceDuration: cfg.SliceDuration,
		WorkDir:       cfg.WorkDir,
		SegmentKey:    cfg.SegmentKey,
		InitKey:       cfg.InitKey,
		SegmentURI:    cfg.SegmentURI,
		Store:         cfg.Store,
		Now:           cfg.Now,
		Logger:        cfg.Logger,
		NoSync:        cfg.NoSync,
		Syncer:        cfg.Syncer,
		Hold:          cfg.Hold,
		Resume:        cfg.Resume,
	}, &muxer{})
	if err != nil {
		return nil, err
	}
	return &Writer{sw}, nil
}

// Finish completes the file and stores it: the last segment, every object still waiting,
// then the VOD playlist under key. See segment.Writer.Finish.
func (w *Writer) Finish(ctx context.Context, key string) (format.Result, error) {
	res, err := w.Writer.Finish(ctx, key)
	return toResult(res), err
}

// Recover finalizes a file whose writer died (crash, kill -9) from its working directory:
// complete objects are stored, the partial segment keeps its complete fragments (it is
// truncated after the last complete moof+mdat pair), and the VOD playlist is stored under
// playlistKey(end). It is idempotent; see segment.Recover.
func Recover(ctx context.Context, workDir string, store storage.Store, playlistKey func(end time.Time) string,
	logger *slog.Logger) (format.Result, error) {
	res, err := segment.Recover(ctx, "cmaf", workDir, store, playlistKey, logger,
		func(ctx context.Context, p segment.Partial) (time.Duration, int64, error) {
			return cutPartialSegment(ctx, store, p)
		})
	return toResult(res), err
}

func toResult(r segment.Result) format.Result {
	return format.Result{Key: r.PlaylistKey, Duration: r.Duration, Bytes: r.Bytes, Segments: len(r.Segments)}
}

// ---------------------------------------------------------------------------------------
// The fMP4 muxer.

// trackOut is one track of a set in the fMP4 output.
type trackOut struct {
	id        int
	kind      segment.Kind
	timeScale uint32
	codec     mp4codecs.Codec

	held    bool // a sample waits for its duration (the next sample's decode time)
	heldT   int64
	heldOff int32
	heldKey bool
	heldLen int // its payload, at the end of arena

	lastDur uint32 // duration given to the previous sample
	next    int64  // audio: decode time the next contiguous frame has (-1: resync)

	samples []moof.Sample // completed samples of the current fragment
	arena   format.Arena  // their payloads, in order, then the held sample's
	base    int64         // decode time of samples[0]
}

// setState is the per-set state (segment.Set.State).
type setState struct {
	tracks []*trackOut // video first
	params [][]byte    // H.264/H.265 parameter sets, for in-band repetition
	// inBand: the set replaced another one, so each segment's opening keyframe also
	// carries the parameter sets in-band (see the package doc); needParams: not done yet
	// in the open segment.
	inBand, needParams bool
}

// muxer is the fMP4 segment.Muxer.
type muxer struct {
	cur       *setState
	inits     int    // initialization segments made
	seqNo     uint32 // mfhd sequence number, over the whole file
	fragStart time.Duration
	fragOpen  bool
	styp      bool         // the open segment's styp is not written yet
	tracks    []moof.Track // reused by flush
	head      []byte       // (styp,) moof and mdat header of the fragment being written (reused)
	bufs      [][]byte     // the fragment's pieces for one writev (reused)
}

// BuffersOutput declares that the muxer hands its segment files whole fragments
// (segment.BufferingMuxer): they need no write buffer of their own.
func (m *muxer) BuffersOutput() {}

// ticks converts d to time scale ts.
func ticks(d time.Duration, ts uint32) int64 {
	if d < 0 {
		return 0
	}
	return int64(d/time.Second)*int64(ts) + int64(d%time.Second)*int64(ts)/int64(time.Second)
}

// NewSet describes the tracks in fMP4 terms (segment.Muxer).
func (m *muxer) NewSet(video, audio *media.Track) (any, error) {
	s := &setState{}
	if video != nil {
		var c mp4codecs.Codec
		switch video.Codec {
		case media.H264:
			c = &mp4codecs.H264{SPS: video.SPS, PPS: video.PPS}
			s.params = [][]byte{video.SPS, video.PPS}
		case media.H265:
			c = &mp4codecs.H265{VPS: video.VPS, SPS: video.SPS, PPS: video.PPS}
			s.params = [][]byte{video.VPS, video.SPS, video.PPS}
		case media.MPEG4Video:
			c = &mp4codecs.MPEG4Video{Config: video.VideoConfig} // completed by Init if empty
		}
		s.tracks = append(s.tracks, &trackOut{id: 1, kind: segment.Video, timeScale: videoTimeScale, codec: c})
	}
	if audio != nil {
		t := &trackOut{id: len(s.tracks) + 1, kind: segment.Audio}
		switch audio.Codec {
		case media.AAC:
			cfg, err := segment.AACConfig(audio)
			if err != nil {
				return nil, fmt.Errorf("cmaf: %w", err)
			}
			t.codec, t.timeScale = &mp4codecs.MPEG4Audio{Config: cfg}, uint32(cfg.SampleRate)
		case media.MP3:
			if audio.SampleRate <= 0 || audio.Channels <= 0 {
				return nil, errors.New("cmaf: MP3 track without sample rate and channels")
			}
			t.codec = &mp4codecs.MPEG1Audio{SampleRate: audio.SampleRate, ChannelCount: audio.Channels}
			t.timeScale = uint32(audio.SampleRate)
		}
		if t.timeScale == 0 {
			return nil, errors.New("cmaf: audio sample rate unknown")
		}
		s.tracks = append(s.tracks, t)
	}
	return s, nil
}

// Init returns the initialization segment of set (segment.Muxer): mediacommon's moov
// behind a CMAF ftyp.
func (m *muxer) Init(set *segment.Set, au *media.AccessUnit) ([]byte, error) {
	s := set.State.(*setState)
	s.inBand = m.inits > 0
	m.inits++
	init := fmp4.Init{}
	for _, t := range s.tracks {
		if c, ok := t.codec.(*mp4codecs.MPEG4Video); ok && len(c.Config) == 0 {
			cfg := mpeg4ConfigFromFrame(au.Data)
			if cfg == nil {
				return nil, errors.New("MPEG-4 Part 2 track without configuration (VOL header)")
			}
			t.codec = &mp4codecs.MPEG4Video{Config: cfg}
		}
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: t.id, TimeScale: t.timeScale, Codec: t.codec})
	}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	if len(b) < 8 || string(b[4:8]) != "ftyp" {
		return nil, errors.New("unexpected initialization segment layout")
	}
	out := append(ftypBox(), b[binary.BigEndian.Uint32(b):]...)
	if v := set.Video; v != nil && v.Codec == media.MPEG4Video && v.Width > 0 && v.Height > 0 {
		patchMP4VSize(out, v.Width, v.Height)
	}
	return out, nil
}

// brandBox returns an ftyp/styp box.
func brandBox(typ, major string, compatible ...string) []byte {
	b := make([]byte, 16, 16+4*len(compatible))
	binary.BigEndian.PutUint32(b, uint32(cap(b)))
	copy(b[4:], typ)
	copy(b[8:], major) // minor version 0
	for _, c := range compatible {
		b = append(b, c...)
	}
	return b
}

// ftypBox is the CMAF header's file type: a CMAF track file ('cmfc') on ISO BMFF 6.
func ftypBox() []byte { return brandBox("ftyp", "cmfc", "cmfc", "iso6", "isom", "mp41") }

// stypBox opens every media segment: a CMAF segment ('cmfs') that is also a DASH media
// segment ('msdh'). 'msix' (indexed segment) is not claimed: no sidx is written.
var stypBox = brandBox("styp", "cmfs", "cmfs", "msdh")

// patchMP4VSize writes the picture size into the mp4v sample entry and the video tkhd,
// where mediacommon writes a placeholder 800x600.
func patchMP4VSize(b []byte, width, height int) {
	if i := bytes.Index(b, []byte("mp4v")); i >= 4 && i+32 <= len(b) {
		binary.BigEndian.PutUint16(b[i+28:], uint16(width))
		binary.BigEndian.PutUint16(b[i+30:], uint16(height))
	}
	// tkhd version 0: width and height (16.16) at 84 and 88 from the box start.
	if i := bytes.Index(b, []byte("tkhd")); i >= 4 && b[i+4] == 0 && i+88 <= len(b) {
		binary.BigEndian.PutUint32(b[i+80:], uint32(width)<<16)
		binary.BigEndian.PutUint32(b[i+84:], uint32(height)<<16)
	}
}

// mpeg4ConfigFromFrame returns the headers (VOS/VO/VOL) before the first VOP of an
// MPEG-4 Part 2 keyframe, or nil.
func mpeg4ConfigFromFrame(frame []byte) []byte {
	i := bytes.Index(frame, []byte{0, 0, 1, 0xB6})
	if i <= 0 {
		return nil
	}
	return bytes.Clone(frame[:i])
}

// Begin starts a segment with styp (segment.Muxer).
func (m *muxer) Begin(f *segment.File, set *segment.Set, changed bool) error {
	if changed {
		m.cur = set.State.(*setState)
	}
	m.cur.needParams = m.cur.inBand
	m.fragOpen = false
	m.styp = true // written with the first fragment
	return nil
}

// Write holds au back until the next unit of its track gives its duration, and appends
// a fragment to the segment when FragmentDuration is reached (segment.Muxer).
func (m *muxer) Write(f *segment.File, set *segment.Set, kind segment.Kind, au *media.AccessUnit, out time.Duration) error {
	var t *trackOut
	for _, c := range set.State.(*setState).tracks {
		if c.kind == kind {
			t = c
		}
	}
	if t == nil {
		return errors.New("unit of a track not in the set")
	}
	dt := ticks(out, t.timeScale)
	var frameLen int64
	if kind == segment.Audio {
		frameLen = audioFrameTicks(set.Audio, au.Data, t.timeScale)
		// Audio decode times run on a sample counter while the input stays within half
		// a frame of it: millisecond timestamps (RTMP) would otherwise jitter by ±1 ms.
		if t.next >= 0 && frameLen > 0 && abs(dt-t.next) <= frameLen/2 {
			dt = t.next
		}
	}
	if t.held {
		if dt < t.heldT { // cannot happen with monotonic input: keep order
			dt = t.heldT
		}
		m.complete(t, uint32(dt-t.heldT))
	}
	if !m.fragOpen {
		m.fragOpen, m.fragStart = true, out
	}
	t.held, t.heldT, t.heldKey = true, dt, au.Key || kind == segment.Audio
	t.heldOff = 0
	if au.PTS > au.DTS {
		t.heldOff = int32(ticks(out+(au.PTS-au.DTS), t.timeScale) - dt)
	}
	n := t.arena.Len()
	if s := set.State.(*setState); kind == segment.Video && au.Key && s.needParams {
		appendNALUs(&t.arena, s.params)
		s.needParams = false
	}
	appendPayload(&t.arena, au)
	t.heldLen = t.arena.Len() - n
	t.next = -1
	if frameLen > 0 {
		t.next = dt + frameLen
	}
	if out-m.fragStart >= FragmentDuration {
		return m.flush(f)
	}
	return nil
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// audioFrameTicks is the nominal duration of an audio unit in time scale ts (0 if
// unknown).
func audioFrameTicks(t *media.Track, data []byte, ts uint32) int64 {
	if t.Codec == media.MP3 {
		var h mpeg1audio.FrameHeader
		if h.Unmarshal(data) != nil || h.SampleRate <= 0 {
			return 0
		}
		return int64(h.SampleCount()) * int64(ts) / int64(h.SampleRate)
	}
	return 1024 // AAC: the time scale is the sample rate
}

// appendPayload appends the sample data of au: H.264/H.265 NAL units with 4-byte length
// prefixes (AVCC), any other codec as is.
func appendPayload(a *format.Arena, au *media.AccessUnit) {
	if len(au.NALUs) == 0 {
		a.Append(au.Data)
		return
	}
	appendNALUs(a, au.NALUs)
}

func appendNALUs(a *format.Arena, nalus [][]byte) {
	for _, n := range nalus {
		a.AppendUint32(uint32(len(n)))
		a.Append(n)
	}
}

// complete moves t's held sample, with duration dur, into the current fragment.
func (m *muxer) complete(t *trackOut, dur uint32) {
	if len(t.samples) == 0 {
		t.base = t.heldT
	}
	t.samples = append(t.samples, moof.Sample{Size: uint32(t.heldLen), Dur: dur, CTS: t.heldOff, Sync: t.heldKey})
	t.lastDur = dur
	t.held = false
}

// End completes the held samples and writes the last fragment (segment.Muxer).
func (m *muxer) End(f *segment.File, set *segment.Set, e segment.End) error {
	for _, t := range set.State.(*setState).tracks {
		if !t.held {
			continue
		}
		dur := int64(t.lastDur)
		if t.kind == segment.Video && e.Next >= 0 {
			dur = ticks(e.Next, t.timeScale) - t.heldT
		} else if dur == 0 || t.kind == segment.Video {
			dur = ticks(e.Frame[t.kind], t.timeScale)
		}
		m.complete(t, uint32(max(dur, 1)))
		if e.Next < 0 {
			t.next = -1 // a new run: audio resynchronizes on its timestamps
		}
	}
	return m.flush(f)
}

// flush writes the completed samples as one fragment (moof+mdat, package moof: the
// payloads are written from the tracks' arenas, not copied into one buffer) and hands it
// to the operating system, in one writev. Held samples stay in the arenas.
func (m *muxer) flush(f *segment.File) error {
	tracks := m.tracks[:0]
	for _, t := range m.cur.tracks {
		if len(t.samples) > 0 {
			tracks = append(tracks, moof.Track{ID: uint32(t.id), BaseTime: uint64(t.base), Samples: t.samples})
		}
	}
	m.tracks = tracks
	m.fragOpen = false
	if len(tracks) == 0 {
		return nil
	}
	m.seqNo++
	m.head = m.head[:0]
	if m.styp {
		m.head, m.styp = append(m.head, stypBox...), false
	}
	m.head = moof.Append(m.head, m.seqNo, tracks)
	bufs := append(m.bufs[:0], m.head)
	for _, t := range m.cur.tracks {
		bufs = t.arena.Buffers(bufs, t.completed())
	}
	err := f.WriteBuffers(bufs)
	clear(bufs) // no references to pooled chunks
	m.bufs = bufs[:0]
	for _, t := range m.cur.tracks {
		t.arena.Discard(t.completed())
		t.samples = t.samples[:0]
	}
	return err
}

// completed returns the payload bytes of t's completed samples: the arena up to the held
// sample.
func (t *trackOut) completed() int {
	if t.held {
		return t.arena.Len() - t.heldLen
	}
	return t.arena.Len()
}
