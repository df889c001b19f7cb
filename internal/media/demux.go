package media

import (
	"bytes"
	"fmt"
	"math"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg1audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/livrec/livrec/internal/flv"
)

// Metadata is the onMetaData content the demuxer keeps (see flv.Metadata).
type Metadata = flv.Metadata

// Warning codes passed to Demuxer.OnWarning.
const (
	WarnUnsupportedCodec = "unsupported_codec" // once per codec
	WarnBadTag           = "bad_tag"           // malformed tag skipped (rate-limited)
	WarnMissingConfig    = "missing_config"    // frame before its decoder config (once per kind)
)

// Track-set determination limits (see Demuxer).
const (
	decideMediaTime = time.Second
	decideTags      = 100
	maxPendingAUs   = 1024
	maxPendingBytes = 32 << 20
)

// Demuxer turns FLV tags into tracks and access units.
//
// Track set: until the set of tracks is known, access units are buffered (bounded by
// maxPendingAUs/maxPendingBytes). The set is known when a video and an audio track are both
// configured; or when onMetaData announced which kinds exist and those are configured (a
// kind whose codec is unsupported is not waited for); or after ~1 s of media time or 100
// media tags with only one kind, which is then recorded alone. OnTracks is then called
// with the set, and again before the first access unit of any new *Track (a kind that
// appears later, or changed parameters). Each call passes the current video and audio
// tracks (nil for an absent kind).
//
// Access units hold copies of the tag bytes (or, with TakeTagBodies, the tag bodies
// themselves), so the caller may keep them; neither the access units nor the tracks are
// modified after they are handed out. With LendUnits they are lent instead: valid only
// during OnAccessUnit.
//
// The zero value is ready to use; set the callbacks before the first WriteTag. A Demuxer is
// not safe for concurrent use.
type Demuxer struct {
	// OnTracks is called before the first access unit and whenever the track set or a
	// track's parameters change (with new *Track values).
	OnTracks func(video, audio *Track)
	// OnAccessUnit receives each access unit with raw timestamps (tag milliseconds as
	// durations, not yet repaired). The receiver owns it.
	OnAccessUnit func(au *AccessUnit)
	// OnWarning reports skipped or unsupported input (codes Warn*). Optional.
	OnWarning func(code, msg string)
	// TakeTagBodies declares that the caller hands each tag body over to WriteTag: the
	// body is memory of its own that the caller never modifies or reuses after the call
	// (flv.Reader with FreshBodies; an ingest that allocates every message body anew). The
	// access units then alias the body instead of copying it, so the body lives as long
	// as they do. The default (false) copies, as the flv.Tag contract (a body is only
	// valid during the call) requires; never set it for a source that reuses buffers.
	TakeTagBodies bool
	// LendUnits lends the access units instead of copying the tag bytes (without
	// TakeTagBodies): a unit, its NALUs and their bytes alias the tag body and the
	// demuxer's own memory, and are valid only during the OnAccessUnit call; the
	// receiver copies (AccessUnit.Clone) what it keeps, and may modify the unit's
	// timing fields in the call. Units held until the track set is decided are copied by
	// the demuxer. With one source tag at a time (an ingest whose message bodies are
	// reused) nothing is then allocated per tag.
	LendUnits bool
	// Metadata is the last onMetaData seen.
	Metadata Metadata

	mdSeen bool
	video  videoState
	audio  audioState

	decided            bool
	pubVideo, pubAudio *Track
	pending            []*AccessUnit
	pendingBytes       int
	mediaTags          int

	once   map[string]bool
	counts map[string]int

	lent  AccessUnit // LendUnits: the unit lent for every frame
	nalus [][]byte   // LendUnits: the NAL units' slice of lent
}

type videoState struct {
	codec       flv.VideoCodec
	unsupported bool
	track       *Track
	lengthSize  int
	vps         []byte
	sps         []byte
	pps         []byte
	mpeg4Config []byte
}

type audioState struct {
	codec       flv.AudioCodec
	unsupported bool
	track       *Track
}

// WriteTag processes one tag. It never panics on malformed input: bad tags are skipped and
// reported through OnWarning. It currently always returns nil; the error is reserved for
// fatal conditions (none exist today) so callers should still check it.
func (d *Demuxer) WriteTag(t flv.Tag) error {
	switch t.Type {
	case flv.TagVideo:
		d.mediaTags++
		d.videoTag(t)
	case flv.TagAudio:
		d.mediaTags++
		d.audioTag(t)
	case flv.TagScript:
		md, err := flv.ParseMetadata(t.Body)
		if err == nil {
			d.Metadata = md
			d.mdSeen = true
		} else if err != flv.ErrNotMetadata {
			d.warnRate(WarnBadTag, fmt.Sprintf("onMetaData: %v", err))
		}
	default:
		// Unknown tag types are ignored.
	}
	if !d.decided {
		d.maybeDecide()
	}
	return nil
}

// Flush releases buffered access units (end of input). If the track set was not decided
// yet, it is decided with what is known.
func (d *Demuxer) Flush() {
	if !d.decided && len(d.pending) > 0 {
		d.decide()
	}
}

// ----- warnings -----

func (d *Demuxer) warn(code, msg string) {
	if d.OnWarning != nil {
		d.OnWarning(code, msg)
	}
}

// warnOnce reports a warning the first time key is seen.
func (d *Demuxer) warnOnce(key, code, msg string) {
	if d.once == nil {
		d.once = map[string]bool{}
	}
	if d.once[key] {
		return
	}
	d.once[key] = true
	d.warn(code, msg)
}

// warnRate reports the 1st, 2nd, 3rd, 10th, 100th, 1000th ... occurrence of a code.
func (d *Demuxer) warnRate(code, msg string) {
	if d.counts == nil {
		d.counts = map[string]int{}
	}
	d.counts[code]++
	n := d.counts[code]
	if n <= 3 {
		d.warn(code, msg)
		return
	}
	for p := 10; p <= n; p *= 10 {
		if p == n {
			d.warn(code, fmt.Sprintf("%s (%d occurrences)", msg, n))
			return
		}
	}
}

// ----- track set and output -----

func (d *Demuxer) expected(known, has, unsupported bool) bool {
	if unsupported {
		return false
	}
	if d.mdSeen && known {
		return has
	}
	return true // unknown: wait for it (until the timeout)
}

func (d *Demuxer) maybeDecide() {
	haveV, haveA := d.video.track != nil, d.audio.track != nil
	if !haveV && !haveA {
		for _, au := range d.pending { // tracks may have been reset since
			if au.Track.Codec.IsVideo() {
				haveV = true
			} else {
				haveA = true
			}
		}
	}
	if !haveV && !haveA {
		return
	}
	expV := d.expected(d.Metadata.VideoKnown, d.Metadata.HasVideo, d.video.unsupported)
	expA := d.expected(d.Metadata.AudioKnown, d.Metadata.HasAudio, d.audio.unsupported)
	if (haveV || !expV) && (haveA || !expA) {
		d.decide()
		return
	}
	if d.mediaTags >= decideTags || len(d.pending) >= maxPendingAUs || d.pendingBytes >= maxPendingBytes {
		d.decide()
		return
	}
	if len(d.pending) > 1 {
		lo, hi := d.pending[0].DTS, d.pending[0].DTS
		for _, au := range d.pending[1:] {
			lo, hi = min(lo, au.DTS), max(hi, au.DTS)
		}
		if hi-lo >= decideMediaTime {
			d.decide()
		}
	}
}

func (d *Demuxer) decide() {
	d.decided = true
	v, a := d.video.track, d.audio.track
	var fv, fa bool
	for _, au := range d.pending {
		if au.Track.Codec.IsVideo() && !fv {
			v, fv = au.Track, true
		} else if !au.Track.Codec.IsVideo() && !fa {
			a, fa = au.Track, true
		}
	}
	d.pubVideo, d.pubAudio = v, a
	if d.OnTracks != nil && (v != nil || a != nil) {
		d.OnTracks(v, a)
	}
	pending := d.pending
	d.pending, d.pendingBytes = nil, 0
	for _, au := range pending {
		d.emit(au)
	}
}

// unit returns the access unit to fill for a frame: a new one, or with LendUnits the
// demuxer's own, reused for every frame (output copies it if it is held).
func (d *Demuxer) unit() *AccessUnit {
	if d.lends() {
		d.lent = AccessUnit{}
		return &d.lent
	}
	return &AccessUnit{}
}

func (d *Demuxer) lends() bool { return d.LendUnits && !d.TakeTagBodies }

func (d *Demuxer) output(au *AccessUnit) {
	if !d.decided {
		if d.lends() {
			c := au.Clone()
			au = &c
		}
		d.pending = append(d.pending, au)
		d.pendingBytes += au.Size()
		return
	}
	d.emit(au)
}

func (d *Demuxer) emit(au *AccessUnit) {
	if au.Track.Codec.IsVideo() {
		if au.Track != d.pubVideo {
			d.pubVideo = au.Track
			d.publish()
		}
	} else if au.Track != d.pubAudio {
		d.pubAudio = au.Track
		d.publish()
	}
	if d.OnAccessUnit != nil {
		d.OnAccessUnit(au)
	}
}

func (d *Demuxer) publish() {
	if d.OnTracks != nil {
		d.OnTracks(d.pubVideo, d.pubAudio)
	}
}

// dropKind removes a kind from the published set (its codec became unsupported).
func (d *Demuxer) dropKind(video bool) {
	if !d.decided {
		return
	}
	if video && d.pubVideo != nil {
		d.pubVideo = nil
		d.publish()
	} else if !video && d.pubAudio != nil {
		d.pubAudio = nil
		d.publish()
	}
}

func tagTime(ts uint32) time.Duration { return time.Duration(ts) * time.Millisecond }

// ----- video -----

func (d *Demuxer) videoTag(t flv.Tag) {
	h, err := flv.ParseVideoTagHeader(t.Body)
	if err != nil {
		d.warnRate(WarnBadTag, fmt.Sprintf("video tag at %d ms: %v", t.Timestamp, err))
		return
	}
	if !h.Codec.Supported() {
		if h.Codec == flv.VideoUnknown && h.Kind == flv.PacketOther {
			return // ModEx etc.: nothing to record
		}
		d.warnOnce("v:"+h.CodecDescription(), WarnUnsupportedCodec,
			fmt.Sprintf("video codec %s is not supported; recording audio only", h.CodecDescription()))
		d.video = videoState{unsupported: true}
		d.dropKind(true)
		return
	}
	if h.Codec != d.video.codec {
		// New (or first) codec: parameters from the previous one do not carry over.
		d.video = videoState{codec: h.Codec}
	}
	switch h.Kind {
	case flv.PacketConfig:
		d.videoConfig(h, t.Timestamp)
	case flv.PacketFrame:
		if len(h.Data) == 0 {
			return // empty frame (some encoders send them as keep-alives)
		}
		if h.Codec == flv.VideoMPEG4 {
			d.mpeg4Frame(h, t.Timestamp)
		} else {
			d.h26xFrame(h, t.Timestamp)
		}
	}
}

func (d *Demuxer) videoConfig(h flv.VideoTagHeader, ts uint32) {
	v := &d.video
	switch h.Codec {
	case flv.VideoAVC:
		cfg, err := flv.ParseAVCConfig(h.Data)
		if err != nil {
			d.warnRate(WarnBadTag, fmt.Sprintf("H.264 configuration at %d ms: %v", ts, err))
			return
		}
		v.lengthSize = cfg.LengthSize
		d.setVideoParams(nil, cfg.SPS[0], cfg.PPS[0])
	case flv.VideoHEVC:
		cfg, err := flv.ParseHEVCConfig(h.Data)
		if err != nil {
			d.warnRate(WarnBadTag, fmt.Sprintf("H.265 configuration at %d ms: %v", ts, err))
			return
		}
		v.lengthSize = cfg.LengthSize
		d.setVideoParams(cfg.VPS[0], cfg.SPS[0], cfg.PPS[0])
	case flv.VideoMPEG4:
		if len(h.Data) > 0 {
			d.setMPEG4Config(h.Data)
		}
	}
}

// setVideoParams merges new parameter sets (nil = unchanged) into the current ones and, if
// the result is complete and differs from the current track, makes a new track.
func (d *Demuxer) setVideoParams(vps, sps, pps []byte) {
	v := &d.video
	if vps != nil && !bytes.Equal(vps, v.vps) {
		v.vps = bytes.Clone(vps)
	}
	if sps != nil && !bytes.Equal(sps, v.sps) {
		v.sps = bytes.Clone(sps)
	}
	if pps != nil && !bytes.Equal(pps, v.pps) {
		v.pps = bytes.Clone(pps)
	}
	if v.sps == nil || v.pps == nil || (v.codec == flv.VideoHEVC && v.vps == nil) {
		return
	}
	if tr := v.track; tr != nil && bytes.Equal(tr.VPS, v.vps) && bytes.Equal(tr.SPS, v.sps) && bytes.Equal(tr.PPS, v.pps) {
		return
	}
	tr := &Track{VPS: v.vps, SPS: v.sps, PPS: v.pps}
	if v.codec == flv.VideoHEVC {
		tr.Codec = H265
		var s h265.SPS
		if safeCall(s.Unmarshal, v.sps) == nil {
			tr.Width, tr.Height, tr.FrameRate = safeDims(s.Width, s.Height, s.FPS)
		}
	} else {
		tr.Codec = H264
		var s h264.SPS
		if safeCall(s.Unmarshal, v.sps) == nil {
			tr.Width, tr.Height, tr.FrameRate = safeDims(s.Width, s.Height, s.FPS)
		}
	}
	d.fillFromMetadata(tr)
	v.track = tr
}

// safeCall runs a third-party parser on untrusted bytes, turning a panic into an error.
func safeCall(fn func([]byte) error, b []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("parser panic: %v", r)
		}
	}()
	return fn(b)
}

// safeDims evaluates SPS-derived dimensions and rate, discarding implausible values (and
// panics) from malformed parameter sets.
func safeDims(w, h func() int, fps func() float64) (width, height int, rate float64) {
	defer func() {
		if recover() != nil {
			width, height, rate = 0, 0, 0
		}
	}()
	width, height, rate = w(), h(), fps()
	if width <= 0 || height <= 0 || width > 16384 || height > 16384 {
		width, height = 0, 0
	}
	if math.IsNaN(rate) || rate <= 0 || rate > 1000 {
		rate = 0
	}
	return width, height, rate
}

func (d *Demuxer) fillFromMetadata(tr *Track) {
	md := d.Metadata
	if tr.Width == 0 && tr.Height == 0 && md.Width > 0 && md.Height > 0 && md.Width <= 16384 && md.Height <= 16384 {
		tr.Width, tr.Height = int(md.Width), int(md.Height)
	}
	if tr.FrameRate == 0 && md.FrameRate > 0 && md.FrameRate <= 1000 {
		tr.FrameRate = md.FrameRate
	}
}

// splitAVCC splits length-prefixed NAL units. Zero-length units are skipped.
func splitAVCC(b []byte, lengthSize int, out [][]byte) ([][]byte, error) {
	for len(b) > 0 {
		if len(b) < lengthSize {
			return nil, fmt.Errorf("truncated NAL unit length")
		}
		var n int
		for i := 0; i < lengthSize; i++ {
			n = n<<8 | int(b[i])
		}
		b = b[lengthSize:]
		if n > len(b) {
			return nil, fmt.Errorf("NAL unit of %d bytes exceeds the remaining %d", n, len(b))
		}
		if n > 0 {
			out = append(out, b[:n:n])
		}
		b = b[n:]
	}
	return out, nil
}

// splitAnnexB splits a start-code delimited stream (sent by some broken encoders instead of
// length prefixes).
func splitAnnexB(b []byte, out [][]byte) [][]byte {
	start := -1
	i := 0
	for i+3 <= len(b) {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				end := i
				for end > start && b[end-1] == 0 {
					end--
				}
				if end > start {
					out = append(out, b[start:end:end])
				}
			}
			i += 3
			start = i
			continue
		}
		i++
	}
	if start >= 0 && start < len(b) {
		out = append(out, b[start:len(b):len(b)])
	}
	return out
}

func isAnnexB(b []byte) bool {
	return len(b) >= 4 && b[0] == 0 && b[1] == 0 && (b[2] == 1 || (b[2] == 0 && b[3] == 1))
}

func (d *Demuxer) h26xFrame(h flv.VideoTagHeader, ts uint32) {
	v := &d.video
	hevc := h.Codec == flv.VideoHEVC
	data := d.own(h.Data) // the AU owns its bytes; NAL units alias them
	ls := v.lengthSize
	if ls == 0 {
		ls = 4
	}
	var nalus [][]byte
	if d.lends() {
		nalus = d.nalus[:0]
	} else {
		nalus = make([][]byte, 0, 8)
	}
	nalus, err := splitAVCC(data, ls, nalus)
	if err != nil {
		if !isAnnexB(data) {
			d.warnRate(WarnBadTag, fmt.Sprintf("%s frame at %d ms: %v", h.Codec, ts, err))
			return
		}
		nalus = splitAnnexB(data, nalus[:0])
	}

	var vps, sps, pps []byte
	out := nalus[:0]
	for _, n := range nalus {
		if hevc {
			switch h265.NALUType((n[0] >> 1) & 0x3f) {
			case h265.NALUType_AUD_NUT:
				continue
			case h265.NALUType_VPS_NUT:
				if vps == nil {
					vps = n
				}
				continue
			case h265.NALUType_SPS_NUT:
				if sps == nil {
					sps = n
				}
				continue
			case h265.NALUType_PPS_NUT:
				if pps == nil {
					pps = n
				}
				continue
			}
		} else {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeAccessUnitDelimiter:
				continue
			case h264.NALUTypeSPS:
				if sps == nil {
					sps = n
				}
				continue
			case h264.NALUTypePPS:
				if pps == nil {
					pps = n
				}
				continue
			}
		}
		out = append(out, n)
	}
	if vps != nil || sps != nil || pps != nil {
		d.setVideoParams(vps, sps, pps)
	}
	if len(out) == 0 {
		return // parameter sets / delimiters only
	}
	if v.track == nil {
		d.warnOnce("missing_config:video", WarnMissingConfig,
			fmt.Sprintf("%s frame at %d ms before any decoder configuration; skipping video until one arrives", h.Codec, ts))
		return
	}
	if d.lends() {
		d.nalus = out // the grown slice, for the next frame
	}
	au := d.unit()
	au.Track, au.NALUs = v.track, out
	au.DTS = tagTime(ts)
	au.PTS = au.DTS + time.Duration(h.CompositionTime)*time.Millisecond
	if hevc {
		au.Key = h265.IsRandomAccess(out)
	} else {
		au.Key = h264.IsRandomAccess(out)
	}
	d.output(au)
}

func (d *Demuxer) setMPEG4Config(cfg []byte) {
	v := &d.video
	if v.track != nil && bytes.Equal(v.track.VideoConfig, cfg) {
		return
	}
	v.mpeg4Config = bytes.Clone(cfg)
	tr := &Track{Codec: MPEG4Video, VideoConfig: v.mpeg4Config}
	if vol := mpeg4ConfigVOL(cfg); vol != nil {
		if w, h, fps, ok := parseVOL(vol); ok {
			tr.Width, tr.Height, tr.FrameRate = w, h, fps
		}
	}
	d.fillFromMetadata(tr)
	v.track = tr
}

func (d *Demuxer) mpeg4Frame(h flv.VideoTagHeader, ts uint32) {
	v := &d.video
	data := d.own(h.Data)
	sc := mpeg4Scan(data)
	if sc.configEnd > 0 {
		d.setMPEG4Config(data[:sc.configEnd])
	}
	if !sc.hasVOP && sc.configEnd == len(data) {
		return // headers only
	}
	if v.track == nil {
		// No configuration at all (not even in-band): record without one.
		tr := &Track{Codec: MPEG4Video}
		d.fillFromMetadata(tr)
		v.track = tr
	}
	key := sc.intraVOP
	if !sc.hasVOP {
		key = sc.hasGOV || sc.hasVOL || h.Key()
	}
	au := d.unit()
	*au = AccessUnit{
		Track: v.track,
		DTS:   tagTime(ts),
		PTS:   tagTime(ts) + time.Duration(h.CompositionTime)*time.Millisecond,
		Key:   key,
		Data:  data,
	}
	d.output(au)
}

// ----- audio -----

func (d *Demuxer) audioTag(t flv.Tag) {
	h, err := flv.ParseAudioTagHeader(t.Body)
	if err != nil {
		d.warnRate(WarnBadTag, fmt.Sprintf("audio tag at %d ms: %v", t.Timestamp, err))
		return
	}
	if !h.Codec.Supported() {
		if h.Codec == flv.AudioUnknown && h.Kind == flv.PacketOther {
			return
		}
		d.warnOnce("a:"+h.CodecDescription(), WarnUnsupportedCodec,
			fmt.Sprintf("audio codec %s is not supported; recording video only", h.CodecDescription()))
		d.audio = audioState{unsupported: true}
		d.dropKind(false)
		return
	}
	if h.Codec != d.audio.codec {
		d.audio = audioState{codec: h.Codec}
	}
	a := &d.audio
	switch h.Kind {
	case flv.PacketConfig:
		if h.Codec == flv.AudioAAC {
			d.aacConfig(h, t.Timestamp)
		}
	case flv.PacketFrame:
		if len(h.Data) == 0 {
			return
		}
		if h.Codec == flv.AudioMP3 {
			d.mp3Frame(h, t.Timestamp)
			return
		}
		if a.track == nil {
			d.warnOnce("missing_config:audio", WarnMissingConfig,
				fmt.Sprintf("AAC frame at %d ms before the AudioSpecificConfig; skipping audio until one arrives", t.Timestamp))
			return
		}
		au := d.unit()
		*au = AccessUnit{
			Track: a.track,
			DTS:   tagTime(t.Timestamp),
			PTS:   tagTime(t.Timestamp),
			Key:   true,
			Data:  d.own(h.Data),
		}
		d.output(au)
	}
}

func (d *Demuxer) aacConfig(h flv.AudioTagHeader, ts uint32) {
	a := &d.audio
	if a.track != nil && bytes.Equal(a.track.AudioConfig, h.Data) {
		return
	}
	var asc mpeg4audio.AudioSpecificConfig
	if err := safeCall(asc.Unmarshal, h.Data); err != nil {
		d.warnRate(WarnBadTag, fmt.Sprintf("AAC configuration at %d ms: %v", ts, err))
		return
	}
	ch := int(asc.ChannelConfig)
	switch {
	case ch == 7:
		ch = 8
	case ch == 0 || ch > 7:
		ch = 1
		if h.Stereo {
			ch = 2
		}
	}
	a.track = &Track{
		Codec:       AAC,
		AudioConfig: bytes.Clone(h.Data),
		SampleRate:  asc.SampleRate,
		Channels:    ch,
	}
}

func (d *Demuxer) mp3Frame(h flv.AudioTagHeader, ts uint32) {
	a := &d.audio
	var fh mpeg1audio.FrameHeader
	if err := safeCall(fh.Unmarshal, h.Data); err != nil || fh.SampleRate <= 0 {
		d.warnRate(WarnBadTag, fmt.Sprintf("MP3 frame at %d ms: bad frame header", ts))
		return
	}
	ch := 2
	if fh.ChannelMode == mpeg1audio.ChannelModeMono {
		ch = 1
	}
	if a.track == nil || a.track.SampleRate != fh.SampleRate || a.track.Channels != ch {
		a.track = &Track{Codec: MP3, SampleRate: fh.SampleRate, Channels: ch}
	}
	au := d.unit()
	*au = AccessUnit{
		Track: a.track,
		DTS:   tagTime(ts),
		PTS:   tagTime(ts),
		Key:   true,
		Data:  d.own(h.Data),
	}
	d.output(au)
}

// own returns frame bytes for the access unit: b itself with TakeTagBodies (b is part
// of a handed-over tag body) or LendUnits (the unit is lent for the WriteTag call),
// else a copy.
func (d *Demuxer) own(b []byte) []byte {
	if d.TakeTagBodies || d.LendUnits {
		return b[:len(b):len(b)]
	}
	return bytes.Clone(b)
}
