package flvfile

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/livrec/livrec/internal/format/journal"

	"github.com/bluenviron/gortmplib/pkg/amf0"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/storage"
)

// ---------------------------------------------------------------------------------------
// Sidecar state.

const stateVersion = 1

// fileMeta is what onMetaData says about the tracks that the tags do not tell cheaply.
// It is fixed for the life of a file (a parameter change starts a new file).
type fileMeta struct {
	VideoCodec media.Codec `json:"video_codec,omitempty"`
	Width      int         `json:"width,omitempty"`
	Height     int         `json:"height,omitempty"`
	FrameRate  float64     `json:"frame_rate,omitempty"`
	AudioCodec media.Codec `json:"audio_codec,omitempty"`
	SampleRate int         `json:"sample_rate,omitempty"`
	Channels   int         `json:"channels,omitempty"`
}

func newFileMeta(v, a *media.Track) fileMeta {
	var m fileMeta
	if v != nil {
		m.VideoCodec, m.Width, m.Height = v.Codec, v.Width, v.Height
		if v.FrameRate > 0 && !math.IsInf(v.FrameRate, 0) {
			m.FrameRate = v.FrameRate
		}
	}
	if a != nil {
		m.AudioCodec, m.SampleRate, m.Channels = a.Codec, a.SampleRate, a.Channels
	}
	return m
}

// state is the sidecar WorkDir/state.json, written (atomically, fsync'd) before the first
// tag and again when the final key is chosen.
type state struct {
	Version int       `json:"version"`
	Start   time.Time `json:"start"`         // wall time of the first tag
	Key     string    `json:"key,omitempty"` // set once finalizing began
	Meta    fileMeta  `json:"meta"`
	// Reserve is the body size of the script tag reserved for onMetaData right after the
	// FLV header of the working file; 0 for a working file without a reservation (an older
	// layout, finalized by copying its tags).
	Reserve int `json:"reserve,omitempty"`
	// Size and DurationMs describe the final file; journaled with Key, so a finalize that
	// handed the working file itself to storage but did not clean up can still report it.
	Size       int64 `json:"size,omitempty"`
	DurationMs int64 `json:"duration_ms,omitempty"`
}

func saveState(dir string, s *state, noSync bool) error {
	return journal.SaveSync(dir, stateName, s, !noSync)
}

// JournalVersion implements journal.Versioned.
func (s *state) JournalVersion() int { return s.Version }

func syncDir(dir string) { journal.SyncDir(dir) }

func loadState(dir string) (*state, error) {
	var s state
	if err := journal.Load(dir, stateName, &s, stateVersion); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrNothingToRecover
		}
		return nil, fmt.Errorf("flvfile: %w", err)
	}
	return &s, nil
}

// removeWorkFiles removes the files this package creates in dir (never anything else). The
// state goes first: once it is gone there is nothing left to recover.
func removeWorkFiles(dir string) {
	for _, n := range []string{stateName, workName, finalName, stateName + tmpSuffix, finalName + tmpSuffix} {
		_ = os.Remove(filepath.Join(dir, n))
	}
}

// ---------------------------------------------------------------------------------------
// Index: what onMetaData needs, built from the media tags. The Writer keeps one while
// writing (for Duration); finalize rebuilds it from the working file, so Finish and
// Recover produce the same bytes from the same working file.

type index struct {
	kfTimes []int64 // keyframe tag timestamps (ms)
	kfPos   []int64 // offsets of the keyframe tags in the working file
	count   [2]int64
	bytes   [2]int64 // frame tag body bytes per kind
	lastDTS [2]int64
	prevDTS [2]int64
	maxPTS  [2]int64
	// firstVideo is the first video frame timestamp, -1 before one.
	firstVideo int64
	// end is the working-file offset just past the last complete tag body; lastSize is
	// that tag's body size (its PreviousTagSize may be missing after a crash).
	end      int64
	lastSize int
	tags     int
	// firstScript is the body size of the first tag if it is a script tag (the
	// reservation), else -1.
	firstScript int
}

// tagWritten records a complete tag of size bytes (body) whose PreviousTagSize ends at
// end, as scanWork would.
func (x *index) tagWritten(end int64, size int) {
	x.end, x.lastSize = end-4, size
	x.tags++
}

// addFrame records a frame tag of kind k (timestamps in ms, body size in bytes, tag offset
// in the working file).
func (x *index) addFrame(k int, dts, pts int64, key bool, size, off int64) {
	if x.count[k] > 0 {
		x.prevDTS[k] = x.lastDTS[k]
	}
	x.lastDTS[k] = dts
	if x.count[k] == 0 || pts > x.maxPTS[k] {
		x.maxPTS[k] = pts
	}
	x.count[k]++
	x.bytes[k] += size
	if k == kindVideo {
		if x.firstVideo < 0 {
			x.firstVideo = dts
		}
		if key {
			x.kfTimes = append(x.kfTimes, dts)
			x.kfPos = append(x.kfPos, off)
		}
	}
}

// durationMs is the media duration: the end of the last presented frame of either track
// (greatest PTS plus that track's last DTS step, or its nominal frame duration), from
// timestamp 0 (the first unit of the file).
func (x *index) durationMs(m *fileMeta) int64 {
	var end int64
	for k := range 2 {
		if x.count[k] == 0 {
			continue
		}
		fd := nominalFrame(m, k)
		if x.count[k] > 1 && x.lastDTS[k] > x.prevDTS[k] {
			fd = x.lastDTS[k] - x.prevDTS[k]
		}
		end = max(end, x.maxPTS[k]+fd)
	}
	return end
}

func (x *index) duration(m *fileMeta) time.Duration {
	return time.Duration(x.durationMs(m)) * time.Millisecond
}

// frameRate is the nominal rate if known, else the measured one.
func (x *index) frameRate(m *fileMeta) float64 {
	if m.FrameRate > 0 {
		return m.FrameRate
	}
	if n := x.count[kindVideo]; n > 1 && x.lastDTS[kindVideo] > x.firstVideo {
		return float64(n-1) * 1000 / float64(x.lastDTS[kindVideo]-x.firstVideo)
	}
	return 0
}

// dataOffset is where the first tag's PreviousTagSize starts: after the 9-byte header.
const dataOffset = 9

// scanWork reads the working file with flv.Reader and indexes its complete tags. A tag
// counts only once its own PreviousTagSize is seen to match (for the last tag, read
// directly), so a tag that is torn or zero-filled at its end is not kept. The scan stops
// at a truncated tail, at such a torn tag, and at a tag of an unknown type; everything
// before is kept.
func scanWork(p string, log *slog.Logger) (*index, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := flv.NewReader(bufio.NewReaderSize(f, 256<<10))
	if err != nil {
		return nil, err
	}
	x := &index{firstVideo: -1, end: dataOffset + 4, firstScript: -1}
	type tagInfo struct {
		off      int64
		size     int
		kind     int // kindVideo, kindAudio, or -1 for a non-frame tag
		dts, pts int64
		key      bool
		script   bool
	}
	commit := func(ti tagInfo) {
		if x.tags == 0 && ti.script {
			x.firstScript = ti.size
		}
		if ti.kind >= 0 {
			x.addFrame(ti.kind, ti.dts, ti.pts, ti.key, int64(ti.size), ti.off)
		}
		x.tags++
		x.end = ti.off + 11 + int64(ti.size)
		x.lastSize = ti.size
	}
	var pend *tagInfo            // read, but its PreviousTagSize not checked yet
	off := int64(dataOffset + 4) // the next tag's header
	var prevTS int64
	for {
		t, err := r.ReadTag()
		if err != nil {
			if r.Truncated() {
				log.Warn("flvfile: working file ends inside a tag; the partial tag is dropped", "file", p)
			}
			break
		}
		if r.Mismatches > 0 {
			log.Warn("flvfile: working file has a torn tag; it and the rest are dropped", "file", p, "offset", pend.off)
			pend = nil
			break
		}
		if pend != nil {
			commit(*pend)
			pend = nil
		}
		if t.Type != flv.TagAudio && t.Type != flv.TagVideo && t.Type != flv.TagScript {
			log.Warn("flvfile: working file has an invalid tag; the rest is dropped", "file", p, "offset", off)
			break
		}
		// Unwrap the 32-bit timestamp against the previous tag (files past 49.7 days).
		ts := prevTS + int64(int32(t.Timestamp-uint32(prevTS)))
		if x.tags == 0 {
			ts = int64(t.Timestamp)
		}
		prevTS = ts
		ti := tagInfo{off: off, size: len(t.Body), kind: -1, dts: ts, pts: ts, script: t.Type == flv.TagScript}
		switch t.Type {
		case flv.TagVideo:
			h, err := flv.ParseVideoTagHeader(t.Body)
			if err == nil && h.Kind == flv.PacketFrame {
				ti.kind, ti.pts, ti.key = kindVideo, ts+int64(h.CompositionTime), h.Key()
			}
		case flv.TagAudio:
			h, err := flv.ParseAudioTagHeader(t.Body)
			if err == nil && h.Kind == flv.PacketFrame {
				ti.kind, ti.key = kindAudio, true
			}
		}
		pend = &ti
		off += 11 + int64(len(t.Body)) + 4
	}
	if pend != nil {
		var b [4]byte
		_, err := f.ReadAt(b[:], pend.off+11+int64(pend.size))
		if err == nil && binary.BigEndian.Uint32(b[:]) == uint32(11+pend.size) {
			commit(*pend)
		} else {
			log.Warn("flvfile: the working file's last tag is not confirmed by its PreviousTagSize; dropped",
				"file", p, "offset", pend.off)
		}
	}
	return x, nil
}

// ---------------------------------------------------------------------------------------
// onMetaData.

// metadataBody encodes ("onMetaData", ECMA array) for a final file of fileSize bytes
// whose tags are at their working-file offsets plus shift. The keyframes index lists
// every step-th keyframe from the first (step 0: no index).
func metadataBody(m *fileMeta, x *index, step int, shift, fileSize int64) ([]byte, error) {
	durMs := x.durationMs(m)
	dur := float64(durMs) / 1000
	rate := func(b int64) float64 {
		if durMs <= 0 {
			return 0
		}
		return float64(b) * 8 / float64(durMs) // bytes*8/ms = kbit/s
	}
	hasVideo, hasAudio := m.VideoCodec != "", m.AudioCodec != ""
	arr := amf0.ECMAArray{{Key: "duration", Value: dur}}
	if hasVideo {
		var id float64
		switch m.VideoCodec {
		case media.H264:
			id = flv.CodecIDAVC
		case media.H265:
			id = float64(flv.FourCCHEVC) // Enhanced RTMP: the FourCC as a number
		case media.MPEG4Video:
			id = flv.CodecIDMPEG4
		}
		arr = append(arr,
			amf0.ObjectEntry{Key: "width", Value: float64(m.Width)},
			amf0.ObjectEntry{Key: "height", Value: float64(m.Height)},
			amf0.ObjectEntry{Key: "videodatarate", Value: rate(x.bytes[kindVideo])},
			amf0.ObjectEntry{Key: "framerate", Value: x.frameRate(m)},
			amf0.ObjectEntry{Key: "videocodecid", Value: id},
		)
	}
	if hasAudio {
		id := float64(flv.SoundFormatAAC)
		if m.AudioCodec == media.MP3 {
			id = flv.SoundFormatMP3
		}
		arr = append(arr,
			amf0.ObjectEntry{Key: "audiodatarate", Value: rate(x.bytes[kindAudio])},
			amf0.ObjectEntry{Key: "audiosamplerate", Value: float64(m.SampleRate)},
			amf0.ObjectEntry{Key: "audiosamplesize", Value: float64(16)},
			amf0.ObjectEntry{Key: "stereo", Value: m.Channels != 1},
			amf0.ObjectEntry{Key: "audiocodecid", Value: id},
		)
	}
	var last int64
	for k := range 2 {
		if x.count[k] > 0 {
			last = max(last, x.lastDTS[k])
		}
	}
	withIndex := step > 0 && hasVideo && len(x.kfTimes) > 0
	arr = append(arr,
		amf0.ObjectEntry{Key: "encoder", Value: "livrec"},
		amf0.ObjectEntry{Key: "filesize", Value: float64(fileSize)},
		amf0.ObjectEntry{Key: "hasVideo", Value: hasVideo},
		amf0.ObjectEntry{Key: "hasAudio", Value: hasAudio},
		amf0.ObjectEntry{Key: "hasMetadata", Value: true},
		amf0.ObjectEntry{Key: "hasKeyframes", Value: withIndex},
		amf0.ObjectEntry{Key: "canSeekToEnd", Value: withIndex && x.count[kindVideo] > 0 &&
			x.kfTimes[len(x.kfTimes)-1] == x.lastDTS[kindVideo]},
		amf0.ObjectEntry{Key: "lasttimestamp", Value: float64(last) / 1000},
	)
	if withIndex {
		n := (len(x.kfTimes) + step - 1) / step
		times := make(amf0.StrictArray, 0, n)
		pos := make(amf0.StrictArray, 0, n)
		for i := 0; i < len(x.kfTimes); i += step {
			times = append(times, float64(x.kfTimes[i])/1000)
			pos = append(pos, float64(x.kfPos[i]+shift))
		}
		arr = append(arr,
			amf0.ObjectEntry{Key: "lastkeyframetimestamp", Value: float64(x.kfTimes[len(x.kfTimes)-1]) / 1000},
			amf0.ObjectEntry{Key: "keyframes", Value: amf0.Object{
				{Key: "times", Value: times},
				{Key: "filepositions", Value: pos},
			}},
		)
	}
	return amf0.Data{"onMetaData", arr}.Marshal()
}

// finalLayout encodes the metadata for the final file. The metadata's size decides where
// the tags start, which the keyframe positions and filesize depend on; AMF0 numbers have a
// fixed size, so this settles at the second round, but it iterates until stable anyway.
func finalLayout(m *fileMeta, x *index) (body []byte, fileSize int64, err error) {
	tagBytes := x.end - (dataOffset + 4) + 4 // copied tags plus the last PreviousTagSize
	step := 1
	size := 0
	for range 8 {
		tagsStart := int64(dataOffset+4) + 11 + int64(size) + 4
		fileSize = tagsStart + tagBytes
		body, err = metadataBody(m, x, step, tagsStart-(dataOffset+4), fileSize)
		if err != nil {
			return nil, 0, err
		}
		if len(body) > flv.MaxTagSize && step > 0 {
			step, size = 0, 0 // an index that large cannot be carried: omit it
			continue
		}
		if len(body) == size {
			return body, fileSize, nil
		}
		size = len(body)
	}
	return nil, 0, errors.New("flvfile: metadata size does not settle")
}

// writeFinal builds dir/final.flv (via a temp file, fsync'd) from a working file without
// a reservation: the FLV header, onMetaData (body, laid out by finalLayout) and the
// working file's tags, copied. Nothing is fsync'd if noSync.
func writeFinal(dir string, m *fileMeta, body []byte, fileSize int64, x *index, noSync bool) error {
	src, err := os.Open(filepath.Join(dir, workName))
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := filepath.Join(dir, finalName+tmpSuffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		f.Close()
		_ = os.Remove(tmp)
		return err
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	fw, err := flv.NewWriter(bw, m.AudioCodec != "", m.VideoCodec != "")
	if err != nil {
		return fail(err)
	}
	if err := fw.WriteTag(flv.Tag{Type: flv.TagScript, Body: body}); err != nil {
		return fail(err)
	}
	// The tags are copied unchanged: flush what is buffered, then let the kernel copy the
	// working file's tags into place (copy_file_range via (*os.File).ReadFrom, no pass
	// through user space).
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	n := x.end - (dataOffset + 4)
	if _, err := src.Seek(dataOffset+4, io.SeekStart); err != nil {
		return fail(err)
	}
	if c, err := f.ReadFrom(io.LimitReader(src, n)); err != nil || c != n {
		if err == nil {
			err = fmt.Errorf("flvfile: copied %d of %d bytes of tags", c, n)
		}
		return fail(err)
	}
	ls := uint32(11 + x.lastSize)
	if _, err := bw.Write([]byte{byte(ls >> 24), byte(ls >> 16), byte(ls >> 8), byte(ls)}); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if fi.Size() != fileSize {
		return fail(fmt.Errorf("flvfile: final file is %d bytes, expected %d (working file changed?)", fi.Size(), fileSize))
	}
	if !noSync {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, finalName)); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// ---------------------------------------------------------------------------------------
// Finalizing (Finish and Recover).

// finalize turns the working directory into a stored file. key, if set, is the object key
// (Finish); otherwise the key journaled by an earlier attempt is used, or keyFn(start +
// duration) (Recover). The key is journaled before the file is stored, and an ErrExists
// for an object with the very same bytes counts as stored by an earlier attempt, so a
// repeated finalize after a crash stores the file exactly once.
//
// x, if not nil, is the index of the working file as its Writer kept it (Finish), which
// spares reading the file; else the working file is scanned.
func finalize(ctx context.Context, st storage.Store, dir, key string, keyFn func(end time.Time) string,
	x *index, log *slog.Logger, noSync bool) (format.Result, error) {
	s, err := loadState(dir)
	if err != nil {
		return format.Result{}, err
	}
	work := filepath.Join(dir, workName)
	if x == nil || s.Reserve == 0 {
		x, err = scanWork(work, log)
	}
	if errors.Is(err, os.ErrNotExist) {
		if s.Reserve > 0 && s.Key != "" && s.Size > 0 && (key == "" || key == s.Key) {
			// The working file itself was handed to storage by an earlier attempt, which
			// stopped before the cleanup.
			log.Info("flvfile: working file already stored; cleaning up", "key", s.Key)
			removeWorkFiles(dir)
			return format.Result{Key: s.Key, Duration: time.Duration(s.DurationMs) * time.Millisecond, Bytes: s.Size}, nil
		}
		x, err = &index{firstVideo: -1, firstScript: -1}, nil
	}
	if err != nil {
		return format.Result{}, fmt.Errorf("flvfile: read working file: %w", err)
	}
	if x.count[kindVideo]+x.count[kindAudio] == 0 {
		removeWorkFiles(dir)
		return format.Result{}, ErrNoMedia
	}
	inPlace := s.Reserve > 0
	if inPlace && x.firstScript != s.Reserve {
		return format.Result{}, fmt.Errorf("flvfile: working file does not start with its %d-byte onMetaData reservation", s.Reserve)
	}
	durMs := x.durationMs(&s.Meta)
	dur := time.Duration(durMs) * time.Millisecond
	switch {
	case key != "":
	case s.Key != "":
		key = s.Key
	default:
		key = keyFn(s.Start.Add(dur))
	}
	var body []byte
	var size int64
	if inPlace {
		var step int
		body, step, err = reservedLayout(&s.Meta, x, s.Reserve)
		if step != 1 && len(x.kfTimes) > 1 {
			log.Info("flvfile: keyframes index thinned to fit its reservation", "keyframes", len(x.kfTimes), "step", step)
		}
		size = x.end + 4
	} else {
		body, size, err = finalLayout(&s.Meta, x)
	}
	if err != nil {
		return format.Result{}, fmt.Errorf("flvfile: onMetaData: %w", err)
	}
	if s.Key != key || s.Size != size || s.DurationMs != durMs {
		s.Key, s.Size, s.DurationMs = key, size, durMs
		if err := saveState(dir, s, noSync); err != nil {
			return format.Result{}, fmt.Errorf("flvfile: state: %w", err)
		}
	}
	path := work
	if inPlace {
		err = writeReserved(work, body, s.Reserve, size, noSync)
	} else {
		path = filepath.Join(dir, finalName)
		err = writeFinal(dir, &s.Meta, body, size, x, noSync)
	}
	if err != nil {
		return format.Result{}, fmt.Errorf("flvfile: write final file: %w", err)
	}
	// A key another recording holds moves the file to the next free key (the same bytes
	// are this file, stored by an earlier attempt).
	used, err := storage.StoreUnique(ctx, st, key, path, true)
	if err != nil {
		return format.Result{}, fmt.Errorf("flvfile: store %q: %w", key, err)
	}
	if used != key {
		log.Warn("flvfile: object key held by another object: stored under the next free key", "key", key, "stored_as", used)
		s.Key = used // for a cleanup that a crash interrupts (best effort: the file is stored)
		_ = saveState(dir, s, noSync)
	}
	removeWorkFiles(dir)
	return format.Result{Key: used, Duration: dur, Bytes: size}, nil
}

// Recover finalizes a file whose writer died (crash, kill -9) from its working directory:
// it reads the working FLV (dropping a partial last tag), rebuilds the keyframe index and
// duration, writes the final file and stores it under key(end), end being the wall time
// of the first tag plus the media duration (or under the key an interrupted Finish or
// Recover had already chosen). On success the working files are removed.
//
// Recover is idempotent. ErrNothingToRecover means the directory holds no recording
// state; ErrNoMedia that no media tag was recorded (the working files are removed).
func Recover(ctx context.Context, workDir string, store storage.Store, key func(end time.Time) string,
	logger *slog.Logger) (format.Result, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if key == nil {
		return format.Result{}, errors.New("flvfile: Recover needs a key function")
	}
	return finalize(ctx, store, workDir, "", key, nil, logger, false)
}
