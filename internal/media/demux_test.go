package media

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/livrec/livrec/internal/flv"
)

func videoTag(ts uint32, body []byte) flv.Tag {
	return flv.Tag{Type: flv.TagVideo, Timestamp: ts, Body: body}
}
func audioTag(ts uint32, body []byte) flv.Tag {
	return flv.Tag{Type: flv.TagAudio, Timestamp: ts, Body: body}
}

// avcc joins NAL units with 4-byte length prefixes.
func avcc(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = append(b, byte(len(n)>>24), byte(len(n)>>16), byte(len(n)>>8), byte(len(n)))
		b = append(b, n...)
	}
	return b
}

// fixtureAVC returns the SPS, PPS and the AVCC configuration of the H.264 fixture.
func fixtureAVC(t *testing.T) (sps, pps []byte) {
	for _, tag := range readFixture(t, "h264_aac.flv") {
		if tag.Type != flv.TagVideo {
			continue
		}
		h, err := flv.ParseVideoTagHeader(tag.Body)
		if err == nil && h.Kind == flv.PacketConfig {
			cfg, err := flv.ParseAVCConfig(h.Data)
			if err != nil {
				t.Fatal(err)
			}
			return cfg.SPS[0], cfg.PPS[0]
		}
	}
	t.Fatal("no AVC config in fixture")
	return nil, nil
}

func TestDemuxFixtures(t *testing.T) {
	cases := []struct {
		file          string
		video, audio  Codec
		nVideo        int
		minAudio      int
		sampleRate    int
		wantCTS       bool
		wantVideoConf bool
	}{
		{"h264_aac.flv", H264, AAC, 50, 80, 44100, true, false},
		{"h264_mp3.flv", H264, MP3, 25, 35, 44100, false, false},
		{"mpeg4_mp3.flv", MPEG4Video, MP3, 25, 35, 22050, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			c := newCapture().write(t, readFixture(t, tc.file)...)
			c.d.Flush()
			if len(c.tracks) != 1 {
				t.Fatalf("OnTracks called %d times, want 1", len(c.tracks))
			}
			v, a := c.tracks[0].video, c.tracks[0].audio
			if v == nil || a == nil || v.Codec != tc.video || a.Codec != tc.audio {
				t.Fatalf("tracks %+v %+v", v, a)
			}
			if v.Width != 160 || v.Height != 120 || v.FrameRate != 25 {
				t.Errorf("video %dx%d @%v", v.Width, v.Height, v.FrameRate)
			}
			if a.SampleRate != tc.sampleRate || a.Channels != 1 {
				t.Errorf("audio %d Hz %d ch", a.SampleRate, a.Channels)
			}
			if tc.wantVideoConf && !bytes.HasPrefix(v.VideoConfig, []byte{0, 0, 1, 0xb0}) {
				t.Errorf("MPEG-4 config %x", v.VideoConfig)
			}
			if c.auBeforeTracks {
				t.Error("AU before its track was published")
			}
			if n := c.count(tc.video); n != tc.nVideo {
				t.Errorf("%d video AUs, want %d", n, tc.nVideo)
			}
			if n := c.count(tc.audio); n < tc.minAudio {
				t.Errorf("%d audio AUs, want >= %d", n, tc.minAudio)
			}
			if len(c.warnings) != 0 {
				t.Errorf("warnings: %v", c.warnings)
			}
			var sawCTS bool
			keys := 0
			for i, au := range c.aus {
				if au.Size() == 0 {
					t.Fatalf("AU %d empty", i)
				}
				if au.PTS != au.DTS {
					sawCTS = true
				}
				if !au.Track.Codec.IsVideo() {
					if !au.Key || au.PTS != au.DTS {
						t.Fatalf("audio AU %d: key %v pts %v dts %v", i, au.Key, au.PTS, au.DTS)
					}
					continue
				}
				if au.Key {
					keys++
				}
				for _, n := range au.NALUs {
					typ := h264.NALUType(n[0] & 0x1f)
					if typ == h264.NALUTypeSPS || typ == h264.NALUTypePPS || typ == h264.NALUTypeAccessUnitDelimiter {
						t.Fatalf("AU %d keeps NAL unit type %v", i, typ)
					}
				}
			}
			if sawCTS != tc.wantCTS {
				t.Errorf("composition offsets seen: %v", sawCTS)
			}
			first := c.aus[0]
			for _, au := range c.aus {
				if au.Track.Codec.IsVideo() {
					first = au
					break
				}
			}
			if !first.Key || keys < tc.nVideo/25 {
				t.Errorf("first video AU key=%v, %d key frames", first.Key, keys)
			}
		})
	}
}

// TestDemuxBytesPreserved checks that every elementary-stream byte of the fixture except
// parameter sets and AUDs comes out unchanged and in order.
func TestDemuxBytesPreserved(t *testing.T) {
	tags := readFixture(t, "h264_aac.flv")
	var wantV, wantA, gotV, gotA []byte
	for _, tag := range tags {
		switch tag.Type {
		case flv.TagVideo:
			h, _ := flv.ParseVideoTagHeader(tag.Body)
			if h.Kind != flv.PacketFrame {
				continue
			}
			nalus, err := splitAVCC(h.Data, 4, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range nalus {
				if typ := h264.NALUType(n[0] & 0x1f); typ != h264.NALUTypeSPS && typ != h264.NALUTypePPS && typ != h264.NALUTypeAccessUnitDelimiter {
					wantV = append(wantV, n...)
				}
			}
		case flv.TagAudio:
			h, _ := flv.ParseAudioTagHeader(tag.Body)
			if h.Kind == flv.PacketFrame {
				wantA = append(wantA, h.Data...)
			}
		}
	}
	c := newCapture().write(t, tags...)
	c.d.Flush()
	for _, au := range c.aus {
		gotA = append(gotA, au.Data...)
		for _, n := range au.NALUs {
			gotV = append(gotV, n...)
		}
	}
	if !bytes.Equal(gotV, wantV) || !bytes.Equal(gotA, wantA) {
		t.Fatalf("bytes differ: video %d/%d audio %d/%d", len(gotV), len(wantV), len(gotA), len(wantA))
	}
}

func h264ConfigTag(t *testing.T, ts uint32, sps, pps []byte) flv.Tag {
	rec, err := flv.MarshalAVCConfig([][]byte{sps}, [][]byte{pps})
	if err != nil {
		t.Fatal(err)
	}
	return videoTag(ts, append(flv.AppendVideoHeader(nil, true, flv.CodecIDAVC, 0, 0), rec...))
}

func h264FrameTag(ts uint32, key bool, cts int32, nalus ...[]byte) flv.Tag {
	return videoTag(ts, append(flv.AppendVideoHeader(nil, key, flv.CodecIDAVC, 1, cts), avcc(nalus...)...))
}

var (
	idrSlice = []byte{0x65, 0x88, 0x84, 0x00, 0x10}
	pSlice   = []byte{0x41, 0x9a, 0x02, 0x04}
	aud      = []byte{0x09, 0xf0}
	sei      = []byte{0x06, 0x05, 0x01, 0x80}
)

func TestDemuxH264ParameterSets(t *testing.T) {
	sps, pps := fixtureAVC(t)
	sps2 := bytes.Clone(sps)
	sps2[3] = 0x1f // level 3.1: a different, still valid SPS

	cases := []struct {
		name       string
		tags       []flv.Tag
		wantAUs    int
		wantTracks int
		check      func(t *testing.T, c *capture)
	}{
		{
			name: "parameter-set-only AU dropped",
			tags: []flv.Tag{
				h264ConfigTag(t, 0, sps, pps),
				h264FrameTag(0, true, 0, aud, sps, pps),
				h264FrameTag(0, true, 0, aud, sps, pps, sei, idrSlice),
				h264FrameTag(40, false, 40, pSlice),
			},
			wantAUs: 2, wantTracks: 1,
			check: func(t *testing.T, c *capture) {
				if len(c.aus[0].NALUs) != 2 || !c.aus[0].Key || c.aus[1].Key {
					t.Errorf("AU0 %d NALUs key %v; AU1 key %v", len(c.aus[0].NALUs), c.aus[0].Key, c.aus[1].Key)
				}
				if c.aus[1].PTS-c.aus[1].DTS != 40*time.Millisecond {
					t.Errorf("cts %v", c.aus[1].PTS-c.aus[1].DTS)
				}
			},
		},
		{
			name: "in-band SPS change makes a new track before the AU",
			tags: []flv.Tag{
				h264ConfigTag(t, 0, sps, pps),
				h264FrameTag(0, true, 0, idrSlice),
				h264FrameTag(40, false, 0, pSlice),
				h264FrameTag(80, true, 0, sps2, pps, idrSlice),
				h264FrameTag(120, false, 0, pSlice),
			},
			wantAUs: 4, wantTracks: 2,
			check: func(t *testing.T, c *capture) {
				if c.aus[2].Track == c.aus[0].Track || !bytes.Equal(c.aus[2].Track.SPS, sps2) {
					t.Error("no new track for the new SPS")
				}
				if c.tracks[1].video != c.aus[2].Track || c.aus[3].Track != c.aus[2].Track {
					t.Error("new track not published / not kept")
				}
				if c.aus[2].Track.Width != 160 {
					t.Errorf("width %d", c.aus[2].Track.Width)
				}
			},
		},
		{
			name: "same SPS in band keeps the track",
			tags: []flv.Tag{
				h264ConfigTag(t, 0, sps, pps),
				h264FrameTag(0, true, 0, sps, pps, idrSlice),
				h264ConfigTag(t, 40, sps, pps),
				h264FrameTag(40, false, 0, pSlice),
			},
			wantAUs: 2, wantTracks: 1,
		},
		{
			name: "config change in a new sequence header",
			tags: []flv.Tag{
				h264ConfigTag(t, 0, sps, pps),
				h264FrameTag(0, true, 0, idrSlice),
				h264ConfigTag(t, 40, sps2, pps),
				h264FrameTag(40, true, 0, idrSlice),
			},
			wantAUs: 2, wantTracks: 2,
		},
		{
			name: "frame before config is skipped with one warning",
			tags: []flv.Tag{
				h264FrameTag(0, true, 0, idrSlice),
				h264FrameTag(40, false, 0, pSlice),
				h264ConfigTag(t, 80, sps, pps),
				h264FrameTag(80, true, 0, idrSlice),
			},
			wantAUs: 1, wantTracks: 1,
			check: func(t *testing.T, c *capture) {
				if c.warned(WarnMissingConfig) != 1 {
					t.Errorf("warnings %v", c.warnings)
				}
			},
		},
		{
			name: "in-band parameter sets without a config record",
			tags: []flv.Tag{
				h264FrameTag(0, true, 0, sps, pps, idrSlice),
			},
			wantAUs: 1, wantTracks: 1,
		},
		{
			name: "Annex B payload tolerated",
			tags: []flv.Tag{
				h264ConfigTag(t, 0, sps, pps),
				videoTag(0, append(flv.AppendVideoHeader(nil, true, flv.CodecIDAVC, 1, 0),
					append(append([]byte{0, 0, 0, 1}, idrSlice...), append([]byte{0, 0, 1}, sei...)...)...)),
			},
			wantAUs: 1, wantTracks: 1,
			check: func(t *testing.T, c *capture) {
				if len(c.aus[0].NALUs) != 2 || !bytes.Equal(c.aus[0].NALUs[0], idrSlice) {
					t.Errorf("NALUs %x", c.aus[0].NALUs)
				}
			},
		},
		{
			name: "lengthSizeMinusOne honoured",
			tags: func() []flv.Tag {
				rec, _ := flv.MarshalAVCConfig([][]byte{sps}, [][]byte{pps})
				rec[4] = 0xfc | 1 // 2-byte lengths
				body := flv.AppendVideoHeader(nil, true, flv.CodecIDAVC, 1, 0)
				body = append(body, 0, byte(len(idrSlice)))
				body = append(body, idrSlice...)
				return []flv.Tag{
					videoTag(0, append(flv.AppendVideoHeader(nil, true, flv.CodecIDAVC, 0, 0), rec...)),
					videoTag(0, body),
				}
			}(),
			wantAUs: 1, wantTracks: 1,
		},
		{
			name: "truncated NAL unit is a bad tag",
			tags: []flv.Tag{
				h264ConfigTag(t, 0, sps, pps),
				videoTag(0, append(flv.AppendVideoHeader(nil, true, flv.CodecIDAVC, 1, 0), 0, 0, 0, 9, 0x65)),
				h264FrameTag(40, true, 0, idrSlice),
			},
			wantAUs: 1, wantTracks: 1,
			check: func(t *testing.T, c *capture) {
				if c.warned(WarnBadTag) != 1 {
					t.Errorf("warnings %v", c.warnings)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCapture()
			c.d.Metadata = Metadata{VideoKnown: true, HasVideo: true, AudioKnown: true}
			c.d.mdSeen = true
			c.write(t, tc.tags...)
			c.d.Flush()
			if len(c.aus) != tc.wantAUs || len(c.tracks) != tc.wantTracks {
				t.Fatalf("%d AUs %d track events, want %d %d (warnings %v)", len(c.aus), len(c.tracks), tc.wantAUs, tc.wantTracks, c.warnings)
			}
			if c.auBeforeTracks {
				t.Error("AU before its track")
			}
			for _, au := range c.aus {
				for _, n := range au.NALUs {
					if typ := h264.NALUType(n[0] & 0x1f); typ == h264.NALUTypeSPS || typ == h264.NALUTypePPS || typ == h264.NALUTypeAccessUnitDelimiter {
						t.Errorf("NAL unit %v kept", typ)
					}
				}
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

// hevcAUs splits the Annex B HEVC fixture into access units and returns the parameter sets.
func hevcAUs(t *testing.T) (vps, sps, pps []byte, aus [][][]byte) {
	b, err := os.ReadFile("testdata/h265.hevc")
	if err != nil {
		t.Fatal(err)
	}
	var cur [][]byte
	hasVCL := false
	for _, n := range splitAnnexB(b, nil) {
		typ := h265.NALUType((n[0] >> 1) & 0x3f)
		switch typ {
		case h265.NALUType_VPS_NUT:
			vps = n
		case h265.NALUType_SPS_NUT:
			sps = n
		case h265.NALUType_PPS_NUT:
			pps = n
		}
		vcl := typ < 32
		if (vcl && n[2]&0x80 != 0 || !vcl) && hasVCL {
			aus = append(aus, cur)
			cur, hasVCL = nil, false
		}
		cur = append(cur, n)
		hasVCL = hasVCL || vcl
	}
	if hasVCL {
		aus = append(aus, cur)
	}
	if vps == nil || sps == nil || pps == nil || len(aus) < 5 {
		t.Fatalf("fixture: %d AUs", len(aus))
	}
	return vps, sps, pps, aus
}

func TestDemuxHEVC(t *testing.T) {
	vps, sps, pps, aus := hevcAUs(t)
	rec, err := flv.MarshalHEVCConfig([][]byte{vps}, [][]byte{sps}, [][]byte{pps})
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := flv.ParseHEVCConfig(rec); err != nil || cfg.LengthSize != 4 || !bytes.Equal(cfg.SPS[0], sps) {
		t.Fatalf("config round trip: %v", err)
	}
	for _, mode := range []string{"legacy", "enhanced", "enhanced-framesx"} {
		t.Run(mode, func(t *testing.T) {
			var tags []flv.Tag
			switch mode {
			case "legacy":
				tags = append(tags, videoTag(0, append(flv.AppendVideoHeader(nil, true, flv.CodecIDHEVC, 0, 0), rec...)))
			default:
				tags = append(tags, videoTag(0, append(flv.AppendVideoExHeader(nil, true, flv.VideoExSequenceStart, flv.FourCCHEVC, 0), rec...)))
			}
			for i, au := range aus {
				key := h265.IsRandomAccess(au)
				var body []byte
				switch mode {
				case "legacy":
					body = flv.AppendVideoHeader(nil, key, flv.CodecIDHEVC, 1, 80)
				case "enhanced":
					body = flv.AppendVideoExHeader(nil, key, flv.VideoExCodedFrames, flv.FourCCHEVC, 80)
				default:
					body = flv.AppendVideoExHeader(nil, key, flv.VideoExCodedFramesX, flv.FourCCHEVC, 0)
				}
				tags = append(tags, videoTag(uint32(i*40), append(body, avcc(au...)...)))
			}
			tags = append(tags, videoTag(uint32(len(aus)*40), flv.AppendVideoExHeader(nil, false, flv.VideoExSequenceEnd, flv.FourCCHEVC, 0)))
			c := newCapture().write(t, tags...)
			c.d.Flush()
			if len(c.tracks) != 1 || c.tracks[0].video == nil || c.tracks[0].audio != nil {
				t.Fatalf("tracks %v", c.tracks)
			}
			tr := c.tracks[0].video
			if tr.Codec != H265 || tr.Width != 160 || tr.Height != 120 || !bytes.Equal(tr.VPS, vps) {
				t.Errorf("track %+v", tr)
			}
			if len(c.aus) != len(aus) {
				t.Fatalf("%d AUs, want %d", len(c.aus), len(aus))
			}
			if !c.aus[0].Key {
				t.Error("first AU not key")
			}
			wantCTS := 80 * time.Millisecond
			if mode == "enhanced-framesx" {
				wantCTS = 0
			}
			for _, au := range c.aus {
				if au.Track != tr || au.PTS-au.DTS != wantCTS {
					t.Fatalf("AU track/cts %v", au.PTS-au.DTS)
				}
				for _, n := range au.NALUs {
					switch h265.NALUType((n[0] >> 1) & 0x3f) {
					case h265.NALUType_VPS_NUT, h265.NALUType_SPS_NUT, h265.NALUType_PPS_NUT, h265.NALUType_AUD_NUT:
						t.Fatal("parameter set kept in AU")
					}
				}
			}
		})
	}
}

func TestDemuxUnsupportedCodecs(t *testing.T) {
	aac := []byte{0x12, 0x10}
	cases := []struct {
		name      string
		video     []byte
		audio     []byte
		wantMsg   string
		wantVideo bool
		wantAudio bool
	}{
		{"VP6 video", []byte{0x14, 0, 1, 2}, nil, "video codec VP6 (id 4) is not supported; recording audio only", false, true},
		{"AV1 enhanced", flv.AppendVideoExHeader(nil, true, flv.VideoExCodedFrames, flv.FourCCAV1, 0), nil, "video codec AV1 (FourCC av01) is not supported", false, true},
		{"multitrack video", []byte{0x80 | 0x10 | flv.VideoExMultitrack, 0, 'h', 'v', 'c', '1'}, nil, "multitrack video", false, true},
		{"Nellymoser audio", nil, []byte{0x6e, 1, 2, 3}, "audio codec Nellymoser (SoundFormat 6) is not supported; recording video only", true, false},
		{"Speex audio", nil, []byte{0xb2, 1, 2}, "Speex", true, false},
		{"Opus enhanced", nil, flv.AppendAudioExHeader(nil, flv.AudioExCodedFrames, flv.FourCCOpus), "Opus (FourCC Opus)", true, false},
	}
	sps, pps := fixtureAVC(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCapture()
			if tc.video == nil {
				c.write(t, h264ConfigTag(t, 0, sps, pps))
			}
			if tc.audio == nil {
				c.write(t, audioTag(0, append(flv.AppendAudioHeaderAAC(nil, 0), aac...)))
			}
			for i := 0; i < 60; i++ {
				ts := uint32(i * 40)
				if tc.video != nil {
					c.write(t, videoTag(ts, tc.video))
				} else {
					c.write(t, h264FrameTag(ts, i%25 == 0, 0, idrSlice))
				}
				if tc.audio != nil {
					c.write(t, audioTag(ts, tc.audio))
				} else {
					c.write(t, audioTag(ts, append(flv.AppendAudioHeaderAAC(nil, 1), 0x21, 0x10)))
				}
			}
			c.d.Flush()
			if c.warned(WarnUnsupportedCodec) != 1 || !strings.Contains(c.warnings[0].msg, tc.wantMsg) {
				t.Fatalf("warnings %v", c.warnings)
			}
			if len(c.tracks) != 1 || (c.tracks[0].video != nil) != tc.wantVideo || (c.tracks[0].audio != nil) != tc.wantAudio {
				t.Fatalf("tracks %+v", c.tracks)
			}
			if len(c.aus) != 60 {
				t.Errorf("%d AUs", len(c.aus))
			}
		})
	}
}

func TestDemuxTrackSet(t *testing.T) {
	sps, pps := fixtureAVC(t)
	aacCfg := audioTag(0, append(flv.AppendAudioHeaderAAC(nil, 0), 0x12, 0x10))
	aacFrame := func(ts uint32) flv.Tag {
		return audioTag(ts, append(flv.AppendAudioHeaderAAC(nil, 1), 0x21, 0x10, 0x04))
	}

	t.Run("audio appears late", func(t *testing.T) {
		c := newCapture()
		c.write(t, h264ConfigTag(t, 0, sps, pps))
		for i := 0; i < 40; i++ {
			c.write(t, h264FrameTag(uint32(i*40), i == 0, 0, idrSlice))
		}
		if len(c.tracks) != 1 || c.tracks[0].audio != nil || len(c.aus) != 40 {
			t.Fatalf("after 1.6 s of video: %d track events %d AUs", len(c.tracks), len(c.aus))
		}
		c.write(t, aacCfg, aacFrame(1600), h264FrameTag(1600, false, 0, pSlice))
		if len(c.tracks) != 2 || c.tracks[1].audio == nil || c.tracks[1].video != c.tracks[0].video {
			t.Fatalf("tracks %+v", c.tracks)
		}
	})
	t.Run("metadata says video only", func(t *testing.T) {
		c := newCapture()
		c.d.Metadata, c.d.mdSeen = Metadata{VideoKnown: true, HasVideo: true, AudioKnown: true}, true
		c.write(t, h264ConfigTag(t, 0, sps, pps), h264FrameTag(0, true, 0, idrSlice))
		if len(c.tracks) != 1 || len(c.aus) != 1 {
			t.Fatalf("not decided at once: %d %d", len(c.tracks), len(c.aus))
		}
	})
	t.Run("both configs decide before frames", func(t *testing.T) {
		c := newCapture()
		c.write(t, h264ConfigTag(t, 0, sps, pps), aacCfg)
		if len(c.tracks) != 1 || c.tracks[0].video == nil || c.tracks[0].audio == nil {
			t.Fatalf("tracks %+v", c.tracks)
		}
	})
	t.Run("buffer until audio config", func(t *testing.T) {
		c := newCapture()
		c.write(t, h264ConfigTag(t, 0, sps, pps))
		for i := 0; i < 5; i++ {
			c.write(t, h264FrameTag(uint32(i*40), i == 0, 0, idrSlice))
		}
		if len(c.aus) != 0 {
			t.Fatal("AUs not buffered")
		}
		c.write(t, aacCfg, aacFrame(200))
		if len(c.tracks) != 1 || len(c.aus) != 6 || c.tracks[0].audio == nil {
			t.Fatalf("%d track events %d AUs", len(c.tracks), len(c.aus))
		}
	})
	t.Run("flush releases a short stream", func(t *testing.T) {
		c := newCapture()
		c.write(t, h264ConfigTag(t, 0, sps, pps), h264FrameTag(0, true, 0, idrSlice))
		c.d.Flush()
		if len(c.tracks) != 1 || len(c.aus) != 1 {
			t.Fatalf("%d %d", len(c.tracks), len(c.aus))
		}
	})
	t.Run("MP3 rate change makes a new track", func(t *testing.T) {
		c := newCapture()
		c.d.Metadata, c.d.mdSeen = Metadata{AudioKnown: true, HasAudio: true, VideoKnown: true}, true
		mp3 := func(ts uint32, hdr2 byte) flv.Tag {
			return audioTag(ts, append(flv.AppendAudioHeaderMP3(nil, 44100, true), 0xff, 0xfb, hdr2, 0x44, 0, 0, 0))
		}
		c.write(t, mp3(0, 0x90), mp3(26, 0x90), mp3(52, 0x94))
		if len(c.tracks) != 2 || c.tracks[0].audio.SampleRate != 44100 || c.tracks[1].audio.SampleRate != 48000 || c.tracks[0].audio.Channels != 2 {
			t.Fatalf("tracks %+v", c.tracks)
		}
	})
}

func TestDemuxMetadata(t *testing.T) {
	c := newCapture().write(t, readFixture(t, "h264_aac.flv")[:1]...)
	md := c.d.Metadata
	if md.Width != 160 || md.Height != 120 || md.FrameRate != 25 || md.VideoCodecID != 7 || md.AudioCodecID != 10 || !md.HasVideo || !md.HasAudio {
		t.Fatalf("metadata %+v", md)
	}
}

func TestDemuxBadTags(t *testing.T) {
	c := newCapture()
	for i := 0; i < 1000; i++ {
		c.write(t, videoTag(uint32(i), []byte{0x17}), audioTag(uint32(i), []byte{}))
	}
	c.write(t, flv.Tag{Type: flv.TagScript, Body: []byte{2, 0, 10}})
	c.d.Flush()
	if n := c.warned(WarnBadTag); n < 3 || n > 10 {
		t.Errorf("%d bad_tag warnings for 2000 bad tags (want rate-limited)", n)
	}
	if len(c.aus) != 0 || len(c.tracks) != 0 {
		t.Error("output from garbage")
	}
}

func TestParseVOL(t *testing.T) {
	// ffmpeg -f lavfi -i testsrc2=size=352x288:rate=30 -c:v mpeg4 -f m4v
	cfg := []byte{0x00, 0x00, 0x01, 0xb0, 0x01, 0x00, 0x00, 0x01, 0xb5, 0x89, 0x13, 0x00, 0x00, 0x01, 0x00, 0x00,
		0x00, 0x01, 0x20, 0x00, 0xc4, 0x8d, 0x88, 0x00, 0xf5, 0x0b, 0x04, 0x24, 0x14, 0x43, 0x00, 0x00,
		0x01, 0xb2, 0x4c, 0x61, 0x76, 0x63}
	w, h, _, ok := parseVOL(mpeg4ConfigVOL(cfg))
	if !ok || w != 352 || h != 288 {
		t.Fatalf("%d x %d ok=%v", w, h, ok)
	}
	if sc := mpeg4Scan(append(cfg, 0, 0, 1, 0xb3, 0, 0x10, 0x07, 0, 0, 1, 0xb6, 0x10)); sc.configEnd != len(cfg) || !sc.hasVOP || !sc.intraVOP || !sc.hasGOV {
		t.Fatalf("scan %+v", sc)
	}
	if sc := mpeg4Scan([]byte{0, 0, 1, 0xb6, 0x50, 1}); sc.configEnd != 0 || sc.intraVOP || !sc.hasVOP {
		t.Fatalf("P-VOP scan %+v", sc)
	}
	if _, _, _, ok := parseVOL([]byte{0x00}); ok {
		t.Fatal("truncated VOL accepted")
	}
}

// TestTakeTagBodies: with TakeTagBodies the access units are the same as with copying,
// and their bytes are the tag bodies themselves (no copy).
func TestTakeTagBodies(t *testing.T) {
	for _, name := range []string{"h264_aac.flv", "h264_mp3.flv", "mpeg4_mp3.flv"} {
		tags := readFixture(t, name)
		ref := newCapture().write(t, tags...)
		ref.d.Flush()
		c := newCapture()
		c.d.TakeTagBodies = true
		within := func(b []byte) bool {
			p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
			for _, tg := range tags {
				lo := uintptr(unsafe.Pointer(unsafe.SliceData(tg.Body)))
				if len(b) > 0 && p >= lo && p+uintptr(len(b)) <= lo+uintptr(len(tg.Body)) {
					return true
				}
			}
			return false
		}
		c.write(t, tags...)
		c.d.Flush()
		if len(c.aus) != len(ref.aus) || len(c.aus) == 0 {
			t.Fatalf("%s: %d access units, want %d", name, len(c.aus), len(ref.aus))
		}
		for i, au := range c.aus {
			r := ref.aus[i]
			if au.DTS != r.DTS || au.PTS != r.PTS || au.Key != r.Key || !bytes.Equal(au.Data, r.Data) || len(au.NALUs) != len(r.NALUs) {
				t.Fatalf("%s: unit %d differs", name, i)
			}
			for j, n := range au.NALUs {
				if !bytes.Equal(n, r.NALUs[j]) || !within(n) || within(r.NALUs[j]) {
					t.Fatalf("%s: unit %d NAL unit %d differs or is (not) a copy", name, i, j)
				}
			}
			if len(au.Data) > 0 && (!within(au.Data) || within(r.Data)) {
				t.Fatalf("%s: unit %d data is (not) a copy", name, i)
			}
		}
	}
}

// TestLendUnits: with LendUnits and tag bodies lent (one buffer overwritten after each
// WriteTag, as the RTMP server reuses its message bodies), the units a receiver copies
// during OnAccessUnit are those of the copying demuxer, including those held until the
// track set is decided (here: the audio configuration comes after video frames).
func TestLendUnits(t *testing.T) {
	for _, name := range []string{"h264_aac.flv", "h264_mp3.flv", "mpeg4_mp3.flv"} {
		tags := readFixture(t, name)
		var late []flv.Tag // no onMetaData; the first audio tag after 20 video tags
		var audio *flv.Tag
		for i := range tags {
			switch {
			case tags[i].Type == flv.TagScript:
			case tags[i].Type == flv.TagAudio && audio == nil:
				audio = &tags[i]
			default:
				late = append(late, tags[i])
			}
			if len(late) == 20 && audio != nil {
				late = append(late, *audio)
			}
		}
		for _, in := range [][]flv.Tag{tags, late} {
			ref := newCapture().write(t, in...)
			ref.d.Flush()
			c := newCapture()
			c.d.LendUnits = true
			kept := c.d.OnAccessUnit
			c.d.OnAccessUnit = func(au *AccessUnit) {
				cl := au.Clone()
				kept(&cl)
			}
			var lent []byte
			for _, tg := range in {
				lent = append(lent[:0], tg.Body...)
				tg.Body = lent
				if err := c.d.WriteTag(tg); err != nil {
					t.Fatal(err)
				}
				for i := range lent {
					lent[i] = 0xEE
				}
			}
			c.d.Flush()
			if len(c.aus) != len(ref.aus) || len(c.aus) == 0 {
				t.Fatalf("%s: %d access units, want %d", name, len(c.aus), len(ref.aus))
			}
			for i, au := range c.aus {
				r := ref.aus[i]
				if au.Track.Codec != r.Track.Codec || au.DTS != r.DTS || au.PTS != r.PTS || au.Key != r.Key ||
					!bytes.Equal(au.Data, r.Data) || len(au.NALUs) != len(r.NALUs) {
					t.Fatalf("%s: unit %d differs", name, i)
				}
				for j, n := range au.NALUs {
					if !bytes.Equal(n, r.NALUs[j]) {
						t.Fatalf("%s: unit %d NAL unit %d differs", name, i, j)
					}
				}
			}
		}
	}
}
