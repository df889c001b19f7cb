package e2e

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/testenv"
)

const transcodeConfig = `
rules:
  - domainName: "*"
    appName: live
    delayTime: 30
    recordFormats:
      - format: m3u8
        sliceDuration: 5
    transcodeTemplates: [r360, r540]
    transcodeRecordFormats:
      - format: m3u8
        sliceDuration: 5
      - format: mp4
transcodeTemplates:
  - id: r360
    height: 360
    videoBitrate: 500
  - id: r540
    height: 540
    videoBitrate: 1000
`

// make720p encodes the 720p 30 fps source of the transcode tests.
func make720p(t *testing.T, seconds int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "src720.flv")
	mustRun(t, "ffmpeg", "-v", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=1280x720:rate=30:duration=%d", seconds),
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=44100:duration=%d", seconds),
		"-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-b:v", "2500k", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "96k", "-f", "flv", p)
	return p
}

// files lists the stored files under prefix with extension ext, sorted.
func (s *server) files(t *testing.T, prefix, ext string) []string {
	t.Helper()
	var out []string
	filepath.Walk(filepath.Join(s.dataDir, "files", prefix), func(p string, info os.FileInfo, err error) error {
		// A multi-variant playlist is listed only when asked for by its suffix.
		if err == nil && !info.IsDir() && strings.HasSuffix(p, ext) && (ext == "_master.m3u8" || !strings.HasSuffix(p, "_master.m3u8")) {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func probeInt(t *testing.T, path, entry string) int {
	t.Helper()
	out := mustRun(t, "ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream="+entry, "-of", "csv=p=0", path)
	n, err := strconv.Atoi(strings.Fields(out + " x")[0])
	if err != nil {
		t.Fatalf("ffprobe %s of %s: %q", entry, path, out)
	}
	return n
}

// one returns the only file of a list.
func one(t *testing.T, what string, files []string) string {
	t.Helper()
	if len(files) != 1 {
		t.Fatalf("%s: want 1 file, have %v", what, files)
	}
	return files[0]
}

// TestLongTranscodeRenditions: a 720p30 push with a rule recording the original (m3u8)
// and the renditions r360 and r540 (m3u8 + mp4). Every file decodes clean; renditions
// have the asked height, their bitrate within 20 %, their duration close to the
// original's.
func TestLongTranscodeRenditions(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := make720p(t, 12)
	s := startServer(t, t.TempDir(), transcodeConfig)
	if out, err := push(t, src, s.rtmpURL("live", "cam"), "-re"); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	s.waitIdle()
	t.Logf("frames dropped for the renditions: %v", s.metric("livrec_transcode_frames_dropped_total"))
	s.stop()

	orig := one(t, "original m3u8", s.files(t, "record/live/cam", ".m3u8"))
	decodeClean(t, orig)
	origDur := probeDuration(t, orig)
	t.Logf("original: %.3f s", origDur)
	if math.Abs(origDur-12) > 0.5 {
		t.Errorf("original duration %.3f s, pushed 12 s", origDur)
	}
	for _, r := range []struct {
		id      string
		height  int
		bitrate int // kbit/s
	}{{"r360", 360, 500}, {"r540", 540, 1000}} {
		dir := "transcodeRecord/live/cam_" + r.id
		for _, f := range []string{one(t, r.id+" m3u8", s.files(t, dir, ".m3u8")), one(t, r.id+" mp4", s.files(t, dir, ".mp4"))} {
			decodeClean(t, f)
			if h := probeInt(t, f, "height"); h != r.height {
				t.Errorf("%s: height %d, want %d", f, h, r.height)
			}
			if w := probeInt(t, f, "width"); w != r.height*16/9 {
				t.Errorf("%s: width %d, want %d (aspect kept)", f, w, r.height*16/9)
			}
			d := probeDuration(t, f)
			t.Logf("%s: %.3f s (original %.3f s, difference %+.3f s)", filepath.Base(f), d, origDur, d-origDur)
			if math.Abs(d-origDur) > 0.5 {
				t.Errorf("%s: duration %.3f s, original %.3f s", f, d, origDur)
			}
			if strings.HasSuffix(f, ".mp4") {
				kbps := probeInt(t, f, "bit_rate") / 1000
				t.Logf("%s: video %d kbit/s (asked %d)", filepath.Base(f), kbps, r.bitrate)
				if math.Abs(float64(kbps-r.bitrate)) > 0.2*float64(r.bitrate) {
					t.Errorf("%s: video bitrate %d kbit/s, asked %d (±20 %%)", f, kbps, r.bitrate)
				}
			}
		}
	}
	if strings.Contains(s.logs.String(), "record_transcode_error") {
		t.Errorf("transcode error without a cause:\n%s", s.logs.String())
	}
}

// ffmpegChildren returns the pids of the ffmpeg processes livrec started.
func ffmpegChildren(t *testing.T, pid int) []int {
	t.Helper()
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, c := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(c)
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", n))
			if strings.TrimSpace(string(comm)) == "ffmpeg" {
				out = append(out, n)
			}
		}
	}
	return out
}

// TestLongTranscodeRestart: killing the ffmpeg child mid-stream restarts it, reports
// record_transcode_error with a reason, leaves the original whole and the rendition in
// one file (the restarted ffmpeg's publish continues the task).
func TestLongTranscodeRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := make720p(t, 12)
	s := startServer(t, t.TempDir(), transcodeConfig)
	done := make(chan error, 1)
	go func() {
		out, err := push(t, src, s.rtmpURL("live", "cam"), "-re")
		if err != nil {
			err = fmt.Errorf("%v: %s", err, out)
		}
		done <- err
	}()
	var killed int
	deadline := time.Now().Add(10 * time.Second)
	for killed == 0 && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		if kids := ffmpegChildren(t, s.cmd.Process.Pid); len(kids) == 1 && time.Until(deadline) < 5*time.Second {
			killed = kids[0]
			syscall.Kill(killed, syscall.SIGKILL)
		}
	}
	if killed == 0 {
		t.Fatal("no ffmpeg child to kill")
	}
	restarted := false
	for i := 0; i < 40 && !restarted; i++ {
		time.Sleep(100 * time.Millisecond)
		kids := ffmpegChildren(t, s.cmd.Process.Pid)
		restarted = len(kids) == 1 && kids[0] != killed
	}
	if !restarted {
		t.Fatal("ffmpeg was not restarted within 4 s")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s.waitIdle()
	time.Sleep(1500 * time.Millisecond) // the rendition's ffmpeg ends within a second
	if kids := ffmpegChildren(t, s.cmd.Process.Pid); len(kids) != 0 {
		t.Errorf("ffmpeg still running after the publish ended: %v", kids)
	}
	if r := s.metric("livrec_transcoder_restarts_total"); r != 1 {
		t.Errorf("livrec_transcoder_restarts_total %v, want 1", r)
	}
	s.stop()
	logs := s.logs.String()
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "record_transcode_error") {
			t.Logf("event: %s", l)
		}
	}
	if !strings.Contains(logs, "record_transcode_error") || !strings.Contains(logs, "signal: killed") {
		t.Errorf("no record_transcode_error event naming the kill:\n%s", logs)
	}
	orig := one(t, "original m3u8", s.files(t, "record/live/cam", ".m3u8"))
	decodeClean(t, orig)
	if d := probeDuration(t, orig); math.Abs(d-12) > 0.5 {
		t.Errorf("original duration %.3f s, pushed 12 s", d)
	}
	for _, id := range []string{"r360", "r540"} {
		dir := "transcodeRecord/live/cam_" + id
		m3u8 := one(t, id+" m3u8", s.files(t, dir, ".m3u8"))
		b, _ := os.ReadFile(m3u8)
		t.Logf("%s: %.3f s", filepath.Base(m3u8), probeDuration(t, m3u8))
		// The restarted ffmpeg's publish continues the rendition's task: one file with a
		// discontinuity where the new encoder starts.
		if !strings.Contains(string(b), "#EXT-X-DISCONTINUITY") {
			t.Errorf("%s: no #EXT-X-DISCONTINUITY at the restart:\n%s", m3u8, b)
		}
		one(t, id+" mp4", s.files(t, dir, ".mp4"))
	}
}

// alive reports whether pid runs (a zombie waiting for a reaper does not count).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// TestLongTranscodeKillLivrec: kill -9 of livrec mid-stream leaves no ffmpeg running;
// after the restart the original's and each rendition's files are finalized once.
func TestLongTranscodeKillLivrec(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := make720p(t, 8)
	s := startServer(t, t.TempDir(), transcodeConfig)
	go push(t, src, s.rtmpURL("live", "cam"), "-re")
	var kids []int
	for i := 0; i < 50 && len(kids) == 0; i++ {
		time.Sleep(100 * time.Millisecond)
		kids = ffmpegChildren(t, s.cmd.Process.Pid)
	}
	if len(kids) != 1 {
		t.Fatalf("want one ffmpeg child, have %v", kids)
	}
	// Kill once both renditions are being recorded (their files have rows), and a
	// second later, so that their working files hold media: a fixed wait is too short
	// when ffmpeg starts slowly on a busy machine.
	for _, id := range []string{"r360", "r540"} {
		deadline := time.Now().Add(20 * time.Second)
		for len(s.recordings("stream=cam_"+id+"&status=recording")) < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("rendition %s not being recorded after 20 s", id)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	time.Sleep(time.Second)
	s.kill()
	deadline := time.Now().Add(2 * time.Second)
	for alive(kids[0]) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(kids[0]) {
		syscall.Kill(kids[0], syscall.SIGKILL)
		t.Fatalf("ffmpeg %d survived kill -9 of livrec", kids[0])
	}
	s.start()
	s.waitIdle()
	s.stop()
	decodeClean(t, one(t, "original m3u8", s.files(t, "record/live/cam", ".m3u8")))
	for _, id := range []string{"r360", "r540"} {
		dir := "transcodeRecord/live/cam_" + id
		decodeClean(t, one(t, id+" m3u8", s.files(t, dir, ".m3u8")))
		decodeClean(t, one(t, id+" mp4", s.files(t, dir, ".mp4")))
	}
	if n := strings.Count(s.logs.String(), "event=file_created"); n != 5 {
		t.Errorf("%d file_created events over both runs, want 5 (each file once)", n)
	}
}

// TestLongTranscodeOnly: a rule with transcodeRecordFormats and no recordFormats records
// the renditions and nothing of the original.
func TestLongTranscodeOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	src := make720p(t, 6)
	s := startServer(t, t.TempDir(), `
rules:
  - domainName: "*"
    appName: live
    transcodeTemplates: [lld]
    transcodeRecordFormats: [{format: flv}]
`)
	if out, err := push(t, src, s.rtmpURL("live", "cam"), "-re"); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	s.waitIdle()
	s.stop()
	if got := s.files(t, "record", ""); len(got) != 0 {
		t.Errorf("original recorded without recordFormats: %v", got)
	}
	f := one(t, "lld flv", s.files(t, "transcodeRecord/live/cam_lld", ".flv"))
	decodeClean(t, f)
	if h := probeInt(t, f, "height"); h != 360 {
		t.Errorf("lld height %d, want 360", h)
	}
	if d := probeDuration(t, f); math.Abs(d-6) > 0.5 {
		t.Errorf("lld duration %.3f s, pushed 6 s", d)
	}
	if logs := s.logs.String(); strings.Contains(logs, "level=ERROR") {
		t.Errorf("errors logged:\n%s", logs)
	}
}
