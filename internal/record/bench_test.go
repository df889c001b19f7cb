package record

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/rtmp"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
)

func readTags(tb testing.TB, path string) []flv.Tag {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r, err := flv.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	var tags []flv.Tag
	for {
		t, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			return tags
		}
		if err != nil {
			tb.Fatal(err)
		}
		t.Body = append([]byte(nil), t.Body...)
		tags = append(tags, t)
	}
}

func newTestManager(tb testing.TB, rs []rules.Rule) *Manager {
	tb.Helper()
	dir := tb.TempDir()
	cat, err := catalog.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cat.Close() })
	st, err := storage.NewLocal(filepath.Join(dir, "files"))
	if err != nil {
		tb.Fatal(err)
	}
	set, err := rules.NewSet(rs)
	if err != nil {
		tb.Fatal(err)
	}
	return NewManager(Config{Rules: set, Catalog: cat, Store: st, WorkDir: filepath.Join(dir, "work"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// sqlite returns the test manager's SQLite catalog once the queued writes are done.
func (m *Manager) sqlite() *catalog.Catalog {
	m.Drain()
	return m.cfg.Catalog.(*catalog.Catalog)
}

// BenchmarkRemux measures the remux path of a live stream per output format: FLV tags →
// demuxer → timestamp repair → task → format writer → files on local disk. One publish
// runs for the whole benchmark: the fixture's media tags are replayed with continuous
// timestamps, so segment boundaries come at the rule's slice duration as in production.
// MB/s counts the tag bytes received.
// Run: go test -run '^$' -bench Remux -benchmem ./internal/record
func BenchmarkRemux(b *testing.B) {
	for _, f := range rules.Formats {
		b.Run(string(f), func(b *testing.B) {
			rs := []rules.Rule{{DomainName: "*", AppName: "*", RecordFormats: []rules.RecordFormat{{Format: f}}}}
			benchRemux(b, rs)
		})
	}
}

// benchTags reads the fixture's tags and returns them with their body bytes and the
// timestamp span one replay of them covers (the last timestamp plus a frame).
func benchTags(b *testing.B) (tags []flv.Tag, size int64, span uint32) {
	tags = readTags(b, "../media/testdata/h264_aac.flv")
	for _, t := range tags {
		size += int64(len(t.Body))
		span = max(span, t.Timestamp)
	}
	return tags, size, span + 40
}

func benchRemux(b *testing.B, rs []rules.Rule) {
	tags, size, span := benchTags(b)
	m := newTestManager(b, rs)
	s, err := m.Publish(&rtmp.PublishRequest{App: "live", Stream: "bench", Domain: "example.com", Args: url.Values{}})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, t := range tags {
			if i > 0 && t.Type == flv.TagScript {
				continue
			}
			t.Timestamp += uint32(i) * span
			if err := s.Tag(t); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(len(tags)), "tags/op")
	s.Close(nil)
	m.Shutdown(b.Context())
}

// BenchmarkEndTogether measures issue 7's scenario end to end: n streams of about 3 MB
// each (the fixture replayed with continuous timestamps) whose stitch windows expire at
// the same moment. Shutdown ends every task concurrently, as the delay timers would; one
// op is that batch: every file finalized and stored, its catalog row done, file_created
// emitted. Publishing is not timed.
// Run: go test -run '^$' -bench EndTogether -benchtime 1x ./internal/record
// (LIVREC_BENCH_STREAMS overrides n, 300 by default.)
func BenchmarkEndTogether(b *testing.B) {
	n := envInt("LIVREC_BENCH_STREAMS", 300)
	tags, size, span := benchTags(b)
	rounds := int((3<<20)/size) + 1
	for _, fs := range [][]rules.Format{{rules.FLV, rules.M3U8}, {rules.M3U8}, {rules.FLV}} {
		var rfs []rules.RecordFormat
		name := ""
		for _, f := range fs {
			rfs = append(rfs, rules.RecordFormat{Format: f})
			name += "+" + string(f)
		}
		b.Run(fmt.Sprintf("streams=%d/%s", n, name[1:]), func(b *testing.B) {
			rs := []rules.Rule{{DomainName: "*", AppName: "*", RecordFormats: rfs, DelayTime: 3600}}
			for b.Loop() {
				b.StopTimer()
				m := newTestManager(b, rs)
				ss := make([]rtmp.Session, n)
				for i := range ss {
					s, err := m.Publish(&rtmp.PublishRequest{App: "live", Stream: fmt.Sprintf("s%d", i), Domain: "example.com", Args: url.Values{}})
					if err != nil {
						b.Fatal(err)
					}
					ss[i] = s
				}
				for r := range rounds {
					for _, s := range ss {
						for _, t := range tags {
							if r > 0 && t.Type == flv.TagScript {
								continue
							}
							t.Timestamp += uint32(r) * span
							if err := s.Tag(t); err != nil {
								b.Fatal(err)
							}
						}
					}
				}
				for _, s := range ss {
					s.Close(nil)
				}
				b.StartTimer()
				m.Shutdown(b.Context())
			}
			b.ReportMetric(float64(rounds)*float64(size)/(1<<20), "MB/stream")
		})
	}
}
