package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/livrec/livrec/internal/testenv"
)

// procCPU is a process's own utime + stime in seconds (fields 14 and 15 of
// /proc/<pid>/stat; its children are not included).
func procCPU(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100 // USER_HZ
}

// TestLongTranscodeBench measures, in one run: the ffmpeg transcoder's CPU seconds per
// rendition-minute (720p30 in, r360 + r540 out), and livrec's own CPU per pushed stream
// with transcoding off (the original recorded as m3u8) and on (the same original plus the
// two renditions recorded as m3u8 + mp4), as a ratio. It reports numbers and asserts
// nothing about speed. LIVREC_BENCH_SECONDS sets the push length (default 20).
func TestLongTranscodeBench(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	secs := 20
	if v, err := strconv.Atoi(os.Getenv("LIVREC_BENCH_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	src := make720p(t, secs)
	measure := func(config string) (livrec, ffmpeg float64) {
		s := startServer(t, t.TempDir(), config)
		before := procCPU(t, s.cmd.Process.Pid)
		if out, err := push(t, src, s.rtmpURL("live", "cam"), "-re"); err != nil {
			t.Fatalf("push: %v\n%s", err, out)
		}
		s.waitIdle()
		livrec = procCPU(t, s.cmd.Process.Pid) - before
		ffmpeg = s.metric("livrec_transcoder_cpu_seconds_total")
		s.stop()
		return livrec, ffmpeg
	}
	off, _ := measure(`
rules:
  - domainName: "*"
    appName: live
    delayTime: 30
    recordFormats:
      - format: m3u8
        sliceDuration: 5
`)
	on, ff := measure(transcodeConfig)
	minutes := float64(secs) / 60
	t.Logf("push %d s of 720p30: livrec CPU %.3f s without transcoding, %.3f s with 2 renditions recorded (ratio %.2f; per recorded stream %.3f vs %.3f s/min, ratio %.2f)",
		secs, off, on, on/off, off/minutes, on/3/minutes, (on/3)/off)
	t.Logf("ffmpeg transcoder: %.2f CPU s for 2 renditions, %.2f CPU s per rendition-minute", ff, ff/(2*minutes))
	if off <= 0 || on <= 0 || ff <= 0 {
		t.Fatalf("no CPU measured: off %v on %v ffmpeg %v", off, on, ff)
	}
}
