package variant

import (
	"testing"

	"github.com/livrec/livrec/internal/catalog"
)

// Playlist lists the original first, then the renditions by bandwidth, with URIs
// relative to the original's key.
func TestPlaylist(t *testing.T) {
	orig := &catalog.File{Key: "record/live/cam/a_b.m3u8", Bitrate: 2_000_000, Width: 1280, Height: 720, FrameRate: 30,
		CodecsRFC6381: "avc1.64001f,mp4a.40.2"}
	lo := &catalog.File{Stream: "cam_lo", Key: "transcodeRecord/live/cam_lo/a_b.m3u8", Bitrate: 500_000, Width: 640, Height: 360}
	hi := &catalog.File{Stream: "cam_hi", Key: "record/live/cam/hi/a_b.m3u8", Bitrate: 1_000_000, Width: 960, Height: 540}
	got := string(Playlist(orig, []*catalog.File{lo, hi}))
	want := `#EXTM3U
#EXT-X-VERSION:3
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=2400000,AVERAGE-BANDWIDTH=2000000,RESOLUTION=1280x720,FRAME-RATE=30.000,CODECS="avc1.64001f,mp4a.40.2"
a_b.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1200000,AVERAGE-BANDWIDTH=1000000,RESOLUTION=960x540
hi/a_b.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=600000,AVERAGE-BANDWIDTH=500000,RESOLUTION=640x360
../../../transcodeRecord/live/cam_lo/a_b.m3u8
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if k := MasterKey(orig.Key); k != "record/live/cam/a_b_master.m3u8" {
		t.Errorf("MasterKey %q", k)
	}
}
