package flv

import (
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/bluenviron/gortmplib/pkg/amf0"
)

// Metadata is what livrec uses from an onMetaData script tag. Numbers that were absent
// (or not numbers or numeric strings) are 0.
type Metadata struct {
	Width         float64
	Height        float64
	FrameRate     float64 // "framerate" (or "videoframerate")
	VideoCodecID  float64 // legacy codec id, or a FourCC as a number (Enhanced RTMP)
	AudioCodecID  float64
	VideoCodec    string // videocodecid when given as a string (e.g. "avc1")
	AudioCodec    string
	VideoDataRate float64 // kbit/s
	AudioDataRate float64 // kbit/s
	Duration      float64 // seconds (0 for live)
	Encoder       string

	// HasVideo/HasAudio say whether the metadata announces a video/audio track: a
	// hasVideo/hasAudio flag if present, else the presence of videocodecid/audiocodecid.
	// VideoKnown/AudioKnown say whether the metadata said anything about it at all.
	HasVideo, VideoKnown bool
	HasAudio, AudioKnown bool
}

// ErrNotMetadata is returned by ParseMetadata for script tags other than onMetaData.
var ErrNotMetadata = errors.New("flv: not an onMetaData script tag")

// maxAMFDepth bounds object nesting in script data. gortmplib's AMF0 decoder recurses per
// nesting level; a body of nested empty objects could otherwise exhaust the stack.
const maxAMFDepth = 32

// ParseMetadata parses an onMetaData script tag body ("onMetaData", {...}) as written in
// FLV files, or as received over RTMP ("@setDataFrame", "onMetaData", {...}).
func ParseMetadata(body []byte) (Metadata, error) {
	var md Metadata
	if !amfDepthOK(body) {
		return md, errors.New("flv: script data nested too deeply or malformed")
	}
	data, err := amf0.Unmarshal(body)
	if err != nil {
		// Some encoders append garbage after the object; the name check below still
		// needs a decodable prefix, so give up.
		return md, err
	}
	i := 0
	if i < len(data) {
		if s, ok := data[i].(string); ok && s == "@setDataFrame" {
			i++
		}
	}
	if i >= len(data) {
		return md, ErrNotMetadata
	}
	if s, ok := data[i].(string); !ok || s != "onMetaData" {
		return md, ErrNotMetadata
	}
	i++
	if i >= len(data) {
		return md, nil
	}
	var obj amf0.Object
	switch v := data[i].(type) {
	case amf0.Object:
		obj = v
	case amf0.ECMAArray:
		obj = amf0.Object(v)
	default:
		return md, nil
	}
	for _, e := range obj {
		key := strings.ToLower(e.Key)
		num, isNum := amfNumber(e.Value)
		switch key {
		case "width":
			md.Width = num
		case "height":
			md.Height = num
		case "framerate", "videoframerate", "fps":
			if isNum && md.FrameRate == 0 {
				md.FrameRate = num
			}
		case "videodatarate":
			md.VideoDataRate = num
		case "audiodatarate":
			md.AudioDataRate = num
		case "duration":
			md.Duration = num
		case "encoder":
			md.Encoder, _ = e.Value.(string)
		case "videocodecid":
			md.VideoKnown = true
			if !hasFlag(obj, "hasvideo") {
				md.HasVideo = true
			}
			if s, ok := e.Value.(string); ok && !isNum {
				md.VideoCodec = s
			} else {
				md.VideoCodecID = num
			}
		case "audiocodecid":
			md.AudioKnown = true
			if !hasFlag(obj, "hasaudio") {
				md.HasAudio = true
			}
			if s, ok := e.Value.(string); ok && !isNum {
				md.AudioCodec = s
			} else {
				md.AudioCodecID = num
			}
		case "hasvideo":
			if b, ok := e.Value.(bool); ok {
				md.VideoKnown, md.HasVideo = true, b
			}
		case "hasaudio":
			if b, ok := e.Value.(bool); ok {
				md.AudioKnown, md.HasAudio = true, b
			}
		}
	}
	return md, nil
}

func hasFlag(obj amf0.Object, lowerKey string) bool {
	for _, e := range obj {
		if strings.ToLower(e.Key) == lowerKey {
			if _, ok := e.Value.(bool); ok {
				return true
			}
		}
	}
	return false
}

// amfNumber converts a number, numeric string or boolean to a finite float64.
func amfNumber(v any) (float64, bool) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case string:
		var err error
		f, err = strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// amfDepthOK walks AMF0 data without building it and reports whether it decodes within
// maxAMFDepth nesting levels. Only the structure matters here; amf0.Unmarshal does the
// real decoding afterwards.
func amfDepthOK(b []byte) bool {
	for len(b) > 0 {
		var ok bool
		b, ok = amfSkip(b, 0)
		if !ok {
			return false
		}
	}
	return true
}

func amfSkip(b []byte, depth int) ([]byte, bool) {
	if depth > maxAMFDepth || len(b) < 1 {
		return nil, false
	}
	marker := b[0]
	b = b[1:]
	switch marker {
	case 0x00: // number
		if len(b) < 8 {
			return nil, false
		}
		return b[8:], true
	case 0x01: // boolean
		if len(b) < 1 {
			return nil, false
		}
		return b[1:], true
	case 0x02: // string
		if len(b) < 2 {
			return nil, false
		}
		n := int(b[0])<<8 | int(b[1])
		if len(b) < 2+n {
			return nil, false
		}
		return b[2+n:], true
	case 0x05, 0x06: // null, undefined
		return b, true
	case 0x08, 0x03: // ECMA array (with a 4-byte count), object
		if marker == 0x08 {
			if len(b) < 4 {
				return nil, false
			}
			b = b[4:]
		}
		for {
			if len(b) < 2 {
				return nil, false
			}
			n := int(b[0])<<8 | int(b[1])
			b = b[2:]
			if n == 0 {
				break
			}
			if len(b) < n {
				return nil, false
			}
			b = b[n:]
			var ok bool
			if b, ok = amfSkip(b, depth+1); !ok {
				return nil, false
			}
		}
		if len(b) < 1 || b[0] != 0x09 {
			return nil, false
		}
		return b[1:], true
	case 0x0a: // strict array
		if len(b) < 4 {
			return nil, false
		}
		n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		b = b[4:]
		for i := uint32(0); i < n; i++ {
			var ok bool
			if b, ok = amfSkip(b, depth+1); !ok {
				return nil, false
			}
		}
		return b, true
	}
	return nil, false
}
