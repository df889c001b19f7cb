package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/testenv"
)

// hlsLivePage plays a live playlist with the console's vendored hls.js from its first
// segment, and posts what happens to /report: every hls.js error, the video's errors,
// its position once a second, and `ended`.
const hlsLivePage = `<!doctype html>
<html><body><video id="v" muted autoplay playsinline></video>
<script type="module">
import Hls from '/console/vendor/hls.min.mjs';
const v = document.getElementById('v');
const report = o => fetch('/report', {method: 'POST', body: JSON.stringify(o)});
if (!Hls.isSupported()) report({ev: 'unsupported'});
const hls = new Hls({workerPath: '/console/vendor/hls.worker.js', startPosition: 0});
hls.on(Hls.Events.ERROR, (_e, d) => report({ev: 'error', fatal: d.fatal, details: d.type + ' ' + d.details}));
v.addEventListener('error', () => report({ev: 'error', fatal: true, details: 'video code ' + (v.error && v.error.code)}));
v.addEventListener('ended', () => report({ev: 'ended', t: v.currentTime, d: v.duration}));
setInterval(() => report({ev: 'tick', t: v.currentTime}), 1000);
hls.loadSource(%q);
hls.attachMedia(v);
v.play().catch(e => report({ev: 'error', fatal: true, details: 'play: ' + e}));
</script></body></html>`

type playerReport struct {
	Ev      string  `json:"ev"`
	Fatal   bool    `json:"fatal"`
	Details string  `json:"details"`
	T       float64 `json:"t"`
	D       float64 `json:"d"`
}

// TestLivePlaylistPlayedToEnd: hls.js in headless Chromium follows a recording's live
// playlist (/live/{id}.m3u8) from its first segment while the publish runs, through the
// stitch window and the generation of the file (when the same URL ends the list), and
// reaches `ended` at the end of the push without an error: no stall short of the end,
// no media sequence mismatch.
func TestLivePlaylistPlayedToEnd(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	browser := testenv.Path(t, testenv.Chromium)
	const seconds = 16
	src := makeSource(t, t.TempDir(), seconds)
	s, pushed := startLivePush(t, src, "play")
	// The player starts once the live playlist lists a segment.
	var id string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if id == "" {
			if recs := s.recordings("app=live&stream=play&format=m3u8"); len(recs) > 0 {
				id = recs[0].ID
			}
		}
		if id != "" {
			if p, code := readPlaylist(t, s.url("/live/"+id+".m3u8")); code == 200 && len(p.uris) > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the live playlist lists no segment")
		}
	}

	// A page of its own origin proxies everything else to livrec.
	target, _ := url.Parse(s.url("/"))
	proxy := httputil.NewSingleHostReverseProxy(target)
	reports := make(chan playerReport, 1000)
	mux := http.NewServeMux()
	mux.Handle("/", proxy)
	mux.HandleFunc("/play", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, hlsLivePage, "/live/"+id+".m3u8")
	})
	mux.HandleFunc("/report", func(w http.ResponseWriter, r *http.Request) {
		var rep playerReport
		b, _ := io.ReadAll(r.Body)
		if json.Unmarshal(b, &rep) == nil {
			select {
			case reports <- rep:
			default:
			}
		}
	})
	page := httptest.NewServer(mux)
	defer page.Close()
	cmd := exec.Command(browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--autoplay-policy=no-user-gesture-required", "--user-data-dir="+t.TempDir(), page.URL+"/play")
	var out strings.Builder
	var outMu sync.Mutex
	cmd.Stdout = writerFunc(func(p []byte) (int, error) { outMu.Lock(); defer outMu.Unlock(); return out.Write(p) })
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	var last playerReport
	var nonFatal []string
	pushDone, cancelled := false, false
	var pushEnd time.Time
	timeout := time.After(seconds*time.Second + 60*time.Second)
	for {
		select {
		case err := <-pushed:
			if err != nil {
				t.Fatalf("push: %v", err)
			}
			pushDone, pushEnd = true, time.Now()
			continue
		case <-time.After(500 * time.Millisecond):
		case rep := <-reports:
			switch rep.Ev {
			case "unsupported":
				t.Fatal("hls.js: MediaSource not supported in this Chromium")
			case "error":
				if rep.Fatal {
					t.Fatalf("player error at %.2f s: %s", last.T, rep.Details)
				}
				nonFatal = append(nonFatal, fmt.Sprintf("%.2f s: %s", last.T, rep.Details))
			case "tick":
				last = rep
			case "ended":
				if rep.T < seconds-0.5 {
					t.Fatalf("ended at %.2f s of a %d s push", rep.T, seconds)
				}
				if !cancelled {
					t.Fatal("ended before the file was generated (the live playlist had no end)")
				}
				// A stall (a busy machine serves a segment late) and a seek over a hole
				// at the very start (audio buffered a frame before video) are hls.js
				// recovering by itself; anything else is an error of the recording.
				for _, e := range nonFatal {
					startHole := strings.HasPrefix(e, "0.00 s: ") && strings.Contains(e, "bufferSeekOverHole")
					if !strings.Contains(e, "bufferStalledError") && !startHole {
						t.Fatalf("hls.js reported errors on the way: %v", nonFatal)
					}
				}
				t.Logf("ended at %.2f s (duration %.2f), non-fatal reports: %v", rep.T, rep.D, nonFatal)
				return
			}
		case <-timeout:
			outMu.Lock()
			defer outMu.Unlock()
			t.Fatalf("the player did not reach ended (last position %.2f s, push done %v, errors %v)\n%s", last.T, pushDone, nonFatal, out.String())
		}
		// While the stitch window runs the player must get to the end of what was pushed;
		// then the file is generated and the list ends.
		if pushDone && !cancelled && last.T >= seconds-1 || pushDone && !cancelled && time.Since(pushEnd) > 15*time.Second {
			if last.T < seconds-1 {
				t.Fatalf("during the stitch window the player stalled at %.2f s of %d s", last.T, seconds)
			}
			if code, body := s.post("/api/v1/streams/127.0.0.1/live/play/record", map[string]string{"command": "cancel_delay"}); code != 200 {
				t.Fatalf("cancel_delay: %d %s", code, body)
			}
			cancelled = true
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
