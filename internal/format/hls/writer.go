package hls

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/livrec/livrec/internal/format"
	"log/slog"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg1audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/livrec/livrec/internal/format/segment"
	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/storage"
)

// tsOffset is added to every MPEG-TS timestamp so that PCR, which is written
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
		NoSync:        cfg.NoSync,
		Syncer:        cfg.Syncer,
		Hold:          cfg.Hold,
		Resume:        cfg.Resume,
	}, newTSMuxer(cfg.NoSync))
	if err != nil {
		return nil, err
	}
	return &Writer{sw}, nil
}

// tsSet is the MPEG-TS description of a track set (segment.Set.State). A new set (after
// a parameter change) gets its own packetizer state.
type tsSet struct {
	tsVideo       *tsStream
	tsAudio       *tsStream
	aac           aacHeader // ADTS header fields (AAC)
	mp3LSF        bool      // audio is MPEG-2/2.5 Layer III, written as raw PES
	mp3LSFChecked bool
	mp3Checked    bool // the first MP3 frame written was checked to be MPEG-1
}

// tsMuxer is the MPEG-TS segment.Muxer.
type tsMuxer struct {
	mux    tsPacketizer
	hasMux bool
	set    *segment.Set // the set mux was made for
	sink   switchWriter

	naluBuf [][]byte
	esBuf   []byte   // the elementary stream bytes of one audio PES (ADTS framing)
	pieces  [][]byte // the pieces of one video PES
	batch   audioBatch
}

func newTSMuxer(offline bool) *tsMuxer {
	m := &tsMuxer{}
	if offline {
		m.mux.flushSize = tsOfflineFlushSize
	}
	return m
}

// switchWriter is the io.Writer the packetizer writes into: the open segment's file,
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
		if _, _, err := audioCodec(audio); err != nil {
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
	if changed || !m.hasMux {
		if err := m.newMuxer(set); err != nil {
			return err
		}
	}
	return m.mux.writeTables()
}

// End writes the batched audio and everything the packetizer buffers (segment.Muxer).
func (m *tsMuxer) End(*segment.File, *segment.Set, segment.End) error {
	err := m.flushAudio()
	if ferr := m.mux.flush(); err == nil {
		err = ferr
	}
	m.sink.f = nil
	return err
}

// BuffersOutput declares that the packetizer is the segment files' write buffer
// (segment.BufferingMuxer).
func (m *tsMuxer) BuffersOutput() {}

// newMuxer resets the packetizer for set.
func (m *tsMuxer) newMuxer(set *segment.Set) error {
	s := set.State.(*tsSet)
	var streams []*tsStream
	// Fresh streams: the packetizer keeps per-stream state in them.
	s.tsVideo, s.tsAudio = nil, nil
	if set.Video != nil {
		s.tsVideo = &tsStream{streamType: videoStreamType(set.Video.Codec), streamID: tsStreamIDVideo}
		streams = append(streams, s.tsVideo)
	}
	if set.Audio != nil {
		typ, aac, err := audioCodec(set.Audio)
		if err != nil {
			return err
		}
		s.aac = aac
		s.mp3Checked = false
		s.tsAudio = &tsStream{streamType: typ, streamID: tsStreamIDAudio}
		streams = append(streams, s.tsAudio)
	}
	m.mux.init(&m.sink, streams...)
	m.hasMux = true
	m.set = set
	return nil
}

// Write muxes au into the open segment (segment.Muxer).
func (m *tsMuxer) Write(_ *segment.File, set *segment.Set, kind segment.Kind, au *media.AccessUnit, out time.Duration) error {
	s := set.State.(*tsSet)
	out += tsOffset
	dts := Ticks(out)
	pts := dts
	if au.PTS > au.DTS {
		pts = Ticks(out + (au.PTS - au.DTS))
	}
	if kind == segment.Video {
		t := set.Video
		switch t.Codec {
		case media.H264:
			nalus := m.h264AU(t, au)
			return m.mux.writeVideo(s.tsVideo, pts, dts, h264.IsRandomAccess(nalus), m.annexB(nalus))
		case media.H265:
			nalus := m.h265AU(t, au)
			return m.mux.writeVideo(s.tsVideo, pts, dts, h265.IsRandomAccess(nalus), m.annexB(nalus))
		case media.MPEG4Video:
			frame := au.Data
			pieces := append(m.pieces[:0], frame)
			rap := bytes.Contains(frame, mpeg4GOVStart)
			if au.Key && len(t.VideoConfig) > 0 && !bytes.HasPrefix(frame, t.VideoConfig) {
				pieces = append(pieces[:0], t.VideoConfig, frame)
				rap = rap || bytes.Contains(t.VideoConfig, mpeg4GOVStart)
			}
			m.pieces = pieces
			// MPEG-4 Part 2 is written with PTS only (DTS = PTS), as mediacommon did.
			return m.mux.writeVideo(s.tsVideo, pts, pts, rap, pieces)
		}
		return fmt.Errorf("unsupported video codec %s", t.Codec)
	}
	return m.queueAudio(set, au, pts)
}

// audioBatch collects contiguous audio frames so that several go into one PES, as ffmpeg
// does. One PES per frame would cost a partly stuffed TS packet per frame and, when audio
// carries the PCR (audio-only), a PAT and PMT per frame too, because every audio PES is
// flagged as a random access point and the packetizer then repeats the tables: about
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
	var err error
	switch {
	case set.Audio.Codec == media.AAC:
		var es []byte
		es, err = s.aac.appendADTS(m.esBuf[:0], b.data, b.lens)
		m.esBuf = es
		if err == nil {
			err = m.mux.writeAudio(s.tsAudio, b.pts, es)
		}
	case s.mp3LSF:
		// MPEG-2/2.5 Layer III: the frames as one audio PES without any framing or check.
		err = m.mux.writeAudio(s.tsAudio, b.pts, b.data)
	default:
		if !s.mp3Checked {
			var h mpeg1audio.FrameHeader
			if err = h.Unmarshal(b.data[:b.lens[0]]); err == nil && h.MPEG2 {
				err = errors.New("only MPEG-1 audio is supported")
			}
			s.mp3Checked = err == nil
		}
		if err == nil {
			err = m.mux.writeAudio(s.tsAudio, b.pts, b.data)
		}
	}
	b.data, b.lens, b.dur = b.data[:0], b.lens[:0], 0
	return err
}

// aacHeader holds the fixed ADTS header fields of an AAC track.
type aacHeader struct {
	sampleRate    int
	profile       byte // object type − 1
	srIndex       int  // sampling_frequency_index, −1 if the rate has none
	channelConfig byte
	err           error // the configuration cannot be written as ADTS
}

// adtsSampleRates are the ADTS sampling frequencies by index.
var adtsSampleRates = [...]int{96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}

// newAACHeader derives the ADTS fields from cfg, with the checks mediacommon's
// ADTSPackets.Marshal made.
func newAACHeader(cfg mpeg4audio.AudioSpecificConfig) aacHeader {
	h := aacHeader{sampleRate: cfg.SampleRate, srIndex: -1, channelConfig: cfg.ChannelConfig}
	if cfg.Type < 1 || cfg.Type > 4 {
		h.err = fmt.Errorf("ADTS only supports ObjectType 1-4, got %d", cfg.Type)
		return h
	}
	h.profile = byte(cfg.Type - 1)
	for i, r := range adtsSampleRates {
		if r == cfg.SampleRate {
			h.srIndex = i
		}
	}
	if h.srIndex < 0 {
		h.err = fmt.Errorf("invalid sample rate: %d", cfg.SampleRate)
		return h
	}
	if h.channelConfig == 0 {
		switch n := cfg.ChannelCount; { //nolint:staticcheck
		case n >= 0 && n <= 6:
			h.channelConfig = byte(n)
		case n == 8:
			h.channelConfig = 7
		default:
			h.err = fmt.Errorf("invalid channel count (%d)", n)
		}
	}
	return h
}

// appendADTS appends the frames (data split by lens), each with its ADTS header, to dst.
func (h *aacHeader) appendADTS(dst, data []byte, lens []int) ([]byte, error) {
	if h.err != nil {
		return dst, h.err
	}
	const fullness = 0x07FF // like ffmpeg does
	off := 0
	for _, n := range lens {
		frameLen := n + 7
		dst = append(dst,
			0xFF, 0xF1,
			h.profile<<6|byte(h.srIndex)<<2|h.channelConfig>>2,
			(h.channelConfig&0x03)<<6|byte(frameLen>>11),
			byte(frameLen>>3),
			byte(frameLen&0x07)<<5|byte(fullness>>6),
			byte(fullness&0x3F)<<2)
		dst = append(dst, data[off:off+n]...)
		off += n
	}
	return dst, nil
}

// annexB returns nalus with 4-byte start codes as pieces for writeVideo (a reused
// slice): the NAL units are not copied into a contiguous buffer first.
func (m *tsMuxer) annexB(nalus [][]byte) [][]byte {
	b := m.pieces[:0]
	for _, n := range nalus {
		b = append(b, startCode, n)
	}
	m.pieces = b
	return b
}

// startCode is the 4-byte Annex B start code put before every NAL unit.
var startCode = []byte{0, 0, 0, 1}

// mpeg4GOVStart is the MPEG-4 Part 2 group_of_VOP start code: its presence flags a
// random access point.
var mpeg4GOVStart = []byte{0, 0, 1, 0xB3}

// audioFrameDuration returns the nominal duration of an audio unit (for MP3, of its first
// frame; its header also tells whether the stream is MPEG-2/2.5 "LSF").
func audioFrameDuration(set *segment.Set, data []byte) (time.Duration, error) {
	s := set.State.(*tsSet)
	switch set.Audio.Codec {
	case media.AAC:
		sr := s.aac.sampleRate
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

// Access unit delimiters prepended by the writer (players such as video.js, iOS and
// QuickTime require them).
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

// videoStreamType maps a video codec to its MPEG-TS stream type.
func videoStreamType(c media.Codec) byte {
	switch c {
	case media.H265:
		return tsTypeH265
	case media.MPEG4Video:
		return tsTypeMPEG4Video
	default:
		return tsTypeH264
	}
}

// audioCodec maps an audio track to its MPEG-TS stream type and, for AAC, its ADTS
// header fields.
func audioCodec(t *media.Track) (byte, aacHeader, error) {
	switch t.Codec {
	case media.MP3:
		// MPEG-1 audio, also for MPEG-2 LSF streams (as ffmpeg writes them).
		return tsTypeMPEG1Audio, aacHeader{}, nil
	case media.AAC:
		cfg, err := segment.AACConfig(t)
		if err != nil {
			return 0, aacHeader{}, err
		}
		switch cfg.Type {
		case 1, mpeg4audio.ObjectTypeAACLC, 3, 4: // AAC Main, LC, SSR, LTP
		case mpeg4audio.ObjectTypeSBR, mpeg4audio.ObjectTypePS:
			// Explicit HE-AAC signalling: ADTS carries the AAC-LC core.
			cfg.Type = mpeg4audio.ObjectTypeAACLC
		default:
			return 0, aacHeader{}, fmt.Errorf("AAC object type %d cannot be carried in ADTS", cfg.Type)
		}
		return tsTypeAAC, newAACHeader(cfg), nil
	}
	return 0, aacHeader{}, fmt.Errorf("unsupported audio codec %q", t.Codec)
}
