package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/testenv"
)

const browserPage = `<!doctype html>
<html><body><pre id="out">pending</pre>
<video id="v" muted playsinline preload="auto" src="%s"></video>
<script>
const v = document.getElementById('v'), out = document.getElementById('out');
const say = s => { out.textContent = s; };
v.addEventListener('error', () => say('ERROR code=' + (v.error && v.error.code)));
v.addEventListener('loadedmetadata', () => {
  v.addEventListener('seeked', () => {
    // Let it decode a frame at the seek target, then report.
    v.play().then(() => setTimeout(() => {
      say('RESULT t=' + v.currentTime.toFixed(2) + ' d=' + v.duration.toFixed(2) +
          ' w=' + v.videoWidth + ' h=' + v.videoHeight + ' rs=' + v.readyState);
    }, 500), e => say('PLAYFAIL ' + e));
  }, {once: true});
  v.currentTime = %g;
});
</script></body></html>`

// TestMP4PlaysInBrowser: an H.264/AAC MP4 recording plays in headless Chromium straight
// from the built-in file server, and seeking works (moov first, Range requests).
func TestMP4PlaysInBrowser(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	browser := testenv.Path(t, testenv.Chromium)
	src := makeSource(t, t.TempDir(), 10)
	s := startServer(t, t.TempDir(), `
rules:
  - domainName: "*"
    appName: "*"
    delayTime: 15
    recordFormats:
      - format: mp4
`)
	if out, err := push(t, src, s.rtmpURL("live", "web")); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	s.waitIdle()
	s.stop()
	s.start()
	r := s.waitDone("app=live&stream=web&format=mp4", 1, 5*time.Second)[0]

	// A same-origin page; /files/ is proxied to livrec, recording the Range requests.
	target, _ := url.Parse(s.url("/"))
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	var ranges []string
	var partial int
	mux := http.NewServeMux()
	mux.HandleFunc("/files/", func(w http.ResponseWriter, req *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		proxy.ServeHTTP(rec, req)
		mu.Lock()
		if rg := req.Header.Get("Range"); rg != "" {
			ranges = append(ranges, rg)
		}
		if rec.status == http.StatusPartialContent {
			partial++
		}
		mu.Unlock()
	})
	const seekTo = 6.0
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		fmt.Fprintf(w, browserPage, "/files/"+r.Key, seekTo)
	})
	page := httptest.NewServer(mux)
	defer page.Close()

	out, err := exec.Command(browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--autoplay-policy=no-user-gesture-required", "--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=20000", "--dump-dom", page.URL+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`RESULT t=([\d.]+) d=([\d.]+) w=(\d+) h=(\d+) rs=(\d)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("the page did not report playback:\n%s", out)
	}
	tpos, _ := strconv.ParseFloat(string(m[1]), 64)
	dur, _ := strconv.ParseFloat(string(m[2]), 64)
	if tpos < seekTo || tpos > seekTo+2 || dur < 9.9 || dur > 10.2 || string(m[3]) != "320" || string(m[4]) != "240" {
		t.Fatalf("playback after seek: %s", m[0])
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ranges) == 0 || partial == 0 {
		t.Fatalf("the browser made no Range request answered 206 (ranges %v)", ranges)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}
