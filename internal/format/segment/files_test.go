package segment

import (
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
)

func TestRelativeURI(t *testing.T) {
	for _, c := range []struct{ pl, seg, want string }{
		{"a/b/index.m3u8", "a/b/seg/0.ts", "seg/0.ts"},
		{"a/b/index.m3u8", "a/b/0.ts", "0.ts"},
		{"a/b/index.m3u8", "a/c/0.ts", "../c/0.ts"},
		{"index.m3u8", "x/0.ts", "x/0.ts"},
		{"a/index.m3u8", "0.ts", "../0.ts"},
		{"a/index.m3u8", "a/s 1#?.ts", "s%201%23%3F.ts"},
		{"a/index.m3u8", "a/12:00:00.ts", "./12:00:00.ts"},
	} {
		if got := RelativeURI(c.pl, c.seg); got != c.want {
			t.Errorf("RelativeURI(%q, %q) = %q, want %q", c.pl, c.seg, got, c.want)
		}
	}
}

func TestTargetDuration(t *testing.T) {
	segs := []*segState{{Segment: Segment{Duration: 4 * time.Second}}, {Segment: Segment{Duration: 4*time.Second + 3*time.Microsecond}}}
	if got := targetDuration(segs, 0); got != 4 {
		t.Errorf("got %d, want 4 (EXTINF prints as 4.00000)", got)
	}
	segs[1].Duration = 4*time.Second + 20*time.Microsecond
	if got := targetDuration(segs, 0); got != 5 {
		t.Errorf("got %d, want 5", got)
	}
}

// Without maps, the playlist text is exactly what gohlslib writes; with maps, an
// EXT-X-MAP precedes the first segment and each segment whose map changes, and the
// version is 6.
func TestMarshalPlaylist(t *testing.T) {
	segs := []*segState{
		{Segment: Segment{Key: "a/0.ts", Duration: 4 * time.Second}},
		{Segment: Segment{Key: "a/1.ts", Duration: 3500 * time.Millisecond, Discontinuity: true}},
		{Segment: Segment{Key: "a/2.ts", Duration: 1234567 * time.Microsecond}},
	}
	uri := func(k string) string { return "/x/" + k }
	for _, typ := range []playlist.MediaPlaylistType{playlist.MediaPlaylistTypeVOD, playlist.MediaPlaylistTypeEvent} {
		m := playlist.Media{Version: 3, TargetDuration: 4, PlaylistType: &typ, Endlist: typ == "VOD"}
		if typ == "EVENT" {
			m.TargetDuration = 10
		}
		for _, s := range segs {
			m.Segments = append(m.Segments, &playlist.MediaSegment{Duration: s.Duration, URI: uri(s.Key), Discontinuity: s.Discontinuity})
		}
		want, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got := marshalPlaylist(segs, string(typ), typ == "VOD", 10*time.Second, uri)
		if string(got) != string(want) {
			t.Errorf("%s:\n%s\nwant\n%s", typ, got, want)
		}
	}
	segs[0].MapKey, segs[1].MapKey, segs[2].MapKey = "a/i0.mp4", "a/i1.mp4", "a/i1.mp4"
	got := string(marshalPlaylist(segs, "VOD", true, 0, uri))
	want := "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n" +
		"#EXT-X-MAP:URI=\"/x/a/i0.mp4\"\n#EXTINF:4.00000,\n/x/a/0.ts\n" +
		"#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"/x/a/i1.mp4\"\n#EXTINF:3.50000,\n/x/a/1.ts\n" +
		"#EXTINF:1.23457,\n/x/a/2.ts\n#EXT-X-ENDLIST\n"
	if got != want {
		t.Errorf("with maps:\n%s\nwant\n%s", got, want)
	}
	if strings.Count(got, "EXT-X-MAP") != 2 {
		t.Error("map repeated")
	}
}
