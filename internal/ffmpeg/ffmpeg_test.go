package ffmpeg

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/testenv"
)

func TestTailKeepsLastLines(t *testing.T) {
	tl := NewTail(2)
	tl.Write([]byte("one\ntwo\n\nthr"))
	tl.Write([]byte("ee\nfour"))
	if got, want := tl.String(), "three | four"; got != want {
		t.Fatalf("tail = %q, want %q", got, want)
	}
}

func TestParseProgress(t *testing.T) {
	in := "frame=1\nout_time_us=N/A\nprogress=continue\nout_time_us=500000\nprogress=continue\n" +
		"out_time_us=250000\nout_time_us=2000000\nprogress=continue\nout_time_us=2000000\nprogress=end\n"
	var got []float64
	parseProgress(strings.NewReader(in), 2*time.Second, func(p float64) { got = append(got, p) })
	want := []float64{25, 99.9, 100}
	if len(got) != len(want) {
		t.Fatalf("progress = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("progress = %v, want %v", got, want)
		}
	}
}

func FuzzParseProgress(f *testing.F) {
	f.Add("out_time_us=500000\nprogress=end\n", int64(time.Second))
	f.Add("out_time_us=-1\nout_time_us=99999999999999999999\n=\n", int64(1))
	f.Fuzz(func(t *testing.T, s string, d int64) {
		last := -1.0
		parseProgress(strings.NewReader(s), time.Duration(d), func(p float64) {
			if p < 0 || p > 100 || p <= last {
				t.Fatalf("progress %v after %v", p, last)
			}
			last = p
		})
	})
}

func TestRunProgress(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg)
	out := filepath.Join(t.TempDir(), "out.mp4")
	var got []float64
	err := Run(context.Background(), []string{"-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=4",
		"-c:v", "libx264", "-preset", "ultrafast", "-y", out}, Options{Duration: 4 * time.Second, Progress: func(p float64) { got = append(got, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || got[len(got)-1] != 100 {
		t.Fatalf("progress reports %v: want the last one 100", got)
	}
	in, err := Probe(context.Background(), "", out)
	if err != nil {
		t.Fatal(err)
	}
	if in.Width != 320 || in.Height != 240 || in.FPS != 25 || in.VideoCodec != "h264" || in.Duration != 4*time.Second {
		t.Fatalf("probe = %+v", in)
	}
}

func TestRunFailureKeepsLastLines(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg)
	err := Run(context.Background(), []string{"-i", filepath.Join(t.TempDir(), "missing.m3u8"), "-f", "null", "-"}, Options{})
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v, want *Error", err)
	}
	if !strings.Contains(fe.Tail, "No such file or directory") {
		t.Fatalf("tail %q does not say why", fe.Tail)
	}
}

// TestRunCancelKillsGroup: ffmpeg started through a shell, which forks it; cancelling
// kills both (the whole process group), and Run returns promptly.
func TestRunCancelKillsGroup(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	script := filepath.Join(dir, "ff.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nffmpeg \"$@\" &\necho $! > "+pidFile+"\nwait\n"), 0o755)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"-f", "lavfi", "-re", "-i", "testsrc=rate=10", "-f", "null", "-"},
			Options{Bin: script, Duration: time.Hour, Progress: func(float64) {}})
	}()
	var pid int
	for i := 0; i < 100 && pid == 0; i++ {
		time.Sleep(50 * time.Millisecond)
		b, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if pid == 0 {
		t.Fatal("the script did not start ffmpeg")
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !IsCanceled(err) {
			t.Fatalf("err = %v, want a cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for i := 0; ; i++ {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			break
		}
		// A killed child stays a zombie until init reaps it; its state says so.
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); strings.Contains(string(b), ") Z") {
			break
		}
		if i > 50 {
			t.Fatalf("ffmpeg (pid %d), the grandchild, still runs after cancel", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHasEncoder(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg)
	if !HasEncoder("", "libx264") {
		t.Fatal("libx264 not found")
	}
	if HasEncoder("", "libx264-nonexistent") {
		t.Fatal("a made-up encoder found")
	}
}
