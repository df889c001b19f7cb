package flv

import "fmt"

// VideoCodec identifies an FLV video codec (legacy CodecID or Enhanced RTMP FourCC).
type VideoCodec uint8

// Video codecs. Only VideoAVC, VideoHEVC and VideoMPEG4 are recorded by livrec.
const (
	VideoUnknown VideoCodec = iota
	VideoAVC
	VideoHEVC
	VideoMPEG4 // MPEG-4 Part 2, legacy codec id 9 (non-standard, ffmpeg -strict -1)
	VideoJPEG
	VideoSorenson
	VideoScreen
	VideoVP6
	VideoVP6Alpha
	VideoScreen2
	VideoAV1
	VideoVP9
	VideoVP8
	VideoVVC
	VideoMultitrack // Enhanced RTMP multitrack wrapper (not unpacked)
	VideoReservedCode
)

var videoCodecNames = [...]string{
	VideoUnknown:      "unknown",
	VideoAVC:          "H.264",
	VideoHEVC:         "H.265",
	VideoMPEG4:        "MPEG-4 Part 2",
	VideoJPEG:         "JPEG",
	VideoSorenson:     "Sorenson H.263",
	VideoScreen:       "Screen video",
	VideoVP6:          "VP6",
	VideoVP6Alpha:     "VP6 with alpha",
	VideoScreen2:      "Screen video v2",
	VideoAV1:          "AV1",
	VideoVP9:          "VP9",
	VideoVP8:          "VP8",
	VideoVVC:          "H.266",
	VideoMultitrack:   "multitrack video",
	VideoReservedCode: "reserved",
}

// String returns a human-readable codec name.
func (c VideoCodec) String() string {
	if int(c) < len(videoCodecNames) {
		return videoCodecNames[c]
	}
	return "unknown"
}

// Supported reports whether livrec records this video codec.
func (c VideoCodec) Supported() bool {
	return c == VideoAVC || c == VideoHEVC || c == VideoMPEG4
}

// Legacy video codec ids.
const (
	CodecIDAVC   = 7
	CodecIDMPEG4 = 9
	CodecIDHEVC  = 12
)

// Frame types (legacy and Enhanced RTMP share them).
const (
	FrameTypeKey        = 1
	FrameTypeInter      = 2
	FrameTypeDisposable = 3
	FrameTypeGenerated  = 4
	FrameTypeCommand    = 5
)

// Enhanced RTMP video packet types.
const (
	VideoExSequenceStart        = 0
	VideoExCodedFrames          = 1
	VideoExSequenceEnd          = 2
	VideoExCodedFramesX         = 3
	VideoExMetadata             = 4
	VideoExMPEG2TSSequenceStart = 5
	VideoExMultitrack           = 6
	VideoExModEx                = 7
)

// VideoTagHeader is the parsed header of a video tag body.
type VideoTagHeader struct {
	Enhanced  bool  // Enhanced RTMP ExHeader (bit 0x80 of byte 0)
	FrameType uint8 // 1 key, 2 inter, 3 disposable, 4 generated key, 5 command
	CodecID   uint8 // legacy only
	FourCC    FourCC
	// PacketType is the AVC/HEVC/MPEG-4 packet type (legacy: 0 config, 1 frame, 2 end)
	// or the Enhanced RTMP VideoPacketType.
	PacketType uint8
	Codec      VideoCodec
	Kind       PacketKind
	// CompositionTime is PTS-DTS in milliseconds (signed 24-bit), 0 when absent.
	CompositionTime int32
	// Data is the payload after the header (aliases the body).
	Data []byte
}

// Key reports whether the FLV frame type marks a key frame.
func (h VideoTagHeader) Key() bool {
	return h.FrameType == FrameTypeKey || h.FrameType == FrameTypeGenerated
}

func videoCodecFromID(id uint8) VideoCodec {
	switch id {
	case 1:
		return VideoJPEG
	case 2:
		return VideoSorenson
	case 3:
		return VideoScreen
	case 4:
		return VideoVP6
	case 5:
		return VideoVP6Alpha
	case 6:
		return VideoScreen2
	case CodecIDAVC:
		return VideoAVC
	case CodecIDMPEG4:
		return VideoMPEG4
	case CodecIDHEVC:
		return VideoHEVC
	}
	return VideoReservedCode
}

func videoCodecFromFourCC(f FourCC) VideoCodec {
	switch f {
	case FourCCAVC:
		return VideoAVC
	case FourCCHEVC:
		return VideoHEVC
	case FourCCAV1:
		return VideoAV1
	case FourCCVP9:
		return VideoVP9
	case FourCCVP8:
		return VideoVP8
	case FourCCVVC:
		return VideoVVC
	}
	return VideoReservedCode
}

func readCTS(b []byte) int32 {
	// Signed 24-bit big-endian: shift into the top of an int32 and back.
	return int32(uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8) >> 8
}

// ParseVideoTagHeader parses the header of a video tag body. For codecs livrec does not
// record, Codec (and FourCC) are still set so the caller can name them. An error means the
// body is too short for its header.
func ParseVideoTagHeader(body []byte) (VideoTagHeader, error) {
	var h VideoTagHeader
	if len(body) < 1 {
		return h, ErrShortTag
	}
	b0 := body[0]
	if b0&0x80 != 0 {
		h.Enhanced = true
		h.FrameType = (b0 >> 4) & 0x07
		h.PacketType = b0 & 0x0f
		switch h.PacketType {
		case VideoExMultitrack:
			h.Codec = VideoMultitrack
			h.Kind = PacketOther
			h.Data = body[1:]
			return h, nil
		case VideoExModEx:
			h.Codec = VideoUnknown
			h.Kind = PacketOther
			h.Data = body[1:]
			return h, nil
		}
		if len(body) < 5 {
			return h, ErrShortTag
		}
		h.FourCC = FourCC(body[1])<<24 | FourCC(body[2])<<16 | FourCC(body[3])<<8 | FourCC(body[4])
		h.Codec = videoCodecFromFourCC(h.FourCC)
		h.Data = body[5:]
		if h.FrameType == FrameTypeCommand {
			h.Kind = PacketOther
			return h, nil
		}
		switch h.PacketType {
		case VideoExSequenceStart:
			h.Kind = PacketConfig
		case VideoExCodedFrames:
			h.Kind = PacketFrame
			if h.Codec == VideoAVC || h.Codec == VideoHEVC {
				if len(body) < 8 {
					return h, ErrShortTag
				}
				h.CompositionTime = readCTS(body[5:8])
				h.Data = body[8:]
			}
		case VideoExCodedFramesX:
			h.Kind = PacketFrame
		case VideoExSequenceEnd:
			h.Kind = PacketEnd
		default: // metadata, MPEG-2 TS sequence start, reserved
			h.Kind = PacketOther
		}
		return h, nil
	}

	h.FrameType = b0 >> 4
	h.CodecID = b0 & 0x0f
	h.Codec = videoCodecFromID(h.CodecID)
	h.Data = body[1:]
	h.Kind = PacketFrame
	if h.FrameType == FrameTypeCommand {
		h.Kind = PacketOther
		return h, nil
	}
	switch h.Codec {
	case VideoAVC, VideoHEVC, VideoMPEG4:
		if len(body) < 5 {
			return h, ErrShortTag
		}
		h.PacketType = body[1]
		h.CompositionTime = readCTS(body[2:5])
		h.Data = body[5:]
		switch h.PacketType {
		case 0:
			h.Kind = PacketConfig
		case 1:
			h.Kind = PacketFrame
		case 2:
			h.Kind = PacketEnd
		default:
			h.Kind = PacketOther
		}
	}
	return h, nil
}

// CodecDescription describes the codec of h for messages, e.g. "VP6 (id 4)" or
// "AV1 (FourCC av01)".
func (h VideoTagHeader) CodecDescription() string {
	if h.Enhanced && h.FourCC != 0 {
		return fmt.Sprintf("%s (FourCC %s)", h.Codec, h.FourCC)
	}
	if h.Enhanced {
		return h.Codec.String()
	}
	return fmt.Sprintf("%s (id %d)", h.Codec, h.CodecID)
}

// AppendVideoHeader appends a legacy AVC/HEVC(12)/MPEG-4(9) video tag header: frame type
// and codec id, packet type (0 config, 1 frame, 2 end) and the 24-bit composition time.
func AppendVideoHeader(dst []byte, key bool, codecID, packetType uint8, cts int32) []byte {
	ft := byte(FrameTypeInter)
	if key {
		ft = FrameTypeKey
	}
	return append(dst, ft<<4|codecID&0x0f, packetType, byte(cts>>16), byte(cts>>8), byte(cts))
}

// AppendVideoExHeader appends an Enhanced RTMP video header. For VideoExCodedFrames with
// avc1/hvc1 the 24-bit composition time follows the FourCC; it is omitted otherwise.
func AppendVideoExHeader(dst []byte, key bool, packetType uint8, fourCC FourCC, cts int32) []byte {
	ft := byte(FrameTypeInter)
	if key {
		ft = FrameTypeKey
	}
	dst = append(dst, 0x80|ft<<4|packetType&0x0f,
		byte(fourCC>>24), byte(fourCC>>16), byte(fourCC>>8), byte(fourCC))
	if packetType == VideoExCodedFrames && (fourCC == FourCCAVC || fourCC == FourCCHEVC) {
		dst = append(dst, byte(cts>>16), byte(cts>>8), byte(cts))
	}
	return dst
}
