package merge

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/format/mp4"
	"github.com/livrec/livrec/internal/storage"
)

// FuzzSegmentHead: the head of a stored segment never crashes the probe, and a found
// timestamp fits 33 bits.
func FuzzSegmentHead(f *testing.F) {
	if segs, _ := filepath.Glob("testdata/*.ts"); len(segs) > 0 {
		for _, s := range segs {
			if b, err := os.ReadFile(s); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add(make([]byte, 188))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseSegmentHead(b)
		if err == nil && (h.first < 0 || h.first > tsClockMask) {
			t.Fatalf("timestamp %d", h.first)
		}
	})
}

// FuzzMP4Segment: any segment bytes give access units or an error, never a crash.
func FuzzMP4Segment(f *testing.F) {
	if b, err := os.ReadFile("testdata/head.ts"); err == nil {
		f.Add(b)
	}
	f.Add(make([]byte, 376))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := storage.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		w, err := mp4.New(mp4.Config{WorkDir: t.TempDir(), Store: st, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		d := &demuxer{w: w}
		_ = d.segment(b, 0, true)
		_ = d.segment(b, 10*time.Second, false)
	})
}
