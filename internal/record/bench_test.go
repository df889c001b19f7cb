package record

import (
	"errors"
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

func benchRemux(b *testing.B, rs []rules.Rule) {
	tags := readTags(b, "../media/testdata/h264_aac.flv")
	var size int64
	var span uint32
	for _, t := range tags {
		size += int64(len(t.Body))
		span = max(span, t.Timestamp)
	}
	span += 40
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
