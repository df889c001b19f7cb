package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/testenv"
)

// consoleDir holds the console's package.json, its vendored players and its browser tests.
const consoleDir = "../console"

// needBrowserTools fails (not skips) naming what is missing, unless LIVREC_SKIP_E2E=1;
// it returns Chromium's path.
func needBrowserTools(t *testing.T) string {
	t.Helper()
	testenv.Require(t, testenv.Node, testenv.NPM, testenv.FFmpeg)
	return testenv.Path(t, testenv.Chromium)
}

// consoleNodeModules installs the console's pinned npm packages (npm ci, from
// package-lock.json) when they are not there yet.
func consoleNodeModules(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(consoleDir, "node_modules", "playwright-core", "package.json")); err == nil {
		return
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = consoleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in internal/console: %v\n%s", err, out)
	}
}

// TestConsoleVendoredPlayers: the players embedded in the binary are byte for byte the
// files of the npm packages package-lock.json pins (vendor.mjs copies them), and nothing
// else is in web/vendor.
func TestConsoleVendoredPlayers(t *testing.T) {
	needBrowserTools(t)
	consoleNodeModules(t)
	b, err := os.ReadFile(filepath.Join(consoleDir, "vendor.json"))
	if err != nil {
		t.Fatal(err)
	}
	var files map[string]string
	if err := json.Unmarshal(b, &files); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for src, dst := range files {
		want[dst] = true
		a, err := os.ReadFile(filepath.Join(consoleDir, "node_modules", src))
		if err != nil {
			t.Fatal(err)
		}
		v, err := os.ReadFile(filepath.Join(consoleDir, "web", "vendor", dst))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, v) {
			t.Errorf("web/vendor/%s differs from node_modules/%s: run `npm ci && npm run vendor` in internal/console", dst, src)
		}
	}
	entries, err := os.ReadDir(filepath.Join(consoleDir, "web", "vendor"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !want[e.Name()] {
			t.Errorf("web/vendor/%s is not listed in vendor.json", e.Name())
		}
	}
}

// seedRecordings puts n done recordings of a month of hourly files in the catalog (for
// the recordings page with a long list), older than anything the test records.
func seedRecordings(t *testing.T, dataDir string, n int) {
	t.Helper()
	cat := openCatalog(t, dataDir)
	defer cat.Close()
	start := time.Now().Add(-time.Duration(n+1) * time.Hour).Truncate(time.Hour)
	formats := []string{"m3u8", "mp4", "flv"}
	for i := range n {
		f := &catalog.File{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), TaskID: fmt.Sprintf("seed-task-%d", i/3),
			Domain: "studio.example", App: "live", Stream: fmt.Sprintf("room%d", i%7+1), Format: formats[i%3], Sequence: 0,
			Key: fmt.Sprintf("record/live/room%d/seed-%d.%s", i%7+1, i, formats[i%3]), Start: start.Add(time.Duration(i) * time.Hour),
			End: start.Add(time.Duration(i)*time.Hour + 59*time.Minute), Duration: 3540, Width: 1920, Height: 1080, Codecs: "h264,aac",
			FrameRate: 30, Bitrate: 4_500_000, Bytes: 3540 * 4_500_000 / 8, Segments: 590, Status: catalog.FileDone}
		if err := cat.CreateFile(context.Background(), f); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConsoleBrowser drives the console in headless Chromium with Playwright
// (internal/console/test/console_test.mjs): live page, commands, live and finished
// playback (hls.js, mpegts.js), rules' field errors, the other pages, a phone screen
// and the token login. Screenshots go to $LIVREC_SCREENSHOTS (default: a temp dir).
func TestConsoleBrowser(t *testing.T) {
	chromium := needBrowserTools(t)
	consoleNodeModules(t)
	src := makeSource(t, t.TempDir(), 20, "-g", "25")
	dataDir := t.TempDir()
	seedRecordings(t, dataDir, 1000)
	s := startServer(t, dataDir, `
corsAllowedOrigins: ["http://player.example"]
allowPrivateCallbacks: true # the callbacks page saves a loopback notifyUrl
rules:
  - domainName: "*"
    appName: live
    delayTime: 15
    recordFormats:
      - format: m3u8
        sliceDuration: 5
      - format: flv
      - format: mp4
  - domainName: "*"
    appName: live
    streamName: vodcam
    delayTime: 15
    vod:
      cycleDuration: 300
`)
	// The assets page's asset: pushed fast now, made when its stitch window ends while the
	// browser tests run the pages before it.
	if out, err := push(t, src, s.rtmpURL("live", "vodcam")); err != nil {
		t.Fatalf("push vodcam: %v\n%s", err, out)
	}
	const token = "console-test-token-0123456789"
	locked := startServer(t, t.TempDir(), "apiTokens: ["+strconv.Quote(token)+"]\n")
	shots := os.Getenv("LIVREC_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	start := time.Now()
	cmd := exec.Command("node", "test/console_test.mjs")
	cmd.Dir = consoleDir
	cmd.Env = append(os.Environ(), "LIVREC_URL="+s.url(""), "LIVREC_RTMP=rtmp://127.0.0.1:"+strconv.Itoa(s.rtmpPort),
		"LIVREC_SOURCE="+src, "LIVREC_TOKEN_URL="+locked.url(""), "LIVREC_TOKEN="+token, "SCREENSHOTS="+shots,
		"CHROMIUM="+chromium)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Logf("browser tests (%.1f s), screenshots in %s:\n%s", time.Since(start).Seconds(), shots, out.String())
		if err != nil {
			t.Fatalf("console_test.mjs: %v", err)
		}
		checkCORS(t, s)
	case <-time.After(110 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("console_test.mjs did not finish within 110 s:\n%s", out.String())
	}
}

// checkCORS: a recording is readable by a player on a configured origin (the option
// reaches the file server), with Range, and not by another origin.
func checkCORS(t *testing.T, s *server) {
	t.Helper()
	r := s.recordings("stream=cam&format=flv")[0]
	for origin, want := range map[string]string{"http://player.example": "http://player.example", "http://other.example": ""} {
		req, _ := http.NewRequest("GET", s.url("/files/"+r.Key), nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Range", "bytes=0-99")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != want || resp.StatusCode != http.StatusPartialContent {
			t.Errorf("Origin %s: %d, Access-Control-Allow-Origin %q, want %q", origin, resp.StatusCode, got, want)
		}
	}
}
