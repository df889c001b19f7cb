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

// TestLongDiskFull: the data directory's file system fills up in the middle of a push
// and frees again while the push goes on. livrec reports it (disk_full, counted drops,
// the low-space alarm before), keeps what was written, resumes every format once space
// returns and generates every file without a restart: each file it reports as generated
// decodes clean and lasts what its catalog row says.
func TestLongDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes in real time")
	}
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	data := smallDisk(t, 40)
	const seconds, fillAt, freeAt = 30, 6, 14
	src := makeSource(t, t.TempDir(), seconds)
	s := startServer(t, data, `
minFreeSpace: 30MiB
rules:
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
	time.Sleep(fillAt * time.Second)
	fill(t, filler)
	time.Sleep(3 * time.Second) // the free-space check runs every 2 s
	if s.metric("livrec_disk_low") != 1 {
		t.Errorf("livrec_disk_low is not 1 with the disk full")
	}
	time.Sleep((freeAt - fillAt - 3) * time.Second)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if n := s.metric(`livrec_errors_total{code="disk_full"}`); n != 1 {
		t.Errorf("disk_full reported %g times, want once", n)
	}
	if n := s.metric(`livrec_dropped_units_total{reason="disk_full"}`); n == 0 {
		t.Errorf("no dropped units counted while the disk was full")
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
	total := map[string]float64{}
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
		total[r.Format] += got
	}
	// Lost at most: the time the disk was full, the free-space check that ends it, the
	// wait for a keyframe (2 s) and the segment that was being written when it filled.
	want := float64(seconds - (freeAt - fillAt) - 2 - 2 - 5)
	for _, f := range []string{"m3u8", "flv", "mp4", "cmaf"} {
		if total[f] < want {
			t.Errorf("%s: %.2f s recorded in all, want at least %.0f s of the %d s pushed: media after the space returned is missing", f, total[f], want, seconds)
		}
	}
	s.stop()
}
