package record

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/format/segment"
	"github.com/livrec/livrec/internal/rtmp"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
)

// The pipeline benchmarks: the work that ends a file and the catalog must not hold up
// a publisher. Each publisher sends the fixture in real time and measures how late each
// tag was taken (the call returning after its due time; on a loaded machine this
// includes waiting for a CPU) and how long each Tag call blocked; the worst over all
// publishers are reported as max-lag-ms and max-tag-ms. LIVREC_BENCH_NOSYNC=1 records
// without fsyncs (to tell the disk's share from the recorder's).

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// lag is what a publisher saw: the worst lateness of a tag against its due time (which
// includes waiting for a CPU on a loaded machine), and the longest a Tag call blocked.
type lag struct{ late, blocked time.Duration }

func (l lag) max(o lag) lag { return lag{max(l.late, o.late), max(l.blocked, o.blocked)} }

func reportLag(b *testing.B, lags []lag) {
	var worst lag
	for _, l := range lags {
		worst = worst.max(l)
	}
	b.ReportMetric(float64(worst.late.Microseconds())/1000, "max-lag-ms")
	b.ReportMetric(float64(worst.blocked.Microseconds())/1000, "max-tag-ms")
}

// paced sends the fixture's media tags in real time from start (continuous timestamps
// from base ms) until stop is closed, and returns the worst lag.
func paced(tb testing.TB, s rtmp.Session, base uint32, start time.Time, stop <-chan struct{}) lag {
	var worst lag
	tags := fixtureTags()
	for r := uint32(0); ; r++ {
		for _, t := range tags {
			if t.Type == flv.TagScript {
				continue
			}
			ts := t.Timestamp + r*fixtureSpan
			due := start.Add(time.Duration(ts) * time.Millisecond)
			if d := time.Until(due); d > 0 {
				select {
				case <-stop:
					return worst
				case <-time.After(d):
				}
			}
			t.Timestamp = base + ts
			called := time.Now()
			if err := s.Tag(t); err != nil {
				tb.Error(err)
				return worst
			}
			worst = worst.max(lag{time.Since(due), time.Since(called)})
		}
	}
}

// bigKeyframes returns n keyframe tags of about size bytes each (the fixture's first
// keyframe with a filler NAL unit appended) at 25 fps from base ms.
func bigKeyframes(n, size int, base uint32) []flv.Tag {
	var key flv.Tag
	for _, t := range fixtureTags() {
		if t.Type == flv.TagVideo && len(t.Body) > 5 && t.Body[0]>>4 == 1 && t.Body[1] == 1 {
			key = t
			break
		}
	}
	body := append([]byte(nil), key.Body...)
	filler := make([]byte, size)
	filler[0] = 12 // H.264 filler data
	for i := 1; i < len(filler); i++ {
		filler[i] = 0xff
	}
	body = binary.BigEndian.AppendUint32(body, uint32(len(filler)))
	body = append(body, filler...)
	out := make([]flv.Tag, n)
	for i := range out {
		out[i] = flv.Tag{Type: flv.TagVideo, Timestamp: base + uint32(i)*40, Body: body}
	}
	return out
}

// BenchmarkRolloverLag: n publishes each record an mp4 of about LIVREC_BENCH_ROLLOVER_MB
// (default 64; the target is 500, which needs 2 × n × 500 MB of free disk: the
// working file and the final one), then all roll over at the same moment while every
// publisher goes on in real time. The rollover is a restart command, which hands the
// files to the finalizers exactly as a recording cycle does. The finalization of all the
// files (mp4: the whole file is copied behind its moov) runs while the publishers send.
// Run: go test -run '^$' -bench RolloverLag -benchtime 1x ./internal/record
// (LIVREC_BENCH_STREAMS, default 100; LIVREC_BENCH_ROLLOVER_MB.)
func BenchmarkRolloverLag(b *testing.B) {
	n := envInt("LIVREC_BENCH_STREAMS", 100)
	mb := envInt("LIVREC_BENCH_ROLLOVER_MB", 64)
	const frame = 256 << 10
	frames := mb << 20 / frame
	rs := []rules.Rule{{DomainName: "*", AppName: "*", DelayTime: 3600, RecordFormats: []rules.RecordFormat{{Format: rules.MP4}}}}
	for b.Loop() {
		b.StopTimer()
		m := newTestManager(b, rs)
		ss := make([]rtmp.Session, n)
		for i := range ss {
			s, err := m.Publish(&rtmp.PublishRequest{App: "live", Stream: fmt.Sprintf("s%d", i), Domain: "d", Args: url.Values{}})
			if err != nil {
				b.Fatal(err)
			}
			ss[i] = s
			for _, t := range fixtureTags()[:3] { // script and sequence headers
				if err := s.Tag(t); err != nil {
					b.Fatal(err)
				}
			}
			for _, t := range bigKeyframes(frames, frame, 0) {
				if err := s.Tag(t); err != nil {
					b.Fatal(err)
				}
			}
		}
		base := uint32(frames*40 + 40)
		b.StartTimer()

		stop := make(chan struct{})
		lags := make([]lag, n)
		var wg sync.WaitGroup
		start := time.Now()
		for i, s := range ss {
			wg.Go(func() { lags[i] = paced(b, s, base, start, stop) })
		}
		time.Sleep(time.Second)
		rolled := time.Now()
		for i := range ss {
			if err := m.Command(context.Background(), "d", "live", fmt.Sprintf("s%d", i), CommandRestart); err != nil {
				b.Fatal(err)
			}
		}
		m.fin.wait()
		finalized := time.Since(rolled)
		time.Sleep(500 * time.Millisecond)
		close(stop)
		wg.Wait()
		reportLag(b, lags)
		b.ReportMetric(finalized.Seconds(), "finalize-all-s")
		b.ReportMetric(float64(mb), "MB/file")
		b.StopTimer()
		for _, s := range ss {
			s.Close(nil)
		}
		m.Shutdown(context.Background())
		b.StartTimer()
	}
}

// slowCatalog makes every call of a Catalog slower by delay.
type slowCatalog struct {
	Catalog
	delay time.Duration
}

func (c slowCatalog) CreateTask(ctx context.Context, t *catalog.Task) error {
	time.Sleep(c.delay)
	return c.Catalog.CreateTask(ctx, t)
}

func (c slowCatalog) SetTaskState(ctx context.Context, id, state string, at time.Time) error {
	time.Sleep(c.delay)
	return c.Catalog.SetTaskState(ctx, id, state, at)
}

func (c slowCatalog) CreateFile(ctx context.Context, f *catalog.File) error {
	time.Sleep(c.delay)
	return c.Catalog.CreateFile(ctx, f)
}

func (c slowCatalog) UpdateFile(ctx context.Context, f *catalog.File) error {
	time.Sleep(c.delay)
	return c.Catalog.UpdateFile(ctx, f)
}

func (c slowCatalog) FileProgress(ctx context.Context, id string, d float64, bytes int64, segs int) error {
	time.Sleep(c.delay)
	return c.Catalog.FileProgress(ctx, id, d, bytes, segs)
}

// BenchmarkSlowCatalogPublish: with every catalog call 200 ms slower, n publishes start
// together and send in real time for 3 s; each must reach RECORDING at once and no
// publisher's tags may be taken late (max-lag-ms; the Publish call counts). rows-s is
// when the last task row reached the catalog. LIVREC_BENCH_CATALOG_DELAY_MS=0 runs the
// same without the delay: the lag should not change.
// Run: go test -run '^$' -bench SlowCatalog -benchtime 1x ./internal/record
func BenchmarkSlowCatalogPublish(b *testing.B) {
	n := envInt("LIVREC_BENCH_STREAMS", 100)
	rs := []rules.Rule{{DomainName: "*", AppName: "*", DelayTime: 3600,
		RecordFormats: []rules.RecordFormat{{Format: rules.M3U8, SliceDuration: 5}, {Format: rules.FLV}}}}
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		st, err := storage.NewLocal(filepath.Join(dir, "files"))
		if err != nil {
			b.Fatal(err)
		}
		set, err := rules.NewSet(rs)
		if err != nil {
			b.Fatal(err)
		}
		mem := &MemoryCatalog{}
		m := NewManager(Config{Rules: set, Catalog: slowCatalog{mem, benchCatalogDelay()}, Store: st,
			WorkDir: filepath.Join(dir, "work"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NoSync: os.Getenv("LIVREC_BENCH_NOSYNC") == "1"})
		b.StartTimer()

		start := time.Now().Add(50 * time.Millisecond)
		stop := make(chan struct{})
		lags := make([]lag, n)
		var wg sync.WaitGroup
		var rows time.Duration
		wg.Go(func() {
			for {
				if open, _ := mem.OpenTasks(context.Background()); len(open) == n {
					rows = time.Since(start)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
		for i := range n {
			wg.Go(func() {
				time.Sleep(time.Until(start))
				called := time.Now()
				s, err := m.Publish(&rtmp.PublishRequest{App: "live", Stream: fmt.Sprintf("s%d", i), Domain: "d", Args: url.Values{}})
				if err != nil {
					b.Error(err)
					return
				}
				published := lag{time.Since(start), time.Since(called)} // the Publish call
				lags[i] = published.max(paced(b, s, 0, start, stop))
				s.Close(nil)
			})
		}
		time.Sleep(time.Second)
		recording := 0
		for _, si := range m.Streams() {
			if si.Recording {
				recording++
			}
		}
		time.Sleep(2 * time.Second)
		close(stop)
		wg.Wait()
		if recording != n {
			b.Fatalf("%d of %d publishes RECORDING after 1 s", recording, n)
		}
		reportLag(b, lags)
		b.ReportMetric(rows.Seconds(), "rows-s")
		b.StopTimer()
		m.Shutdown(context.Background())
		b.StartTimer()
	}
}

// benchCatalogDelay is the slow catalog's delay per call (LIVREC_BENCH_CATALOG_DELAY_MS,
// default 200; 0 gives the baseline of the same run without a slow catalog).
func benchCatalogDelay() time.Duration {
	if v, err := strconv.Atoi(os.Getenv("LIVREC_BENCH_CATALOG_DELAY_MS")); err == nil && v >= 0 {
		return time.Duration(v) * time.Millisecond
	}
	return 200 * time.Millisecond
}

// BenchmarkSlowDiskTag: n publishers (LIVREC_BENCH_STREAMS, default 20) record m3u8 in
// 5 s segments in real time for LIVREC_BENCH_SECONDS (default 20) on a disk whose every
// fsync takes LIVREC_BENCH_SYNC_DELAY_MS longer (default 500). The syncs run on the sync
// pool, so max-tag-ms stays far below the delay; LIVREC_BENCH_INLINE_SYNC=1 syncs in the
// publisher's Tag call as before the pool, for comparison.
func BenchmarkSlowDiskTag(b *testing.B) {
	n := envInt("LIVREC_BENCH_STREAMS", 20)
	secs := envInt("LIVREC_BENCH_SECONDS", 20)
	delay := time.Duration(envInt("LIVREC_BENCH_SYNC_DELAY_MS", 500)) * time.Millisecond
	prev := segment.SetSync(func(f *os.File) error { time.Sleep(delay); return f.Sync() })
	b.Cleanup(func() { segment.SetSync(prev) })
	rs := []rules.Rule{{DomainName: "*", AppName: "*", DelayTime: 3600,
		RecordFormats: []rules.RecordFormat{{Format: rules.M3U8, SliceDuration: 5}}}}
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		st, err := storage.NewLocal(filepath.Join(dir, "files"))
		if err != nil {
			b.Fatal(err)
		}
		set, err := rules.NewSet(rs)
		if err != nil {
			b.Fatal(err)
		}
		m := NewManager(Config{Rules: set, Catalog: &MemoryCatalog{}, Store: st,
			WorkDir: filepath.Join(dir, "work"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if os.Getenv("LIVREC_BENCH_INLINE_SYNC") == "1" {
			m.sync = nil // the writers get no Syncer: fsyncs in WriteAU, as before the pool
		}
		b.StartTimer()

		start := time.Now().Add(50 * time.Millisecond)
		stop := make(chan struct{})
		lags := make([]lag, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				time.Sleep(time.Until(start))
				s, err := m.Publish(&rtmp.PublishRequest{App: "live", Stream: fmt.Sprintf("s%d", i), Domain: "d", Args: url.Values{}})
				if err != nil {
					b.Error(err)
					return
				}
				lags[i] = paced(b, s, 0, start, stop)
				s.Close(nil)
			})
		}
		time.Sleep(time.Until(start.Add(time.Duration(secs) * time.Second)))
		close(stop)
		wg.Wait()
		b.StopTimer()
		m.Shutdown(context.Background())
		reportLag(b, lags)
		b.StartTimer()
	}
}
