// Package testmedia makes media fixtures for end-to-end tests: short FLV files with the
// codec combinations livrec records, made with ffmpeg (lavfi test pattern and tone) and,
// where ffmpeg 5.1 cannot write the FLV, with our own FLV writer.
//
//   - H.264 (libx264 with 2 B-frames, so composition offsets occur), AAC, MP3, and
//     audio-only files: ffmpeg writes the FLV directly.
//   - MPEG-4 Part 2 (FLV codec id 9, non-standard): ffmpeg with -strict -1 and
//     -flags -global_header. With a global header ffmpeg's FLV muxer rewrites the
//     frames' start codes into AVC-style length prefixes (a stream no decoder reads) and
//     writes the headers only into the config tag; without it the config tag is empty
//     and every key frame carries the VOS/VO/VOL headers in band, from which the
//     demuxer takes the configuration.
//   - H.265, as Enhanced RTMP (FourCC hvc1) or as the legacy FLV codec id 12: ffmpeg 5.1
//     cannot put HEVC into FLV, so libx265 writes MPEG-TS, mediacommon's mpegts.Reader
//     reads it back, and the tags are written here: an HEVC decoder configuration record
//     from the in-band VPS/SPS/PPS, 4-byte length-prefixed NAL units without parameter
//     sets, CTS = PTS - DTS, the AAC AudioSpecificConfig and raw AAC frames or the MP3
//     frames, timestamps in milliseconds from the earliest DTS, and an onMetaData tag.
//
// All video is 8-bit 4:2:0 with closed GOPs of Spec.GOP frames (IDR / I-VOP key frames).
package testmedia

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg1audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/livrec/livrec/internal/flv"
)

// Video and audio codec names of a Spec.
const (
	H264       = "h264"
	H265       = "h265"        // Enhanced RTMP, FourCC hvc1
	H265Legacy = "h265-legacy" // legacy FLV codec id 12
	MPEG4      = "mpeg4"       // MPEG-4 Part 2, FLV codec id 9
	AAC        = "aac"
	MP3        = "mp3"
)

// Defaults for zero Spec fields.
const (
	DefaultSeconds = 2
	DefaultWidth   = 160
	DefaultHeight  = 120
	DefaultFPS     = 25
	// AudioSampleRate is the sample rate of all audio (mono).
	AudioSampleRate = 44100
)

// Spec describes a fixture.
type Spec struct {
	Video   string  // H264, H265, H265Legacy, MPEG4 or "" (no video)
	Audio   string  // AAC, MP3 or "" (no audio)
	Seconds float64 // duration (default 2)
	Width   int     // default 160
	Height  int     // default 120
	FPS     int     // default 25
	GOP     int     // key frame interval in frames (default FPS: one per second)
}

// withDefaults fills the zero fields.
func (s Spec) withDefaults() Spec {
	if s.Seconds <= 0 {
		s.Seconds = DefaultSeconds
	}
	if s.Width <= 0 {
		s.Width = DefaultWidth
	}
	if s.Height <= 0 {
		s.Height = DefaultHeight
	}
	if s.FPS <= 0 {
		s.FPS = DefaultFPS
	}
	if s.GOP <= 0 {
		s.GOP = s.FPS
	}
	return s
}

func (s Spec) validate() error {
	switch s.Video {
	case H264, H265, H265Legacy, MPEG4, "":
	default:
		return fmt.Errorf("testmedia: unknown video codec %q", s.Video)
	}
	switch s.Audio {
	case AAC, MP3, "":
	default:
		return fmt.Errorf("testmedia: unknown audio codec %q", s.Audio)
	}
	if s.Video == "" && s.Audio == "" {
		return errors.New("testmedia: a spec needs video or audio")
	}
	if s.Width%2 != 0 || s.Height%2 != 0 {
		return fmt.Errorf("testmedia: odd picture size %dx%d", s.Width, s.Height)
	}
	return nil
}

// Name is the file name MakeFLV uses for s (after defaults).
func (s Spec) Name() string {
	s = s.withDefaults()
	v, a := s.Video, s.Audio
	if v == "" {
		v = "novideo"
	}
	if a == "" {
		a = "noaudio"
	}
	return fmt.Sprintf("%s_%s_%gs_%dx%d_%dfps_g%d.flv", v, a, s.Seconds, s.Width, s.Height, s.FPS, s.GOP)
}

// MakeFLV writes the fixture described by s into dir and returns its path. A file made
// by an earlier call for the same Spec in dir is reused (files are written under a
// temporary name and renamed when complete). Tests call testenv.Require(t,
// testenv.FFmpeg) first, so that a missing ffmpeg fails them the same way everywhere.
func MakeFLV(dir string, s Spec) (string, error) {
	s = s.withDefaults()
	if err := s.validate(); err != nil {
		return "", err
	}
	path := filepath.Join(dir, s.Name())
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return "", fmt.Errorf("testmedia: %w (apt-get install ffmpeg, or run ./test)", err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*-"+s.Name())
	if err != nil {
		return "", err
	}
	tmpName := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpName)

	switch s.Video {
	case H265, H265Legacy:
		err = makeHEVC(ffmpeg, dir, tmpName, s)
	default:
		err = runFFmpeg(ffmpeg, ffmpegArgs(s, "flv", tmpName))
	}
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmpName, path); err != nil {
		return "", err
	}
	return path, nil
}

// ffmpegArgs builds an ffmpeg command line encoding s into format at out.
func ffmpegArgs(s Spec, format, out string) []string {
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}
	if s.Video != "" {
		args = append(args, "-f", "lavfi", "-i",
			fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", s.Width, s.Height, s.FPS))
	}
	if s.Audio != "" {
		args = append(args, "-f", "lavfi", "-i",
			fmt.Sprintf("sine=frequency=440:sample_rate=%d", AudioSampleRate))
	}
	args = append(args, "-t", strconv.FormatFloat(s.Seconds, 'f', -1, 64))
	gop := strconv.Itoa(s.GOP)
	switch s.Video {
	case H264:
		args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2",
			"-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-pix_fmt", "yuv420p")
	case H265, H265Legacy:
		args = append(args, "-c:v", "libx265", "-preset", "ultrafast", "-bf", "2", "-g", gop,
			"-x265-params", "log-level=error:open-gop=0:scenecut=0:keyint="+gop+":min-keyint="+gop,
			"-pix_fmt", "yuv420p")
	case MPEG4:
		args = append(args, "-c:v", "mpeg4", "-q:v", "5", "-g", gop, "-flags", "-global_header",
			"-pix_fmt", "yuv420p")
	}
	switch s.Audio {
	case AAC:
		args = append(args, "-c:a", "aac", "-b:a", "64k")
	case MP3:
		args = append(args, "-c:a", "libmp3lame", "-b:a", "64k")
	}
	if s.Video == MPEG4 {
		args = append(args, "-strict", "-1") // the FLV muxer refuses codec id 9 otherwise
	}
	return append(args, "-f", format, out)
}

func runFFmpeg(ffmpeg string, args []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, ffmpeg, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("testmedia: ffmpeg %v: %w\n%s", args, err, out)
	}
	return nil
}

// tsTag is a tag collected from the MPEG-TS before ordering.
type tsTag struct {
	dts int64 // 90 kHz
	pts int64
	tag flv.Tag
	seq int
}

// makeHEVC encodes s to MPEG-TS with libx265 and rewrites it as FLV at out.
func makeHEVC(ffmpeg, dir, out string, s Spec) error {
	ts, err := os.CreateTemp(dir, ".tmp-*.ts")
	if err != nil {
		return err
	}
	tsName := ts.Name()
	ts.Close()
	defer os.Remove(tsName)
	if err := runFFmpeg(ffmpeg, ffmpegArgs(s, "mpegts", tsName)); err != nil {
		return err
	}
	b, err := os.ReadFile(tsName)
	if err != nil {
		return err
	}
	tags, err := tsToFLVTags(b, s)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	w, err := flv.NewWriter(&buf, s.Audio != "", true)
	if err != nil {
		return err
	}
	for _, t := range tags {
		if err := w.WriteTag(t); err != nil {
			return err
		}
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// tsToFLVTags converts an MPEG-TS with one H.265 and optionally one AAC or MP3 track
// into FLV tags (onMetaData, configs, then media in DTS order).
func tsToFLVTags(b []byte, s Spec) ([]flv.Tag, error) {
	r := &mpegts.Reader{R: bytes.NewReader(b)}
	if err := r.Initialize(); err != nil {
		return nil, fmt.Errorf("testmedia: reading MPEG-TS: %w", err)
	}
	legacy := s.Video == H265Legacy
	var media []tsTag
	var configs []flv.Tag
	var vps, sps, pps []byte
	var videoSeen, audioSeen bool
	add := func(dts, pts int64, t flv.Tag) {
		media = append(media, tsTag{dts: dts, pts: pts, tag: t, seq: len(media)})
	}

	for _, tr := range r.Tracks() {
		switch c := tr.Codec.(type) {
		case *tscodecs.H265:
			videoSeen = true
			r.OnDataH265(tr, func(pts, dts int64, au [][]byte) error {
				frame := make([][]byte, 0, len(au))
				for _, n := range au {
					switch h265.NALUType((n[0] >> 1) & 0x3f) {
					case h265.NALUType_VPS_NUT:
						if vps == nil {
							vps = bytes.Clone(n)
						}
						continue
					case h265.NALUType_SPS_NUT:
						if sps == nil {
							sps = bytes.Clone(n)
						}
						continue
					case h265.NALUType_PPS_NUT:
						if pps == nil {
							pps = bytes.Clone(n)
						}
						continue
					case h265.NALUType_AUD_NUT:
						continue
					}
					frame = append(frame, n)
				}
				if len(frame) == 0 {
					return nil
				}
				// The TS reader's AU is only valid during the callback: build the body now;
				// the composition time is filled in after timestamps are rebased.
				key := h265.IsRandomAccess(frame)
				var body []byte
				if legacy {
					body = flv.AppendVideoHeader(nil, key, flv.CodecIDHEVC, 1, 0)
				} else {
					body = flv.AppendVideoExHeader(nil, key, flv.VideoExCodedFrames, flv.FourCCHEVC, 0)
				}
				for _, n := range frame {
					body = append(body, byte(len(n)>>24), byte(len(n)>>16), byte(len(n)>>8), byte(len(n)))
					body = append(body, n...)
				}
				add(dts, pts, flv.Tag{Type: flv.TagVideo, Body: body})
				return nil
			})

		case *tscodecs.MPEG4Audio:
			if s.Audio != AAC {
				return nil, fmt.Errorf("testmedia: unexpected AAC track")
			}
			audioSeen = true
			asc, err := c.Config.Marshal()
			if err != nil {
				return nil, err
			}
			configs = append(configs, flv.Tag{Type: flv.TagAudio, Body: append(flv.AppendAudioHeaderAAC(nil, 0), asc...)})
			sr := float64(c.Config.SampleRate)
			r.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) error {
				for i, au := range aus {
					t := pts + int64(math.Round(float64(i)*1024*90000/sr))
					add(t, t, flv.Tag{Type: flv.TagAudio, Body: append(flv.AppendAudioHeaderAAC(nil, 1), au...)})
				}
				return nil
			})

		case *tscodecs.MPEG1Audio:
			if s.Audio != MP3 {
				return nil, fmt.Errorf("testmedia: unexpected MPEG audio track")
			}
			audioSeen = true
			r.OnDataMPEG1Audio(tr, func(pts int64, frames [][]byte) error {
				var off float64
				for _, f := range frames {
					var h mpeg1audio.FrameHeader
					if err := h.Unmarshal(f); err != nil {
						return err
					}
					t := pts + int64(math.Round(off))
					body := flv.AppendAudioHeaderMP3(nil, h.SampleRate, h.ChannelMode != mpeg1audio.ChannelModeMono)
					add(t, t, flv.Tag{Type: flv.TagAudio, Body: append(body, f...)})
					off += float64(h.SampleCount()) * 90000 / float64(h.SampleRate)
				}
				return nil
			})

		default:
			return nil, fmt.Errorf("testmedia: unexpected MPEG-TS track %T", tr.Codec)
		}
	}
	if !videoSeen || (s.Audio != "") != audioSeen {
		return nil, fmt.Errorf("testmedia: MPEG-TS tracks do not match the spec")
	}
	var decodeErr error
	r.OnDecodeError(func(err error) {
		if decodeErr == nil {
			decodeErr = err
		}
	})
	for {
		err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("testmedia: reading MPEG-TS: %w", err)
		}
	}
	if decodeErr != nil {
		return nil, fmt.Errorf("testmedia: MPEG-TS decode error: %w", decodeErr)
	}
	if vps == nil || sps == nil || pps == nil {
		return nil, errors.New("testmedia: no VPS/SPS/PPS in the H.265 stream")
	}
	rec, err := flv.MarshalHEVCConfig([][]byte{vps}, [][]byte{sps}, [][]byte{pps})
	if err != nil {
		return nil, err
	}
	var vcfg, vend []byte
	if legacy {
		vcfg = flv.AppendVideoHeader(nil, true, flv.CodecIDHEVC, 0, 0)
		vend = flv.AppendVideoHeader(nil, true, flv.CodecIDHEVC, 2, 0)
	} else {
		vcfg = flv.AppendVideoExHeader(nil, true, flv.VideoExSequenceStart, flv.FourCCHEVC, 0)
		vend = flv.AppendVideoExHeader(nil, true, flv.VideoExSequenceEnd, flv.FourCCHEVC, 0)
	}
	configs = append([]flv.Tag{{Type: flv.TagVideo, Body: append(vcfg, rec...)}}, configs...)

	// Rebase on the earliest DTS, order by DTS (stable), set the composition times.
	if len(media) == 0 {
		return nil, errors.New("testmedia: no media in the MPEG-TS")
	}
	base := media[0].dts
	for _, m := range media {
		base = min(base, m.dts)
	}
	slices.SortStableFunc(media, func(a, b tsTag) int {
		if a.dts != b.dts {
			return int(a.dts - b.dts)
		}
		return a.seq - b.seq
	})
	var last uint32
	tags := make([]flv.Tag, 0, len(media)+4)
	tags = append(tags, metadataTag(s))
	tags = append(tags, configs...)
	for _, m := range media {
		dtsMS := (m.dts - base + 45) / 90
		ptsMS := (m.pts - base + 45) / 90
		t := m.tag
		t.Timestamp = uint32(dtsMS)
		if t.Type == flv.TagVideo {
			cts := int32(ptsMS - dtsMS)
			switch {
			case legacy:
				t.Body[2], t.Body[3], t.Body[4] = byte(cts>>16), byte(cts>>8), byte(cts)
			case cts == 0:
				// Like ffmpeg 6.1+: CodedFramesX, the variant without composition time.
				key := t.Body[0]>>4&0x07 == flv.FrameTypeKey
				t.Body = append(flv.AppendVideoExHeader(nil, key, flv.VideoExCodedFramesX, flv.FourCCHEVC, 0), t.Body[8:]...)
			default:
				t.Body[5], t.Body[6], t.Body[7] = byte(cts>>16), byte(cts>>8), byte(cts)
			}
		}
		last = max(last, t.Timestamp)
		tags = append(tags, t)
	}
	tags = append(tags, flv.Tag{Type: flv.TagVideo, Timestamp: last, Body: vend})
	return tags, nil
}

// metadataTag is the onMetaData tag written for an H.265 fixture, with the fields
// ffmpeg writes (videocodecid is the FourCC as a number for Enhanced RTMP, as ffmpeg 6.1+
// writes it).
func metadataTag(s Spec) flv.Tag {
	vid := float64(flv.CodecIDHEVC)
	if s.Video == H265 {
		vid = float64(flv.FourCCHEVC)
	}
	arr := amf0.ECMAArray{
		{Key: "duration", Value: s.Seconds},
		{Key: "width", Value: float64(s.Width)},
		{Key: "height", Value: float64(s.Height)},
		{Key: "framerate", Value: float64(s.FPS)},
		{Key: "videocodecid", Value: vid},
	}
	switch s.Audio {
	case AAC:
		arr = append(arr, amf0.ObjectEntry{Key: "audiocodecid", Value: float64(flv.SoundFormatAAC)})
	case MP3:
		arr = append(arr, amf0.ObjectEntry{Key: "audiocodecid", Value: float64(flv.SoundFormatMP3)})
	}
	if s.Audio != "" {
		arr = append(arr,
			amf0.ObjectEntry{Key: "audiosamplerate", Value: float64(AudioSampleRate)},
			amf0.ObjectEntry{Key: "stereo", Value: false})
	}
	arr = append(arr, amf0.ObjectEntry{Key: "encoder", Value: "livrec testmedia"})
	body, err := amf0.Data{"onMetaData", arr}.Marshal()
	if err != nil {
		panic(err) // static types only
	}
	return flv.Tag{Type: flv.TagScript, Body: body}
}

// Wobble copies the FLV file src to dst with every video tag's timestamp moved by a
// uniform random amount in [-jitter, jitter] (seeded, so reproducible; never below 0),
// the composition offset (CTS) kept: what an encoder stamping frames with a jittery clock
// sends. Audio and script tags are copied unchanged. Tags stay in file order.
func Wobble(src, dst string, jitter time.Duration, seed uint64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	r, err := flv.NewReader(in)
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	h := r.Header()
	w, err := flv.NewWriter(out, h.HasAudio, h.HasVideo)
	if err != nil {
		out.Close()
		return err
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	j := int64(jitter / time.Millisecond)
	for {
		tag, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			out.Close()
			return err
		}
		if tag.Type == flv.TagVideo {
			tag.Timestamp = uint32(max(0, int64(tag.Timestamp)+rng.Int64N(2*j+1)-j))
		}
		if err := w.WriteTag(tag); err != nil {
			out.Close()
			return err
		}
	}
	return out.Close()
}
