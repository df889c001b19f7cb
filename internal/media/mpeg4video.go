package media

import (
	"bytes"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4video"
)

// MPEG-4 Part 2 (Visual) helpers. mediacommon only has start-code constants and a config
// validity check, so the start-code scan and the VOL header parse are hand-written here.

var startCodePrefix = []byte{0, 0, 1}

// mpeg4Scan finds, in one MPEG-4 Part 2 frame, the end of the leading configuration headers
// (VOS/VO/VOL/user data: everything before the first GOV or VOP start code), whether a VOP
// is present and whether the first VOP is an I-VOP, and whether GOV or VOL headers occur.
type mpeg4ScanResult struct {
	configEnd  int  // bytes of leading VOS/VO/VOL headers (0 if the frame does not start with one)
	hasVOP     bool // a VOP start code was found
	intraVOP   bool // the first VOP has vop_coding_type 0 (I-VOP)
	hasGOV     bool
	hasVOL     bool
	volPayload []byte // the bytes after the first VOL start code
}

func mpeg4Scan(b []byte) mpeg4ScanResult {
	var r mpeg4ScanResult
	startsWithHeader := false
	pos := 0
	first := true
	for pos+4 <= len(b) {
		i := bytes.Index(b[pos:], startCodePrefix)
		if i < 0 || pos+i+3 >= len(b) {
			break
		}
		pos += i
		code := mpeg4video.StartCode(b[pos+3])
		switch {
		case code == mpeg4video.VOPStartCode:
			if r.configEnd == 0 && startsWithHeader {
				r.configEnd = pos
			}
			r.hasVOP = true
			if pos+4 < len(b) {
				r.intraVOP = b[pos+4]>>6 == 0
			}
			return r
		case code == mpeg4video.GroupOfVOPStartCode:
			if r.configEnd == 0 && startsWithHeader {
				r.configEnd = pos
			}
			r.hasGOV = true
		case code >= mpeg4video.VideoObjectLayerStartCodeFirst && code <= mpeg4video.VideoObjectLayerStartCodeLast:
			if !r.hasVOL {
				r.volPayload = b[pos+4:]
			}
			r.hasVOL = true
			if first {
				startsWithHeader = true
			}
		case code == mpeg4video.VisualObjectSequenceStartCode ||
			code <= mpeg4video.VideoObjectStartCodeLast:
			if first {
				startsWithHeader = true
			}
		}
		first = false
		pos += 4
	}
	if startsWithHeader && r.configEnd == 0 && !r.hasGOV {
		r.configEnd = len(b) // headers only
	}
	return r
}

// mpeg4ConfigVOL returns the VOL payload inside a configuration (VOS/VO/VOL headers).
func mpeg4ConfigVOL(cfg []byte) []byte {
	return mpeg4Scan(cfg).volPayload
}

// bitReader is a minimal MSB-first reader with a sticky overrun flag.
type bitReader struct {
	b   []byte
	pos int // in bits
	bad bool
}

func (r *bitReader) read(n int) uint32 {
	var v uint32
	for ; n > 0; n-- {
		if r.pos>>3 >= len(r.b) {
			r.bad = true
			return 0
		}
		v = v<<1 | uint32(r.b[r.pos>>3]>>(7-r.pos&7))&1
		r.pos++
	}
	return v
}

// parseVOL extracts the picture size and, if the VOL signals a fixed VOP rate, the frame
// rate from a video_object_layer header (ISO/IEC 14496-2, 6.2.3) given the bytes after its
// start code. ok is false when the header is truncated, not rectangular or implausible.
func parseVOL(b []byte) (width, height int, fps float64, ok bool) {
	r := &bitReader{b: b}
	r.read(1) // random_accessible_vol
	r.read(8) // video_object_type_indication
	verid := uint32(1)
	if r.read(1) == 1 { // is_object_layer_identifier
		verid = r.read(4)
		r.read(3) // video_object_layer_priority
	}
	if r.read(4) == 15 { // aspect_ratio_info: extended PAR
		r.read(8)
		r.read(8)
	}
	if r.read(1) == 1 { // vol_control_parameters
		r.read(2)           // chroma_format
		r.read(1)           // low_delay
		if r.read(1) == 1 { // vbv_parameters
			r.read(15 + 1 + 15 + 1 + 15 + 1 + 3 + 11 + 1 + 15 + 1 - 32)
			r.read(32)
		}
	}
	shape := r.read(2)
	if shape == 3 && verid != 1 {
		r.read(4) // video_object_layer_shape_extension
	}
	if r.read(1) != 1 { // marker
		return 0, 0, 0, false
	}
	res := r.read(16) // vop_time_increment_resolution
	if r.read(1) != 1 || res == 0 {
		return 0, 0, 0, false
	}
	if r.read(1) == 1 { // fixed_vop_rate
		nbits := 1
		for (uint32(1) << nbits) < res {
			nbits++
		}
		inc := r.read(nbits)
		if inc > 0 {
			fps = float64(res) / float64(inc)
		}
	}
	if shape != 0 { // only rectangular VOLs carry a size
		return 0, 0, 0, false
	}
	if r.read(1) != 1 {
		return 0, 0, 0, false
	}
	w := r.read(13)
	if r.read(1) != 1 {
		return 0, 0, 0, false
	}
	h := r.read(13)
	if r.read(1) != 1 || r.bad || w == 0 || h == 0 {
		return 0, 0, 0, false
	}
	if fps > 1000 {
		fps = 0
	}
	return int(w), int(h), fps, true
}
