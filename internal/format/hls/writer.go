package hls

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg1audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	mtscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/storage"
)

// Names of the working files in Config.WorkDir.
const (
	journalName  = "journal.json"
	liveName     = "live.m3u8"
	playlistName = "playlist.m3u8"
	tmpSuffix    = ".tmp"
)

// tsOffset is added to every MPEG-TS timestamp so that PCR, which mediacommon writes
// 100 ms below DTS, never goes negative.
const tsOffset = time.Second

// writeBufferSize is the bufio buffer between the muxer and a segment file.
const writeBufferSize = 64 << 10

// Errors.
var (
	// ErrNoMedia is returned by Finish and Recover when the file holds no complete frame:
	// there is nothing to store, and no playlist was stored.
	ErrNoMedia = errors.New("hls: no media recorded")
	// ErrNoJournal is returned by Recover when the work directory has no journal: nothing
	// was recorded there, or the file was already finished or recovered.
	ErrNoJournal = errors.New("hls: no journal in work directory")
	// ErrFinished is returned by calls on a Writer after a successful Finish.
	ErrFinished = errors.New("hls: writer already finished")
	// ErrNoTracks is returned by WriteAU before the first SetTracks.
	ErrNoTracks = errors.New("hls: access unit before SetTracks")
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
type Segment struct {
	Key           string        // object key
	Duration      time.Duration // media duration (the EXTINF value)
	Start         time.Time     // wall-clock time the segment's first unit was written
	Discontinuity bool          // preceded by #EXT-X-DISCONTINUITY
	Bytes         int64         // size of the segment object
}

// Result describes a finished (or recovered) recording file.
type Result struct {
	PlaylistKey   string    // object key of the VOD playlist
	Segments      []Segment // in playlist order
	Duration      time.Duration
	Bytes         int64     // segment bytes plus playlist bytes
	PlaylistBytes int64     // size of the playlist object
	Start         time.Time // wall start of the first segment
	End           time.Time // wall start of the last segment plus its duration
	Recovered     bool      // produced by Recover
}

// segState is a closed segment: complete on disk and either stored or waiting for a
// (retried) store.
type segState struct {
	Segment
	seq    int
	file   string // base name in WorkDir
	stored bool
}

// trackKind indexes per-kind state.
type trackKind int

const (
	kindVideo trackKind = 0
	kindAudio trackKind = 1
)

// trackSet is one set of tracks with its MPEG-TS description. A new set (after a
// parameter change) gets its own mpegts.Writer.
type trackSet struct {
	video, audio  *media.Track
	tsVideo       *mpegts.Track
	tsAudio       *mpegts.Track
	mp3LSF        bool // audio is MPEG-2/2.5 Layer III, written as raw PES
	mp3LSFChecked bool
}

// openSeg is the segment being written.
type openSeg struct {
	segState
	f        *os.File
	bw       *bufio.Writer
	firstDTS time.Duration // input DTS of the unit that opened the segment
	runStart bool          // first segment of a continuous run
	// per kind: last input DTS written, and the delta to the one before
	last  [2]time.Duration
	delta [2]time.Duration
	count [2]int
}

// countingSink is the switchable io.Writer the mpegts.Writer writes into. It points at
// the current segment's bufio.Writer and counts the bytes.
type countingSink struct {
	w io.Writer
	n int64
}

func (s *countingSink) Write(p []byte) (int, error) {
	if s.w == nil {
		return 0, errors.New("hls: no open segment")
	}
	n, err := s.w.Write(p)
	s.n += int64(n)
	return n, err
}

// Writer writes one HLS recording file. Its methods are safe for concurrent use, but the
// recording task is expected to drive it from one goroutine; Duration and
// LivePlaylistPath may be called from others.
type Writer struct {
	mu  sync.Mutex
	cfg Config
	log *slog.Logger

	active  *trackSet // the set the muxer (and the open segment) uses
	pending *trackSet // a changed set, taking effect at the next segment
	retired *trackSet // the set before the last change: its late units are dropped
	mux     *mpegts.Writer
	muxSet  *trackSet // the set mux was made for
	sink    countingSink

	segs        []*segState // closed segments
	cur         *openSeg
	nextSeq     int
	pendingDisc bool          // Discontinuity() called: the next segment starts a new run
	doneDur     time.Duration // sum of the closed segments' durations
	liveStored  int           // segments listed in live.m3u8
	finished    bool

	dropped  int64 // units dropped so far (logged)
	naluBuf  [][]byte
	audioBuf [][]byte
	batch    audioBatch
}

// New validates cfg and returns a Writer. Nothing is written until the first access unit
// that can open a segment.
func New(cfg Config) (*Writer, error) {
	if cfg.SliceDuration <= 0 {
		return nil, errors.New("hls: SliceDuration must be positive")
	}
	if cfg.SegmentKey == nil {
		return nil, errors.New("hls: SegmentKey is required")
	}
	if cfg.Store == nil {
		return nil, errors.New("hls: Store is required")
	}
	st, err := os.Stat(cfg.WorkDir)
	if err != nil {
		return nil, fmt.Errorf("hls: work dir: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("hls: work dir %s is not a directory", cfg.WorkDir)
	}
	if _, err := os.Stat(filepath.Join(cfg.WorkDir, journalName)); err == nil {
		return nil, fmt.Errorf("hls: work dir %s holds a journal: recover it first", cfg.WorkDir)
	}
	if cfg.SegmentURI == nil {
		cfg.SegmentURI = func(key string) string { return key }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Writer{cfg: cfg, log: log}, nil
}

// LivePlaylistPath returns the path of the live EVENT playlist. The file exists once the
// first segment has been stored, and is removed by Finish.
func (w *Writer) LivePlaylistPath() string {
	return filepath.Join(w.cfg.WorkDir, liveName)
}

// SetTracks declares the tracks (either may be nil, not both). The first call must come
// before any access unit. A later call with different parameters is a track-set change:
// the current segment ends at the next unit that can open a segment (a keyframe of the new
// video track, or any frame of the new audio track for audio-only), and the next segment
// is marked #EXT-X-DISCONTINUITY. A later call with identical parameters only adopts the
// new *Track values.
func (w *Writer) SetTracks(video, audio *media.Track) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return ErrFinished
	}
	set, err := newTrackSet(video, audio)
	if err != nil {
		return err
	}
	switch {
	case w.active == nil:
		w.active = set
	case sameSet(w.active, set):
		// Same parameters: keep the muxer, adopt the new pointers, cancel any change.
		w.active.video, w.active.audio = video, audio
		w.pending = nil
	default:
		w.pending = set
	}
	return nil
}

// Discontinuity marks a stitched resume: the next unit that can open a segment starts a
// new segment marked #EXT-X-DISCONTINUITY. Until a video keyframe arrives, video units are
// dropped, and audio is dropped too (audio-only streams resume at once). Input timestamps
// may restart: the new run is appended to the output timeline without a gap.
func (w *Writer) Discontinuity() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur != nil || len(w.segs) > 0 {
		w.pendingDisc = true
	}
}

// Duration returns the media duration recorded so far: the finished segments plus the
// current one up to its last unit and one frame.
func (w *Writer) Duration() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := w.doneDur
	if w.cur != nil {
		d += w.curDuration(-1, false)
	}
	return d
}

// WriteAU writes one access unit. Units that cannot be written yet (before the first
// keyframe, after a resume until a keyframe, empty units, DTS going backwards) are dropped
// and logged, not reported. Errors are returned for misuse (no SetTracks, a unit of an
// unknown track), I/O failures, and a segment that could not be stored because its key
// exists (storage.ErrExists; the local file is kept).
func (w *Writer) WriteAU(au *media.AccessUnit) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return ErrFinished
	}
	if au == nil {
		return errors.New("hls: nil access unit")
	}
	if w.active == nil {
		return ErrNoTracks
	}
	if au.Track == nil {
		return errors.New("hls: access unit without track")
	}
	set, kind, ok := w.lookup(au.Track)
	if !ok && w.retired != nil && (au.Track == w.retired.video || au.Track == w.retired.audio) {
		w.drop("unit of a replaced track", au)
		return nil
	}
	if !ok {
		return fmt.Errorf("hls: access unit of a track (%s) not declared with SetTracks", au.Track.Codec)
	}
	if au.Size() == 0 {
		w.drop("empty access unit", au)
		return nil
	}

	// The set that decides where a segment may open: the pending one if a change waits.
	eff := w.active
	if w.pending != nil {
		eff = w.pending
	}
	canOpen := set == eff && (kind == kindVideo && au.Key || kind == kindAudio && eff.video == nil)

	var storeErr error
	switch {
	case w.cur == nil || w.pendingDisc || w.pending != nil:
		// Waiting for a unit that opens a segment.
		if canOpen {
			var err error
			storeErr, err = w.openSegment(au)
			if err != nil {
				return err
			}
			break
		}
		if w.cur == nil || w.pendingDisc {
			w.drop("waiting for a keyframe", au)
			return nil
		}
		// A track change is pending but the old segment continues: keep writing units
		// the old muxer can carry.
		if set != w.active {
			if kind == kindAudio && w.active.audio != nil && sameTrack(au.Track, w.active.audio) {
				set = w.active
			} else {
				w.drop("track changed, waiting for a keyframe", au)
				return nil
			}
		}
	default:
		if canOpen && au.DTS-w.cur.firstDTS >= w.cfg.SliceDuration {
			var err error
			storeErr, err = w.openSegment(au)
			if err != nil {
				return err
			}
		}
	}

	cur := w.cur
	if cur.count[kind] > 0 && au.DTS < cur.last[kind] {
		w.drop("DTS going backwards", au)
		return storeErr
	}
	if cur.runStart && au.DTS < cur.firstDTS {
		// Audio decoded before the picture that opened the run: not part of the file.
		w.drop("before the opening keyframe", au)
		return storeErr
	}
	if err := w.writeUnit(set, kind, au); err != nil {
		return errors.Join(storeErr, fmt.Errorf("hls: write segment %d: %w", cur.seq, err))
	}
	if cur.count[kind] > 0 {
		cur.delta[kind] = au.DTS - cur.last[kind]
	}
	cur.last[kind] = au.DTS
	cur.count[kind]++
	return storeErr
}

// lookup finds the set and kind au's track belongs to: by pointer, else by value against
// the active set (a unit whose track was re-announced with equal parameters).
func (w *Writer) lookup(t *media.Track) (*trackSet, trackKind, bool) {
	for _, s := range []*trackSet{w.active, w.pending} {
		if s == nil {
			continue
		}
		if t == s.video {
			return s, kindVideo, true
		}
		if t == s.audio {
			return s, kindAudio, true
		}
	}
	if w.active.video != nil && sameTrack(t, w.active.video) {
		return w.active, kindVideo, true
	}
	if w.active.audio != nil && sameTrack(t, w.active.audio) {
		return w.active, kindAudio, true
	}
	return nil, 0, false
}

func (w *Writer) drop(reason string, au *media.AccessUnit) {
	w.dropped++
	w.log.Debug("hls: access unit dropped", "reason", reason, "codec", au.Track.Codec,
		"dts", au.DTS, "key", au.Key, "dropped_total", w.dropped)
}

// leadKind is the kind whose units open segments and measure durations.
func (s *trackSet) leadKind() trackKind {
	if s.video != nil {
		return kindVideo
	}
	return kindAudio
}

// curDuration returns the duration of the open segment: next−first if nextFirst is a
// usable continuation (continuous run), else last−first plus one frame of the lead track.
func (w *Writer) curDuration(nextFirst time.Duration, continuous bool) time.Duration {
	c := w.cur
	k := w.muxSet.leadKind()
	if c.count[k] == 0 {
		// Cannot happen (the segment was opened by a lead unit); be defensive.
		k = 1 - k
	}
	last := c.last[k]
	if continuous && nextFirst > c.firstDTS && nextFirst >= last {
		return nextFirst - c.firstDTS
	}
	d := last - c.firstDTS + w.frameDuration(k)
	// The end of a run (a resume follows, or the file ends): the segment lasts until the
	// end of its last frame of either track, so that the next run's timeline starts after
	// every unit written here (audio usually ends a little after the last picture).
	if o := 1 - k; c.count[o] > 0 {
		d = max(d, c.last[o]-c.firstDTS+w.frameDuration(o))
	}
	if d <= 0 {
		d = time.Millisecond
	}
	return d
}

// frameDuration estimates one frame of kind k: the last DTS delta, else the nominal one.
func (w *Writer) frameDuration(k trackKind) time.Duration {
	if d := w.cur.delta[k]; d > 0 {
		return d
	}
	s := w.muxSet
	if k == kindVideo && s.video != nil {
		if s.video.FrameRate > 0 {
			return time.Duration(float64(time.Second) / s.video.FrameRate)
		}
		return 40 * time.Millisecond
	}
	if s.audio != nil && s.audio.SampleRate > 0 {
		samples := 1024
		if s.audio.Codec == media.MP3 {
			samples = 1152
		}
		return time.Duration(samples) * time.Second / time.Duration(s.audio.SampleRate)
	}
	return 20 * time.Millisecond
}

// closeCurrent completes the open segment: its duration, flush, fsync, close.
func (w *Writer) closeCurrent(nextFirst time.Duration, continuous bool) error {
	c := w.cur
	c.Duration = w.curDuration(nextFirst, continuous)
	err := w.flushAudio()
	if err == nil {
		err = c.bw.Flush()
	}
	if err == nil {
		err = syncFile(c.f)
	}
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	w.sink.w = nil
	c.Bytes = w.sink.n
	w.doneDur += c.Duration
	seg := c.segState
	w.segs = append(w.segs, &seg)
	w.cur = nil
	if err != nil {
		return fmt.Errorf("hls: complete segment %d: %w", seg.seq, err)
	}
	return nil
}

// openSegment closes the current segment (if any), opens the next one starting with au,
// stores what is pending and rewrites the journal and live playlist. storeErr reports a
// segment that could not be stored because its key exists; err is fatal for this unit.
func (w *Writer) openSegment(au *media.AccessUnit) (storeErr, err error) {
	newRun := w.cur == nil || w.pendingDisc
	disc := len(w.segs) > 0 || w.cur != nil
	disc = disc && (w.pendingDisc || w.pending != nil || w.muxSet != w.active)
	if w.cur != nil {
		if err := w.closeCurrent(au.DTS, !w.pendingDisc); err != nil {
			return nil, err
		}
	}
	if w.pending != nil {
		w.retired, w.active, w.pending = w.active, w.pending, nil
	}

	seq := w.nextSeq
	start := w.cfg.Now()
	key := w.cfg.SegmentKey(seq, start)
	file := fmt.Sprintf("seg%06d.ts", seq)
	f, err := os.OpenFile(filepath.Join(w.cfg.WorkDir, file), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		// The media until the next segment opens is lost: mark the gap.
		w.pendingDisc = len(w.segs) > 0
		return nil, fmt.Errorf("hls: create segment: %w", err)
	}
	w.nextSeq++
	c := &openSeg{
		segState: segState{
			Segment: Segment{Key: key, Start: start, Discontinuity: disc},
			seq:     seq,
			file:    file,
		},
		f:        f,
		bw:       bufio.NewWriterSize(f, writeBufferSize),
		firstDTS: au.DTS,
		runStart: newRun,
	}
	w.cur = c
	w.pendingDisc = false
	w.sink.w = c.bw
	w.sink.n = 0

	if w.muxSet != w.active {
		if err := w.newMuxer(); err != nil {
			return nil, err
		}
	}
	if _, err := w.mux.WriteTables(); err != nil {
		return nil, fmt.Errorf("hls: write tables: %w", err)
	}

	storeErr = w.storePending(context.Background())
	if err := w.writeJournal(""); err != nil {
		// The recording goes on; only crash recovery of this segment is at risk.
		w.log.Error("hls: journal write failed", "err", err)
	}
	return storeErr, nil
}

// newMuxer makes the mpegts.Writer for the active track set.
func (w *Writer) newMuxer() error {
	s := w.active
	var tracks []*mpegts.Track
	// Fresh mpegts.Track values: mediacommon keeps per-writer state in them.
	s.tsVideo, s.tsAudio = nil, nil
	if s.video != nil {
		s.tsVideo = &mpegts.Track{Codec: videoCodec(s.video.Codec)}
		tracks = append(tracks, s.tsVideo)
	}
	if s.audio != nil {
		c, err := audioCodec(s.audio)
		if err != nil {
			return err
		}
		s.tsAudio = &mpegts.Track{Codec: c}
		tracks = append(tracks, s.tsAudio)
	}
	m := &mpegts.Writer{W: &w.sink, Tracks: tracks}
	if err := m.Initialize(); err != nil {
		return fmt.Errorf("hls: mpegts writer: %w", err)
	}
	w.mux = m
	w.muxSet = s
	return nil
}

// ticks converts a duration to the 90 kHz clock without overflow for any realistic value.
func ticks(d time.Duration) int64 {
	return int64(d/time.Second)*90000 + int64(d%time.Second)*90000/int64(time.Second)
}

// writeUnit muxes au into the open segment.
func (w *Writer) writeUnit(s *trackSet, kind trackKind, au *media.AccessUnit) error {
	c := w.cur
	out := tsOffset + w.doneDur + (au.DTS - c.firstDTS)
	dts := ticks(out)
	pts := dts
	if au.PTS > au.DTS {
		pts = ticks(out + (au.PTS - au.DTS))
	}
	if kind == kindVideo {
		t := s.video
		switch t.Codec {
		case media.H264:
			return w.mux.WriteH264(s.tsVideo, pts, dts, w.h264AU(t, au))
		case media.H265:
			return w.mux.WriteH265(s.tsVideo, pts, dts, w.h265AU(t, au))
		case media.MPEG4Video:
			frame := au.Data
			if au.Key && len(t.VideoConfig) > 0 && !bytes.HasPrefix(frame, t.VideoConfig) {
				frame = append(append(make([]byte, 0, len(t.VideoConfig)+len(frame)), t.VideoConfig...), frame...)
			}
			// MPEG-4 Part 2 is written with PTS only (mediacommon sets DTS = PTS).
			return w.mux.WriteMPEG4Video(s.tsVideo, pts, frame)
		}
		return fmt.Errorf("hls: unsupported video codec %s", t.Codec)
	}
	return w.queueAudio(s, au, pts)
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
func (w *Writer) queueAudio(s *trackSet, au *media.AccessUnit, pts int64) error {
	fd, err := audioFrameDuration(s, au.Data)
	if err != nil {
		return err
	}
	b := &w.batch
	if len(b.lens) > 0 {
		if d := au.DTS - b.next; d < -fd/4 || d > fd/4 {
			if err := w.flushAudio(); err != nil {
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
		return w.flushAudio()
	}
	return nil
}

// flushAudio writes the batched audio frames as one PES.
func (w *Writer) flushAudio() error {
	b := &w.batch
	if len(b.lens) == 0 {
		return nil
	}
	s := w.muxSet
	frames := w.audioBuf[:0]
	off := 0
	for _, n := range b.lens {
		frames = append(frames, b.data[off:off+n])
		off += n
	}
	w.audioBuf = frames
	var err error
	switch {
	case s.audio.Codec == media.AAC:
		err = w.mux.WriteMPEG4Audio(s.tsAudio, b.pts, frames)
	case s.mp3LSF:
		// WriteAC3 writes the bytes as one audio PES without any framing or check.
		err = w.mux.WriteAC3(s.tsAudio, b.pts, b.data)
	default:
		err = w.mux.WriteMPEG1Audio(s.tsAudio, b.pts, frames)
	}
	b.data, b.lens, b.dur = b.data[:0], b.lens[:0], 0
	return err
}

// audioFrameDuration returns the nominal duration of an audio unit (for MP3, of its first
// frame; its header also tells whether the stream is MPEG-2/2.5 "LSF").
func audioFrameDuration(s *trackSet, data []byte) (time.Duration, error) {
	switch s.audio.Codec {
	case media.AAC:
		sr := s.tsAudio.Codec.(*mtscodecs.MPEG4Audio).SampleRate
		if sr <= 0 {
			return 0, errors.New("hls: AAC sample rate unknown")
		}
		return 1024 * time.Second / time.Duration(sr), nil
	case media.MP3:
		var h mpeg1audio.FrameHeader
		if err := h.Unmarshal(data); err != nil {
			return 0, fmt.Errorf("hls: MP3 frame: %w", err)
		}
		if !s.mp3LSFChecked {
			s.mp3LSF, s.mp3LSFChecked = h.MPEG2, true
		}
		return time.Duration(h.SampleCount()) * time.Second / time.Duration(h.SampleRate), nil
	}
	return 0, fmt.Errorf("hls: unsupported audio codec %s", s.audio.Codec)
}

// Access unit delimiters prepended by the writer (mediacommon would otherwise allocate a
// new NALU slice to prepend them).
var (
	h264AUD = []byte{byte(h264.NALUTypeAccessUnitDelimiter), 0xF0}
	h265AUD = []byte{byte(h265.NALUType_AUD_NUT) << 1, 1, 0x50}
)

// h264AU builds AUD [+ SPS + PPS] + NALUs in a reused slice.
func (w *Writer) h264AU(t *media.Track, au *media.AccessUnit) [][]byte {
	b := append(w.naluBuf[:0], h264AUD)
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
	w.naluBuf = b
	return b
}

// h265AU builds AUD [+ VPS + SPS + PPS] + NALUs in a reused slice.
func (w *Writer) h265AU(t *media.Track, au *media.AccessUnit) [][]byte {
	b := append(w.naluBuf[:0], h265AUD)
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
	w.naluBuf = b
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

// newTrackSet validates the tracks and builds a set.
func newTrackSet(video, audio *media.Track) (*trackSet, error) {
	if video == nil && audio == nil {
		return nil, errors.New("hls: no tracks")
	}
	if video != nil {
		switch video.Codec {
		case media.H264:
			if len(video.SPS) == 0 || len(video.PPS) == 0 {
				return nil, errors.New("hls: H.264 track without SPS/PPS")
			}
		case media.H265:
			if len(video.VPS) == 0 || len(video.SPS) == 0 || len(video.PPS) == 0 {
				return nil, errors.New("hls: H.265 track without VPS/SPS/PPS")
			}
		case media.MPEG4Video:
		default:
			return nil, fmt.Errorf("hls: unsupported video codec %q", video.Codec)
		}
	}
	if audio != nil {
		if _, err := audioCodec(audio); err != nil {
			return nil, err
		}
	}
	return &trackSet{video: video, audio: audio}, nil
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
		var cfg mpeg4audio.AudioSpecificConfig
		if err := cfg.Unmarshal(t.AudioConfig); err != nil {
			if t.SampleRate <= 0 || t.Channels <= 0 {
				return nil, fmt.Errorf("hls: AAC track without a usable AudioSpecificConfig: %w", err)
			}
			cfg = mpeg4audio.AudioSpecificConfig{
				Type:          mpeg4audio.ObjectTypeAACLC,
				SampleRate:    t.SampleRate,
				ChannelConfig: uint8(t.Channels),
			}
			if t.Channels == 8 {
				cfg.ChannelConfig = 7
			}
		}
		switch cfg.Type {
		case 1, mpeg4audio.ObjectTypeAACLC, 3, 4: // AAC Main, LC, SSR, LTP
		case mpeg4audio.ObjectTypeSBR, mpeg4audio.ObjectTypePS:
			// Explicit HE-AAC signalling: ADTS carries the AAC-LC core.
			cfg.Type = mpeg4audio.ObjectTypeAACLC
		default:
			return nil, fmt.Errorf("hls: AAC object type %d cannot be carried in ADTS", cfg.Type)
		}
		return &mtscodecs.MPEG4Audio{Config: cfg}, nil
	}
	return nil, fmt.Errorf("hls: unsupported audio codec %q", t.Codec)
}

// sameTrack reports whether two tracks have the same codec parameters.
func sameTrack(a, b *media.Track) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	return a.Codec == b.Codec &&
		bytes.Equal(a.VPS, b.VPS) && bytes.Equal(a.SPS, b.SPS) && bytes.Equal(a.PPS, b.PPS) &&
		bytes.Equal(a.VideoConfig, b.VideoConfig) && bytes.Equal(a.AudioConfig, b.AudioConfig) &&
		a.SampleRate == b.SampleRate && a.Channels == b.Channels
}

func sameSet(a, b *trackSet) bool {
	return sameTrack(a.video, b.video) && sameTrack(a.audio, b.audio)
}
