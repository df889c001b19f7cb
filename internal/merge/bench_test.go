package merge

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/livrec/livrec/internal/storage"
)

// benchInputs returns the store and the m3u8 recordings (sorted by key) named by
// LIVREC_BENCH_VOD_DIR: a `livrec remux` output directory and the stream's folder in it,
// "DIR/STREAM" (bench/vod.sh makes one). Without it the benchmark is skipped: it is not
// run in CI.
func benchInputs(b *testing.B) (*storage.Local, []string) {
	b.Helper()
	dir := os.Getenv("LIVREC_BENCH_VOD_DIR")
	if dir == "" {
		b.Skip("LIVREC_BENCH_VOD_DIR is not set (bench/vod.sh sets it)")
	}
	root, stream := filepath.Split(filepath.Clean(dir))
	st, err := storage.NewLocal(root)
	if err != nil {
		b.Fatal(err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.m3u8"))
	if err != nil || len(names) == 0 {
		b.Fatalf("no m3u8 recordings in %s", dir)
	}
	sort.Strings(names)
	var keys []string
	for _, n := range names {
		if !strings.Contains(filepath.Base(n), "merged") {
			keys = append(keys, stream+"/"+filepath.Base(n))
		}
	}
	return st, keys
}

// BenchmarkMergePlaylist: the playlist merge of the recordings in LIVREC_BENCH_VOD_DIR.
// The last merged playlist stays (merged-bench.m3u8) for bench/vod.sh's ffmpeg run.
func BenchmarkMergePlaylist(b *testing.B) {
	st, keys := benchInputs(b)
	key := filepath.Dir(keys[0]) + "/merged-bench.m3u8"
	p, _ := st.Path(key)
	for b.Loop() {
		os.Remove(p)
		if _, err := Playlist(b.Context(), st, keys, key, b.TempDir()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMergeMP4: one MP4 of the recordings in LIVREC_BENCH_VOD_DIR (run with
// -benchtime 1x for hours of media); reports the output MB/s. The last MP4 stays
// (merged-bench.mp4) for bench/vod.sh to check.
func BenchmarkMergeMP4(b *testing.B) {
	st, keys := benchInputs(b)
	key := filepath.Dir(keys[0]) + "/merged-bench.mp4"
	p, _ := st.Path(key)
	var bytes int64
	for b.Loop() {
		os.Remove(p)
		res, err := MP4(b.Context(), st, keys, key, filepath.Dir(filepath.Clean(os.Getenv("LIVREC_BENCH_VOD_DIR"))), MP4Options{})
		if err != nil {
			b.Fatal(err)
		}
		bytes = res.Bytes
	}
	b.SetBytes(bytes)
	b.ReportMetric(float64(bytes)/1e6, "MB-out")
}
