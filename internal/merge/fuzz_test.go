package merge

import (
	"os"
	"path/filepath"
	"testing"
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
