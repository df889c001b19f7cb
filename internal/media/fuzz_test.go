package media

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/livrec/livrec/internal/flv"
)

// encodeTags packs tags in the FuzzDemuxer input format: per tag a type byte (low 2 bits:
// 0 video, 1 audio, 2 script, 3 other), a signed 16-bit timestamp delta, a 16-bit length
// and the body.
func encodeTags(tags []flv.Tag) []byte {
	var b []byte
	var last uint32
	for _, t := range tags {
		typ := byte(3)
		switch t.Type {
		case flv.TagVideo:
			typ = 0
		case flv.TagAudio:
			typ = 1
		case flv.TagScript:
			typ = 2
		}
		d := int16(int64(t.Timestamp) - int64(last))
		last = t.Timestamp
		n := min(len(t.Body), 0xffff)
		b = append(b, typ, byte(uint16(d)>>8), byte(d), byte(n>>8), byte(n))
		b = append(b, t.Body[:n]...)
	}
	return b
}

func decodeTags(b []byte) []flv.Tag {
	var tags []flv.Tag
	var ts uint32
	for len(b) >= 5 {
		typ := [4]uint8{flv.TagVideo, flv.TagAudio, flv.TagScript, 7}[b[0]&3]
		ts += uint32(int32(int16(binary.BigEndian.Uint16(b[1:3]))))
		n := min(int(binary.BigEndian.Uint16(b[3:5])), len(b)-5)
		tags = append(tags, flv.Tag{Type: typ, Timestamp: ts, Body: b[5 : 5+n]})
		b = b[5+n:]
	}
	return tags
}

// FuzzDemuxer feeds arbitrary tag sequences through the demuxer and the timestamp repair
// and checks: no panic, AUs only after their track is published, no parameter-set-only or
// empty units, no parameter sets/AUDs inside units, monotonic repaired DTS per kind.
func FuzzDemuxer(f *testing.F) {
	for _, name := range []string{"h264_aac.flv", "h264_mp3.flv", "mpeg4_mp3.flv"} {
		tags := readFixture(f, name)
		f.Add(encodeTags(tags[:min(len(tags), 12)]))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var rep TimestampRepair
		var curV, curA *Track
		last := map[bool]time.Duration{}
		seen := map[bool]bool{}
		d := &Demuxer{
			OnTracks: func(v, a *Track) { curV, curA = v, a },
			OnAccessUnit: func(au *AccessUnit) {
				if au.Track == nil || (au.Track != curV && au.Track != curA) {
					t.Fatal("AU for an unpublished track")
				}
				if au.Size() == 0 {
					t.Fatal("empty AU")
				}
				switch au.Track.Codec {
				case H264:
					for _, n := range au.NALUs {
						if len(n) == 0 {
							t.Fatal("empty NAL unit")
						}
						switch h264.NALUType(n[0] & 0x1f) {
						case h264.NALUTypeSPS, h264.NALUTypePPS, h264.NALUTypeAccessUnitDelimiter:
							t.Fatal("parameter set in AU")
						}
					}
				case H265:
					for _, n := range au.NALUs {
						if len(n) == 0 {
							t.Fatal("empty NAL unit")
						}
						switch h265.NALUType((n[0] >> 1) & 0x3f) {
						case h265.NALUType_VPS_NUT, h265.NALUType_SPS_NUT, h265.NALUType_PPS_NUT, h265.NALUType_AUD_NUT:
							t.Fatal("parameter set in AU")
						}
					}
				}
				cts := au.PTS - au.DTS
				rep.Fix(au)
				if au.PTS-au.DTS != cts {
					t.Fatal("composition offset changed")
				}
				v := au.Track.Codec.IsVideo()
				if seen[v] && au.DTS <= last[v] {
					t.Fatalf("DTS %v after %v", au.DTS, last[v])
				}
				seen[v], last[v] = true, au.DTS
			},
		}
		for _, tag := range decodeTags(data) {
			body := bytes.Clone(tag.Body)
			tag.Body = body
			if err := d.WriteTag(tag); err != nil {
				t.Fatal(err)
			}
			for i := range body { // the demuxer must not keep references to tag bodies
				body[i] = 0xa5
			}
		}
		d.Flush()
	})
}

// FuzzTimestampRepair: arbitrary timestamps (5 bytes per unit: flags, 32-bit DTS, with
// the flags choosing track, CTS and Resume; an odd input length declares 25 fps on the
// video track) never yield non-increasing or negative DTS, and the composition offset is
// kept or, where the cadence snapping moved the PTS, not negative.
func FuzzTimestampRepair(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 40, 1, 0, 0, 0, 23})
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0x00, 0, 0, 0, 0, 0x10, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0x38})
	f.Fuzz(func(t *testing.T, data []byte) {
		var r TimestampRepair
		video := vTrack
		if len(data)%2 == 1 {
			video = &Track{Codec: H264, FrameRate: 25}
		}
		last := map[bool]time.Duration{}
		seen := map[bool]bool{}
		for len(data) >= 5 {
			flags := data[0]
			ts := binary.BigEndian.Uint32(data[1:5])
			data = data[5:]
			if flags&0x80 != 0 {
				r.Resume()
			}
			isVideo := flags&1 == 0
			tr := aTrack
			if isVideo {
				tr = video
			}
			cts := time.Duration(int8(flags&0x7e)) * time.Millisecond
			au := &AccessUnit{Track: tr, DTS: ms(int64(ts)), PTS: ms(int64(ts)) + cts}
			r.Fix(au)
			if got := au.PTS - au.DTS; au.DTS < 0 || (got != cts && (!isVideo || got < 0)) {
				t.Fatalf("DTS %v cts %v, sent %v", au.DTS, got, cts)
			}
			if seen[isVideo] && au.DTS <= last[isVideo] {
				t.Fatalf("DTS %v after %v", au.DTS, last[isVideo])
			}
			if au.DTS > r.LastDTS() {
				t.Fatal("LastDTS below an output")
			}
			seen[isVideo], last[isVideo] = true, au.DTS
		}
	})
}
