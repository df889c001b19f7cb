package segment

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParsePlaylist(t *testing.T) {
	const pl = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n" +
		"#EXT-X-MAP:URI=\"init_0.mp4\"\n#EXTINF:10.00000,\n1_0.m4s\n#EXTINF:4.50000,\n1_1.m4s\n" +
		"#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"../other/init%201.mp4\"\n#EXTINF:2.00000,\n../other/a%20b.m4s\n#EXT-X-ENDLIST\n"
	p, err := ParsePlaylist("rec/s/file.m3u8", []byte(pl))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Endlist || len(p.Segments) != 3 || p.Duration() != 16500*time.Millisecond || !p.Segments[2].Discontinuity {
		t.Fatalf("parsed %+v", p)
	}
	want := []string{"rec/s/init_0.mp4", "rec/other/init 1.mp4", "rec/s/1_0.m4s", "rec/s/1_1.m4s", "rec/other/a b.m4s"}
	if got := p.Objects(); !slices.Equal(got, want) {
		t.Fatalf("objects %q, want %q", got, want)
	}
	for _, uri := range []string{"../../../x.ts", "/abs.ts", "http://h/x.ts", "//h/x.ts"} {
		bad := strings.Replace(pl, "1_0.m4s", uri, 1)
		if _, err := ParsePlaylist("rec/s/file.m3u8", []byte(bad)); err == nil {
			t.Errorf("URI %q accepted", uri)
		}
	}
}

// TestRelativeURIRoundTrip: what the writers put into playlists resolves back to the key.
func TestRelativeURIRoundTrip(t *testing.T) {
	for _, c := range [][2]string{{"a/b/p.m3u8", "a/b/1.ts"}, {"a/b/p.m3u8", "a/c/x y%.ts"}, {"p.m3u8", "d/a:b.ts"}, {"x/y/z/p.m3u8", "q.ts"}} {
		k, err := resolveURI(strings.TrimSuffix(c[0], "/p.m3u8"), RelativeURI(c[0], c[1]))
		if c[0] == "p.m3u8" {
			k, err = resolveURI(".", RelativeURI(c[0], c[1]))
		}
		if err != nil || k != c[1] {
			t.Errorf("%q from %q: %q, %v", c[1], c[0], k, err)
		}
	}
}

func FuzzParsePlaylist(f *testing.F) {
	f.Add("rec/a.m3u8", []byte("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n1.ts\n#EXT-X-ENDLIST\n"))
	f.Add("a.m3u8", []byte("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"i.mp4\",BYTERANGE=\"1@0\"\n#EXTINF:2.0,\n1.m4s\n"))
	f.Fuzz(func(t *testing.T, key string, b []byte) {
		p, err := ParsePlaylist(key, b)
		if err != nil {
			return
		}
		for _, k := range p.Objects() {
			if k == ".." || strings.HasPrefix(k, "../") || strings.HasPrefix(k, "/") {
				t.Fatalf("key %q outside the store", k)
			}
		}
	})
}
