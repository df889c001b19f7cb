package segment

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	journalfile "github.com/livrec/livrec/internal/format/journal"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/livrec/livrec/internal/format"
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

// writeBufferSize is the bufio buffer between a muxer and a segment file, one per
// writer (reused from segment to segment). 16 KiB is about 0.1 s of a 1.5 Mbit/s stream:
// ~10 write calls a second, while the memory stays small at thousands of streams. An
// offline conversion (Config.NoSync) has one writer and uses a larger one.
const (
	writeBufferSize        = 16 << 10
	offlineWriteBufferSize = 256 << 10
)

// Errors.
var (
	// ErrNoMedia is returned by Finish and Recover when the file holds no complete frame:
	// there is nothing to store, and no playlist was stored.
	ErrNoMedia = format.ErrNoMedia
	// ErrNoJournal is returned by Recover when the work directory has no journal: nothing
	// was recorded there, or the file was already finished or recovered.
	ErrNoJournal = format.ErrNoJournal
	// ErrFinished is returned by calls on a Writer after a successful Finish.
	ErrFinished = format.ErrFinished
	// ErrNoTracks is returned by WriteAU before the first SetTracks.
	ErrNoTracks = format.ErrNoTracks
)

// Config configures a Writer.
type Config struct {
	// Name prefixes errors and log messages ("hls", "cmaf").
	Name string
	// Ext is the extension of the segment working files (".ts", ".m4s").
	Ext string
	// SliceDuration is the target segment length. A segment is cut at the first keyframe
	// at least this long after the segment's start.
	SliceDuration time.Duration
	// WorkDir is a private, existing, empty directory for this file's working data.
	WorkDir string
	// SegmentKey returns the object key (with extension) of segment seq (0, 1, ...) that
	// started at wall-clock time start.
	SegmentKey func(seq int, start time.Time) string
	// InitKey returns the object key of initialization segment n (0, 1, ...: one per track
	// set). Nil for formats without initialization segments (Muxer.Init is not called).
	InitKey func(n int) string
	// SegmentURI returns the URI of a stored object in the live playlist. Nil means the
	// key itself.
	SegmentURI func(key string) string
	// Store receives the finished objects and the final playlist.
	Store storage.Store
	// Now is the wall clock (segment start times). Nil means time.Now.
	Now func() time.Time
	// Logger receives warnings. Nil discards.
	Logger *slog.Logger
	// NoSync is for offline conversion: the input remains, so nothing is fsync'd (segments,
	// initialization segments, journal, playlists); a crash means rerun. The journal and
	// the live playlist are then rewritten in place, so a concurrent reader of the live
	// playlist may see it partial. The default (false) is durable: every complete segment
	// and every journal write is fsync'd, and rewrites are atomic.
	NoSync bool
	// Syncer, if set, runs what makes a finished segment durable off the caller's
	// goroutine: its fsync, then the store, live playlist and journal rewrites that list
	// it (each of them fsyncs too). A segment is stored and listed only once its data is
	// synced; until then the journal marks it unsynced. Nil: all of it happens inline, in
	// the WriteAU that closes the segment. Unused with NoSync.
	Syncer format.Syncer
	// Hold, if set, accounts the segment bytes kept in memory while the disk is full
	// (format.KeepWriter): the segment being written then is completed in memory and
	// written whole, stored and listed once space returns. Nil: a full disk fails the
	// write and the segment is dropped.
	Hold format.Hold
	// Resume, if set, is the StoredState of a file another writer began (on another node):
	// this writer continues it.
	Resume []byte
}

// Segment describes one segment of a recording file.
type Segment struct {
	Key           string        // object key
	Duration      time.Duration // media duration (the EXTINF value)
	Start         time.Time     // wall-clock time the segment's first unit was written
	Discontinuity bool          // preceded by #EXT-X-DISCONTINUITY
	Bytes         int64         // size of the segment object
	MapKey        string        // object key of its initialization segment (EXT-X-MAP), if any
}

// Result describes a finished (or recovered) recording file.
type Result struct {
	PlaylistKey   string    // object key of the VOD playlist
	Segments      []Segment // in playlist order
	Duration      time.Duration
	Bytes         int64     // segment, initialization segment and playlist bytes
	PlaylistBytes int64     // size of the playlist object
	Start         time.Time // wall start of the first segment
	End           time.Time // wall start of the last segment plus its duration
	Recovered     bool      // produced by Recover
}

// Kind indexes the tracks of a set.
type Kind int

// Track kinds.
const (
	Video Kind = 0
	Audio Kind = 1
)

// Set is one set of tracks, as declared by SetTracks, with the muxer's state for it.
type Set struct {
	Video, Audio *media.Track
	State        any // returned by Muxer.NewSet
}

// Lead is the kind whose units open segments and measure durations.
func (s *Set) Lead() Kind {
	if s.Video != nil {
		return Video
	}
	return Audio
}

// Track returns the track of kind k.
func (s *Set) Track(k Kind) *media.Track {
	if k == Video {
		return s.Video
	}
	return s.Audio
}

// End tells Muxer.End how the segment ends.
type End struct {
	// Next is the output time at which the next segment starts when the run continues
	// (the lead track's next unit), or -1 when the run ends (a resume follows, Finish).
	Next time.Duration
	// Frame is the duration of the last frame of each kind: the last DTS delta, else a
	// nominal value.
	Frame [2]time.Duration
}

// Muxer is the container-specific part of a segment writer. The Writer calls it with its
// lock held, from one goroutine at a time.
type Muxer interface {
	// NewSet checks that the container carries the tracks (after the common checks) and
	// returns its per-set state.
	NewSet(video, audio *media.Track) (any, error)
	// Init returns the initialization segment for s, which becomes active with the unit
	// au. It is called only when Config.InitKey is set, once per set, before Begin.
	Init(s *Set, au *media.AccessUnit) ([]byte, error)
	// Begin starts a segment in f. changed reports that s is not the set of the previous
	// segment (always true for the first segment).
	Begin(f *File, s *Set, changed bool) error
	// Write writes au into the open segment; out is its DTS on the output timeline (the
	// sum of the previous segments' durations plus its offset in the segment). au is
	// valid only during the call (format.Writer.WriteAU): the muxer copies what it keeps.
	Write(f *File, s *Set, k Kind, au *media.AccessUnit, out time.Duration) error
	// End writes what the muxer still holds for the segment.
	End(f *File, s *Set, e End) error
}

// BufferingMuxer is a Muxer that buffers its output itself and hands File.Write pieces
// of several KiB (and all it holds by the end of End): its segment files get no
// bufio.Writer, so a recorded stream has one write buffer instead of two.
type BufferingMuxer interface {
	Muxer
	BuffersOutput()
}

// File is the working file of the open segment: buffered (unless the muxer buffers),
// counting, keeping in memory what a full disk refuses.
type File struct {
	f  *os.File
	kw *format.KeepWriter // f, or memory while the disk is full
	bw *bufio.Writer      // over kw; nil for a BufferingMuxer
	n  int64
}

// Write appends p to the segment.
func (f *File) Write(p []byte) (n int, err error) {
	if f.bw != nil {
		n, err = f.bw.Write(p)
	} else {
		n, err = f.kw.Write(p)
	}
	f.n += int64(n)
	return n, err
}

// WriteBuffers appends bufs, in order, in one writev(2) where it can (after what is
// buffered).
func (f *File) WriteBuffers(bufs [][]byte) error {
	if err := f.Flush(); err != nil {
		return err
	}
	err := f.kw.WriteBuffers(bufs)
	if err == nil {
		for _, b := range bufs {
			f.n += int64(len(b))
		}
	}
	return err
}

// Flush hands the buffered bytes to the operating system (no fsync).
func (f *File) Flush() error {
	if f.bw == nil {
		return nil
	}
	return f.bw.Flush()
}

// Size returns the bytes written so far.
func (f *File) Size() int64 { return f.n }

// segState is a closed segment: complete on disk and either stored or waiting for a
// (retried) store.
type segState struct {
	Segment
	seq    int
	file   string // base name in WorkDir
	stored bool
	// unsynced: closed, its fsync handed to Config.Syncer and not done yet; it is not
	// stored before.
	unsynced bool
}

// mapState is an initialization segment.
type mapState struct {
	n      int
	key    string
	file   string
	bytes  int64
	stored bool
	// unsynced: written, its fsync handed to Config.Syncer and not done yet; it is not
	// stored (nor the segments using it listed) until it is.
	unsynced bool
}

// openSeg is the segment being written.
type openSeg struct {
	segState
	f        *File
	firstDTS time.Duration // input DTS of the unit that opened the segment
	cts0     time.Duration // PTS−DTS of the lead unit that opened it
	outStart time.Duration // output time of firstDTS
	runStart bool          // first segment of a continuous run
	whole    int64         // bytes of the file synced whole at a pause (journaled)
	// per kind: last input DTS written, and the delta to the one before
	last   [2]time.Duration
	delta  [2]time.Duration
	count  [2]int
	maxPTS [2]time.Duration // latest input PTS written
}

// Writer is the format-independent part of a segmented recording file: track sets,
// segmenting, timeline, journal, storing, live and VOD playlists. Its methods are safe
// for concurrent use.
type Writer struct {
	mu  sync.Mutex
	cfg Config
	log *slog.Logger
	mux Muxer
	bw  *bufio.Writer // the open segment's buffer, reused by the next one

	active  *Set // the set the open segment uses, or the next one will
	pending *Set // a changed set, taking effect at the next segment
	retired *Set // the set before the last change: its late units are dropped
	muxSet  *Set // the set of the open (or last) segment

	maps []*mapState
	segs []*segState // closed segments
	// held are the closed segments (in order) whose bytes a full disk refused: complete
	// in memory, written, synced and stored by drainHeld once space returns.
	held        []heldSeg
	heldTried   time.Time
	cur         *openSeg
	nextSeq     int
	pendingDisc bool          // Discontinuity() called: the next segment starts a new run
	resumeAudio int8          // after a resume: 0 undecided, 1 audio goes on in the open segment, -1 it waits
	doneDur     time.Duration // sum of the closed segments' durations
	liveStored  int           // segments listed in live.m3u8
	// early is the audio of a resumed publish that arrived before its keyframe while no
	// segment was open (EndRun closed the run): it opens the new run with that keyframe.
	early    []media.AccessUnit
	finished bool
	gate     format.Gate

	// With Config.Syncer: ioMu serializes the store/playlist/journal rewrites that run
	// on the syncer (persist), whose I/O happens without mu; ioQueued says one is queued;
	// syncs counts the syncer's jobs not done.
	ioMu     sync.Mutex
	ioQueued bool
	syncs    sync.WaitGroup
}

// New validates cfg and returns a Writer using m. Nothing is written until the first
// access unit that can open a segment.
func New(cfg Config, m Muxer) (*Writer, error) {
	if cfg.SliceDuration <= 0 {
		return nil, cfg.errorf("SliceDuration must be positive")
	}
	if cfg.SegmentKey == nil {
		return nil, cfg.errorf("SegmentKey is required")
	}
	if cfg.Store == nil {
		return nil, cfg.errorf("Store is required")
	}
	if err := journalfile.CheckWorkDir(cfg.WorkDir, journalName); err != nil {
		return nil, cfg.errorf("%w", err)
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
	log = log.With("format", cfg.Name)
	w := &Writer{cfg: cfg, log: log, mux: m, gate: format.Gate{Log: log, RunTimelines: true}}
	if cfg.Resume != nil {
		if err := w.resume(cfg.Resume); err != nil {
			return nil, err
		}
	}
	return w, nil
}

func (c *Config) errorf(format string, args ...any) error {
	return fmt.Errorf(c.Name+": "+format, args...)
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
	if video == nil && audio == nil {
		return w.cfg.errorf("no tracks")
	}
	if err := checkTracks(video, audio); err != nil {
		return w.cfg.errorf("%w", err)
	}
	switch {
	case w.active != nil && w.active.Video.SameParams(video) && w.active.Audio.SameParams(audio):
		// Same parameters: keep the muxer state, adopt the new pointers, cancel any change.
		w.active.Video, w.active.Audio = video, audio
		w.pending = nil
		return nil
	}
	state, err := w.mux.NewSet(video, audio)
	if err != nil {
		return err
	}
	set := &Set{Video: video, Audio: audio, State: state}
	if w.active == nil {
		w.active = set
	} else {
		w.pending = set
	}
	return nil
}

// checkTracks runs the checks common to every format.
func checkTracks(video, audio *media.Track) error {
	if video != nil {
		switch video.Codec {
		case media.H264:
			if len(video.SPS) == 0 || len(video.PPS) == 0 {
				return errors.New("H.264 track without SPS/PPS")
			}
		case media.H265:
			if len(video.VPS) == 0 || len(video.SPS) == 0 || len(video.PPS) == 0 {
				return errors.New("H.265 track without VPS/SPS/PPS")
			}
		case media.MPEG4Video:
		default:
			return fmt.Errorf("unsupported video codec %q", video.Codec)
		}
	}
	if audio != nil && audio.Codec != media.AAC && audio.Codec != media.MP3 {
		return fmt.Errorf("unsupported audio codec %q", audio.Codec)
	}
	return nil
}

// Discontinuity marks a stitched resume: the next unit that can open a segment starts a
// new segment marked #EXT-X-DISCONTINUITY. Until a video keyframe arrives, video units are
// dropped; audio goes on in the segment still open if it continues that segment's
// timeline (the recording task's repaired timestamps do), else it waits for the keyframe
// too. Audio-only streams resume at once. Input timestamps may restart: the new run is
// appended to the output timeline without a gap.
func (w *Writer) Discontinuity() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur != nil || len(w.segs) > 0 {
		w.pendingDisc = true
		w.resumeAudio = 0
	}
	w.gate.Resume()
}

// EndRun ends the open segment now, as the end of a run: it is completed, stored and
// listed in the live playlist, so a player following it gets everything received so far
// while the input pauses (the stitch window of a publish that ended). A resume opens a new
// run (Discontinuity) at its first keyframe; its audio received before that keyframe is
// held and opens the run with it, so a stitch loses no sound.
func (w *Writer) EndRun() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished || w.cur == nil {
		return nil
	}
	err := w.closeCurrent(-1, false, false)
	w.pendingDisc = true
	_ = w.drainHeld(false) // a full disk: they are written at the next unit or Finish
	w.saveState()
	return err
}

// Pause implements format.Pauser: the publish ended, the run ends (EndRun). With a
// Syncer, sync waits until every segment closed so far is synced, stored and journaled;
// without one that happened in EndRun.
func (w *Writer) Pause() func() error {
	if err := w.EndRun(); err != nil {
		w.log.Error("ending the segment at pause", "err", err)
	}
	if !w.async() {
		return nil
	}
	return func() error { w.syncs.Wait(); return nil }
}

// async reports whether finished segments are synced on Config.Syncer.
func (w *Writer) async() bool { return w.cfg.Syncer != nil && !w.cfg.NoSync }

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

// WriteAU writes one access unit. Units that cannot be written (before the first
// keyframe, video after a resume until a keyframe and audio that does not continue the
// open segment, empty units, DTS going backwards) are dropped and logged, not reported.
// Errors are returned for misuse (no SetTracks, a unit of an unknown track) and I/O
// failures. A segment whose key another object holds is stored under the next free key
// (storage.StoreUnique), and listed under it.
func (w *Writer) WriteAU(au *media.AccessUnit) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return ErrFinished
	}
	if au == nil {
		return w.cfg.errorf("nil access unit")
	}
	if w.active == nil {
		return ErrNoTracks
	}
	if au.Track == nil {
		return w.cfg.errorf("access unit without track")
	}
	if len(w.held) > 0 && time.Since(w.heldTried) >= heldRetry {
		w.heldTried = time.Now()
		_ = w.drainHeld(false) // still full: they stay held, the unit is written below
	}
	set, kind, ok := w.lookup(au.Track)
	if !ok && w.retired != nil && (au.Track == w.retired.Video || au.Track == w.retired.Audio) {
		w.gate.Wait(au, "unit of a replaced track")
		return nil
	}
	if !ok {
		return w.cfg.errorf("access unit of a track (%s) not declared with SetTracks", au.Track.Codec)
	}
	// The set that decides where a segment may open: the pending one if a change waits.
	eff := w.active
	if w.pending != nil {
		eff = w.pending
	}
	if ok, _ := w.gate.Admit(au, eff.Video != nil); !ok {
		return nil
	}
	canOpen := set == eff && format.CanStart(au, eff.Video != nil)

	switch {
	case w.cur == nil || w.pendingDisc || w.pending != nil:
		// Waiting for a unit that opens a segment.
		if canOpen {
			if err := w.openSegment(au); err != nil {
				return err
			}
			break
		}
		// Not the gate's: the gate knows nothing of segments and track sets. The open
		// segment goes on until a unit opens the next one, with the units its muxer
		// carries: during a track change the old set's units and audio of unchanged
		// parameters; after a resume only audio that continues it.
		if w.cur == nil {
			if w.pendingDisc && kind == Audio && set == eff && len(w.early) < maxEarly {
				// A resume after EndRun (see openSegment); the unit is lent (WriteAU).
				w.early = append(w.early, au.Clone())
				return nil
			}
			w.gate.Wait(au, "waiting for a keyframe")
			return nil
		}
		if set != w.active {
			if kind != Audio || !au.Track.SameParams(w.active.Audio) {
				w.gate.Wait(au, "track changed, waiting for a keyframe")
				return nil
			}
			set = w.active
		}
		if w.pendingDisc && (kind == Video || !w.audioContinues(au)) {
			w.gate.Wait(au, "waiting for a keyframe")
			return nil
		}
	default:
		if canOpen && au.DTS-w.cur.firstDTS >= w.cfg.SliceDuration {
			if err := w.openSegment(au); err != nil {
				return err
			}
		}
	}

	if err := w.write(set, kind, au); err != nil {
		return err
	}
	// The resumed publish's audio that came before this keyframe (its run starts there).
	early := w.early
	w.early = w.early[:0]
	for i := range early {
		if err := w.write(w.muxSet, Audio, &early[i]); err != nil {
			return err
		}
	}
	return nil
}

// heldRetry is how often WriteAU tries to write the held segments while the disk is full.
const heldRetry = 250 * time.Millisecond

// maxEarly bounds the audio held for a run's first keyframe (about 6 s of AAC).
const maxEarly = 256

// write muxes an admitted unit into the open segment.
func (w *Writer) write(set *Set, kind Kind, au *media.AccessUnit) error {
	cur := w.cur
	if cur.runStart && au.DTS < cur.firstDTS {
		// Not the gate's: each run has its own timeline, which starts at the unit that
		// opened it; audio decoded before that picture is not part of the file.
		w.gate.Wait(au, "before the opening keyframe")
		return nil
	}
	out := cur.outStart + (au.DTS - cur.firstDTS)
	if err := w.mux.Write(cur.f, set, kind, au, out); err != nil {
		w.dropCurrent()
		return w.cfg.errorf("write segment %d: %w", cur.seq, err)
	}
	if cur.count[kind] > 0 {
		cur.delta[kind] = au.DTS - cur.last[kind]
	}
	cur.last[kind] = au.DTS
	cur.maxPTS[kind] = max(cur.maxPTS[kind], au.PTS)
	cur.count[kind]++
	w.gate.Wrote(au)
	return nil
}

// audioContinues decides, at the first audio unit after a resume, whether the audio until
// the new run's keyframe goes on in the open segment: if it lands after every unit the
// segment holds, within media.MaxJump (the recording task's repaired timestamps place a
// resume right after the previous publish). Restarted input timestamps fail the test, and
// the audio waits for the new run, whose timeline is its own. The decision holds until
// the new run opens, so the segment never gets part of the audio and then a gap.
func (w *Writer) audioContinues(au *media.AccessUnit) bool {
	if w.resumeAudio == 0 {
		c, end := w.cur, w.cur.firstDTS
		for k := range c.last {
			if c.count[k] > 0 {
				end = max(end, c.last[k])
			}
		}
		w.resumeAudio = -1
		if au.DTS >= end && au.DTS-end <= media.MaxJump {
			w.resumeAudio = 1
		}
	}
	return w.resumeAudio > 0
}

// lookup finds the set and kind au's track belongs to: by pointer, else by value against
// the active set (a unit whose track was re-announced with equal parameters).
func (w *Writer) lookup(t *media.Track) (*Set, Kind, bool) {
	for _, s := range []*Set{w.active, w.pending} {
		if s == nil {
			continue
		}
		if t == s.Video {
			return s, Video, true
		}
		if t == s.Audio {
			return s, Audio, true
		}
	}
	if w.active.Video != nil && t.SameParams(w.active.Video) {
		return w.active, Video, true
	}
	if w.active.Audio != nil && t.SameParams(w.active.Audio) {
		return w.active, Audio, true
	}
	return nil, 0, false
}

// curDuration returns the duration of the open segment: next−first if nextFirst is a
// usable continuation (continuous run), else last−first plus one frame of the lead track.
// cont reports which one it is.
func (w *Writer) curDuration(nextFirst time.Duration, continuous bool) time.Duration {
	d, _ := w.curDurationCont(nextFirst, continuous)
	return d
}

func (w *Writer) curDurationCont(nextFirst time.Duration, continuous bool) (time.Duration, bool) {
	c := w.cur
	k := w.muxSet.Lead()
	if c.count[k] == 0 {
		// Cannot happen (the segment was opened by a lead unit); be defensive.
		k = 1 - k
	}
	last := c.last[k]
	if continuous && nextFirst > c.firstDTS && nextFirst >= last {
		return nextFirst - c.firstDTS, true
	}
	d := last - c.firstDTS + w.frameDuration(k)
	// A run cut inside a group of pictures (media dropped on a full disk) may end with a
	// picture presented after the pictures that were not written: the segment lasts
	// until it is shown, so the next run's pictures come after it.
	if p := c.maxPTS[k] - c.cts0 - c.firstDTS + w.frameDuration(k); p > d {
		d = p
	}
	// The end of a run (a resume follows, or the file ends): the segment lasts until the
	// end of its last frame of either track, so that the next run's timeline starts after
	// every unit written here (audio usually ends a little after the last picture).
	if o := 1 - k; c.count[o] > 0 {
		d = max(d, c.last[o]-c.firstDTS+w.frameDuration(o))
	}
	if d <= 0 {
		d = time.Millisecond
	}
	return d, false
}

// frameDuration estimates one frame of kind k: the last DTS delta, else the nominal one.
func (w *Writer) frameDuration(k Kind) time.Duration {
	if d := w.cur.delta[k]; d > 0 {
		return d
	}
	return NominalFrame(w.muxSet.Track(k))
}

// NominalFrame is the nominal frame duration of t: from the frame rate (video) or the
// sample rate (audio), else a default (40 ms video, 20 ms audio).
func NominalFrame(t *media.Track) time.Duration {
	if t == nil {
		return 20 * time.Millisecond
	}
	if t.Codec.IsVideo() {
		if t.FrameRate > 0 {
			return time.Duration(float64(time.Second) / t.FrameRate)
		}
		return 40 * time.Millisecond
	}
	if t.SampleRate > 0 {
		samples := 1024
		if t.Codec == media.MP3 {
			samples = 1152
		}
		return time.Duration(samples) * time.Second / time.Duration(t.SampleRate)
	}
	return 20 * time.Millisecond
}

// endInfo describes how the open segment ends, for Muxer.End.
func (w *Writer) endInfo(next time.Duration) End {
	return End{Next: next, Frame: [2]time.Duration{w.frameDuration(Video), w.frameDuration(Audio)}}
}

// closeCurrent completes the open segment: its duration, flush, fsync, close; with a
// Syncer (and not inline) the fsync and close are handed to it. A segment that could not
// be written whole (a full disk) is dropped: it is never stored nor listed, and the next
// segment starts a new run marked as a discontinuity.
func (w *Writer) closeCurrent(nextFirst time.Duration, continuous, inline bool) error {
	c := w.cur
	d, cont := w.curDurationCont(nextFirst, continuous)
	c.Duration = d
	next := time.Duration(-1)
	if cont {
		next = c.outStart + d
	}
	err := w.mux.End(c.f, w.muxSet, w.endInfo(next))
	if err == nil {
		err = c.f.Flush()
	}
	// Kept in memory by a full disk, or after a segment that is: written in order later.
	held := err == nil && (len(w.held) > 0 || c.f.kw.Holding() && c.f.kw.Flush() != nil)
	later := err == nil && (held || w.async() && !inline)
	if err == nil && !w.cfg.NoSync && !later {
		err = syncFile(c.f.f)
	}
	if !later {
		if cerr := c.f.f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		if later {
			_ = c.f.f.Close()
		}
		w.discard(c)
		return w.cfg.errorf("complete segment %d (dropped): %w", c.seq, err)
	}
	c.Bytes = c.f.n
	w.doneDur += c.Duration
	seg := c.segState
	s := &seg
	w.segs = append(w.segs, s)
	w.cur = nil
	switch {
	case held:
		s.unsynced = true
		w.held = append(w.held, heldSeg{s, c.f})
		w.log.Warn("disk full: segment kept in memory until space returns", "segment", c.seq, "kept_bytes", c.f.kw.Kept())
	case later:
		w.syncLater(s, c.f.f)
	}
	return nil
}

// syncLater hands the fsync and close of closed segment s, complete in f, to the Syncer.
func (w *Writer) syncLater(s *segState, f *os.File) {
	s.unsynced = true
	w.syncs.Add(1)
	w.cfg.Syncer.Go(s.Bytes, func() error {
		err := syncFile(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		w.synced(s, err)
		return err
	})
}

// heldSeg is a closed segment whose bytes are (partly) in memory.
type heldSeg struct {
	s *segState
	f *File
}

// drainHeld writes the held segments in order, as far as the disk takes them, then
// completes each written one as closeCurrent does (synced, stored, listed): with the
// Syncer unless inline. It reports the disk's error when a segment stays held. Called
// with mu held.
func (w *Writer) drainHeld(inline bool) error {
	done := false
	defer func() {
		if done {
			w.saveState()
		}
	}()
	for len(w.held) > 0 {
		h := w.held[0]
		if err := h.f.kw.Flush(); err != nil {
			return w.cfg.errorf("segment %d kept in memory (%d bytes): %w", h.s.seq, h.f.kw.Kept(), err)
		}
		w.held = w.held[1:]
		w.log.Info("disk space back: kept segment written", "segment", h.s.seq)
		if w.async() && !inline {
			w.syncLater(h.s, h.f.f)
			continue
		}
		var err error
		if !w.cfg.NoSync {
			err = syncFile(h.f.f)
		}
		if cerr := h.f.f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			w.dropClosed(h.s, err)
		} else {
			h.s.unsynced = false
		}
		done = true
	}
	return nil
}

// WriteKept implements format.Keeper: the held segments, then the open one.
func (w *Writer) WriteKept() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.drainHeld(false); err != nil {
		return err
	}
	if w.cur != nil {
		return w.cur.f.kw.Flush()
	}
	return nil
}

// dropHeld gives up the held segments (the writer is closed or abandoned on a full
// disk): their files stay as far as they were written, and recovery drops them.
func (w *Writer) dropHeld() {
	for _, h := range w.held {
		h.f.kw.Drop()
		_ = h.f.f.Close()
	}
	w.held = nil
}

// synced ends the sync of closed segment s (on the syncer): it can be stored, or, if the
// sync failed, it is dropped like a segment not written whole.
func (w *Writer) synced(s *segState, err error) {
	defer w.syncs.Done()
	w.mu.Lock()
	if err == nil {
		s.unsynced = false
	} else {
		w.dropClosed(s, err)
	}
	w.mu.Unlock()
	w.persist()
}

// dropClosed removes closed segment s, whose sync failed, from the file: the segment
// after it (or the next one to open) is marked as a discontinuity.
func (w *Writer) dropClosed(s *segState, err error) {
	for i, x := range w.segs {
		if x != s {
			continue
		}
		w.segs = append(w.segs[:i], w.segs[i+1:]...)
		switch {
		case i < len(w.segs):
			w.segs[i].Discontinuity = true
		case w.cur != nil:
			w.cur.Discontinuity = true
		default:
			w.pendingDisc = true
		}
		break // the segments after i moved
	}
	_ = os.Remove(filepath.Join(w.cfg.WorkDir, s.file))
	w.log.Warn("segment sync failed, dropped", "segment", s.seq, "err", err)
}

// dropCurrent gives up the open segment after a failed write: what the muxer still
// holds for it is drained (into the failing file, errors ignored) so the next segment
// starts clean, and the segment is discarded.
func (w *Writer) dropCurrent() {
	c := w.cur
	_ = w.mux.End(c.f, w.muxSet, w.endInfo(-1))
	_ = c.f.f.Close()
	w.discard(c)
}

// discard removes the closed file of segment c, which was not written whole, and
// journals that it is gone; media resumes at the next unit that opens a segment.
func (w *Writer) discard(c *openSeg) {
	c.f.kw.Drop()
	_ = os.Remove(filepath.Join(w.cfg.WorkDir, c.file))
	w.cur = nil
	w.pendingDisc = len(w.segs) > 0
	w.log.Warn("segment not written whole, dropped", "segment", c.seq)
	w.saveState()
}

// openSegment closes the current segment (if any), opens the next one starting with au,
// stores what is pending and rewrites the journal and live playlist. An error is fatal
// for this unit.
func (w *Writer) openSegment(au *media.AccessUnit) error {
	newRun := w.cur == nil || w.pendingDisc
	disc := len(w.segs) > 0 || w.cur != nil
	disc = disc && (w.pendingDisc || w.pending != nil || w.muxSet != w.active)
	if w.cur != nil {
		if err := w.closeCurrent(au.DTS, !w.pendingDisc, false); err != nil {
			return err
		}
	}
	if w.pending != nil {
		w.retired, w.active, w.pending = w.active, w.pending, nil
	}
	changed := w.muxSet != w.active
	if changed && w.cfg.InitKey != nil {
		if err := w.newInit(au); err != nil {
			// The media until the next segment opens is lost: mark the gap.
			w.pendingDisc = len(w.segs) > 0
			return err
		}
	}

	seq := w.nextSeq
	start := w.cfg.Now()
	key := w.cfg.SegmentKey(seq, start)
	file := fmt.Sprintf("seg%06d%s", seq, w.cfg.Ext)
	f, err := os.OpenFile(filepath.Join(w.cfg.WorkDir, file), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		w.pendingDisc = len(w.segs) > 0
		return w.cfg.errorf("create segment: %w", err)
	}
	w.nextSeq++
	// A run whose audio came ahead of its keyframe starts with that audio: the segment's
	// timeline begins at the earliest unit, and the keyframe follows a little into it.
	firstDTS := au.DTS
	if newRun {
		for i := range w.early {
			firstDTS = min(firstDTS, w.early[i].DTS)
		}
	} else {
		w.early = w.early[:0]
	}
	c := &openSeg{
		segState: segState{
			Segment: Segment{Key: key, Start: start, Discontinuity: disc},
			seq:     seq,
			file:    file,
		},
		f:        &File{f: f, kw: &format.KeepWriter{F: f, Hold: w.cfg.Hold}},
		firstDTS: firstDTS,
		cts0:     au.PTS - au.DTS,
		outStart: w.doneDur,
		runStart: newRun,
	}
	if len(w.maps) > 0 {
		c.MapKey = w.maps[len(w.maps)-1].key
	}
	if _, ok := w.mux.(BufferingMuxer); !ok {
		c.f.bw = w.bufferFor(c.f.kw)
	}
	w.cur = c
	w.pendingDisc = false
	w.muxSet = w.active
	if err := w.mux.Begin(c.f, w.active, changed); err != nil {
		return w.cfg.errorf("begin segment: %w", err)
	}

	w.saveState()
	return nil
}

// newInit writes the initialization segment of the active set. With a Syncer its fsync
// runs there (the connection never waits for the disk), and it is stored once synced.
func (w *Writer) newInit(au *media.AccessUnit) error {
	b, err := w.mux.Init(w.active, au)
	if err != nil {
		return w.cfg.errorf("initialization segment: %w", err)
	}
	n := len(w.maps)
	m := &mapState{n: n, key: w.cfg.InitKey(n), file: fmt.Sprintf("init%03d%s", n, w.cfg.Ext), bytes: int64(len(b))}
	var sync func() error
	if !w.async() {
		err = atomicWrite(w.cfg.WorkDir, m.file, b, true, w.cfg.NoSync)
	} else if sync, err = journalfile.WriteFileLater(w.cfg.WorkDir, m.file, b); err == nil {
		m.unsynced = true
		w.syncs.Add(1)
		w.cfg.Syncer.Go(m.bytes, func() error {
			defer w.syncs.Done()
			err := sync()
			w.mu.Lock()
			if err == nil {
				m.unsynced = false
			} else {
				w.log.Error("initialization segment sync failed: it is synced again when the file is finished", "err", err)
			}
			w.mu.Unlock()
			w.persist()
			return err
		})
	}
	if err != nil {
		return w.cfg.errorf("initialization segment: %w", err)
	}
	w.maps = append(w.maps, m)
	return nil
}

// Finish closes and stores the current segment, stores every object still waiting, then
// stores the final VOD playlist (#EXT-X-PLAYLIST-TYPE:VOD ... #EXT-X-ENDLIST, URIs
// relative to the playlist's directory) under playlistKey, and removes the working files.
// If storing fails, the error is returned and Finish may be called again (the working
// files are kept). ErrNoMedia means no complete frame was ever written; nothing is stored
// and the working files are removed.
func (w *Writer) Finish(ctx context.Context, playlistKey string) (Result, error) {
	// The syncer's jobs end with mu: wait for them first. Nothing closes a segment
	// meanwhile (the caller no longer writes), and the last one is synced inline.
	w.syncs.Wait()
	w.ioMu.Lock()
	defer w.ioMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return Result{}, ErrFinished
	}
	if w.cur != nil {
		if err := w.closeCurrent(-1, false, true); err != nil {
			_ = w.writeJournal("")
			return Result{}, err
		}
	}
	if err := w.drainHeld(true); err != nil {
		return Result{}, err // a full disk: the finalizer tries again
	}
	if len(w.segs) == 0 {
		w.finished = true
		removeWorkFiles(w.cfg.WorkDir, nil, w.maps, "")
		return Result{}, ErrNoMedia
	}
	for _, m := range w.maps {
		if m.unsynced { // its sync failed: once more, inline
			if !syncWhole(filepath.Join(w.cfg.WorkDir, m.file), m.bytes) {
				return Result{}, w.cfg.errorf("initialization segment %s: sync failed", m.file)
			}
			m.unsynced = false
		}
	}
	fin := finalizer{name: w.cfg.Name, st: w.cfg.Store, dir: w.cfg.WorkDir, log: w.log, noSync: w.cfg.NoSync,
		journal: func() error { return w.writeJournal(playlistKey) }}
	res, err := fin.run(ctx, w.segs, w.maps, playlistKey)
	if err != nil {
		return Result{}, err
	}
	w.finished = true
	return res, nil
}

// Close abandons the writer without finishing: it ends and flushes the open segment file
// but stores nothing and keeps the working directory, which Recover can turn into a stored
// file later. Use it when the process must stop without storing.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dropHeld()
	if w.cur == nil {
		return nil
	}
	err := w.mux.End(w.cur.f, w.muxSet, w.endInfo(-1))
	if err == nil {
		err = w.cur.f.Flush()
	}
	w.cur.f.kw.Drop()
	if cerr := w.cur.f.f.Close(); err == nil {
		err = cerr
	}
	w.cur = nil
	w.finished = true
	w.bw = nil
	return err
}

// bufferFor returns the writer's bufio.Writer, reset to write into f.
func (w *Writer) bufferFor(f io.Writer) *bufio.Writer {
	if w.bw == nil {
		size := writeBufferSize
		if w.cfg.NoSync {
			size = offlineWriteBufferSize
		}
		w.bw = bufio.NewWriterSize(f, size)
	} else {
		w.bw.Reset(f)
	}
	return w.bw
}

// Abandon drops the writer as a crash would: the open segment file is closed without
// writing what is still buffered in the process. Recover can then finalize the work
// directory. It exists for crash tests.
func (w *Writer) Abandon() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dropHeld()
	if w.cur != nil {
		w.cur.f.kw.Drop()
		_ = w.cur.f.f.Close()
		w.cur = nil
	}
	w.finished = true
}

// AACConfig returns the AudioSpecificConfig of an AAC track: parsed from AudioConfig,
// else an AAC-LC configuration built from SampleRate and Channels.
func AACConfig(t *media.Track) (mpeg4audio.AudioSpecificConfig, error) {
	var cfg mpeg4audio.AudioSpecificConfig
	err := cfg.Unmarshal(t.AudioConfig)
	if err == nil {
		return cfg, nil
	}
	if t.SampleRate <= 0 || t.Channels <= 0 {
		return cfg, fmt.Errorf("AAC track without a usable AudioSpecificConfig: %w", err)
	}
	cfg = mpeg4audio.AudioSpecificConfig{
		Type:          mpeg4audio.ObjectTypeAACLC,
		SampleRate:    t.SampleRate,
		ChannelConfig: uint8(t.Channels),
	}
	if t.Channels == 8 {
		cfg.ChannelConfig = 7
	}
	return cfg, nil
}
