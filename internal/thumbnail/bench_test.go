package thumbnail

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// benchInput returns the playlist LIVREC_BENCH_THUMB_INPUT names and its duration,
// LIVREC_BENCH_THUMB_SECONDS (bench/vod.sh sets both to a 1 h 720p recording). Without
// them the benchmark is skipped: it is not run in CI.
func benchInput(b *testing.B) (string, time.Duration) {
	b.Helper()
	in := os.Getenv("LIVREC_BENCH_THUMB_INPUT")
	sec, _ := strconv.ParseFloat(os.Getenv("LIVREC_BENCH_THUMB_SECONDS"), 64)
	if in == "" || sec <= 0 {
		b.Skip("LIVREC_BENCH_THUMB_INPUT and LIVREC_BENCH_THUMB_SECONDS are not set (bench/vod.sh sets them)")
	}
	return in, time.Duration(sec * float64(time.Second))
}

func BenchmarkCover(b *testing.B) {
	in, d := benchInput(b)
	out := b.TempDir() + "/cover.jpg"
	for b.Loop() {
		if _, err := Cover(b.Context(), in, out, CoverOptions{Duration: d}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSprites: default options (a tile every 10 s, 160 px, 10×10 per sheet).
func BenchmarkSprites(b *testing.B) {
	in, d := benchInput(b)
	dir := b.TempDir()
	for b.Loop() {
		sp, err := Sprites(b.Context(), in, dir, SpriteOptions{Duration: d})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(sp.Tiles), "tiles")
	}
}
