package flvfile

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/storage"
)

// synthUnits makes dur of H.264 + AAC access units at about 1.2 Mbit/s of video (25 fps,
// a keyframe every 2 s) and 100 kbit/s of audio, with random payloads (the writer does
// not parse them). The tracks come from the ffmpeg test input (real SPS/PPS/ASC).
func synthUnits(tb testing.TB, dur time.Duration) (v, a *media.Track, aus []*media.AccessUnit) {
	in := getInput(tb, inH264AAC)
	v, a = in.video, in.audio
	rng := rand.New(rand.NewPCG(1, 2))
	payload := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	frame, aframe := 40*time.Millisecond, 1024*time.Second/44100
	var vt, at time.Duration
	for i := 0; vt < dur; {
		if at < vt {
			aus = append(aus, &media.AccessUnit{Track: a, DTS: at, PTS: at, Key: true, Data: payload(290)})
			at += aframe
			continue
		}
		key := i%50 == 0
		size := 5200
		if key {
			size = 30000
		}
		nal := payload(size)
		nal[0] = 0x41
		if key {
			nal[0] = 0x65
		}
		aus = append(aus, &media.AccessUnit{Track: v, DTS: vt, PTS: vt, Key: key, NALUs: [][]byte{nal}})
		vt += frame
		i++
	}
	return v, a, aus
}

// BenchmarkFinish measures what issue 7 is about: many recordings of about 3 MB (20 s at
// 1.2 Mbit/s) that end together and are finished concurrently into local storage, each
// file's Finish in its own goroutine. One op is one batch; ns/op is the batch's wall
// time, max-ms the slowest file's Finish, cpu-ms the process CPU time of the batch.
// Recording the files is not timed. window is the idle time between the last write and
// Finish (the stitch window, during which nothing is written).
//
// Run: go test -run '^$' -bench Finish -benchtime 1x ./internal/format/flvfile/
// (LIVREC_BENCH_FILES overrides the number of files, 300 by default.)
func BenchmarkFinish(b *testing.B) {
	n := 300
	if s := os.Getenv("LIVREC_BENCH_FILES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	v, a, aus := synthUnits(b, 20*time.Second)
	for _, window := range []time.Duration{0, 5 * time.Second} {
		b.Run(fmt.Sprintf("files=%d/window=%v", n, window), func(b *testing.B) {
			var maxMs, cpuMs, bytes float64
			for b.Loop() {
				b.StopTimer()
				root := b.TempDir()
				st, err := storage.NewLocal(filepath.Join(root, "store"))
				if err != nil {
					b.Fatal(err)
				}
				ws := make([]*Writer, n)
				for i := range ws {
					dir := filepath.Join(root, "work", strconv.Itoa(i))
					if err := os.MkdirAll(dir, 0o755); err != nil {
						b.Fatal(err)
					}
					w, err := New(Config{WorkDir: dir, Store: st, MaxDuration: 6 * time.Hour})
					if err != nil {
						b.Fatal(err)
					}
					if err := w.SetTracks(v, a); err != nil {
						b.Fatal(err)
					}
					ws[i] = w
				}
				// Interleaved, as live streams arrive.
				for _, au := range aus {
					for _, w := range ws {
						if err := w.WriteAU(au); err != nil {
							b.Fatal(err)
						}
					}
				}
				time.Sleep(window)
				lat := make([]time.Duration, n)
				var wg sync.WaitGroup
				cpu0 := cpuTime()
				b.StartTimer()
				for i, w := range ws {
					wg.Go(func() {
						t0 := time.Now()
						res, err := w.Finish(context.Background(), fmt.Sprintf("rec/%d.flv", i))
						if err != nil {
							b.Error(err)
						}
						lat[i] = time.Since(t0)
						if i == 0 {
							bytes = float64(res.Bytes)
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				cpuMs += float64(cpuTime()-cpu0) / 1e6
				maxMs += float64(slices.Max(lat)) / 1e6
				_ = os.RemoveAll(root)
				b.StartTimer()
			}
			b.ReportMetric(maxMs/float64(b.N), "max-ms")
			b.ReportMetric(cpuMs/float64(b.N), "cpu-ms")
			b.ReportMetric(bytes, "bytes/file")
		})
	}
}

// cpuTime is the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
