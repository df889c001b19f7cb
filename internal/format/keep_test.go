package format_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/livrec/livrec/internal/format"
)

// TestKeepWriter: bytes the file system refuses for lack of space (/dev/full answers
// every write with ENOSPC) are kept, in order, and written by the first flush that finds
// space; until then the flush reports the full disk.
func TestKeepWriter(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	var held heldBytes
	k := &format.KeepWriter{F: full, Hold: &held}
	for _, p := range []string{"tag one ", "tag two ", "tag three"} {
		if n, err := k.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write on a full disk: %d, %v; want the bytes kept", n, err)
		}
	}
	if !k.Holding() {
		t.Fatal("nothing kept")
	}
	if err := k.Flush(); !format.IsDiskFull(err) || !k.Holding() {
		t.Fatalf("flush on a full disk: %v, holding %v", err, k.Holding())
	}
	path := filepath.Join(t.TempDir(), "work.flv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	k.F = f // space is back
	if err := k.Flush(); err != nil || k.Holding() {
		t.Fatalf("flush with space: %v, holding %v", err, k.Holding())
	}
	if held != 0 {
		t.Fatalf("%d bytes still accounted as kept", held)
	}
	k.Write([]byte(" and after"))
	if b, _ := os.ReadFile(path); !bytes.Equal(b, []byte("tag one tag two tag three and after")) {
		t.Fatalf("file holds %q", b)
	}
}

// heldBytes is a format.Hold that counts.
type heldBytes int64

func (h *heldBytes) Kept(delta int64, _ error) { *h += heldBytes(delta) }
