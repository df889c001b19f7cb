package mp4

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	journalfile "github.com/livrec/livrec/internal/format/journal"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/format/moof"
	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/storage"
)

// Names of the files in Config.WorkDir.
const (
	workName    = "recording.fmp4" // fragmented working file
	journalName = "journal.json"
	outName     = "output.mp4" // the progressive file, until it is stored
	tmpSuffix   = ".tmp"
)

// fragmentDuration bounds a working-file fragment: at most this much media is held in
// memory (plus one sample per track) before it is written to the OS. At 1000 × 1.5
// Mbit/s, with the arenas in pooled chunks (a stream holds its current fill, about
// half of this on average), 500 ms fragments cost 201 KiB RSS per stream and 0.061 CPU
// s per stream-minute; 250 ms fragments in arenas of their own cost 194 KiB and 0.072
// (twice the moofs and writes). Shorter fragments cost their moof in the file (under
// 1 %) and a 24-byte chunk record per track in memory; the progressive file's chunks
// follow them, one per track and fragment.
const fragmentDuration = 500 * time.Millisecond

// videoTimescale is the media timescale of video tracks (audio uses its sample rate).
const videoTimescale = 90000

// Errors.
var (
	// ErrNoMedia is returned by Finish and Recover when nothing was recorded (no video
	// keyframe, or no audio frame for audio-only files): nothing is stored.
	ErrNoMedia = format.ErrNoMedia
	// ErrNoJournal is returned by Recover when the work directory holds no journal:
	// nothing was recorded there, or the file was already finished or recovered.
	ErrNoJournal = format.ErrNoJournal
	// ErrFinished is returned by calls on a Writer after Finish succeeded.
	ErrFinished = format.ErrFinished
	// ErrNoTracks is returned by WriteAU before the first SetTracks.
	ErrNoTracks = format.ErrNoTracks
)

// Config configures a Writer.
type Config struct {
	// WorkDir is a private, existing directory for this file's working data (the
	// fragmented working file, the journal and the progressive file before it is stored).
	WorkDir string
	// Store receives the finished file.
	Store storage.Store
	// Now is the wall clock (the file's start time). Nil means time.Now.
	Now func() time.Time
	// Logger receives warnings (dropped units). Nil discards.
	Logger *slog.Logger
	// NoSync is for offline conversion: the input remains, so nothing is fsync'd (working
	// file, journal, final file); a crash means rerun. Default: durable.
	NoSync bool
	// Hold, if set, accounts the fragments kept in memory while the disk is full
	// (format.KeepWriter): the fragment being written then is written whole once space
	// returns. Nil: a full disk fails the write and the file ends at the last fragment.
	Hold format.Hold
	// Syncer, if set, runs the fsyncs of the file's start (the working file's init
	// segment, the journal, their directory) off the caller's goroutine. Nil: inline.
	// Unused with NoSync.
	Syncer format.Syncer
}

// trackState is a track being written.
type trackState struct {
	video     bool
	id        int
	ti        int // index into Writer.idx.tracks
	timescale uint32
	defDur    int64 // duration of a lone last sample (ticks)

	// The held-back sample: its duration is known when the next one arrives.
	held    bool
	heldDTS int64 // ticks from the origin
	heldCTS int64
	heldKey bool
	heldLen int // its payload, at the end of arena

	// arena holds the payloads of frag and then of the held sample, in order: the
	// track's part of the fragment's mdat is arena up to the held sample, written from
	// here (no copy into a fragment buffer), in chunks from a pool of the process.
	arena format.Arena

	any       bool          // a sample was accepted
	lastDTS   time.Duration // input DTS of the newest sample
	lastDelta int64         // ticks between the two newest samples (0: unknown)

	frag     []moof.Sample // complete samples waiting for the next fragment
	fragBase int64         // decode time of frag[0]
}

// journal is the sidecar that makes a working file recoverable.
type journal struct {
	Version int       `json:"version"`
	Start   time.Time `json:"start"`         // wall time of the first sample
	Key     string    `json:"key,omitempty"` // set by Finish (and Recover) before storing
}

const journalVersion = 1

// Writer writes one progressive MP4 recording. It implements format.Writer. Its methods
// are safe for concurrent use; the recording task drives it from one goroutine, and
// Duration may be called from others.
type Writer struct {
	mu  sync.Mutex
	cfg Config
	log *slog.Logger

	video, audio *media.Track // declared
	vs, as       *trackState  // set when the file starts
	tracks       []*trackState

	started bool
	origin  time.Duration // input DTS of the file's first sample (decode time 0)
	p0      time.Duration // input PTS of the first picture (audio-only: first DTS)
	start   time.Time
	gate    format.Gate

	f          *os.File
	kw         *format.KeepWriter // f, or memory while the disk is full
	off        int64              // working file size
	seq        uint32
	idx        index
	frag       []byte        // moof and mdat header of the fragment being written (reused)
	moofTracks []moof.Track  // reused by marshalFragment
	bufs       [][]byte      // the pieces of the fragment being written (reused)
	fragAt     time.Duration // input DTS of the first unit since the last fragment
	inMemory   bool          // a unit arrived since the last fragment

	writeErr     error // a failed fragment write: the file ends at the last good fragment
	finalFlushed bool
	finished     bool
}

var _ format.Writer = (*Writer)(nil)

// New validates cfg and returns a Writer. Nothing is written until the first access unit
// that can start the file.
func New(cfg Config) (*Writer, error) {
	if cfg.Store == nil {
		return nil, errors.New("mp4: Store is required")
	}
	if err := journalfile.CheckWorkDir(cfg.WorkDir, journalName); err != nil {
		return nil, fmt.Errorf("mp4: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Writer{cfg: cfg, log: log, gate: format.Gate{Log: log}}, nil
}

// SetTracks declares the tracks (either may be nil, not both). Before any media was
// written a call replaces the declaration. Afterwards a call with identical parameters
// only adopts the new *Track values, and a call with different parameters (or a
// different track set) returns format.ErrNeedNewFile and changes nothing: an MP4 file
// has one sample description per track.
func (w *Writer) SetTracks(video, audio *media.Track) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return ErrFinished
	}
	if video == nil && audio == nil {
		return errors.New("mp4: SetTracks without tracks")
	}
	if video != nil && !video.Codec.IsVideo() || audio != nil && (audio.Codec != media.AAC && audio.Codec != media.MP3) {
		return fmt.Errorf("mp4: unsupported track set (%v, %v)", codecOf(video), codecOf(audio))
	}
	if w.started {
		if !w.video.SameParams(video) || !w.audio.SameParams(audio) {
			return format.ErrNeedNewFile
		}
		w.video, w.audio = video, audio
		return nil
	}
	// Validate now, so that a bad declaration is reported here and not at the first unit.
	for _, t := range []*media.Track{video, audio} {
		if t == nil {
			continue
		}
		if _, _, err := mp4Codec(t, nil); err != nil {
			return err
		}
	}
	w.video, w.audio = video, audio
	return nil
}

func codecOf(t *media.Track) media.Codec {
	if t == nil {
		return ""
	}
	return t.Codec
}

// Discontinuity marks a stitched resume. The timeline continues without a gap (the
// task's repaired timestamps do); video resumes at the next keyframe.
func (w *Writer) Discontinuity() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gate.Resume()
}

// Pause implements format.Pauser: the samples held in memory (up to a fragment, the
// newest of each track included, with the previous sample spacing as its duration) are
// written as a fragment, and sync fsyncs the working file. After a resume the next
// fragment starts at the next sample's own decode time.
func (w *Writer) Pause() func() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.started || w.finished || w.finalFlushed || w.writeErr != nil {
		return nil
	}
	if err := w.flush(true); err != nil {
		w.log.Error("mp4: fragment at pause lost", "err", err)
		return nil
	}
	if w.kw.Flush() != nil {
		return nil // the disk is full: the fragments stay in memory until Finish writes them
	}
	if w.cfg.NoSync {
		return nil
	}
	return format.SyncLater(w.f.Name())
}

// WriteKept implements format.Keeper.
func (w *Writer) WriteKept() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.kw.Flush()
}

// Duration returns the presentation duration written so far (the last sample of each
// track counted with the previous sample spacing).
func (w *Writer) Duration() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.started {
		return 0
	}
	var d time.Duration
	for _, ts := range w.tracks {
		if !ts.any {
			continue
		}
		delta := ts.lastDelta
		if delta == 0 {
			delta = ts.defDur
		}
		end := ts.lastDTS + ticksToDur(delta, ts.timescale)
		if ts.video {
			d = max(d, end-w.origin)
		} else {
			d = max(d, end-w.p0)
		}
	}
	return d
}

// WriteAU writes one access unit. Units that cannot be written (before the first video
// keyframe, video after a Discontinuity until a keyframe, audio that would play before
// the first picture, empty units, units of an undeclared kind, DTS going backwards) are
// dropped and logged. Errors are returned for misuse and I/O failures.
func (w *Writer) WriteAU(au *media.AccessUnit) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished || w.finalFlushed {
		return ErrFinished
	}
	if w.writeErr != nil {
		return w.writeErr
	}
	if au == nil || au.Track == nil {
		return errors.New("mp4: access unit without track")
	}
	if w.video == nil && w.audio == nil {
		return ErrNoTracks
	}
	isVideo := au.Track.Codec.IsVideo()
	if isVideo && w.video == nil || !isVideo && w.audio == nil {
		w.gate.Drop(au, "unit of an undeclared track")
		return nil
	}
	if decl := w.audio; isVideo && au.Track != w.video || !isVideo && au.Track != decl {
		if isVideo {
			decl = w.video
		}
		if !au.Track.SameParams(decl) {
			return fmt.Errorf("mp4: access unit of a %s track with parameters not declared with SetTracks", au.Track.Codec)
		}
	}
	if ok, _ := w.gate.Admit(au, w.video != nil); !ok {
		return nil
	}
	if !w.started {
		if err := w.startFile(au); err != nil {
			return err
		}
	}
	ts := w.as
	if isVideo {
		ts = w.vs
	} else if !ts.any && (au.DTS < w.origin || au.DTS+ticksToDur(ts.defDur, ts.timescale) <= w.p0) {
		// Not the gate's: the presentation starts at the first picture (edit lists). The
		// frame playing when it appears is kept (its edit skips the head; dropping it lost
		// one audio frame of every file whose audio starts before the picture); earlier
		// audio would need a negative empty edit.
		w.gate.Wait(au, "audio before the first picture")
		return nil
	}

	// Cut the fragment when the units since the last one span a fragment duration.
	if w.inMemory && au.DTS-w.fragAt >= fragmentDuration {
		if err := w.flush(false); err != nil {
			return err
		}
	}

	dts := durToTicks(au.DTS-w.origin, ts.timescale)
	pts := durToTicks(au.PTS-w.origin, ts.timescale)
	if ts.held {
		delta := dts - ts.heldDTS
		if delta > math.MaxUint32 {
			delta = math.MaxUint32
		}
		ts.queueHeld(uint32(delta))
		ts.lastDelta = delta
	}
	// The payload goes to the arena in its MP4 form (4-byte NALU lengths for H.264/H.265).
	off := ts.arena.Len()
	if len(au.NALUs) > 0 {
		for _, n := range au.NALUs {
			ts.arena.AppendUint32(uint32(len(n)))
			ts.arena.Append(n)
		}
	} else {
		ts.arena.Append(au.Data)
	}
	ts.held, ts.heldDTS, ts.heldCTS, ts.heldKey = true, dts, pts-dts, au.Key || !isVideo
	ts.heldLen = ts.arena.Len() - off
	ts.any, ts.lastDTS = true, au.DTS
	if !w.inMemory {
		w.inMemory, w.fragAt = true, au.DTS
	}
	w.gate.Wrote(au)
	return nil
}

// queueHeld moves the held-back sample into the fragment with duration dur.
func (ts *trackState) queueHeld(dur uint32) {
	if len(ts.frag) == 0 {
		ts.fragBase = ts.heldDTS
	}
	cts := ts.heldCTS
	cts = max(min(cts, math.MaxInt32), math.MinInt32)
	ts.frag = append(ts.frag, moof.Sample{Size: uint32(ts.heldLen), Dur: dur, CTS: int32(cts), Sync: ts.heldKey})
	ts.held = false
}

// mp4Codec maps a track to mediacommon's MP4 codec description and the media timescale.
// first is the first video unit (MPEG-4 Part 2 without a configuration takes it from
// there).
func mp4Codec(t *media.Track, first *media.AccessUnit) (codecs.Codec, uint32, error) {
	switch t.Codec {
	case media.H264:
		if len(t.SPS) == 0 || len(t.PPS) == 0 {
			return nil, 0, errors.New("mp4: H.264 track without SPS/PPS")
		}
		var sps h264.SPS
		if err := safeCall(func() error { return sps.Unmarshal(t.SPS) }); err != nil {
			return nil, 0, fmt.Errorf("mp4: H.264 SPS: %w", err)
		}
		return &codecs.H264{SPS: t.SPS, PPS: t.PPS}, videoTimescale, nil
	case media.H265:
		if len(t.VPS) == 0 || len(t.SPS) == 0 || len(t.PPS) == 0 {
			return nil, 0, errors.New("mp4: H.265 track without VPS/SPS/PPS")
		}
		var sps h265.SPS
		if err := safeCall(func() error { return sps.Unmarshal(t.SPS) }); err != nil {
			return nil, 0, fmt.Errorf("mp4: H.265 SPS: %w", err)
		}
		return &codecs.H265{VPS: t.VPS, SPS: t.SPS, PPS: t.PPS}, videoTimescale, nil
	case media.MPEG4Video:
		cfg := t.VideoConfig
		if len(cfg) == 0 && first != nil {
			cfg = mpeg4InBandConfig(first.Data)
		}
		if len(cfg) == 0 {
			if first == nil {
				return &codecs.MPEG4Video{}, videoTimescale, nil // decided at the first keyframe
			}
			return nil, 0, errors.New("mp4: MPEG-4 Part 2 track without decoder configuration")
		}
		return &codecs.MPEG4Video{Config: cfg}, videoTimescale, nil
	case media.AAC:
		var asc mpeg4audio.AudioSpecificConfig
		if err := safeCall(func() error { return asc.Unmarshal(t.AudioConfig) }); err != nil {
			return nil, 0, fmt.Errorf("mp4: AAC configuration: %w", err)
		}
		if asc.SampleRate <= 0 || asc.ChannelConfig == 0 {
			return nil, 0, errors.New("mp4: AAC configuration without sample rate or channel layout")
		}
		return &codecs.MPEG4Audio{Config: asc}, uint32(asc.SampleRate), nil
	case media.MP3:
		if t.SampleRate <= 0 {
			return nil, 0, errors.New("mp4: MP3 track without sample rate")
		}
		ch := t.Channels
		if ch <= 0 {
			ch = 2
		}
		return &codecs.MPEG1Audio{SampleRate: t.SampleRate, ChannelCount: ch}, uint32(t.SampleRate), nil
	}
	return nil, 0, fmt.Errorf("mp4: unsupported codec %q", t.Codec)
}

// mpeg4InBandConfig returns the VOS/VO/VOL headers in front of the first VOP of an
// MPEG-4 Part 2 frame, if the frame starts with them.
func mpeg4InBandConfig(b []byte) []byte {
	if len(b) < 4 || b[0] != 0 || b[1] != 0 || b[2] != 1 || b[3] == 0xB6 {
		return nil
	}
	for i := 0; i+3 < len(b); i++ {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 && b[i+3] == 0xB6 {
			return bytes.Clone(b[:i])
		}
	}
	return nil
}

// safeCall runs a third-party parser on untrusted bytes, turning a panic into an error.
func safeCall(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("parser panic: %v", r)
		}
	}()
	return fn()
}

// defaultDuration is the duration given to a track's only sample.
func defaultDuration(t *media.Track, timescale uint32) int64 {
	switch t.Codec {
	case media.AAC:
		return 1024
	case media.MP3:
		if t.SampleRate < 32000 {
			return 576
		}
		return 1152
	}
	if t.FrameRate > 0 {
		return int64(float64(timescale) / t.FrameRate)
	}
	return int64(timescale) / 25
}

// startFile opens the working file at the first unit that can start the file: writes
// the init segment (mediacommon fmp4) and the journal, both made durable.
func (w *Writer) startFile(first *media.AccessUnit) error {
	w.origin = first.DTS
	w.p0 = first.DTS
	if first.Track.Codec.IsVideo() {
		w.p0 = first.PTS
	}
	var init fmp4.Init
	w.tracks = w.tracks[:0]
	add := func(t *media.Track, video bool) error {
		var f *media.AccessUnit
		if video {
			f = first
		}
		c, timescale, err := mp4Codec(t, f)
		if err != nil {
			return err
		}
		ts := &trackState{video: video, id: len(w.tracks) + 1, ti: len(w.tracks), timescale: timescale}
		ts.defDur = defaultDuration(t, timescale)
		w.tracks = append(w.tracks, ts)
		if video {
			w.vs = ts
		} else {
			w.as = ts
		}
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: ts.id, TimeScale: timescale, Codec: c})
		return nil
	}
	if w.video != nil {
		if err := add(w.video, true); err != nil {
			return err
		}
	}
	if w.audio != nil {
		if err := add(w.audio, false); err != nil {
			return err
		}
	}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return fmt.Errorf("mp4: init segment: %w", err)
	}
	initBytes := buf.Bytes()
	ii, err := parseInitSegment(initBytes)
	if err != nil {
		return err
	}
	// mediacommon writes 800x600 for MPEG-4 Part 2 (it has no VOL parser): use the
	// demuxer's VOL values, patched into the init itself (stsd is a subslice of it) so
	// that Recover sees them too.
	if w.vs != nil && w.video.Codec == media.MPEG4Video && w.video.Width > 0 && w.video.Height > 0 &&
		w.vs.ti < len(ii.tracks) {
		t := ii.tracks[w.vs.ti]
		setVisualSize(t.stsd, w.video.Width, w.video.Height)
		if err := t.describeStsd(); err != nil {
			return err
		}
	}
	if len(ii.tracks) != len(w.tracks) {
		return fmt.Errorf("mp4: init segment has %d tracks, want %d", len(ii.tracks), len(w.tracks))
	}
	w.idx = index{tracks: ii.tracks}

	path := filepath.Join(w.cfg.WorkDir, workName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644) // without a journal, an old one is garbage
	if err != nil {
		return fmt.Errorf("mp4: working file: %w", err)
	}
	later := w.cfg.Syncer != nil && !w.cfg.NoSync // the start never waits for the disk
	if _, err = f.Write(initBytes); err == nil && !w.cfg.NoSync && !later {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("mp4: working file: %w", err)
	}
	w.start = w.cfg.Now()
	j := &journal{Version: journalVersion, Start: w.start}
	if later {
		var syncJournal func() error
		if syncJournal, err = journalfile.SaveLater(w.cfg.WorkDir, journalName, j); err == nil {
			syncWork := format.SyncLater(path)
			w.cfg.Syncer.Go(0, func() error { return errors.Join(syncWork(), syncJournal()) })
		}
	} else {
		err = saveJournal(w.cfg.WorkDir, j, w.cfg.NoSync)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("mp4: journal: %w", err)
	}
	w.f, w.off, w.started = f, int64(len(initBytes)), true
	w.kw = &format.KeepWriter{F: f, Hold: w.cfg.Hold}
	return nil
}

// parseInitSegment finds the moov of an init segment and parses it. The tracks' stsd
// slices point into b.
func parseInitSegment(b []byte) (*initInfo, error) {
	var moov []byte
	err := eachChild(b, func(typ string, body, _ []byte) error {
		if typ == "moov" {
			moov = body
		}
		return nil
	})
	if err != nil || moov == nil {
		return nil, errors.New("mp4: init segment without moov")
	}
	return parseInit(moov)
}

// flush writes the collected samples as one fragment (moof+mdat) to the working file.
// With final set, the held-back samples go too, with the previous sample spacing as
// their duration.
func (w *Writer) flush(final bool) error {
	if final {
		for _, ts := range w.tracks {
			if ts.held {
				d := ts.lastDelta
				if d == 0 {
					d = ts.defDur
				}
				ts.queueHeld(uint32(d))
			}
		}
	}
	if n := w.fragmentSamples(); n > 0 {
		head, pos := w.marshalFragment()
		size, err := w.writeFragment(head)
		if err != nil {
			// The file may end in a partial fragment now; Finish and Recover stop before
			// it. Nothing more is written.
			w.writeErr = fmt.Errorf("mp4: working file: %w", err)
			return w.writeErr
		}
		pos += w.off
		for _, ts := range w.tracks {
			if len(ts.frag) == 0 {
				continue
			}
			t := w.idx.tracks[ts.ti]
			if t.n == 0 {
				t.base = ts.fragBase
			}
			size := 0
			for _, s := range ts.frag {
				sm := sample{size: s.Size, dur: s.Dur, cts: s.CTS}
				if !s.Sync {
					sm.size |= nonSyncBit
				}
				t.add(sm)
				size += int(s.Size)
			}
			w.idx.chunks = append(w.idx.chunks, chunk{work: pos, size: uint32(size), count: uint32(len(ts.frag)), track: uint8(ts.ti)})
			pos += int64(size)
			ts.fragBase += fragDur(ts.frag)
			ts.frag = ts.frag[:0]
		}
		w.off += size
		w.seq++
	}
	// Keep the held-back payloads, drop the rest. The next fragment's clock starts with
	// the next unit (a held sample of a track that went quiet must not force a fragment
	// per unit).
	w.inMemory = false
	for _, ts := range w.tracks {
		n := ts.arena.Len()
		if ts.held {
			n -= ts.heldLen
		}
		ts.arena.Discard(n)
	}
	return nil
}

// writeFragment writes the fragment whose moof and mdat header are head: head, then each
// track's payloads from its arena (the order marshalFragment laid them out in), in one
// writev. It returns the fragment's size.
func (w *Writer) writeFragment(head []byte) (int64, error) {
	size := int64(len(head))
	bufs := append(w.bufs[:0], head)
	for _, ts := range w.tracks {
		n := 0
		for _, s := range ts.frag {
			n += int(s.Size)
		}
		bufs = ts.arena.Buffers(bufs, n) // the fragment's samples start the arena (see flush)
		size += int64(n)
	}
	err := w.kw.WriteBuffers(bufs)
	clear(bufs) // no references to pooled chunks
	w.bufs = bufs[:0]
	if err != nil {
		return 0, err
	}
	return size, nil
}

func (w *Writer) fragmentSamples() int {
	n := 0
	for _, ts := range w.tracks {
		n += len(ts.frag)
	}
	return n
}

// marshalFragment lays out the queued samples as one fragment (package moof): it returns
// the moof and mdat header (writeFragment writes the payloads after them), which is also
// the offset of the first payload byte in the fragment.
func (w *Writer) marshalFragment() ([]byte, int64) {
	tracks := w.moofTracks[:0]
	for _, ts := range w.tracks {
		tracks = append(tracks, moof.Track{ID: uint32(ts.id), BaseTime: uint64(ts.fragBase), Samples: ts.frag})
	}
	w.moofTracks = tracks
	w.frag = moof.Append(w.frag[:0], w.seq+1, tracks)
	return w.frag, int64(len(w.frag))
}

func fragDur(s []moof.Sample) int64 {
	var d int64
	for _, p := range s {
		d += int64(p.Dur)
	}
	return d
}

// Finish writes the held-back samples, builds the progressive file from the index and
// the working file, stores it under key and removes the working files. It can be called
// again after a failed store. ErrNoMedia means nothing was recorded (nothing stored, the
// working files removed).
func (w *Writer) Finish(ctx context.Context, key string) (format.Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return format.Result{}, ErrFinished
	}
	if !w.started {
		w.finished = true
		return format.Result{}, ErrNoMedia
	}
	if !w.finalFlushed {
		if w.writeErr == nil {
			if err := w.flush(true); err != nil {
				w.log.Error("mp4: final fragment lost", "err", err)
			}
		}
		if err := w.kw.Flush(); err != nil {
			return format.Result{}, fmt.Errorf("mp4: working file: %w", err) // a full disk: tried again
		}
		if !w.cfg.NoSync {
			if err := w.f.Sync(); err != nil && w.writeErr == nil {
				return format.Result{}, fmt.Errorf("mp4: working file: %w", err)
			}
		}
		w.f.Close()
		w.finalFlushed = true
	}
	if w.idx.samples() == 0 {
		removeWorkFiles(w.cfg.WorkDir)
		w.finished = true
		return format.Result{}, ErrNoMedia
	}
	if err := saveJournal(w.cfg.WorkDir, &journal{Version: journalVersion, Start: w.start, Key: key}, w.cfg.NoSync); err != nil {
		return format.Result{}, fmt.Errorf("mp4: journal: %w", err)
	}
	res, err := produce(ctx, w.cfg.Store, w.cfg.WorkDir, &w.idx, key, w.cfg.NoSync)
	if err != nil {
		return format.Result{}, err
	}
	w.finished = true
	w.idx = index{}
	for _, ts := range w.tracks {
		ts.arena.Release()
	}
	return res, nil
}
