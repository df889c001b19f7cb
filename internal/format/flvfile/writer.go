package flvfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/livrec/livrec/internal/format/journal"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/storage"
)

// Names of the working files in Config.WorkDir.
const (
	workName  = "work.flv"   // the tags recorded so far
	stateName = "state.json" // sidecar: wall start, track description, final key
	finalName = "final.flv"  // the final file being built (Finish, Recover)
	tmpSuffix = ".tmp"
)

// The most the write buffer in front of the working file holds before it is written
// (format.ArenaWriter: pooled chunks, one writev). While recording live, 32 KiB is
// ~0.17 s of a 1.5 Mbit/s stream: about 6 writes a second where an owned 16 KiB buffer
// made 11. At 1000 × 1.5 Mbit/s that cost ~6 % less CPU for ~12 KiB more per stream (a
// stream holds half of it on average, in chunks of a pool; 64 KiB saved no more CPU and
// cost ~33 KiB). An offline conversion (Config.NoSync) runs one writer as fast as it can.
const (
	writeBufferSize        = 32 << 10
	offlineWriteBufferSize = 256 << 10
)

// flushInterval bounds what a kill -9 can lose: the buffer is handed to the OS whenever
// this much media time or wall time has passed since the last flush.
const flushInterval = time.Second

// Errors.
var (
	// ErrNoMedia is returned by Finish and Recover when no media tag was recorded: nothing
	// is stored and the working files are removed.
	ErrNoMedia = format.ErrNoMedia
	// ErrNothingToRecover is returned by Recover when the work directory holds no
	// recording state: nothing was recorded there, or it was finished or recovered.
	ErrNothingToRecover = format.ErrNoJournal
	// ErrFinished is returned by calls on a Writer after Finish succeeded (or Close).
	ErrFinished = format.ErrFinished
	// ErrNoTracks is returned by WriteAU before the first SetTracks.
	ErrNoTracks = format.ErrNoTracks

	errTooLarge = errors.New("flvfile: frame exceeds the FLV tag size limit")
)

// Config configures a Writer.
type Config struct {
	// WorkDir is a private, existing, empty directory for this file's working data.
	WorkDir string
	// Store receives the finished file.
	Store storage.Store
	// Now is the wall clock (the file's start time, used by Recover to compute the end
	// time its key is rendered with). Nil means time.Now.
	Now func() time.Time
	// Logger receives warnings (dropped units). Nil discards.
	Logger *slog.Logger
	// MaxDuration is the longest media duration the file is expected to reach (the
	// recording cycle); it sizes the space reserved for onMetaData's keyframes index. Zero
	// means unknown (the largest reservation).
	MaxDuration time.Duration
	// NoSync is for offline conversion: the input remains, so nothing is fsync'd (sidecar,
	// final file); a crash means rerun. Default: durable.
	NoSync bool
	// Hold, if set, accounts what the working file keeps in memory while the disk is
	// full (format.KeepWriter); nil: kept without a bound.
	Hold format.Hold
	// Syncer, if set, runs the fsyncs of the file's start (its sidecar and directory) off
	// the caller's goroutine. Nil: inline. Unused with NoSync.
	Syncer format.Syncer
}

// kind indexes per-kind state.
const (
	kindVideo = 0
	kindAudio = 1
)

// Writer writes one FLV recording file. Its methods are safe for concurrent use; the
// recording task drives it from one goroutine, Duration may be called from others.
type Writer struct {
	mu  sync.Mutex
	cfg Config
	log *slog.Logger

	video, audio *media.Track // declared tracks
	started      bool         // the working file exists and holds the sequence headers
	finished     bool
	err          error // sticky write error

	f  *os.File
	kw *format.KeepWriter // the working file behind bw: keeps what a full disk refuses
	bw *format.ArenaWriter
	n  int64 // bytes written to the working file (buffered included)

	base      time.Duration // input DTS mapped to timestamp 0
	gate      format.Gate
	flushedMs int64     // media time (ms) of the last flush
	flushedAt time.Time // wall (monotonic) time of the last flush

	meta fileMeta
	idx  index
	hdr  [32]byte // scratch: [0:11] tag header, [12:16] NALU length, [16:20] PreviousTagSize, [20:32] media header
}

// New validates cfg and returns a Writer. Nothing is written until the first access unit
// that can start the file.
func New(cfg Config) (*Writer, error) {
	if cfg.Store == nil {
		return nil, errors.New("flvfile: Store is required")
	}
	if err := journal.CheckWorkDir(cfg.WorkDir, stateName); err != nil {
		return nil, fmt.Errorf("flvfile: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Hold == nil {
		// The write buffer keeps a write error for good, and the file would be lost: what a
		// full disk refuses is kept in memory, unaccounted, and written by Finish.
		cfg.Hold = format.Unbounded{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Writer{cfg: cfg, log: log, gate: format.Gate{Log: log}}, nil
}

var _ format.Writer = (*Writer)(nil)

// SetTracks declares the tracks (either may be nil, not both). Before any media was
// written it may be called again freely. Afterwards, a call with the same track kinds and
// parameters only adopts the new *Track values; any other change (parameters, a kind
// added or removed) returns format.ErrNeedNewFile and leaves the writer unchanged: FLV
// players do not expect a second sequence header, so the task starts a new file.
func (w *Writer) SetTracks(video, audio *media.Track) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return ErrFinished
	}
	if err := checkTracks(video, audio); err != nil {
		return err
	}
	if w.started {
		if !w.video.SameParams(video) || !w.audio.SameParams(audio) {
			return format.ErrNeedNewFile
		}
	}
	w.video, w.audio = video, audio
	return nil
}

func checkTracks(video, audio *media.Track) error {
	if video == nil && audio == nil {
		return errors.New("flvfile: no tracks")
	}
	if video != nil {
		switch video.Codec {
		case media.H264:
			if len(video.SPS) == 0 || len(video.PPS) == 0 {
				return errors.New("flvfile: H.264 track without SPS/PPS")
			}
		case media.H265:
			if len(video.VPS) == 0 || len(video.SPS) == 0 || len(video.PPS) == 0 {
				return errors.New("flvfile: H.265 track without VPS/SPS/PPS")
			}
		case media.MPEG4Video:
		default:
			return fmt.Errorf("flvfile: unsupported video codec %q", video.Codec)
		}
	}
	if audio != nil {
		switch audio.Codec {
		case media.AAC:
			if len(audio.AudioConfig) == 0 && (audio.SampleRate <= 0 || audio.Channels <= 0) {
				return errors.New("flvfile: AAC track without configuration")
			}
		case media.MP3:
		default:
			return fmt.Errorf("flvfile: unsupported audio codec %q", audio.Codec)
		}
	}
	return nil
}

// Discontinuity marks a stitched resume: video is dropped until the next keyframe (audio
// goes on). The timeline continues: timestamps were repaired upstream.
func (w *Writer) Discontinuity() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gate.Resume()
}

// Duration returns the media duration written so far (see the package documentation).
func (w *Writer) Duration() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.idx.duration(&w.meta)
}

// Pause implements format.Pauser: the publish ended and the stitch window runs. The
// buffer is handed to the OS and sync fsyncs the working file, so a crash during the
// window (hours, maybe) loses nothing received. While recording, the kernel's own
// writeback (dirty pages older than ~30 s) does the work: syncing from here all along
// cost ~8 % of the recording's CPU at 200 streams.
func (w *Writer) Pause() func() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil || w.finished || w.err != nil {
		return nil
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("flvfile: write: %w", err)
		return nil
	}
	w.flushedAt = time.Now()
	if w.kw.Flush() != nil {
		return nil // the disk is full: the bytes stay in memory until Finish writes them
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

// WriteAU writes one access unit. Units that cannot be written (before the first video
// keyframe, video after a resume until a keyframe, empty units, timestamps before the
// file's start or going backwards, frames too large for a tag) are dropped and logged
// (format.Gate: waits at debug level, the rest as warnings). Errors are returned for
// misuse (no SetTracks, a unit of an undeclared track) and I/O failures.
func (w *Writer) WriteAU(au *media.AccessUnit) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return ErrFinished
	}
	if w.err != nil {
		return w.err
	}
	if au == nil || au.Track == nil {
		return errors.New("flvfile: access unit without track")
	}
	if w.video == nil && w.audio == nil {
		return ErrNoTracks
	}
	var k int
	switch {
	case au.Track == w.video || w.video != nil && au.Track.SameParams(w.video):
		k = kindVideo
	case au.Track == w.audio || w.audio != nil && au.Track.SameParams(w.audio):
		k = kindAudio
	default:
		return fmt.Errorf("flvfile: access unit of a track (%s) not declared with SetTracks", au.Track.Codec)
	}
	if ok, _ := w.gate.Admit(au, w.video != nil); !ok {
		return nil
	}
	if !w.started {
		if err := w.start(au.DTS); err != nil {
			w.err = err
			return err
		}
	}
	if au.DTS < w.base {
		// Not the gate's: FLV timestamps are unsigned, so audio decoded before the
		// opening keyframe has no timestamp to go at.
		w.gate.Wait(au, "before the start of the file")
		return nil
	}
	dts := toMs(au.DTS - w.base)
	pts := dts
	if au.PTS > au.DTS {
		pts = toMs(au.PTS - w.base)
	}
	off := w.n
	var err error
	if k == kindVideo {
		err = w.writeVideo(au, dts, pts)
	} else {
		err = w.writeAudio(au, dts)
	}
	if errors.Is(err, errTooLarge) { // nothing was written
		w.gate.Drop(au, "too large for an FLV tag")
		return nil
	}
	if err != nil {
		w.err = fmt.Errorf("flvfile: write: %w", err)
		return w.err
	}
	w.gate.Wrote(au)
	w.idx.addFrame(k, dts, pts, k == kindVideo && au.Key, w.n-off-15, off)
	w.idx.tagWritten(w.n, int(w.n-off-15))
	if dts-w.flushedMs >= flushInterval.Milliseconds() || time.Since(w.flushedAt) >= flushInterval {
		if err := w.bw.Flush(); err != nil {
			w.err = fmt.Errorf("flvfile: write: %w", err)
			return w.err
		}
		w.flushedMs, w.flushedAt = dts, time.Now()
	}
	return nil
}

// toMs converts a duration to rounded milliseconds.
func toMs(d time.Duration) int64 {
	return int64((d + time.Millisecond/2) / time.Millisecond)
}

// start creates the working file and its sidecar and writes the FLV header, the script
// tag reserved for onMetaData and the sequence headers, all at timestamp 0 (= input DTS
// first).
func (w *Writer) start(first time.Duration) error {
	w.meta = newFileMeta(w.video, w.audio)
	reserve, err := reserveSize(&w.meta, reservedKeyframes(w.cfg.MaxDuration))
	if err != nil {
		return fmt.Errorf("flvfile: onMetaData reservation: %w", err)
	}
	placeholder, err := placeholderBody(reserve)
	if err != nil {
		return err
	}
	st := state{Version: stateVersion, Start: w.cfg.Now(), Meta: w.meta, Reserve: reserve}
	// The sidecar exists before any tag does: a working file without it is never left.
	// With a Syncer its fsyncs run there: a file's start never waits for the disk on the
	// publisher's connection.
	if w.cfg.Syncer != nil && !w.cfg.NoSync {
		sync, err := journal.SaveLater(w.cfg.WorkDir, stateName, &st)
		if err != nil {
			return fmt.Errorf("flvfile: state: %w", err)
		}
		w.cfg.Syncer.Go(0, sync)
	} else if err := saveState(w.cfg.WorkDir, &st, w.cfg.NoSync); err != nil {
		return fmt.Errorf("flvfile: state: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(w.cfg.WorkDir, workName), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("flvfile: create working file: %w", err)
	}
	size := writeBufferSize
	if w.cfg.NoSync {
		size = offlineWriteBufferSize
	}
	w.kw = &format.KeepWriter{F: f, Hold: w.cfg.Hold}
	w.f, w.bw = f, &format.ArenaWriter{W: w.kw, Max: size}
	w.base, w.started = first, true
	w.flushedAt = time.Now()
	w.idx = index{firstVideo: -1}

	var flags byte
	if w.audio != nil {
		flags |= 0x04
	}
	if w.video != nil {
		flags |= 0x01
	}
	hdr := []byte{'F', 'L', 'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0}
	if _, err := w.bw.Write(hdr); err != nil {
		return err
	}
	w.n = int64(len(hdr))
	// The reservation: the tag header and the placeholder up to its trailing zeros, which
	// are skipped (a hole) and written, if at all, by the finalization.
	head := bytes.TrimRight(placeholder, "\x00")
	if _, err := w.bw.Write(w.tagHeader(flv.TagScript, 0, reserve)); err != nil {
		return err
	}
	if _, err := w.bw.Write(head); err != nil {
		return err
	}
	if err := w.bw.Flush(); err != nil {
		return err
	}
	if err := w.kw.Flush(); err != nil { // the seek below must come after these bytes
		return err
	}
	w.n += int64(11 + reserve)
	if _, err := f.Seek(w.n, io.SeekStart); err != nil {
		return err
	}
	if err := w.writePrevSize(reserve); err != nil {
		return err
	}
	w.idx.firstScript = reserve
	w.idx.tagWritten(w.n, reserve)
	if v := w.video; v != nil {
		var body []byte
		switch v.Codec {
		case media.H264:
			cfg, err := flv.MarshalAVCConfig([][]byte{v.SPS}, [][]byte{v.PPS})
			if err != nil {
				return err
			}
			body = append(flv.AppendVideoHeader(nil, true, flv.CodecIDAVC, 0, 0), cfg...)
		case media.H265:
			cfg, err := flv.MarshalHEVCConfig([][]byte{v.VPS}, [][]byte{v.SPS}, [][]byte{v.PPS})
			if err != nil {
				return err
			}
			body = append(flv.AppendVideoExHeader(nil, true, flv.VideoExSequenceStart, flv.FourCCHEVC, 0), cfg...)
		case media.MPEG4Video:
			// As ffmpeg -strict -1 writes it: a (possibly empty) configuration packet.
			body = append(flv.AppendVideoHeader(nil, true, flv.CodecIDMPEG4, 0, 0), v.VideoConfig...)
		}
		if err := w.writeTag(flv.TagVideo, 0, body); err != nil {
			return err
		}
	}
	if a := w.audio; a != nil && a.Codec == media.AAC {
		asc := a.AudioConfig
		if len(asc) == 0 {
			cfg := mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC,
				SampleRate: a.SampleRate, ChannelConfig: uint8(min(a.Channels, 7))}
			var err error
			if asc, err = cfg.Marshal(); err != nil {
				return fmt.Errorf("flvfile: AAC configuration: %w", err)
			}
		}
		if err := w.writeTag(flv.TagAudio, 0, append(flv.AppendAudioHeaderAAC(nil, 0), asc...)); err != nil {
			return err
		}
	}
	return nil
}

// tagHeader fills w.hdr with an 11-byte tag header and returns it.
func (w *Writer) tagHeader(typ uint8, ts int64, size int) []byte {
	t := uint32(ts) // 32-bit milliseconds: wraps after 49.7 days, as FLV does
	h := w.hdr[:11]
	h[0] = typ
	h[1], h[2], h[3] = byte(size>>16), byte(size>>8), byte(size)
	h[4], h[5], h[6], h[7] = byte(t>>16), byte(t>>8), byte(t), byte(t>>24)
	h[8], h[9], h[10] = 0, 0, 0
	return h
}

func (w *Writer) writePrevSize(size int) error {
	total := uint32(11 + size)
	p := w.hdr[16:20]
	p[0], p[1], p[2], p[3] = byte(total>>24), byte(total>>16), byte(total>>8), byte(total)
	_, err := w.bw.Write(p)
	w.n += 4
	return err
}

// writeTag writes a whole tag and its PreviousTagSize.
func (w *Writer) writeTag(typ uint8, ts int64, body []byte) error {
	if len(body) > flv.MaxTagSize {
		return fmt.Errorf("flvfile: tag body of %d bytes exceeds %d", len(body), flv.MaxTagSize)
	}
	if _, err := w.bw.Write(w.tagHeader(typ, ts, len(body))); err != nil {
		return err
	}
	if _, err := w.bw.Write(body); err != nil {
		return err
	}
	w.n += int64(11 + len(body))
	if err := w.writePrevSize(len(body)); err != nil {
		return err
	}
	w.idx.tagWritten(w.n, len(body))
	return nil
}

// writeVideo writes one video frame tag. H.264/H.265 NAL units get 4-byte lengths and are
// written straight into the buffer, without an intermediate body.
func (w *Writer) writeVideo(au *media.AccessUnit, dts, pts int64) error {
	cts := int32(pts - dts)
	var vh []byte
	switch w.video.Codec {
	case media.H264:
		vh = flv.AppendVideoHeader(w.hdr[20:20], au.Key, flv.CodecIDAVC, 1, cts)
	case media.H265:
		vh = flv.AppendVideoExHeader(w.hdr[20:20], au.Key, flv.VideoExCodedFrames, flv.FourCCHEVC, cts)
	case media.MPEG4Video:
		vh = flv.AppendVideoHeader(w.hdr[20:20], au.Key, flv.CodecIDMPEG4, 1, cts)
		return w.writeTagParts(flv.TagVideo, dts, vh, au.Data)
	}
	size := len(vh)
	for _, n := range au.NALUs {
		size += 4 + len(n)
	}
	if size > flv.MaxTagSize {
		return errTooLarge
	}
	// vh lives in w.hdr[20:], which tagHeader and writePrevSize do not touch.
	if _, err := w.bw.Write(w.tagHeader(flv.TagVideo, dts, size)); err != nil {
		return err
	}
	if _, err := w.bw.Write(vh); err != nil {
		return err
	}
	l := w.hdr[12:16]
	for _, n := range au.NALUs {
		l[0], l[1], l[2], l[3] = byte(len(n)>>24), byte(len(n)>>16), byte(len(n)>>8), byte(len(n))
		if _, err := w.bw.Write(l); err != nil {
			return err
		}
		if _, err := w.bw.Write(n); err != nil {
			return err
		}
	}
	w.n += int64(11 + size)
	return w.writePrevSize(size)
}

// writeAudio writes one audio frame tag.
func (w *Writer) writeAudio(au *media.AccessUnit, dts int64) error {
	var ah []byte
	if w.audio.Codec == media.AAC {
		ah = flv.AppendAudioHeaderAAC(w.hdr[20:20], 1)
	} else {
		ah = flv.AppendAudioHeaderMP3(w.hdr[20:20], w.audio.SampleRate, w.audio.Channels != 1)
	}
	return w.writeTagParts(flv.TagAudio, dts, ah, au.Data)
}

// writeTagParts writes a tag whose body is head (at most 12 bytes, held in w.hdr[20:]) then
// data.
func (w *Writer) writeTagParts(typ uint8, ts int64, head, data []byte) error {
	size := len(head) + len(data)
	if size > flv.MaxTagSize {
		return errTooLarge
	}
	if _, err := w.bw.Write(w.tagHeader(typ, ts, size)); err != nil {
		return err
	}
	if _, err := w.bw.Write(head); err != nil {
		return err
	}
	if _, err := w.bw.Write(data); err != nil {
		return err
	}
	w.n += int64(11 + size)
	return w.writePrevSize(size)
}

// closeWork flushes and closes the working file.
func (w *Writer) closeWork() error {
	if w.f == nil {
		return nil
	}
	err := w.bw.Flush()
	if err == nil {
		err = w.kw.Flush()
	}
	if format.IsDiskFull(err) {
		return err // the bytes are kept and the file stays open: Finish is retried
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.bw.Release() // what a write error left
	w.f, w.kw, w.bw = nil, nil, nil
	return err
}

// Finish turns the working file into the final file in place (onMetaData with duration,
// size and keyframe index written into the space reserved for it), fsyncs it, stores it
// under key and removes the working files. If storing fails the error is returned and Finish may be called again. ErrNoMedia
// means nothing was recorded: nothing is stored and the working files are removed.
func (w *Writer) Finish(ctx context.Context, key string) (format.Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return format.Result{}, ErrFinished
	}
	if key == "" {
		return format.Result{}, errors.New("flvfile: empty key")
	}
	if !w.started {
		w.finished = true
		removeWorkFiles(w.cfg.WorkDir)
		return format.Result{}, ErrNoMedia
	}
	if err := w.closeWork(); err != nil {
		return format.Result{}, fmt.Errorf("flvfile: flush working file: %w", err)
	}
	if w.err != nil {
		w.log.Warn("flvfile: finishing after a write error; the file keeps what was written", "err", w.err)
	}
	// The index kept while writing is what scanning the working file would give (the
	// tests check it); after a write error the file may hold a partial tag: scan it.
	x := &w.idx
	if w.err != nil {
		x = nil
	}
	res, err := finalize(ctx, w.cfg.Store, w.cfg.WorkDir, key, nil, x, w.log, w.cfg.NoSync)
	if err != nil {
		return format.Result{}, err
	}
	w.finished = true
	return res, nil
}

// Close abandons the writer without finishing: it flushes and closes the working file but
// stores nothing and keeps the working directory, which Recover turns into a stored file
// later.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return nil
	}
	w.finished = true
	err := w.closeWork()
	if w.f != nil { // the disk is full: what is kept in memory is lost, the descriptor is not
		w.kw.Drop()
		w.bw.Release()
		w.f.Close()
		w.f, w.kw, w.bw = nil, nil, nil
	}
	return err
}

// nominalFrame is the duration assumed for a track's last frame when no DTS delta is
// known yet, in milliseconds.
func nominalFrame(m *fileMeta, k int) int64 {
	if k == kindVideo {
		if m.FrameRate > 0 {
			return int64(math.Round(1000 / m.FrameRate))
		}
		return 40
	}
	if m.SampleRate > 0 {
		samples := 1024.0
		if m.AudioCodec == media.MP3 {
			samples = 1152
		}
		return int64(math.Round(samples * 1000 / float64(m.SampleRate)))
	}
	return 23
}
