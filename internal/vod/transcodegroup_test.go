package vod

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/jobs"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/testenv"
)

const inputSeconds = 12

var (
	inputOnce sync.Once
	inputPath string
	inputErr  error
	inputDir  string
)

// input720p is an HLS recording of 12 s: 1280x720 at 30 fps, a noisy test pattern (so an
// encoder needs its whole bitrate) and a 440 Hz tone; made once per test binary.
func input720p(t *testing.T) string {
	t.Helper()
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	inputOnce.Do(func() {
		inputDir, inputErr = os.MkdirTemp("", "vodinput")
		if inputErr != nil {
			return
		}
		inputPath = filepath.Join(inputDir, "index.m3u8")
		out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i",
			fmt.Sprintf("testsrc2=size=1280x720:rate=30:duration=%d,noise=alls=30:allf=t", inputSeconds),
			"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=48000:duration=%d", inputSeconds),
			"-c:v", "libx264", "-preset", "ultrafast", "-g", "60", "-b:v", "6M", "-c:a", "aac", "-b:a", "128k",
			"-f", "hls", "-hls_time", "4", "-hls_playlist_type", "vod", "-hls_segment_filename", filepath.Join(inputDir, "seg%03d.ts"),
			inputPath).CombinedOutput()
		if err != nil {
			inputErr = fmt.Errorf("making the input: %v: %s", err, out)
		}
	})
	if inputErr != nil {
		t.Fatal(inputErr)
	}
	return inputPath
}

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		if err := child(dir); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := testenv.Run(m)
	if inputDir != "" {
		os.RemoveAll(inputDir)
	}
	os.Exit(code)
}

// decodeClean fails unless ffmpeg decodes path without a single error line.
func decodeClean(t *testing.T, path string) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("%s does not decode clean: %v %s", path, err, out)
	}
}

var twoTemplates = TranscodeGroup{ID: "g1", Name: "small and medium", Templates: []TranscodeTemplate{
	{Definition: "LD", Container: "mp4", Height: 360, VideoBitrate: 400},
	{Definition: "SD", Container: "m3u8", Height: 540, VideoBitrate: 800},
}}

func TestTranscodeGroupTwoRenditions(t *testing.T) {
	in := input720p(t)
	groups, err := NewTranscodeGroups([]TranscodeGroup{twoTemplates})
	if err != nil {
		t.Fatal(err)
	}
	g, err := groups.Lookup("g1")
	if err != nil {
		t.Fatal(err)
	}
	inputBefore := listing(t, filepath.Dir(in))
	base := t.TempDir()
	want := map[string][3]int{"LD": {640, 360, 400}, "SD": {960, 540, 800}}
	for _, tpl := range g.Templates {
		var last float64
		r, err := Transcode(context.Background(), tpl, in, filepath.Join(base, tpl.Definition), TranscodeOptions{Progress: func(p float64) { last = p }})
		if err != nil {
			t.Fatal(err)
		}
		w := want[tpl.Definition]
		t.Logf("%s %s: %dx%d %.2f fps, video %d bit/s, all %d bit/s, %.3f s, %d bytes, files %v",
			r.Definition, r.Format, r.Width, r.Height, r.FPS, r.VideoRate, r.Bitrate, r.Duration.Seconds(), r.Size, r.Files)
		if r.Width != w[0] || r.Height != w[1] {
			t.Errorf("%s: %dx%d, want %dx%d", tpl.Definition, r.Width, r.Height, w[0], w[1])
		}
		if dev := math.Abs(float64(r.VideoRate)/float64(w[2]*1000) - 1); dev > 0.2 {
			t.Errorf("%s: video bitrate %d bit/s is %.0f%% off %d kbit/s (allowed 20%%)", tpl.Definition, r.VideoRate, dev*100, w[2])
		}
		if d := math.Abs(r.Duration.Seconds() - inputSeconds); d > 0.2 {
			t.Errorf("%s: duration %.3f s, want %d ± 0.2 s", tpl.Definition, r.Duration.Seconds(), inputSeconds)
		}
		if r.FPS < 29.9 || r.FPS > 30.1 || r.VideoCodec != "h264" || r.Format != tpl.Container || last != 100 {
			t.Errorf("%s: %+v (last progress %v)", tpl.Definition, r, last)
		}
		if filepath.Ext(r.Path) != "."+tpl.Container {
			t.Errorf("%s: path %s", tpl.Definition, r.Path)
		}
		if tpl.Container == "m3u8" && len(r.Files) < 3 {
			t.Errorf("%s: files %v, want a playlist and segments", tpl.Definition, r.Files)
		}
		decodeClean(t, r.Path)
		if _, err := os.Stat(filepath.Join(base, tpl.Definition) + ".partial"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the partial directory is left: %v", tpl.Definition, err)
		}
	}
	if after := listing(t, filepath.Dir(in)); after != inputBefore {
		t.Fatalf("the input changed:\n%s\nnow\n%s", inputBefore, after)
	}
}

// listing is names, sizes and modification times of dir's files.
func listing(t *testing.T, dir string) string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		fi, _ := e.Info()
		fmt.Fprintf(&b, "%s %d %d\n", e.Name(), fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}

func TestTranscodeGroupValidation(t *testing.T) {
	for _, c := range []struct {
		name string
		g    TranscodeGroup
		want string
	}{
		{"impossible resolution", TranscodeGroup{ID: "g", Templates: []TranscodeTemplate{{Definition: "HD", Width: 100000, Height: 720, VideoBitrate: 800}}},
			"[0].templates[0].width: 100000 is out of range (allowed 128–4096 pixels)"},
		{"odd height", TranscodeGroup{ID: "g", Templates: []TranscodeTemplate{{Definition: "HD", Height: 721, VideoBitrate: 800}}},
			"[0].templates[0].height: 721 is odd"},
		{"no size", TranscodeGroup{ID: "g", Templates: []TranscodeTemplate{{Definition: "HD", VideoBitrate: 800}}},
			"[0].templates[0].height: is required (or width; 128–4096 pixels)"},
		{"too big both sides", TranscodeGroup{ID: "g", Templates: []TranscodeTemplate{{Definition: "HD", Width: 4096, Height: 4096, VideoBitrate: 800}}},
			"[0].templates[0].height: 4096x4096: the shorter side must be at most 2160 pixels"},
		{"bitrate", TranscodeGroup{ID: "g", Templates: []TranscodeTemplate{{Definition: "HD", Height: 720, VideoBitrate: 10}}},
			"[0].templates[0].videoBitrate: 10 is out of range (allowed 50–50000 kbit/s)"},
		{"container", TranscodeGroup{ID: "g", Templates: []TranscodeTemplate{{Definition: "HD", Container: "flv", Height: 720, VideoBitrate: 800}}},
			`[0].templates[0].container: "flv" is not one of m3u8, mp4`},
		{"codec", TranscodeGroup{ID: "g", Templates: []TranscodeTemplate{{Definition: "HD", VideoCodec: "vp9", Height: 720, VideoBitrate: 800}}},
			`[0].templates[0].videoCodec: "vp9" is not one of h264, h265`},
		{"fps", TranscodeGroup{ID: "g", Templates: []TranscodeTemplate{{Definition: "HD", Height: 720, FPS: 240, VideoBitrate: 800}}},
			"[0].templates[0].fps: 240 is out of range (allowed 1–60"},
		{"OD", TranscodeGroup{ID: "g", Templates: []TranscodeTemplate{{Definition: "OD", Height: 720, VideoBitrate: 800}}},
			"[0].templates[0].definition: OD is the original's definition"},
		{"bad definition", TranscodeGroup{ID: "g", Templates: []TranscodeTemplate{{Definition: "a b", Height: 720, VideoBitrate: 800}}},
			`[0].templates[0].definition: "a b" is not one of FD, LD, SD, HD, FHD, 2K, 4K`},
		{"duplicate rendition", TranscodeGroup{ID: "g", Templates: []TranscodeTemplate{{Definition: "HD", Height: 720, VideoBitrate: 800}, {Definition: "HD", Height: 540, VideoBitrate: 800}}},
			"[0].templates[1].definition: HD m3u8 is already templates[0]"},
		{"builtin id", TranscodeGroup{ID: NoTranscodeGroupID, Templates: []TranscodeTemplate{{Definition: "HD", Height: 720, VideoBitrate: 800}}},
			"[0].id: VOD_NO_TRANSCODE is the built-in no-transcode group"},
		{"bad id", TranscodeGroup{ID: "a/b", Templates: []TranscodeTemplate{{Definition: "HD", Height: 720, VideoBitrate: 800}}},
			`[0].id: "a/b": want 1–64 letters, digits, _ or -`},
		{"no templates", TranscodeGroup{ID: "g"}, "[0].templates: 0 templates: want 1–20"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewTranscodeGroups([]TranscodeGroup{c.g})
			var ves rules.ValidationErrors
			if !errors.As(err, &ves) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one containing %q", err, c.want)
			}
		})
	}
	_, err := NewTranscodeGroups([]TranscodeGroup{twoTemplates, twoTemplates})
	if err == nil || !strings.Contains(err.Error(), `[1].id: "g1" is already used by [0]`) {
		t.Fatalf("duplicate group: %v", err)
	}
	groups, err := NewTranscodeGroups([]TranscodeGroup{twoTemplates})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := groups.Lookup("nope"); !errors.Is(err, ErrUnknownGroup) || !strings.Contains(err.Error(), `unknown transcode group "nope" (defined: VOD_NO_TRANSCODE, g1)`) {
		t.Fatalf("unknown group: %v", err)
	}
	if g, err := groups.Lookup(""); err != nil || g.ID != NoTranscodeGroupID || len(g.Templates) != 0 {
		t.Fatalf("default group: %+v %v", g, err)
	}
	tpl := TranscodeTemplate{Width: 640}
	if w, h, err := tpl.Size(1280, 720); err != nil || w != 640 || h != 360 {
		t.Fatalf("width only from 1280x720: %dx%d %v", w, h, err)
	}
	tpl = TranscodeTemplate{Height: 4096}
	if _, _, err := tpl.Size(4000, 100); err == nil {
		t.Fatal("a 163840-pixel-wide size was accepted")
	}
}

func TestTranscodeBadInput(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	dir := t.TempDir()
	tpl := TranscodeTemplate{Definition: "LD", Height: 360, VideoBitrate: 400}
	_, err := Transcode(context.Background(), tpl, filepath.Join(dir, "missing.m3u8"), filepath.Join(dir, "out"), TranscodeOptions{})
	if err == nil || !strings.Contains(err.Error(), "No such file or directory") {
		t.Fatalf("missing input: %v", err)
	}
	bad := tpl
	bad.Height = 99999
	_, err = Transcode(context.Background(), bad, filepath.Join(dir, "missing.m3u8"), filepath.Join(dir, "out"), TranscodeOptions{})
	if err == nil || !strings.Contains(err.Error(), "height: 99999 is out of range") {
		t.Fatalf("impossible resolution: %v", err)
	}
	os.MkdirAll(filepath.Join(dir, "out"), 0o755)
	os.WriteFile(filepath.Join(dir, "out", "in.m3u8"), []byte("#EXTM3U\n"), 0o644)
	_, err = Transcode(context.Background(), tpl, filepath.Join(dir, "out", "in.m3u8"), filepath.Join(dir, "out"), TranscodeOptions{})
	if err == nil || !strings.Contains(err.Error(), "is inside the output directory") {
		t.Fatalf("input inside the output: %v", err)
	}
}

// The kill -9 test runs this test binary again as the livrec that works the job.
const childEnv = "LIVREC_VOD_CHILD_DIR"

// child enqueues the transcode (once: a unique key) and works it until it completed;
// every progress report is appended to the file "progress".
func child(dir string) error {
	cat, err := catalog.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		return err
	}
	ctx := context.Background()
	q, err := jobs.Open(ctx, cat.DB(), jobs.Config{StaleAfter: time.Second, PollInterval: 50 * time.Millisecond, RetryBase: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	pf, err := os.OpenFile(filepath.Join(dir, "progress"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	var attempt atomic.Int64
	err = jobs.Register(q, TranscodeWorker(TranscodeOptions{Progress: func(p float64) {
		fmt.Fprintf(pf, "%d %.1f\n", attempt.Load(), p)
	}}, func(ctx context.Context, a TranscodeJob, r Rendition) error {
		f, err := os.OpenFile(filepath.Join(dir, "done"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = fmt.Fprintf(f, "%s %dx%d %.3f\n", r.Path, r.Width, r.Height, r.Duration.Seconds())
		return err
	}))
	if err != nil {
		return err
	}
	if err := q.Start(ctx); err != nil {
		return err
	}
	a := TranscodeJob{AssetID: "asset1", GroupID: "g1", Template: twoTemplates.Templates[1],
		Input: os.Getenv("LIVREC_VOD_INPUT"), OutDir: filepath.Join(dir, "renditions", "SD")}
	id, _, err := q.Enqueue(ctx, a, jobs.EnqueueOptions{UniqueKey: a.UniqueKey()})
	if err != nil {
		return err
	}
	for {
		in, err := q.Get(ctx, id)
		if err != nil {
			return err
		}
		attempt.Store(int64(in.Attempt))
		if in.State == jobs.StateCompleted {
			break
		}
		if in.State == jobs.StateDiscarded || in.State == jobs.StateCancelled {
			return fmt.Errorf("job %s: %s", in.State, in.LastError)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return q.Stop(sctx)
}

// TestTranscodeJobKill9: the process running a transcode job is killed with SIGKILL
// mid-transcode; its ffmpeg dies with it, and after a restart the job is retried
// (attempt 2) and completes once, with the rendition whole and progress at 100.
func TestTranscodeJobKill9(t *testing.T) {
	in := input720p(t)
	dir := t.TempDir()
	run := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+dir, "LIVREC_VOD_INPUT="+in)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	read := func(name string) string { b, _ := os.ReadFile(filepath.Join(dir, name)); return string(b) }
	first := run()
	midway := func() bool {
		for _, l := range strings.Split(read("progress"), "\n") {
			if f := strings.Fields(l); len(f) == 2 {
				if p, _ := strconv.ParseFloat(f[1], 64); p > 0 && p < 100 {
					return true
				}
			}
		}
		return false
	}
	for deadline := time.Now().Add(60 * time.Second); !midway(); {
		if time.Now().After(deadline) || read("done") != "" {
			first.Process.Kill()
			t.Fatalf("the first process never reported progress mid-transcode: %q, done %q", read("progress"), read("done"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	killedAt := read("progress")
	// ffmpeg died with its parent (parent-death signal), and nothing was renamed into place.
	partial := filepath.Join(dir, "renditions", "SD.partial")
	for i := 0; ffmpegWriting(partial); i++ {
		if i > 100 {
			t.Fatal("the killed process's ffmpeg still runs")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(dir, "renditions", "SD")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a rendition is in place after the kill: %v", err)
	}

	second := run()
	done := make(chan error, 1)
	go func() { done <- second.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("second process: %v", err)
		}
	case <-time.After(120 * time.Second):
		second.Process.Kill()
		t.Fatalf("the job did not complete after the restart; progress:\n%s", read("progress"))
	}
	mustDuration(t, filepath.Join(dir, "renditions", "SD", "sd.m3u8"))
	if lines := strings.Split(strings.TrimSpace(read("done")), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "sd.m3u8 960x540 ") {
		t.Fatalf("done %q: want one completion of the 960x540 rendition", read("done"))
	}
	decodeClean(t, filepath.Join(dir, "renditions", "SD", "sd.m3u8"))

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "catalog.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var state string
	var attempt int
	var progress float64
	if err := db.QueryRow(`SELECT j.state, j.attempt, r.progress FROM river_job j JOIN livrec_job_runs r ON r.job_id = j.id`).Scan(&state, &attempt, &progress); err != nil {
		t.Fatal(err)
	}
	if state != jobs.StateCompleted || attempt != 2 || progress != 100 {
		t.Fatalf("job %s attempt %d progress %v, want completed attempt 2 progress 100", state, attempt, progress)
	}
	t.Logf("killed at progress %q", lastLine(killedAt))
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}

func mustDuration(t *testing.T, path string) {
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if math.Abs(d-inputSeconds) > 0.2 {
		t.Fatalf("%s lasts %.3f s, want %d ± 0.2 s", path, d, inputSeconds)
	}
}

// ffmpegWriting reports whether a live (non-zombie) process has path in its command line.
func ffmpegWriting(path string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), path) {
			continue
		}
		st, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
		if !strings.Contains(string(st), ") Z") {
			return true
		}
	}
	return false
}
