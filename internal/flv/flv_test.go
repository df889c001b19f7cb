package flv

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"testing"
)

func readAll(t testing.TB, b []byte) ([]Tag, *Reader) {
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var tags []Tag
	for {
		tag, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			return tags, r
		}
		tag.Body = bytes.Clone(tag.Body)
		tags = append(tags, tag)
	}
}

func TestFileRoundTrip(t *testing.T) {
	src, err := os.ReadFile("../media/testdata/h264_aac.flv")
	if err != nil {
		t.Fatal(err)
	}
	tags, r := readAll(t, src)
	if r.Truncated() || r.Mismatches != 0 || len(tags) < 100 || !r.Header().HasAudio || !r.Header().HasVideo {
		t.Fatalf("read %d tags, truncated %v, mismatches %d, header %+v", len(tags), r.Truncated(), r.Mismatches, r.Header())
	}
	var out bytes.Buffer
	w, err := NewWriter(&out, true, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		if err := w.WriteTag(tag); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(out.Bytes(), src) || w.Written() != int64(len(src)) {
		t.Fatalf("rewritten file differs (%d vs %d bytes)", out.Len(), len(src))
	}

	// A truncated tail drops the partial tag and is reported.
	cut, r2 := readAll(t, src[:len(src)-7])
	if !r2.Truncated() || len(cut) != len(tags)-1 {
		t.Fatalf("truncated: %d tags, flag %v", len(cut), r2.Truncated())
	}
	// Missing final PreviousTagSize is a clean end.
	cut, r3 := readAll(t, src[:len(src)-4])
	if r3.Truncated() || len(cut) != len(tags) {
		t.Fatalf("no final size: %d tags, flag %v", len(cut), r3.Truncated())
	}
	if _, err := NewReader(bytes.NewReader([]byte("GIF89a....."))); !errors.Is(err, ErrNotFLV) {
		t.Fatalf("err %v", err)
	}
}

func TestExtendedTimestamp(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, false, true)
	_ = w.WriteTag(Tag{Type: TagVideo, Timestamp: 0xfedcba98, Body: []byte{0x17, 1, 0, 0, 0}})
	tags, _ := readAll(t, buf.Bytes())
	if len(tags) != 1 || tags[0].Timestamp != 0xfedcba98 {
		t.Fatalf("%+v", tags)
	}
}

func TestVideoTagHeader(t *testing.T) {
	cases := []struct {
		name  string
		body  []byte
		codec VideoCodec
		kind  PacketKind
		cts   int32
		data  int
		key   bool
		err   bool
	}{
		{"avc config", []byte{0x17, 0, 0, 0, 0, 1, 2}, VideoAVC, PacketConfig, 0, 2, true, false},
		{"avc frame negative cts", []byte{0x27, 1, 0xff, 0xff, 0xd8, 9}, VideoAVC, PacketFrame, -40, 1, false, false},
		{"avc end", []byte{0x17, 2, 0, 0, 0}, VideoAVC, PacketEnd, 0, 0, true, false},
		{"hevc legacy 12", []byte{0x1c, 1, 0, 0, 80, 7}, VideoHEVC, PacketFrame, 80, 1, true, false},
		{"mpeg4 legacy 9", []byte{0x29, 1, 0, 0, 0, 0, 0, 1, 0xb6}, VideoMPEG4, PacketFrame, 0, 4, false, false},
		{"vp6", []byte{0x14, 1, 2}, VideoVP6, PacketFrame, 0, 2, true, false},
		{"sorenson", []byte{0x22, 1}, VideoSorenson, PacketFrame, 0, 1, false, false},
		{"command frame", []byte{0x57, 0}, VideoAVC, PacketOther, 0, 1, false, false},
		{"short avc", []byte{0x17, 1, 0}, VideoAVC, PacketFrame, 0, 0, true, true},
		{"empty", nil, VideoUnknown, PacketFrame, 0, 0, false, true},
		{"ex hvc1 coded frames", AppendVideoExHeader(nil, true, VideoExCodedFrames, FourCCHEVC, -2), VideoHEVC, PacketFrame, -2, 0, true, false},
		{"ex hvc1 frames x", append(AppendVideoExHeader(nil, false, VideoExCodedFramesX, FourCCHEVC, 0), 1, 2), VideoHEVC, PacketFrame, 0, 2, false, false},
		{"ex avc1 seq start", append(AppendVideoExHeader(nil, true, VideoExSequenceStart, FourCCAVC, 0), 1), VideoAVC, PacketConfig, 0, 1, true, false},
		{"ex av01", AppendVideoExHeader(nil, true, VideoExCodedFrames, FourCCAV1, 0), VideoAV1, PacketFrame, 0, 0, true, false},
		{"ex vp09 end", AppendVideoExHeader(nil, true, VideoExSequenceEnd, FourCCVP9, 0), VideoVP9, PacketEnd, 0, 0, true, false},
		{"ex metadata", append(AppendVideoExHeader(nil, true, VideoExMetadata, FourCCHEVC, 0), 2), VideoHEVC, PacketOther, 0, 1, true, false},
		{"ex multitrack", []byte{0x96, 0, 'h', 'v', 'c', '1'}, VideoMultitrack, PacketOther, 0, 5, true, false},
		{"ex short", []byte{0x91, 'h', 'v'}, VideoUnknown, PacketFrame, 0, 0, false, true},
		{"ex hvc1 coded frames without cts", []byte{0x91, 'h', 'v', 'c', '1', 0}, VideoHEVC, PacketFrame, 0, 0, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseVideoTagHeader(tc.body)
			if (err != nil) != tc.err {
				t.Fatalf("err %v", err)
			}
			if err != nil {
				return
			}
			if h.Codec != tc.codec || h.Kind != tc.kind || h.CompositionTime != tc.cts || len(h.Data) != tc.data || h.Key() != tc.key {
				t.Fatalf("%+v (%s)", h, h.CodecDescription())
			}
		})
	}
	h, _ := ParseVideoTagHeader([]byte{0x14, 1})
	if got := h.CodecDescription(); got != "VP6 (id 4)" {
		t.Errorf("description %q", got)
	}
}

func TestAudioTagHeader(t *testing.T) {
	cases := []struct {
		name  string
		body  []byte
		codec AudioCodec
		kind  PacketKind
		data  int
		err   bool
	}{
		{"aac config", []byte{0xaf, 0, 0x12, 0x10}, AudioAAC, PacketConfig, 2, false},
		{"aac frame", []byte{0xaf, 1, 0x21}, AudioAAC, PacketFrame, 1, false},
		{"aac short", []byte{0xaf}, AudioAAC, PacketFrame, 0, true},
		{"mp3", []byte{0x2f, 0xff, 0xfb}, AudioMP3, PacketFrame, 2, false},
		{"mp3 8k", []byte{0xe2, 0xff}, AudioMP3, PacketFrame, 1, false},
		{"nellymoser", []byte{0x6e, 1}, AudioNellymoser, PacketFrame, 1, false},
		{"g711a", []byte{0x72, 1}, AudioG711A, PacketFrame, 1, false},
		{"speex", []byte{0xb2, 1}, AudioSpeex, PacketFrame, 1, false},
		{"pcm", []byte{0x3f, 1}, AudioPCM, PacketFrame, 1, false},
		{"ex mp4a start", append(AppendAudioExHeader(nil, AudioExSequenceStart, FourCCAAC), 0x12, 0x10), AudioAAC, PacketConfig, 2, false},
		{"ex .mp3 frames", append(AppendAudioExHeader(nil, AudioExCodedFrames, FourCCMP3), 0xff), AudioMP3, PacketFrame, 1, false},
		{"ex Opus", AppendAudioExHeader(nil, AudioExCodedFrames, FourCCOpus), AudioOpus, PacketFrame, 0, false},
		{"ex fLaC", AppendAudioExHeader(nil, AudioExSequenceStart, FourCCFLAC), AudioFLAC, PacketConfig, 0, false},
		{"ex ac-3", AppendAudioExHeader(nil, AudioExCodedFrames, FourCCAC3), AudioAC3, PacketFrame, 0, false},
		{"ex end", AppendAudioExHeader(nil, AudioExSequenceEnd, FourCCAAC), AudioAAC, PacketEnd, 0, false},
		{"ex multichannel", AppendAudioExHeader(nil, AudioExMultichannelConfig, FourCCAAC), AudioAAC, PacketOther, 0, false},
		{"ex multitrack", []byte{0x95, 0x01, 'm', 'p', '4', 'a'}, AudioMultitrack, PacketOther, 5, false},
		{"ex short", []byte{0x91, 'O'}, AudioUnknown, PacketFrame, 0, true},
		{"empty", nil, AudioUnknown, PacketFrame, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseAudioTagHeader(tc.body)
			if (err != nil) != tc.err {
				t.Fatalf("err %v", err)
			}
			if err != nil {
				return
			}
			if h.Codec != tc.codec || h.Kind != tc.kind || len(h.Data) != tc.data {
				t.Fatalf("%+v (%s)", h, h.CodecDescription())
			}
			if h.Codec.Supported() != (tc.codec == AudioAAC || tc.codec == AudioMP3) {
				t.Fatal("Supported")
			}
		})
	}
	h, _ := ParseAudioTagHeader([]byte{0x6e, 1})
	if got := h.CodecDescription(); got != "Nellymoser (SoundFormat 6)" {
		t.Errorf("description %q", got)
	}
	if FourCC(0x01020304).String() != "0x01020304" || FourCCOpus.String() != "Opus" {
		t.Error("FourCC.String")
	}
}

func TestAVCConfig(t *testing.T) {
	sps := []byte{0x67, 0x64, 0x00, 0x0b, 0xac, 0xd9}
	pps := []byte{0x68, 0xeb, 0xe3}
	rec, err := MarshalAVCConfig([][]byte{sps}, [][]byte{pps})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseAVCConfig(rec)
	if err != nil || c.LengthSize != 4 || c.Profile != 0x64 || c.Level != 0x0b || !bytes.Equal(c.SPS[0], sps) || !bytes.Equal(c.PPS[0], pps) {
		t.Fatalf("%+v %v", c, err)
	}
	for i := 0; i < len(rec); i++ {
		if _, err := ParseAVCConfig(rec[:i]); err == nil {
			t.Fatalf("truncated at %d accepted", i)
		}
	}
	if _, err := ParseAVCConfig(append(rec, 0xfd, 0xf8, 0xf8, 0)); err != nil {
		t.Fatalf("high-profile trailer rejected: %v", err)
	}
	if _, err := MarshalAVCConfig(nil, [][]byte{pps}); err == nil {
		t.Fatal("no SPS accepted")
	}
}

func TestHEVCConfigErrors(t *testing.T) {
	if _, err := ParseHEVCConfig(make([]byte, 22)); err == nil {
		t.Fatal("short record accepted")
	}
	rec := make([]byte, 23)
	rec[22] = 1
	if _, err := ParseHEVCConfig(rec); err == nil {
		t.Fatal("missing array accepted")
	}
	rec = append(rec[:23], 0xa0, 0, 1, 0, 3, 0x40, 1, 0xc) // VPS only
	if _, err := ParseHEVCConfig(rec); err == nil {
		t.Fatal("record without SPS/PPS accepted")
	}
}

func TestMetadata(t *testing.T) {
	src, err := os.ReadFile("../media/testdata/h264_aac.flv")
	if err != nil {
		t.Fatal(err)
	}
	tags, _ := readAll(t, src)
	if tags[0].Type != TagScript {
		t.Fatal("first tag is not script data")
	}
	md, err := ParseMetadata(tags[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	if md.Width != 160 || md.Height != 120 || md.FrameRate != 25 || md.VideoCodecID != 7 || md.AudioCodecID != 10 ||
		md.Duration < 1.9 || md.Duration > 2.2 || !md.HasVideo || !md.HasAudio || md.AudioDataRate == 0 {
		t.Fatalf("%+v", md)
	}
	// RTMP form with @setDataFrame, strings for numbers, explicit hasAudio=false.
	body := []byte{0x02, 0, 13}
	body = append(body, "@setDataFrame"...)
	body = append(body, 0x02, 0, 10)
	body = append(body, "onMetaData"...)
	body = append(body, 0x03)
	body = appendProp(body, "width", 0x02, []byte{0, 4, '1', '2', '8', '0'})
	body = appendProp(body, "videocodecid", 0x02, []byte{0, 4, 'a', 'v', 'c', '1'})
	body = appendProp(body, "audiocodecid", 0x00, []byte{0x40, 0x24, 0, 0, 0, 0, 0, 0})
	body = appendProp(body, "hasAudio", 0x01, []byte{0})
	body = append(body, 0, 0, 9)
	md, err = ParseMetadata(body)
	if err != nil {
		t.Fatal(err)
	}
	if md.Width != 1280 || md.VideoCodec != "avc1" || md.AudioCodecID != 10 || !md.HasVideo || md.HasAudio || !md.AudioKnown {
		t.Fatalf("%+v", md)
	}
	if _, err := ParseMetadata([]byte{0x02, 0, 3, 'f', 'o', 'o'}); !errors.Is(err, ErrNotMetadata) {
		t.Fatalf("err %v", err)
	}
	deep := []byte{0x02, 0, 10}
	deep = append(deep, "onMetaData"...)
	for i := 0; i < 100; i++ {
		deep = append(deep, 0x03, 0, 1, 'a')
	}
	if _, err := ParseMetadata(deep); err == nil {
		t.Fatal("deep nesting accepted")
	}
}

func appendProp(b []byte, key string, marker byte, val []byte) []byte {
	b = append(b, byte(len(key)>>8), byte(len(key)))
	b = append(b, key...)
	b = append(b, marker)
	return append(b, val...)
}

// TestFreshBodies: with FreshBodies (and from NewBytesReader) the bodies are kept as
// returned (no copy) and stay intact while the Reader goes on, across block boundaries,
// with tags larger than a block, and with a truncated tail.
func TestFreshBodies(t *testing.T) {
	fixture, err := os.ReadFile("../media/testdata/h264_aac.flv")
	if err != nil {
		t.Fatal(err)
	}
	// A file of several blocks: random sizes, one tag larger than a block.
	rng := rand.New(rand.NewPCG(3, 4))
	var big bytes.Buffer
	w, _ := NewWriter(&big, true, true)
	for i := 0; big.Len() < 5*freshBlock; i++ {
		n := rng.IntN(200 << 10)
		if i == 7 {
			n = freshBlock + 12345
		}
		body := make([]byte, n)
		for j := range body {
			body[j] = byte(rng.Uint32())
		}
		if err := w.WriteTag(Tag{Type: TagVideo, Timestamp: uint32(i), Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	for name, src := range map[string][]byte{"fixture": fixture, "big": big.Bytes(), "big truncated": big.Bytes()[:big.Len()-100]} {
		want, wr := readAll(t, src)
		for _, inMemory := range []bool{false, true} {
			r, err := NewReader(bytes.NewReader(src))
			if inMemory {
				r, err = NewBytesReader(src)
				if err == nil {
					// The first body is a part of src itself.
					tag, _ := r.ReadTag()
					if len(tag.Body) == 0 || &tag.Body[0] != &src[9+4+11] {
						t.Fatalf("%s: first body is not a part of the input", name)
					}
					r, _ = NewBytesReader(src)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			r.FreshBodies = true
			checkFresh(t, name, r, want, wr.Truncated())
			if r.Offset() != int64(len(src)) || wr.Offset() != int64(len(src)) {
				t.Fatalf("%s: offset %d (reused buffer: %d), want %d", name, r.Offset(), wr.Offset(), len(src))
			}
		}
	}
	if _, err := NewBytesReader([]byte("FLV")); !errors.Is(err, ErrNotFLV) {
		t.Fatalf("short header: %v", err)
	}
}

func checkFresh(t *testing.T, name string, r *Reader, want []Tag, truncated bool) {
	t.Helper()
	var got []Tag
	for {
		tag, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			break
		}
		got = append(got, tag)
	}
	if len(got) != len(want) || len(got) == 0 || r.Truncated() != truncated {
		t.Fatalf("%s: %d tags (truncated %v), want %d (%v)", name, len(got), r.Truncated(), len(want), truncated)
	}
	for i := range got {
		if got[i].Type != want[i].Type || got[i].Timestamp != want[i].Timestamp || !bytes.Equal(got[i].Body, want[i].Body) {
			t.Fatalf("%s: tag %d differs", name, i)
		}
		if cap(got[i].Body) != len(got[i].Body) {
			t.Fatalf("%s: tag %d body can be appended to in place", name, i)
		}
	}
}
