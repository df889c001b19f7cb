package recindex

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/storage"
)

// fixture stores two m3u8 recordings of one stream: file A at 10:00:00 with segments of
// 6, 6 and 3 s, file B at 10:01:00 with 6 and 6 s.
func fixture(t *testing.T) (*catalog.Catalog, *storage.Local, string, time.Time) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	cat, err := catalog.Open(filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	st, err := storage.NewLocal(filepath.Join(dir, "files"))
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "work")
	os.MkdirAll(work, 0o755)
	put := func(key, body string) {
		p := filepath.Join(work, "tmp")
		os.WriteFile(p, []byte(body), 0o644)
		if err := st.Store(ctx, key, p); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for i, f := range []struct {
		name  string
		start time.Time
		durs  []string
	}{{"a", t0, []string{"6.00000", "6.00000", "3.00000"}}, {"b", t0.Add(time.Minute), []string{"6.00000", "6.00000"}}} {
		pl := "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXT-X-PLAYLIST-TYPE:VOD\n"
		for k, d := range f.durs {
			seg := f.name + "_" + string(rune('0'+k)) + ".ts"
			put("rec/live/s/"+seg, "ts-bytes")
			pl += "#EXTINF:" + d + ",\n" + seg + "\n"
		}
		pl += "#EXT-X-ENDLIST\n"
		put("rec/live/s/"+f.name+".m3u8", pl)
		if err := cat.CreateFile(ctx, &catalog.File{ID: f.name, TaskID: "t" + string(rune('0'+i)), Domain: "d", App: "live", Stream: "s",
			Format: "m3u8", Key: "rec/live/s/" + f.name + ".m3u8", Start: f.start, End: f.start.Add(15 * time.Second), Status: catalog.FileDone}); err != nil {
			t.Fatal(err)
		}
	}
	return cat, st, work, t0
}

func read(t *testing.T, st *storage.Local, key string) string {
	o, err := st.Open(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	b, _ := io.ReadAll(o)
	return string(b)
}

func TestCreate(t *testing.T) {
	ctx := context.Background()
	cat, st, work, t0 := fixture(t)
	req := Request{Domain: "d", App: "live", Stream: "s", Start: t0.Add(time.Second), End: t0.Add(62 * time.Second), Key: "idx/one"}
	// Completed inside [10:00:01, 10:01:02]: a_0 (ends :06), a_1 (:12), a_2 (:15); b_0 ends
	// 10:01:06, after the window.
	f, err := Create(ctx, cat, st, work, req)
	if err != nil {
		t.Fatal(err)
	}
	if f.Key != "idx/one.m3u8" || f.Segments != 3 || f.Duration != 15 || !f.Start.Equal(t0) {
		t.Fatalf("index row %+v", f)
	}
	body := read(t, st, f.Key)
	for _, want := range []string{"../rec/live/s/a_0.ts", "../rec/live/s/a_2.ts", "#EXT-X-ENDLIST"} {
		if !strings.Contains(body, want) {
			t.Fatalf("index lacks %q:\n%s", want, body)
		}
	}
	// endTimeIncluded adds b_0, after a discontinuity (another recording).
	req.Key, req.EndTimeIncluded = "idx/two", true
	f, err = Create(ctx, cat, st, work, req)
	if err != nil {
		t.Fatal(err)
	}
	if body := read(t, st, f.Key); f.Segments != 4 || strings.Count(body, "#EXT-X-DISCONTINUITY") != 1 || !strings.Contains(body, "b_0.ts") {
		t.Fatalf("with endTimeIncluded: %+v\n%s", f, body)
	}
	// The indexes are not sources of later indexes.
	req.Key = "idx/three"
	if f, err := Create(ctx, cat, st, work, req); err != nil || f.Segments != 4 {
		t.Fatalf("an earlier index was counted as a recording: %+v %v", f, err)
	}
	// Never overwrite; empty windows and bad windows are errors.
	if _, err := Create(ctx, cat, st, work, req); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("existing key: %v", err)
	}
	req.Key, req.Start, req.End = "idx/none", t0.Add(-time.Hour), t0.Add(-time.Minute)
	if _, err := Create(ctx, cat, st, work, req); !errors.Is(err, ErrNoSegments) {
		t.Fatalf("empty window: %v", err)
	}
	req.End = req.Start
	if _, err := Create(ctx, cat, st, work, req); err == nil || !strings.HasPrefix(err.Error(), "endTime") {
		t.Fatalf("end before start: %v", err)
	}
	req.Start, req.End = t0, t0.Add(8*24*time.Hour)
	if _, err := Create(ctx, cat, st, work, req); err == nil || !strings.Contains(err.Error(), "7 days") {
		t.Fatalf("window over 7 days: %v", err)
	}
	req.End, req.Key = t0.Add(time.Hour), "../escape"
	if _, err := Create(ctx, cat, st, work, req); err == nil || !strings.HasPrefix(err.Error(), "objectKey") {
		t.Fatalf("unsafe key: %v", err)
	}
}
