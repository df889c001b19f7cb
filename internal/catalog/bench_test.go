package catalog

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/schema"
	"github.com/livrec/livrec/internal/schema/schematest"
)

// benchStreams is the number of concurrent streams (LIVREC_BENCH_STREAMS, default 500).
func benchStreams(b *testing.B) int {
	if v := os.Getenv("LIVREC_BENCH_STREAMS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("LIVREC_BENCH_STREAMS=%q: want a positive number", v)
		}
		return n
	}
	return 500
}

// eachDriver runs bench once per catalog driver, on a fresh catalog.
func eachDriver(b *testing.B, bench func(b *testing.B, c *Catalog)) {
	for _, d := range schema.Drivers {
		b.Run(d, func(b *testing.B) {
			c, err := OpenDriver(d, schematest.DSN(b, d))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			bench(b, c)
		})
	}
}

// The catalog writes of one stream-minute of recording at the busiest a rule allows: all
// four formats, m3u8 and cmaf with 5-s segments (a progress row per segment), flv and mp4
// with a progress row every 10 s of media, and a new file per format every 15 minutes
// (the shortest cycle: UpdateFile of the old one, CreateFile of the next).
const (
	progressPerMinute = 12 + 12 + 6 + 6
	cycleMinutes      = 15
	formatsPerStream  = 4
)

// BenchmarkStreamMinute: n streams (default 500) write their catalog rows of one minute
// of recording at once, each stream in its own goroutine, on SQLite and on PostgreSQL.
// ns/op is one stream-minute of all n streams; headroom-x is how many times faster than
// real time that is (above 1: the catalog keeps up with n streams); p50/p99 are the
// latencies of single catalog writes under that load.
// Run: go test -run '^$' -bench StreamMinute -benchtime 5x ./internal/catalog
func BenchmarkStreamMinute(b *testing.B) {
	n := benchStreams(b)
	ctx := context.Background()
	formats := []string{"m3u8", "cmaf", "flv", "mp4"}
	eachDriver(b, func(b *testing.B, c *Catalog) {
		now := time.Now()
		files := make([][]*File, n)
		for i := range n {
			id := fmt.Sprintf("task-%d", i)
			if err := c.CreateTask(ctx, &Task{ID: id, Domain: "example.com", App: "live", Stream: fmt.Sprintf("s%d", i),
				State: TaskRecording, Rule: "{}", StartedAt: now, UpdatedAt: now}); err != nil {
				b.Fatal(err)
			}
			for _, f := range formats {
				fl := &File{ID: id + "-" + f + "-0", TaskID: id, Domain: "example.com", App: "live", Stream: fmt.Sprintf("s%d", i),
					Format: f, Start: now, Status: FileRecording}
				if err := c.CreateFile(ctx, fl); err != nil {
					b.Fatal(err)
				}
				files[i] = append(files[i], fl)
			}
		}
		lat := make([][]time.Duration, n) // per stream: no locking while measuring
		minute := 0
		b.ResetTimer()
		for b.Loop() {
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					timed := func(err error, t0 time.Time) {
						lat[i] = append(lat[i], time.Since(t0))
						if err != nil {
							b.Error(err)
						}
					}
					for k := range progressPerMinute {
						f := files[i][k%formatsPerStream]
						t0 := time.Now()
						timed(c.FileProgress(ctx, f.ID, float64(minute*60+k), int64(minute+1)<<20, minute*12+k), t0)
					}
					if minute%cycleMinutes != i%cycleMinutes {
						return
					}
					for j, f := range files[i] { // this stream's cycle ends: next files
						f.Status, f.Key, f.End, f.Duration, f.Bytes = FileDone, f.ID+"."+f.Format, now, 900, 100<<20
						t0 := time.Now()
						timed(c.UpdateFile(ctx, f), t0)
						next := *f
						next.ID, next.Sequence, next.Status, next.Key = fmt.Sprintf("%s-%s-%d", f.TaskID, f.Format, f.Sequence+1), f.Sequence+1, FileRecording, ""
						t0 = time.Now()
						timed(c.CreateFile(ctx, &next), t0)
						files[i][j] = &next
					}
				})
			}
			wg.Wait()
			minute++
		}
		var all []time.Duration
		for _, l := range lat {
			all = append(all, l...)
		}
		slices.Sort(all)
		if len(all) == 0 {
			return
		}
		perMinute := progressPerMinute + 2.0*formatsPerStream/cycleMinutes
		wall := b.Elapsed() / time.Duration(b.N)
		b.ReportMetric(perMinute, "ops/stream-min")
		b.ReportMetric(float64(len(all))/b.Elapsed().Seconds(), "ops/s")
		b.ReportMetric(float64(time.Minute)/float64(wall), "headroom-x")
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(all[len(all)-1].Microseconds())/1000, "max-ms")
	})
}

// BenchmarkEndBurst measures the catalog writes of n tasks with two files each ending at
// the same moment (as record does: UpdateFile per file, then SetTaskState), each task in
// its own goroutine, on SQLite and on PostgreSQL. ns/op is the burst's wall time.
// Run: go test -run '^$' -bench EndBurst -benchtime 3x ./internal/catalog
func BenchmarkEndBurst(b *testing.B) {
	const n = 300
	ctx := context.Background()
	eachDriver(b, func(b *testing.B, c *Catalog) {
		for round := 0; b.Loop(); round++ {
			b.StopTimer()
			now := time.Now()
			files := make([][2]*File, n)
			for i := range n {
				id := fmt.Sprintf("task-%d-%d", round, i)
				if err := c.CreateTask(ctx, &Task{ID: id, Domain: "example.com", App: "live", Stream: fmt.Sprintf("s%d", i),
					State: TaskPaused, Rule: "{}", StartedAt: now, UpdatedAt: now}); err != nil {
					b.Fatal(err)
				}
				for j, f := range []string{"flv", "m3u8"} {
					fl := &File{ID: fmt.Sprintf("%s-%s", id, f), TaskID: id, Domain: "example.com", App: "live",
						Stream: fmt.Sprintf("s%d", i), Format: f, Start: now, Status: FileRecording}
					if err := c.CreateFile(ctx, fl); err != nil {
						b.Fatal(err)
					}
					files[i][j] = fl
				}
			}
			var wg sync.WaitGroup
			b.StartTimer()
			for i := range n {
				wg.Go(func() {
					for _, f := range files[i] {
						f.Status, f.Key, f.End, f.Duration, f.Bytes = FileDone, f.ID+".flv", now, 20, 3<<20
						if err := c.UpdateFile(ctx, f); err != nil {
							b.Error(err)
						}
					}
					if err := c.SetTaskState(ctx, files[i][0].TaskID, TaskEnded, now); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
		}
	})
}
