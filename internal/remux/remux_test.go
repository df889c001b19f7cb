package remux

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/livrec/livrec/internal/format/segment"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/testenv"
)

const fixture = "../media/testdata/h264_aac.flv"

func TestStreamName(t *testing.T) {
	for in, want := range map[string]string{
		"/a/b/cam 1.flv": "cam_1",
		"x.y.flv":        "x_y",
		"ok-name_2":      "ok-name_2",
		".flv":           "stream",
	} {
		if got := StreamName(in); got != want {
			t.Errorf("StreamName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRuleValidation(t *testing.T) {
	o := Options{Formats: []rules.Format{rules.M3U8, rules.CMAF}}
	if _, err := o.Rule(); err == nil {
		t.Fatal("m3u8 + cmaf accepted")
	}
	o = Options{Formats: []rules.Format{rules.FLV}, CycleDuration: 10}
	if _, err := o.Rule(); err == nil {
		t.Fatal("cycle 10 s accepted")
	}
}

// TestRemuxFixture remuxes the H.264/AAC fixture to m3u8 and flv: one file each, with
// every video frame, decoding cleanly.
func TestRemuxFixture(t *testing.T) {
	out := t.TempDir()
	var calls int
	var last int64
	res, err := Run(t.Context(), fixture, out, Options{
		Formats:       []rules.Format{rules.M3U8, rules.FLV},
		SliceDuration: 5,
		Progress:      func(done, total int64) { calls++; last = done },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) > 0 {
		t.Fatalf("errors: %v", res.Errors)
	}
	fi, err := os.Stat(fixture)
	if err != nil {
		t.Fatal(err)
	}
	if res.InputBytes != fi.Size() || last != fi.Size() || calls == 0 {
		t.Fatalf("read %d bytes (progress %d in %d calls) of %d", res.InputBytes, last, calls, fi.Size())
	}
	if res.VideoFrames != 50 || res.AudioFrames != 88 {
		t.Fatalf("frames: %d video, %d audio", res.VideoFrames, res.AudioFrames)
	}
	if len(res.Files) != 2 || res.Files[0].Format != "flv" || res.Files[1].Format != "m3u8" {
		t.Fatalf("files: %+v", res.Files)
	}
	for _, f := range res.Files {
		if !strings.HasPrefix(f.Key, "h264_aac/") || f.Duration < 1.9 || f.Duration > 2.2 || f.Bytes == 0 {
			t.Fatalf("file %+v", f)
		}
		if _, err := os.Stat(f.Path); err != nil {
			t.Fatal(err)
		}
	}
	// The state directory is gone: OUTDIR holds only the recordings.
	ents, _ := os.ReadDir(out)
	if len(ents) != 1 || ents[0].Name() != "h264_aac" {
		t.Fatalf("OUTDIR has %v", ents)
	}
	if res.Speed() <= 0 || res.MBps() <= 0 {
		t.Fatalf("speed %v, MB/s %v", res.Speed(), res.MBps())
	}

	// The outputs decode: the part of the test that needs ffmpeg comes last.
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	for _, f := range res.Files {
		out, err := exec.Command("ffmpeg", "-v", "error", "-i", f.Path, "-f", "null", "-").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Fatalf("decoding %s (err=%v):\n%s", f.Key, err, out)
		}
		if n := videoPackets(t, f.Path); n != 50 {
			t.Fatalf("%s: %d video packets, want 50", f.Key, n)
		}
	}
	// A second run in the same directory gets distinct keys (or reports the clash).
	res2, err := Run(t.Context(), fixture, out, Options{Formats: []rules.Format{rules.FLV}, Stream: "again"})
	if err != nil || len(res2.Files) != 1 || !strings.HasPrefix(res2.Files[0].Key, "again/") {
		t.Fatalf("second run: %v %+v", err, res2)
	}
	if _, err := os.Stat(filepath.Join(out, "again")); err != nil {
		t.Fatal(err)
	}
}

func videoPackets(t *testing.T, path string) int {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
		"-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	// HLS lists the stream once per program too: the first number is the stream's.
	n, err := strconv.Atoi(strings.Fields(string(out) + " x")[0])
	if err != nil {
		t.Fatalf("ffprobe %s: %q", path, out)
	}
	return n
}

// TestRemuxNoSync: a remux fsyncs no segment, journal or playlist (segment.SetSync also
// replaces the journals' fsync).
func TestRemuxNoSync(t *testing.T) {
	var syncs atomic.Int32
	prev := segment.SetSync(func(*os.File) error { syncs.Add(1); return nil })
	defer segment.SetSync(prev)
	res, err := Run(t.Context(), fixture, t.TempDir(), Options{Formats: []rules.Format{rules.M3U8}, SliceDuration: 5})
	if err != nil || len(res.Errors) > 0 || len(res.Files) != 1 {
		t.Fatalf("%v %+v", err, res)
	}
	if n := syncs.Load(); n != 0 {
		t.Fatalf("%d fsyncs", n)
	}
}

// TestRemuxPipe: an input that cannot be mapped (a FIFO) is read in fresh blocks, with
// the same result.
func TestRemuxPipe(t *testing.T) {
	src, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "h264_aac.flv")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal("mkfifo:", err)
	}
	go func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.Write(src)
			f.Close()
		}
	}()
	var last int64
	res, err := Run(t.Context(), fifo, t.TempDir(), Options{Formats: []rules.Format{rules.FLV},
		Progress: func(done, total int64) { last = done }})
	if err != nil || len(res.Errors) > 0 || len(res.Files) != 1 {
		t.Fatalf("%v %+v", err, res)
	}
	if res.VideoFrames != 50 || res.AudioFrames != 88 || res.InputBytes != int64(len(src)) || last != int64(len(src)) {
		t.Fatalf("frames %d/%d, %d bytes (progress %d) of %d", res.VideoFrames, res.AudioFrames, res.InputBytes, last, len(src))
	}
}

func TestRemuxNotFLV(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.flv")
	os.WriteFile(p, []byte("not an flv file"), 0o644)
	if _, err := Run(t.Context(), p, t.TempDir(), Options{}); err == nil {
		t.Fatal("no error")
	}
}

// BenchmarkRun times a whole Run (open, record, finalize) per output format. The input is
// $LIVREC_REMUX_BENCH_INPUT (e.g. a 720p recording) or the small fixture.
// Run: LIVREC_REMUX_BENCH_INPUT=/tmp/in.flv go test -run '^$' -bench Run -cpuprofile cpu.out ./internal/remux
func BenchmarkRun(b *testing.B) {
	in := os.Getenv("LIVREC_REMUX_BENCH_INPUT")
	if in == "" {
		in = fixture
	}
	fi, err := os.Stat(in)
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range []rules.Format{rules.FLV, rules.M3U8} {
		b.Run(string(f), func(b *testing.B) {
			b.SetBytes(fi.Size())
			b.ReportAllocs()
			for b.Loop() {
				res, err := Run(b.Context(), in, b.TempDir(), Options{Formats: []rules.Format{f}, SliceDuration: 10})
				if err != nil || len(res.Errors) > 0 {
					b.Fatal(err, res.Errors)
				}
			}
		})
	}
}
