package flv

import (
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

// ErrBadConfig is wrapped by the configuration record parsers' errors.
var ErrBadConfig = errors.New("flv: malformed decoder configuration record")

// AVCConfig is an AVCDecoderConfigurationRecord (ISO/IEC 14496-15, 5.3.3.1).
type AVCConfig struct {
	Version       uint8
	Profile       uint8
	Compatibility uint8
	Level         uint8
	// LengthSize is the size in bytes (1, 2, 3 or 4) of the NAL unit length prefixes in
	// the samples.
	LengthSize int
	SPS        [][]byte // aliases the parsed buffer
	PPS        [][]byte // aliases the parsed buffer
}

func badConfig(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, args...))
}

// readNALUList reads count 16-bit length-prefixed NAL units starting at b[pos]. Empty units
// are skipped.
func readNALUList(b []byte, pos, count int) ([][]byte, int, error) {
	var out [][]byte
	for i := 0; i < count; i++ {
		if pos+2 > len(b) {
			return nil, 0, badConfig("truncated NAL unit length")
		}
		n := int(b[pos])<<8 | int(b[pos+1])
		pos += 2
		if pos+n > len(b) {
			return nil, 0, badConfig("NAL unit of %d bytes exceeds record", n)
		}
		if n > 0 {
			out = append(out, b[pos:pos+n:pos+n])
		}
		pos += n
	}
	return out, pos, nil
}

// ParseAVCConfig parses an AVCDecoderConfigurationRecord. The returned parameter sets alias
// b. Trailing bytes (the high-profile chroma/bit-depth extension) are ignored. At least one
// SPS and one PPS are required.
func ParseAVCConfig(b []byte) (*AVCConfig, error) {
	if len(b) < 7 {
		return nil, badConfig("AVC record of %d bytes", len(b))
	}
	c := &AVCConfig{
		Version:       b[0],
		Profile:       b[1],
		Compatibility: b[2],
		Level:         b[3],
		LengthSize:    int(b[4]&0x03) + 1,
	}
	var err error
	pos := 6
	c.SPS, pos, err = readNALUList(b, pos, int(b[5]&0x1f))
	if err != nil {
		return nil, err
	}
	if pos >= len(b) {
		return nil, badConfig("AVC record without PPS count")
	}
	nPPS := int(b[pos])
	c.PPS, _, err = readNALUList(b, pos+1, nPPS)
	if err != nil {
		return nil, err
	}
	if len(c.SPS) == 0 || len(c.PPS) == 0 {
		return nil, badConfig("AVC record with %d SPS and %d PPS", len(c.SPS), len(c.PPS))
	}
	return c, nil
}

// MarshalAVCConfig builds an AVCDecoderConfigurationRecord (4-byte lengths) from parameter
// sets, taking profile and level from the first SPS.
func MarshalAVCConfig(sps, pps [][]byte) ([]byte, error) {
	if len(sps) == 0 || len(pps) == 0 || len(sps) > 31 || len(pps) > 255 {
		return nil, badConfig("need 1..31 SPS and 1..255 PPS")
	}
	if len(sps[0]) < 4 {
		return nil, badConfig("SPS too short")
	}
	b := []byte{1, sps[0][1], sps[0][2], sps[0][3], 0xfc | 3, 0xe0 | byte(len(sps))}
	for _, s := range sps {
		if len(s) > 0xffff {
			return nil, badConfig("SPS too long")
		}
		b = append(b, byte(len(s)>>8), byte(len(s)))
		b = append(b, s...)
	}
	b = append(b, byte(len(pps)))
	for _, p := range pps {
		if len(p) > 0xffff {
			return nil, badConfig("PPS too long")
		}
		b = append(b, byte(len(p)>>8), byte(len(p)))
		b = append(b, p...)
	}
	return b, nil
}

// HEVCConfig is an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15, 8.3.3.1).
type HEVCConfig struct {
	Version uint8
	// GeneralProfileSpace, tier, profile idc, compatibility flags, constraint flags and
	// level, as in the record (bytes 1..12).
	ProfileTierLevel [12]byte
	// LengthSize is the size in bytes (1, 2, 3 or 4) of the NAL unit length prefixes.
	LengthSize int
	VPS        [][]byte // aliases the parsed buffer
	SPS        [][]byte
	PPS        [][]byte
	// Other holds NAL units of other types found in the arrays (SEI, ...).
	Other [][]byte
}

// ParseHEVCConfig parses an HEVCDecoderConfigurationRecord. The returned NAL units alias b.
// At least one VPS, SPS and PPS are required.
func ParseHEVCConfig(b []byte) (*HEVCConfig, error) {
	if len(b) < 23 {
		return nil, badConfig("HEVC record of %d bytes", len(b))
	}
	c := &HEVCConfig{Version: b[0], LengthSize: int(b[21]&0x03) + 1}
	copy(c.ProfileTierLevel[:], b[1:13])
	nArrays := int(b[22])
	pos := 23
	for i := 0; i < nArrays; i++ {
		if pos+3 > len(b) {
			return nil, badConfig("truncated NAL unit array header")
		}
		typ := h265.NALUType(b[pos] & 0x3f)
		n := int(b[pos+1])<<8 | int(b[pos+2])
		var nalus [][]byte
		var err error
		nalus, pos, err = readNALUList(b, pos+3, n)
		if err != nil {
			return nil, err
		}
		switch typ {
		case h265.NALUType_VPS_NUT:
			c.VPS = append(c.VPS, nalus...)
		case h265.NALUType_SPS_NUT:
			c.SPS = append(c.SPS, nalus...)
		case h265.NALUType_PPS_NUT:
			c.PPS = append(c.PPS, nalus...)
		default:
			c.Other = append(c.Other, nalus...)
		}
	}
	if len(c.VPS) == 0 || len(c.SPS) == 0 || len(c.PPS) == 0 {
		return nil, badConfig("HEVC record with %d VPS, %d SPS, %d PPS", len(c.VPS), len(c.SPS), len(c.PPS))
	}
	return c, nil
}

// MarshalHEVCConfig builds an HEVCDecoderConfigurationRecord (4-byte lengths) from
// parameter sets. Profile, tier and level are copied from the first SPS; chroma format and
// bit depths come from parsing it (defaults 4:2:0, 8 bit if that fails).
func MarshalHEVCConfig(vps, sps, pps [][]byte) ([]byte, error) {
	if len(vps) == 0 || len(sps) == 0 || len(pps) == 0 {
		return nil, badConfig("need VPS, SPS and PPS")
	}
	raw := h264.EmulationPreventionRemove(sps[0])
	if len(raw) < 15 {
		return nil, badConfig("SPS too short")
	}
	maxSubLayersMinus1 := (raw[2] >> 1) & 0x07
	temporalIDNested := raw[2] & 0x01
	chroma, depthL, depthC := uint32(1), uint32(0), uint32(0)
	var s h265.SPS
	if safeUnmarshal(s.Unmarshal, sps[0]) == nil {
		chroma, depthL, depthC = s.ChromaFormatIdc&3, s.BitDepthLumaMinus8&7, s.BitDepthChromaMinus8&7
	}
	b := make([]byte, 0, 64)
	b = append(b, 1)
	b = append(b, raw[3:15]...) // general profile_tier_level: 12 bytes
	b = append(b,
		0xf0, 0x00, // reserved + min_spatial_segmentation_idc 0
		0xfc,              // reserved + parallelismType 0
		0xfc|byte(chroma), // reserved + chroma_format_idc
		0xf8|byte(depthL), // reserved + bit_depth_luma_minus8
		0xf8|byte(depthC), // reserved + bit_depth_chroma_minus8
		0x00, 0x00,        // avgFrameRate 0
		(maxSubLayersMinus1+1)<<3|temporalIDNested<<2|3, // constantFrameRate 0, lengthSizeMinusOne 3
		3, // numOfArrays
	)
	for _, arr := range []struct {
		typ   h265.NALUType
		nalus [][]byte
	}{{h265.NALUType_VPS_NUT, vps}, {h265.NALUType_SPS_NUT, sps}, {h265.NALUType_PPS_NUT, pps}} {
		if len(arr.nalus) > 0xffff {
			return nil, badConfig("too many NAL units")
		}
		b = append(b, 0x80|byte(arr.typ), byte(len(arr.nalus)>>8), byte(len(arr.nalus)))
		for _, n := range arr.nalus {
			if len(n) > 0xffff {
				return nil, badConfig("NAL unit too long")
			}
			b = append(b, byte(len(n)>>8), byte(len(n)))
			b = append(b, n...)
		}
	}
	return b, nil
}

// safeUnmarshal runs a third-party parser on untrusted bytes, turning a panic into an error
// (defence in depth: livrec must never crash on a malformed stream).
func safeUnmarshal(fn func([]byte) error, b []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("parser panic: %v", r)
		}
	}()
	return fn(b)
}
