package e2e

import (
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/testenv"
)

// smallDisk mounts a tmpfs of sizeMiB at a fresh directory (unmounted at cleanup, after
// the servers the test starts later are gone). Only root can mount: anyone else fails,
// unless LIVREC_SKIP_E2E=1 asks to skip.
func smallDisk(t *testing.T, sizeMiB int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if testenv.Skipped() {
			t.Skip("needs root to mount a small tmpfs (LIVREC_SKIP_E2E=1)")
		}
		t.Fatal("this test mounts a small tmpfs for the data directory and must run as root (set LIVREC_SKIP_E2E=1 to skip it)")
	}
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(sizeMiB)+"m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file at path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	// The last pages a partial write could not take.
	small := make([]byte, 4096)
	for {
		if _, err := f.Write(small); err != nil {
			return
		}
	}
}

// TestLongDiskFullHeld: the data directory's file system fills up in the middle of a
// push and frees again 6 s later, less than the media livrec holds in memory
// (diskFullHoldPerStream). livrec reports it (disk_full, the low-space alarm before),
// holds what the disk refuses and writes it out once space returns: no frame is lost in
// any format, nothing is counted as dropped, and every file decodes clean and lasts what
// its catalog row says.
func TestLongDiskFullHeld(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes in real time")
	}
	recs, src, s := diskFullPush(t, "", 6, 12)
	if n := s.metric(`livrec_dropped_units_total{reason="disk_full"}`); n != 0 {
		t.Errorf("%g units dropped, want none: the disk was full for less than the hold bound", n)
	}
	if n := s.metric("livrec_disk_full_held_bytes"); n != 0 {
		t.Errorf("livrec_disk_full_held_bytes is %g after the space returned, want 0", n)
	}
	wantVideo, wantAudio := countFrames(t, src, "v"), countFrames(t, src, "a")
	early := audioBeforePicture(t, src)
	video, audio := map[string]int{}, map[string]int{}
	for _, r := range recs {
		p := s.filePath(r.Key)
		video[r.Format] += countFrames(t, p, "v")
		audio[r.Format] += countFrames(t, p, "a")
	}
	for _, f := range []string{"m3u8", "flv", "mp4", "cmaf"} {
		wantAudio := wantAudio
		if f == "mp4" {
			wantAudio -= early // its presentation starts at the first picture
		}
		t.Logf("%s: %d/%d video, %d/%d audio frames", f, video[f], wantVideo, audio[f], wantAudio)
		if video[f] != wantVideo || audio[f] < wantAudio {
			t.Errorf("%s: %d of %d video and %d of %d audio frames recorded, want all", f, video[f], wantVideo, audio[f], wantAudio)
		}
	}
	s.stop()
}

// TestLongDiskFullDrops: the disk stays full for 10 s, past the hold bound
// (diskFullHoldPerStream 256KiB). New media is then dropped and counted, reported once
// per stream (disk_full_dropping); what was held is written once space returns and every
// format resumes, each file decoding clean and lasting what its catalog row says.
func TestLongDiskFullDrops(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes in real time")
	}
	const seconds, fillAt, freeAt = 30, 6, 16
	recs, _, s := diskFullPush(t, "diskFullHoldPerStream: 256KiB\n", fillAt, freeAt)
	if n := s.metric(`livrec_dropped_units_total{reason="disk_full"}`); n == 0 {
		t.Errorf("no dropped units counted past the hold bound")
	}
	if n := s.metric(`livrec_errors_total{code="disk_full_dropping"}`); n != 2 {
		t.Errorf("disk_full_dropping reported %g times, want once per stream (2)", n)
	}
	// Lost at most: the time the disk was full, the free-space check that ends it and
	// the wait for a keyframe (2 s); counted in pictures (25 a second), as flv and mp4
	// go on in the same file, whose timeline spans the gap.
	video := map[string]int{}
	for _, r := range recs {
		video[r.Format] += countFrames(t, s.filePath(r.Key), "v")
	}
	want := 25 * (seconds - (freeAt - fillAt) - 2 - 2)
	for _, f := range []string{"m3u8", "flv", "mp4", "cmaf"} {
		t.Logf("%s: %d pictures recorded of %d pushed", f, video[f], 25*seconds)
		if video[f] < want {
			t.Errorf("%s: %d pictures recorded, want at least %d of the %d pushed: media after the space returned is missing", f, video[f], want, 25*seconds)
		}
	}
	s.stop()
}

// diskFullPush pushes 30 s of media in real time to a livrec whose data directory's
// file system (40 MiB) is filled at fillAt s and freed at freeAt s (extra adds to its
// configuration). It checks what every disk-full run must show: disk_full reported
// once, the low-space alarm while full, both cleared after, and every file generated
// without a restart, decoding clean and lasting what its catalog row says. It returns
// the files, the source and the server.
func diskFullPush(t *testing.T, extra string, fillAt, freeAt int) ([]recording, string, *server) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	data := smallDisk(t, 40)
	src := makeSource(t, t.TempDir(), 30)
	s := startServer(t, data, `
minFreeSpace: 30MiB
`+extra+`rules:
  - domainName: "*"
    appName: a
    delayTime: 15
    recordFormats: [{format: m3u8, sliceDuration: 5}, {format: flv}, {format: mp4}]
  - domainName: "*"
    appName: b
    delayTime: 15
    recordFormats: [{format: cmaf, sliceDuration: 5}]
`)
	wg := pushRealTime(t, s, src, "full", "a", "b")
	filler := filepath.Join(data, "filler")
	time.Sleep(time.Duration(fillAt) * time.Second)
	fill(t, filler)
	time.Sleep(3 * time.Second) // the free-space check runs every 2 s
	if s.metric("livrec_disk_low") != 1 {
		t.Errorf("livrec_disk_low is not 1 with the disk full")
	}
	time.Sleep(time.Duration(freeAt-fillAt-3) * time.Second)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if n := s.metric(`livrec_errors_total{code="disk_full"}`); n != 1 {
		t.Errorf("disk_full reported %g times, want once", n)
	}
	if s.metric("livrec_disk_full") != 0 {
		t.Errorf("livrec_disk_full still 1 after the space was freed")
	}

	// Every file of the four formats is generated at the end of the stitch window.
	deadline := time.Now().Add(60 * time.Second)
	var recs []recording
	for {
		recs = s.recordings("stream=full")
		pending := 0
		for _, r := range recs {
			if r.Status == "recording" {
				pending++
			}
		}
		if pending == 0 && len(recs) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("files not generated 60 s after the push: %+v", recs)
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, r := range recs {
		if r.Status != "done" {
			t.Errorf("%s file %d: status %s (%s)", r.Format, r.Sequence, r.Status, r.Error)
			continue
		}
		p := s.filePath(r.Key)
		decodeClean(t, p)
		got := probeDuration(t, p)
		t.Logf("%s #%d: catalog %.2f s, file %.2f s", r.Format, r.Sequence, r.Duration, got)
		if math.Abs(got-r.Duration) > 0.2 {
			t.Errorf("%s file %d lasts %.2f s, its catalog row says %.2f s", r.Format, r.Sequence, got, r.Duration)
		}
	}
	return recs, src, s
}
