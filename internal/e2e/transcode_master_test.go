package e2e

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/livrec/livrec/internal/testenv"
)

// hlsPage plays a multi-variant playlist with hls.js pinned to the lowest level (no
// adaptation), then forces the highest and reports once a fragment of it has loaded.
const hlsPage = `<!doctype html>
<html><body><pre id="out">pending</pre>
<video id="v" muted playsinline></video>
<script type="module">
import Hls from '/console/vendor/hls.min.mjs';
const v = document.getElementById('v'), out = document.getElementById('out');
const say = s => { out.textContent = s; };
const hls = new Hls({enableWorker: false, startLevel: 0});
let target = -1, first = -1, loaded = [];
hls.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) say('ERROR ' + d.type + ' ' + d.details); });
hls.on(Hls.Events.MANIFEST_PARSED, (e, d) => {
  hls.currentLevel = 0;
  v.play().catch(err => say('PLAYFAIL ' + err));
});
hls.on(Hls.Events.FRAG_LOADED, (e, d) => {
  loaded.push(d.frag.level);
  if (target < 0 && loaded.length >= 2) {
    first = loaded[0];
    target = hls.levels.length - 1;
    hls.currentLevel = target;
  } else if (target >= 0 && d.frag.level === target) {
    setTimeout(() => say('RESULT levels=' + hls.levels.map(l => l.width + 'x' + l.height + '@' + l.bitrate).join(',') +
      ' loaded=' + loaded.join(',') + ' first=' + first + ' target=' + target + ' want=' + hls.levels[target].height + ' playing=' + hls.currentLevel +
      ' t=' + v.currentTime.toFixed(2) + ' h=' + v.videoHeight), 1500);
  }
});
hls.loadSource('%s');
hls.attachMedia(v);
</script></body></html>`

// firstPTS is the presentation time of the first video packet of an HLS recording.
func firstPTS(t *testing.T, playlist string) float64 {
	t.Helper()
	out := mustRun(t, "ffprobe", "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1",
		"-show_entries", "packet=pts_time", "-of", "csv=p=0", playlist)
	v, err := strconv.ParseFloat(strings.Trim(strings.Split(out, "\n")[0], " ,"), 64)
	if err != nil {
		t.Fatalf("first pts of %s: %q", playlist, out)
	}
	return v
}

// TestLongTranscodeMasterPlaylist: with the original and two renditions recorded as
// m3u8, a multi-variant playlist is stored beside the original's m3u8, listing the three
// (original first, then by bandwidth) with BANDWIDTH, RESOLUTION and CODECS; the
// renditions start on the original's timeline; hls.js plays it in headless Chromium and
// switches to another variant on demand.
func TestLongTranscodeMasterPlaylist(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	browser := testenv.Path(t, testenv.Chromium)
	src := make720p(t, 16)
	s := startServer(t, t.TempDir(), transcodeConfig)
	if out, err := push(t, src, s.rtmpURL("live", "cam"), "-re"); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	s.waitIdle()
	s.stop()

	master := one(t, "master playlist", s.files(t, "record/live/cam", "_master.m3u8"))
	body, err := os.ReadFile(master)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s:\n%s", master, body)
	inf := regexp.MustCompile(`#EXT-X-STREAM-INF:BANDWIDTH=(\d+),[^\n]*RESOLUTION=(\d+)x(\d+)[^\n]*CODECS="(avc1\.[0-9a-f]{6},mp4a\.40\.2)"\n([^\n]+)\n`).
		FindAllStringSubmatch(string(body), -1)
	if len(inf) != 3 {
		t.Fatalf("want 3 variants with BANDWIDTH, RESOLUTION, CODECS:\n%s", body)
	}
	wantRes := []string{"1280x720", "960x540", "640x360"}
	var bws []int
	for i, m := range inf {
		if got := m[2] + "x" + m[3]; got != wantRes[i] {
			t.Errorf("variant %d: %s, want %s (original first, then by bandwidth)", i, got, wantRes[i])
		}
		bw, _ := strconv.Atoi(m[1])
		bws = append(bws, bw)
		p := path.Join(path.Dir(master), m[5])
		if _, err := os.Stat(p); err != nil {
			t.Errorf("variant %d: %s: %v", i, m[5], err)
		}
	}
	if !(bws[0] > bws[1] && bws[1] > bws[2]) {
		t.Errorf("bandwidths %v not decreasing", bws)
	}
	orig := firstPTS(t, path.Join(path.Dir(master), inf[0][5]))
	for _, m := range inf[1:] {
		r := firstPTS(t, path.Join(path.Dir(master), m[5]))
		t.Logf("first video PTS: original %.3f s, %s %.3f s", orig, m[5], r)
		if math.Abs(r-orig) > 0.2 {
			t.Errorf("rendition %s starts at PTS %.3f s, the original at %.3f s", m[5], r, orig)
		}
	}

	// Play it: a same-origin page; /files/ and /console/ are livrec's.
	s.start()
	target, _ := url.Parse(s.url("/"))
	proxy := httputil.NewSingleHostReverseProxy(target)
	rel := strings.TrimPrefix(master, s.dataDir+"/files/")
	mux := http.NewServeMux()
	mux.Handle("/files/", proxy)
	mux.Handle("/console/", proxy)
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, req *http.Request) {
		fmt.Fprintf(w, hlsPage, "/files/"+rel)
	})
	page := httptest.NewServer(mux)
	defer page.Close()
	out := dumpDOM(t, browser, page.URL+"/", 30000)
	m := regexp.MustCompile(`RESULT levels=(\S+) loaded=(\S+) first=(\d) target=(\d) want=(\d+) playing=(-?\d) t=([\d.]+) h=(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("the page did not report a level switch:\n%s", out)
	}
	t.Logf("hls.js: %s", m[0])
	if n := len(strings.Split(string(m[1]), ",")); n != 3 {
		t.Errorf("hls.js sees %d levels, want 3", n)
	}
	loaded := strings.Split(string(m[2]), ",")
	if loaded[0] != "0" || loaded[1] != "0" || loaded[len(loaded)-1] != "2" || string(m[4]) != "2" || string(m[5]) != "720" || string(m[6]) != "2" {
		t.Errorf("fragments of levels %s: want two of level 0 (360 lines), then level 2 (720 lines) after the switch; playing %s", m[2], m[6])
	}
}
