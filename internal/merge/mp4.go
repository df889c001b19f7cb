package merge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg1audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"

	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/format/mp4"
	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/storage"
)

// MaxSegmentBytes bounds one segment read into memory for demuxing (a 30 s segment at
// 20 Mbit/s is 75 MB).
const MaxSegmentBytes = 512 << 20

// MP4Options configures MP4. The zero value is valid.
type MP4Options struct {
	// Logger receives the writer's warnings (dropped units). Nil discards.
	Logger *slog.Logger
	// Progress, if set, is called after each segment with the media time written so far
	// and the total.
	Progress func(done, total time.Duration)
}

// MP4 writes one progressive MP4 (livrec's mp4 writer: fast start, no re-encoding) from
// the segments of the m3u8 recordings under inputs, in order, and stores it under key
// (create-only). workDir is an existing directory; the working files (about the size of
// the output) are made in a temporary directory below it and removed at the end.
//
// The output timeline follows the playlists: each segment starts where the EXTINF
// durations before it end, so the MP4 lasts what the inputs' playlists say. Inside a
// continuous run (an input up to its next #EXT-X-DISCONTINUITY) the timestamps keep
// their spacing. Codecs: H.264, H.265, AAC, MP3 (what livrec records in MPEG-TS, except
// MPEG-4 Part 2). A track change between inputs (new parameters) cannot be carried by
// one MP4 file and fails with a clear error.
//
// Nothing is fsync'd (the inputs remain; a crash means rerun: the key is not stored
// until the file is complete).
func MP4(ctx context.Context, store storage.Store, inputs []string, key, workDir string, opt MP4Options) (format.Result, error) {
	if err := checkKey("key", key, ".mp4"); err != nil {
		return format.Result{}, err
	}
	if workDir == "" {
		return format.Result{}, errors.New("workDir: required")
	}
	ins, err := readInputs(ctx, store, inputs)
	if err != nil {
		return format.Result{}, err
	}
	dir, err := os.MkdirTemp(workDir, "merge-mp4-")
	if err != nil {
		return format.Result{}, err
	}
	defer os.RemoveAll(dir)
	w, err := mp4.New(mp4.Config{WorkDir: dir, Store: store, Logger: opt.Logger, NoSync: true})
	if err != nil {
		return format.Result{}, err
	}
	var total time.Duration
	for _, in := range ins {
		total += in.pl.Duration()
	}
	d := &demuxer{w: w}
	var at time.Duration // output time at which the current segment starts
	var buf bytes.Buffer
	for i, in := range ins {
		for j, s := range in.pl.Segments {
			if err := ctx.Err(); err != nil {
				return format.Result{}, err
			}
			if err := readSegment(ctx, store, s.Key, &buf); err != nil {
				return format.Result{}, fmt.Errorf("inputs[%d]: %w", i, err)
			}
			if err := d.segment(buf.Bytes(), at, j == 0 || s.Discontinuity); err != nil {
				return format.Result{}, fmt.Errorf("inputs[%d]: segment %s: %w", i, s.Key, err)
			}
			at += s.Duration
			if opt.Progress != nil {
				opt.Progress(at, total)
			}
		}
	}
	res, err := w.Finish(ctx, key)
	if err != nil {
		return res, fmt.Errorf("key %s: %w", key, err)
	}
	return res, nil
}

// errStop ends a pass over a segment early.
var errStop = errors.New("stop")

// readSegment reads the object under key into buf.
func readSegment(ctx context.Context, store storage.Store, key string, buf *bytes.Buffer) error {
	obj, err := store.Open(ctx, key)
	if err != nil {
		return fmt.Errorf("segment %s: %w", key, err)
	}
	defer obj.Close()
	if obj.Size() > MaxSegmentBytes {
		return fmt.Errorf("segment %s: %d bytes, at most %d", key, obj.Size(), MaxSegmentBytes)
	}
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(obj, MaxSegmentBytes)); err != nil {
		return fmt.Errorf("segment %s: %w", key, err)
	}
	return nil
}

// demuxer turns the segments' PES (tsDemuxer) into access units for the mp4 writer, the
// way livrec's ingest delivers them: H.264/H.265 NAL units without AUD and parameter
// sets (those are in the Track), one unit per audio frame.
type demuxer struct {
	ts           tsDemuxer
	aacType      mpeg4audio.ObjectType
	w            *mp4.Writer
	video, audio *media.Track // current tracks (declared to w once declared is set)
	declared     bool
	pending      []*media.AccessUnit // audio before the first video parameters

	runBase time.Duration      // output time of the run's reference timestamp
	dec     mpegts.TimeDecoder // 33-bit unwrapping, relative to the run's first timestamp
	lastV   time.Duration      // newest DTS written per track (monotonic guard)
	lastA   time.Duration
	anyV    bool
	anyA    bool
	err     error
}

// segment demuxes one TS segment. newRun starts a new continuous run whose first
// timestamp maps to at.
func (d *demuxer) segment(b []byte, at time.Duration, newRun bool) (err error) {
	defer func() { // third-party codec parsers on stored bytes: never a crash
		if r := recover(); r != nil {
			err = fmt.Errorf("parser panic: %v", r)
		}
	}()
	if newRun {
		first, ok := firstTimestamp(b)
		if !ok {
			return errors.New("no timestamped PES in the first packets")
		}
		d.runBase, d.dec = at, mpegts.TimeDecoder{}
		d.dec.Decode(first)
	}
	if !d.declared {
		// The audio parameters are needed with the first picture (an MP4 declares its
		// tracks once); the first audio PES may come after it.
		err = d.ts.segment(b, func(es *tsES, pts, _ int64, p []byte) error {
			switch es.typ {
			case tsTypeAAC, tsTypeMPEG1Audio:
				if es.typ == tsTypeAAC {
					err = d.aacPES(pts, p)
				} else {
					err = d.mp3PES(pts, p)
				}
				if err != nil {
					return err
				}
				return errStop
			}
			return nil
		})
		d.pending = nil
		if err != nil && !errors.Is(err, errStop) {
			return err
		}
	}
	err = d.ts.segment(b, func(es *tsES, pts, dts int64, p []byte) error {
		switch es.typ {
		case tsTypeH264:
			return d.videoPES(media.H264, pts, dts, p)
		case tsTypeH265:
			return d.videoPES(media.H265, pts, dts, p)
		case tsTypeAAC:
			return d.aacPES(pts, p)
		case tsTypeMPEG1Audio:
			return d.mp3PES(pts, p)
		case tsTypeMPEG4Video:
			return errors.New("MPEG-4 Part 2 video cannot be merged into an MP4 (H.264, H.265, AAC and MP3 can)")
		}
		return nil // other streams (none in livrec's files) are left out
	})
	if err != nil || d.err != nil {
		return errors.Join(err, d.err)
	}
	if !d.declared && d.audio != nil {
		hasVideo := false
		for _, es := range d.ts.streams {
			hasVideo = hasVideo || es.typ == tsTypeH264 || es.typ == tsTypeH265
		}
		if !hasVideo {
			return d.declare() // audio-only
		}
	}
	return nil
}

func (d *demuxer) aacPES(pts int64, p []byte) error {
	var pkts mpeg4audio.ADTSPackets
	if err := pkts.Unmarshal(p); err != nil {
		return fmt.Errorf("AAC: %w", err)
	}
	for i, a := range pkts {
		if d.audio == nil || d.audio.Codec != media.AAC || d.audio.SampleRate != a.SampleRate ||
			d.audio.Channels != int(a.ChannelConfig) || d.aacType != a.Type {
			cfg, err := (&mpeg4audio.AudioSpecificConfig{Type: a.Type, SampleRate: a.SampleRate, ChannelConfig: a.ChannelConfig}).Marshal()
			if err != nil {
				return fmt.Errorf("AAC configuration: %w", err)
			}
			d.aacType = a.Type
			d.setAudio(&media.Track{Codec: media.AAC, AudioConfig: cfg, SampleRate: a.SampleRate, Channels: int(a.ChannelConfig)})
			if d.err != nil {
				return d.err
			}
		}
		if err := d.audioUnit(pts+int64(i)*1024*90000/int64(a.SampleRate), a.AU); err != nil {
			return err
		}
	}
	return nil
}

func (d *demuxer) mp3PES(pts int64, p []byte) error {
	var off int64
	for len(p) > 0 {
		var h mpeg1audio.FrameHeader
		if err := h.Unmarshal(p); err != nil {
			return fmt.Errorf("MP3 frame: %w", err)
		}
		n := h.FrameLen()
		if n <= 0 || n > len(p) || h.SampleRate <= 0 {
			return errors.New("MP3 frame: truncated")
		}
		ch := 2
		if h.ChannelMode == mpeg1audio.ChannelModeMono {
			ch = 1
		}
		d.setAudio(&media.Track{Codec: media.MP3, SampleRate: h.SampleRate, Channels: ch})
		if d.err != nil {
			return d.err
		}
		if err := d.audioUnit(pts+off, p[:n]); err != nil {
			return err
		}
		off += int64(h.SampleCount()) * 90000 / int64(h.SampleRate)
		p = p[n:]
	}
	return nil
}

// out maps a 90 kHz timestamp of the current run to the output timeline.
func (d *demuxer) out(ts int64) time.Duration { return d.runBase + fromTicks(d.dec.Decode(ts)) }

// setAudio adopts t as the audio track unless the current one has the same parameters.
func (d *demuxer) setAudio(t *media.Track) {
	if d.audio.SameParams(t) {
		return
	}
	d.audio = t
	if d.declared {
		d.err = d.setTracks()
	}
}

func (d *demuxer) setTracks() error {
	if err := d.w.SetTracks(d.video, d.audio); err != nil {
		if errors.Is(err, format.ErrNeedNewFile) {
			return errors.New("the tracks change (new codec parameters): one MP4 file cannot hold the change")
		}
		return err
	}
	return nil
}

// declare declares the tracks and writes the audio held back for them.
func (d *demuxer) declare() error {
	if err := d.setTracks(); err != nil {
		return err
	}
	d.declared = true
	for _, au := range d.pending {
		if err := d.write(au); err != nil {
			return err
		}
	}
	d.pending = nil
	return nil
}

func (d *demuxer) videoPES(codec media.Codec, pts, dts int64, p []byte) error {
	if d.err != nil {
		return d.err
	}
	var au h264.AnnexB // the start codes of H.265 are the same
	if err := au.Unmarshal(p); err != nil {
		return fmt.Errorf("video: %w", err)
	}
	var vps, sps, pps []byte
	nalus := make([][]byte, 0, len(au))
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		if codec == media.H265 {
			switch h265.NALUType((n[0] >> 1) & 0x3F) {
			case h265.NALUType_VPS_NUT:
				vps = n
				continue
			case h265.NALUType_SPS_NUT:
				sps = n
				continue
			case h265.NALUType_PPS_NUT:
				pps = n
				continue
			case h265.NALUType_AUD_NUT:
				continue
			}
		} else {
			switch h264.NALUType(n[0] & 0x1F) {
			case h264.NALUTypeSPS:
				sps = n
				continue
			case h264.NALUTypePPS:
				pps = n
				continue
			case h264.NALUTypeAccessUnitDelimiter:
				continue
			}
		}
		nalus = append(nalus, n)
	}
	if sps != nil && pps != nil && (codec == media.H264 || vps != nil) {
		t := &media.Track{Codec: codec, VPS: bytes.Clone(vps), SPS: bytes.Clone(sps), PPS: bytes.Clone(pps)}
		if !d.video.SameParams(t) {
			d.video = t
			if d.declared {
				if err := d.setTracks(); err != nil {
					return err
				}
			}
		}
	}
	if d.video == nil || len(nalus) == 0 {
		return nil // before the first parameter sets: not decodable
	}
	if !d.declared {
		if err := d.declare(); err != nil {
			return err
		}
	}
	key := h264.IsRandomAccess(nalus)
	if codec == media.H265 {
		key = h265.IsRandomAccess(nalus)
	}
	o := d.out(dts)
	cts := (pts - dts) & tsClockMask
	if cts > tsClockMask/2 {
		cts -= tsClockMask + 1
	}
	return d.write(&media.AccessUnit{Track: d.video, DTS: o, PTS: o + fromTicks(cts), Key: key, NALUs: nalus})
}

func (d *demuxer) audioUnit(pts int64, data []byte) error {
	if d.err != nil {
		return d.err
	}
	o := d.out(pts)
	au := &media.AccessUnit{Track: d.audio, DTS: o, PTS: o, Key: true, Data: data}
	if !d.declared {
		au.Data = bytes.Clone(data)
		d.pending = append(d.pending, au)
		return nil
	}
	return d.write(au)
}

// write hands au to the writer unless it would not advance its track: at a join the
// audio of the new run may overlap the end of the previous one.
func (d *demuxer) write(au *media.AccessUnit) error {
	if au.Track.Codec.IsVideo() {
		if d.anyV && au.DTS <= d.lastV {
			return nil
		}
		d.anyV, d.lastV = true, au.DTS
	} else {
		if d.anyA && au.DTS <= d.lastA {
			return nil
		}
		d.anyA, d.lastA = true, au.DTS
	}
	return d.w.WriteAU(au)
}
