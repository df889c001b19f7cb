// Package media holds what the recorder works on after the ingest: tracks (codec and its
// parameters) and access units (timestamps, key flag, elementary-stream data), the
// demuxer that turns FLV tags into them, and timestamp repair.
//
// Codec parsing uses mediacommon where it fits: h264.SPS / h265.SPS (size, frame rate),
// h264/h265.IsRandomAccess (key frames), mpeg4audio.AudioSpecificConfig (AAC) and
// mpeg1audio.FrameHeader (MP3). Hand-written, and why:
//   - AVCC splitting (demux.go): mediacommon's h264.AVCC only knows 4-byte length prefixes;
//     FLV configs may declare 1..4 (lengthSizeMinusOne). An Annex B fallback tolerates
//     encoders that put start codes into FLV.
//   - MPEG-4 Part 2 start-code scan and VOL header parse (mpeg4video.go): mediacommon's
//     mpeg4video package has only start-code constants and a validity check.
//   - Timestamp repair (repair.go): livrec-specific policy.
//
// Third-party parsers run on untrusted bytes behind a recover (safeCall), so a parser bug
// cannot take the process down.
package media

import (
	"bytes"
	"time"
)

// Codec names an elementary-stream codec. The values are the names used in the catalog,
// the API and the on-demand callback (`codec=h264`).
type Codec string

// Supported codecs.
const (
	H264       Codec = "h264"
	H265       Codec = "h265"
	MPEG4Video Codec = "mpeg4"
	AAC        Codec = "aac"
	MP3        Codec = "mp3"
)

// IsVideo reports whether c is a video codec.
func (c Codec) IsVideo() bool { return c == H264 || c == H265 || c == MPEG4Video }

// Track is one elementary stream with the parameters a container needs to describe it.
// A Track value is immutable once published by the demuxer: a parameter change produces
// a new *Track.
type Track struct {
	Codec Codec

	// Video parameter sets (raw NAL units, without start codes or length prefixes).
	VPS []byte // H.265 only
	SPS []byte // H.264, H.265
	PPS []byte // H.264, H.265
	// MPEG-4 Part 2: the decoder configuration (VOS/VOL headers) if known.
	VideoConfig []byte

	Width     int     // pixels, 0 if unknown
	Height    int     // pixels, 0 if unknown
	FrameRate float64 // frames per second from the SPS/metadata, 0 if unknown

	// Audio.
	AudioConfig []byte // AAC AudioSpecificConfig bytes
	SampleRate  int    // Hz
	Channels    int
}

// SameParams reports whether t and o describe the same stream to every container: same
// codec, parameter sets, decoder configurations, audio format and picture size. Either may
// be nil (both nil: true). It is the one rule for "did the track change": a false result
// is a track change (a new file, a new init segment, a discontinuity); a true one lets a
// writer adopt the new *Track in place.
//
// Width and Height are compared although for H.264/H.265 they follow from the SPS: an
// MPEG-4 Part 2 track without a decoder configuration carries its size only in its frames
// and the stream metadata, so a new size shows nowhere else, and the size is written into
// the containers' descriptions (MP4/CMAF sample entries, FLV onMetaData). FrameRate is not
// compared: it is a nominal value no container depends on.
func (t *Track) SameParams(o *Track) bool {
	if t == o {
		return true
	}
	if t == nil || o == nil {
		return false
	}
	return t.Codec == o.Codec &&
		bytes.Equal(t.VPS, o.VPS) && bytes.Equal(t.SPS, o.SPS) && bytes.Equal(t.PPS, o.PPS) &&
		bytes.Equal(t.VideoConfig, o.VideoConfig) && bytes.Equal(t.AudioConfig, o.AudioConfig) &&
		t.SampleRate == o.SampleRate && t.Channels == o.Channels &&
		t.Width == o.Width && t.Height == o.Height
}

// AccessUnit is one video frame or one audio frame.
type AccessUnit struct {
	Track *Track
	DTS   time.Duration // decode time, monotonic per track after repair
	PTS   time.Duration // presentation time (PTS >= DTS for well-formed input)
	Key   bool          // video: a random-access point (IDR / I-VOP); audio: always true

	// NALUs holds the NAL units of an H.264/H.265 access unit (no start codes, no length
	// prefixes). Parameter-set-only units are never emitted.
	NALUs [][]byte
	// Data holds the frame of every other codec (AAC raw access unit, MP3 frame(s),
	// MPEG-4 Part 2 VOP with any headers).
	Data []byte
}

// Clone returns a copy of the unit whose bytes are its own (one allocation for all of
// them): what a receiver of a lent unit (Demuxer.LendUnits) keeps.
func (au *AccessUnit) Clone() AccessUnit {
	c := *au
	buf := make([]byte, 0, au.Size())
	if au.Data != nil {
		buf = append(buf, au.Data...)
		c.Data = buf[:len(buf):len(buf)]
	}
	if au.NALUs != nil {
		c.NALUs = make([][]byte, len(au.NALUs))
		for i, n := range au.NALUs {
			start := len(buf)
			buf = append(buf, n...)
			c.NALUs[i] = buf[start:len(buf):len(buf)]
		}
	}
	return c
}

// Size returns the number of elementary-stream bytes in the unit.
func (au *AccessUnit) Size() int {
	n := len(au.Data)
	for _, nalu := range au.NALUs {
		n += len(nalu)
	}
	return n
}
