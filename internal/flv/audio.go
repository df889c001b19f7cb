package flv

import (
	"errors"
	"fmt"
)

// FourCC is an Enhanced RTMP codec identifier ("hvc1", "mp4a", ...), big-endian packed.
type FourCC uint32

// Enhanced RTMP FourCCs.
const (
	FourCCAVC  FourCC = 'a'<<24 | 'v'<<16 | 'c'<<8 | '1'
	FourCCHEVC FourCC = 'h'<<24 | 'v'<<16 | 'c'<<8 | '1'
	FourCCAV1  FourCC = 'a'<<24 | 'v'<<16 | '0'<<8 | '1'
	FourCCVP9  FourCC = 'v'<<24 | 'p'<<16 | '0'<<8 | '9'
	FourCCVP8  FourCC = 'v'<<24 | 'p'<<16 | '0'<<8 | '8'
	FourCCVVC  FourCC = 'v'<<24 | 'v'<<16 | 'c'<<8 | '1'

	FourCCAAC  FourCC = 'm'<<24 | 'p'<<16 | '4'<<8 | 'a'
	FourCCMP3  FourCC = '.'<<24 | 'm'<<16 | 'p'<<8 | '3'
	FourCCOpus FourCC = 'O'<<24 | 'p'<<16 | 'u'<<8 | 's'
	FourCCFLAC FourCC = 'f'<<24 | 'L'<<16 | 'a'<<8 | 'C'
	FourCCAC3  FourCC = 'a'<<24 | 'c'<<16 | '-'<<8 | '3'
	FourCCEAC3 FourCC = 'e'<<24 | 'c'<<16 | '-'<<8 | '3'
)

// String returns the four characters (non-printable bytes escaped).
func (f FourCC) String() string {
	b := []byte{byte(f >> 24), byte(f >> 16), byte(f >> 8), byte(f)}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("0x%08x", uint32(f))
		}
	}
	return string(b)
}

// PacketKind is what a media tag carries, independent of legacy/enhanced signalling.
type PacketKind uint8

// Packet kinds.
const (
	// PacketFrame carries coded frame(s).
	PacketFrame PacketKind = iota
	// PacketConfig carries the decoder configuration (AAC AudioSpecificConfig, AVC/HEVC
	// decoder configuration record, MPEG-4 Part 2 VOS/VOL headers). It may be empty.
	PacketConfig
	// PacketEnd is an end-of-sequence marker.
	PacketEnd
	// PacketOther is anything else (Enhanced RTMP metadata, multichannel config, MPEG-2 TS
	// sequence start, video command frames): safe to ignore for remuxing.
	PacketOther
)

// String names the kind.
func (k PacketKind) String() string {
	switch k {
	case PacketFrame:
		return "frame"
	case PacketConfig:
		return "config"
	case PacketEnd:
		return "end"
	}
	return "other"
}

// AudioCodec identifies an FLV audio codec (legacy SoundFormat or Enhanced RTMP FourCC).
type AudioCodec uint8

// Audio codecs. Only AudioAAC and AudioMP3 are recorded by livrec; the rest are named so a
// warning can say what was received.
const (
	AudioUnknown AudioCodec = iota
	AudioAAC
	AudioMP3
	AudioPCM          // SoundFormat 0 (platform endian) and 3 (little endian)
	AudioADPCM        // 1
	AudioNellymoser   // 4, 5, 6
	AudioG711A        // 7
	AudioG711U        // 8
	AudioSpeex        // 11
	AudioDeviceSpec   // 15
	AudioOpus         // "Opus"
	AudioFLAC         // "fLaC"
	AudioAC3          // "ac-3"
	AudioEAC3         // "ec-3"
	AudioMultitrack   // Enhanced RTMP multitrack wrapper (not unpacked)
	AudioReservedCode // SoundFormat 12, 13 and unknown FourCCs
)

var audioCodecNames = [...]string{
	AudioUnknown:      "unknown",
	AudioAAC:          "AAC",
	AudioMP3:          "MP3",
	AudioPCM:          "PCM",
	AudioADPCM:        "ADPCM",
	AudioNellymoser:   "Nellymoser",
	AudioG711A:        "G.711 A-law",
	AudioG711U:        "G.711 mu-law",
	AudioSpeex:        "Speex",
	AudioDeviceSpec:   "device-specific sound",
	AudioOpus:         "Opus",
	AudioFLAC:         "FLAC",
	AudioAC3:          "AC-3",
	AudioEAC3:         "E-AC-3",
	AudioMultitrack:   "multitrack audio",
	AudioReservedCode: "reserved",
}

// String returns a human-readable codec name.
func (c AudioCodec) String() string {
	if int(c) < len(audioCodecNames) {
		return audioCodecNames[c]
	}
	return "unknown"
}

// Supported reports whether livrec records this audio codec.
func (c AudioCodec) Supported() bool { return c == AudioAAC || c == AudioMP3 }

// Legacy SoundFormat values.
const (
	SoundFormatMP3      = 2
	SoundFormatExHeader = 9
	SoundFormatAAC      = 10
	SoundFormatMP38kHz  = 14
)

// Enhanced RTMP audio packet types.
const (
	AudioExSequenceStart      = 0
	AudioExCodedFrames        = 1
	AudioExSequenceEnd        = 2
	AudioExMultichannelConfig = 4
	AudioExMultitrack         = 5
	AudioExModEx              = 7
)

// AudioTagHeader is the parsed header of an audio tag body.
type AudioTagHeader struct {
	SoundFormat uint8 // legacy field: the top 4 bits of byte 0 (9 = Enhanced RTMP)
	// Legacy only: SoundRate index (0..3: 5.5, 11, 22, 44 kHz), 16-bit samples, stereo.
	SoundRate  uint8
	Sample16   bool
	Stereo     bool
	Enhanced   bool   // Enhanced RTMP ExHeader
	FourCC     FourCC // Enhanced RTMP only
	PacketType uint8  // AAC packet type (legacy) or Enhanced RTMP AudioPacketType
	Codec      AudioCodec
	Kind       PacketKind
	// Data is the payload after the header (aliases the body).
	Data []byte
}

// ErrShortTag is returned when a tag body is too short for its header.
var ErrShortTag = errors.New("flv: tag body too short")

func audioCodecFromFourCC(f FourCC) AudioCodec {
	switch f {
	case FourCCAAC:
		return AudioAAC
	case FourCCMP3:
		return AudioMP3
	case FourCCOpus:
		return AudioOpus
	case FourCCFLAC:
		return AudioFLAC
	case FourCCAC3:
		return AudioAC3
	case FourCCEAC3:
		return AudioEAC3
	}
	return AudioReservedCode
}

// ParseAudioTagHeader parses the header of an audio tag body. For codecs livrec does not
// record, Codec (and, for Enhanced RTMP, FourCC) are still set so the caller can name them;
// Kind is then PacketFrame and Data the rest of the body. An error means the body is too
// short for its header.
func ParseAudioTagHeader(body []byte) (AudioTagHeader, error) {
	var h AudioTagHeader
	if len(body) < 1 {
		return h, ErrShortTag
	}
	b0 := body[0]
	h.SoundFormat = b0 >> 4
	if h.SoundFormat == SoundFormatExHeader {
		h.Enhanced = true
		h.PacketType = b0 & 0x0f
		if h.PacketType == AudioExMultitrack {
			// Multitrack: byte 1 is multitrack type | packet type, then (for one-codec
			// variants) a FourCC. Not unpacked: reported as its own unsupported codec.
			h.Codec = AudioMultitrack
			h.Kind = PacketOther
			h.Data = body[1:]
			return h, nil
		}
		if h.PacketType == AudioExModEx {
			// ModEx prefixes a modifier extension before the real packet type; not used
			// by livrec's codecs. Skip it as "other".
			h.Kind = PacketOther
			h.Codec = AudioUnknown
			h.Data = body[1:]
			return h, nil
		}
		if len(body) < 5 {
			return h, ErrShortTag
		}
		h.FourCC = FourCC(body[1])<<24 | FourCC(body[2])<<16 | FourCC(body[3])<<8 | FourCC(body[4])
		h.Codec = audioCodecFromFourCC(h.FourCC)
		h.Data = body[5:]
		switch h.PacketType {
		case AudioExSequenceStart:
			h.Kind = PacketConfig
		case AudioExCodedFrames:
			h.Kind = PacketFrame
		case AudioExSequenceEnd:
			h.Kind = PacketEnd
		default:
			h.Kind = PacketOther
		}
		return h, nil
	}

	h.SoundRate = (b0 >> 2) & 0x03
	h.Sample16 = b0&0x02 != 0
	h.Stereo = b0&0x01 != 0
	h.Kind = PacketFrame
	h.Data = body[1:]
	switch h.SoundFormat {
	case SoundFormatAAC:
		h.Codec = AudioAAC
		if len(body) < 2 {
			return h, ErrShortTag
		}
		h.PacketType = body[1]
		h.Data = body[2:]
		switch h.PacketType {
		case 0:
			h.Kind = PacketConfig
		case 1:
			h.Kind = PacketFrame
		default:
			h.Kind = PacketOther
		}
	case SoundFormatMP3, SoundFormatMP38kHz:
		h.Codec = AudioMP3
	case 0, 3:
		h.Codec = AudioPCM
	case 1:
		h.Codec = AudioADPCM
	case 4, 5, 6:
		h.Codec = AudioNellymoser
	case 7:
		h.Codec = AudioG711A
	case 8:
		h.Codec = AudioG711U
	case 11:
		h.Codec = AudioSpeex
	case 15:
		h.Codec = AudioDeviceSpec
	default:
		h.Codec = AudioReservedCode
	}
	return h, nil
}

// CodecDescription describes the codec of h for messages, e.g. "Nellymoser (SoundFormat 6)"
// or "Opus (FourCC Opus)".
func (h AudioTagHeader) CodecDescription() string {
	if h.Enhanced && h.FourCC != 0 {
		return fmt.Sprintf("%s (FourCC %s)", h.Codec, h.FourCC)
	}
	if h.Enhanced {
		return h.Codec.String()
	}
	return fmt.Sprintf("%s (SoundFormat %d)", h.Codec, h.SoundFormat)
}

// AppendAudioHeaderAAC appends a legacy AAC audio tag header (44 kHz, 16-bit, stereo flags
// as FLV requires for AAC) with the given AAC packet type (0 config, 1 raw frame).
func AppendAudioHeaderAAC(dst []byte, packetType uint8) []byte {
	return append(dst, SoundFormatAAC<<4|3<<2|1<<1|1, packetType)
}

// AppendAudioHeaderMP3 appends a legacy MP3 audio tag header. rate is the sample rate in
// Hz (mapped to the nearest FLV SoundRate index), stereo the channel flag.
func AppendAudioHeaderMP3(dst []byte, rate int, stereo bool) []byte {
	var idx byte
	switch {
	case rate >= 44100:
		idx = 3
	case rate >= 22050:
		idx = 2
	case rate >= 11025:
		idx = 1
	}
	b := byte(SoundFormatMP3<<4) | idx<<2 | 1<<1
	if stereo {
		b |= 1
	}
	return append(dst, b)
}

// AppendAudioExHeader appends an Enhanced RTMP audio header (no multitrack).
func AppendAudioExHeader(dst []byte, packetType uint8, fourCC FourCC) []byte {
	return append(dst, SoundFormatExHeader<<4|packetType&0x0f,
		byte(fourCC>>24), byte(fourCC>>16), byte(fourCC>>8), byte(fourCC))
}
