package hls

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	mtscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// TestTSMuxMatchesMediacommon checks that the hand-written packetizer writes exactly the
// bytes mediacommon's mpegts.Writer (go-astits) writes for the same calls, including
// table repetition, PCR placement, stuffing edge cases and 33-bit timestamp wrap.
func TestTSMuxMatchesMediacommon(t *testing.T) {
	for _, withVideo := range []bool{true, false} {
		rng := rand.New(rand.NewSource(1))
		cfg := mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 44100, ChannelConfig: 2}
		var ref, got bytes.Buffer
		var tracks []*mpegts.Track
		var vt *mpegts.Track
		if withVideo {
			vt = &mpegts.Track{Codec: &mtscodecs.H264{}}
			tracks = append(tracks, vt)
		}
		at := &mpegts.Track{Codec: &mtscodecs.MPEG4Audio{Config: cfg}}
		tracks = append(tracks, at)
		w := &mpegts.Writer{W: &ref, Tracks: tracks}
		if err := w.Initialize(); err != nil {
			t.Fatal(err)
		}
		var p tsPacketizer
		var vs *tsStream
		var streams []*tsStream
		if withVideo {
			vs = &tsStream{streamType: tsTypeH264, streamID: tsStreamIDVideo}
			streams = append(streams, vs)
		}
		as := &tsStream{streamType: tsTypeAAC, streamID: tsStreamIDAudio}
		streams = append(streams, as)
		p.init(&got, streams...)
		ah := newAACHeader(cfg)
		var m tsMuxer
		base := int64(1<<33 - 90000*3)
		for i := range 400 {
			if i%97 == 0 {
				w.WriteTables()
				p.writeTables()
			}
			ts := base + int64(i)*3000
			if withVideo && i%3 != 2 {
				n := rng.Intn(3000) + 1
				if i%50 == 0 {
					n = 100000
				}
				if i%7 == 0 {
					n = 184 - 19 - 5 - rng.Intn(4)
				}
				nal := make([]byte, n)
				rng.Read(nal)
				nal[0] = 1
				if i%50 == 0 {
					nal[0] = 5
				}
				au := [][]byte{h264AUD, nal}
				pts := ts
				if i%2 == 0 {
					pts += 6000
				}
				if err := w.WriteH264(vt, pts, ts, au); err != nil {
					t.Fatal(err)
				}
				if err := p.writeVideo(vs, pts, ts, h264.IsRandomAccess(au), m.annexB(au)); err != nil {
					t.Fatal(err)
				}
			} else {
				var frames [][]byte
				var data []byte
				var lens []int
				for range rng.Intn(4) + 1 {
					f := make([]byte, rng.Intn(400)+1)
					rng.Read(f)
					frames = append(frames, f)
					data = append(data, f...)
					lens = append(lens, len(f))
				}
				if err := w.WriteMPEG4Audio(at, ts, frames); err != nil {
					t.Fatal(err)
				}
				es, err := ah.appendADTS(nil, data, lens)
				if err != nil {
					t.Fatal(err)
				}
				if err := p.writeAudio(as, ts, es); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.flush(); err != nil { // the packetizer buffers up to tsFlushSize
				t.Fatal(err)
			}
			if !bytes.Equal(ref.Bytes(), got.Bytes()) {
				r, g := ref.Bytes(), got.Bytes()
				for j := range min(len(r), len(g)) {
					if r[j] != g[j] {
						t.Fatalf("video=%v unit %d: differ at byte %d (packet %d, offset %d): ref %x got %x", withVideo, i, j, j/188, j%188, r[j/188*188:j/188*188+20], g[j/188*188:j/188*188+20])
					}
				}
				t.Fatalf("video=%v unit %d: lengths %d vs %d", withVideo, i, len(r), len(g))
			}
		}
	}
}
