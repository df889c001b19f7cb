package format_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livrec/livrec/internal/format"
)

// TestKeepWriter: bytes the file system refuses for lack of space (/dev/full answers
// every write with ENOSPC) are kept, in order, and written by the first flush that finds
// space; until then the flush reports the full disk.
func TestKeepWriter(t *testing.T) {
	var held heldBytes
	k := &format.KeepWriter{F: fullDisk(t), Hold: &held}
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

// fullDisk opens /dev/full, which answers every write with ENOSPC.
func fullDisk(t *testing.T) *os.File {
	t.Helper()
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// heldBytes is a format.Hold that counts.
type heldBytes int64

func (h *heldBytes) Kept(delta int64, _ error) { *h += heldBytes(delta) }

// TestKeepWriterBuffers: WriteBuffers writes its pieces in order in one call while the
// disk takes them, and on a full disk keeps them as Write does.
func TestKeepWriterBuffers(t *testing.T) {
	var held heldBytes
	k := &format.KeepWriter{F: fullDisk(t), Hold: &held}
	if err := k.WriteBuffers([][]byte{[]byte("moof "), []byte("video "), []byte("audio ")}); err != nil {
		t.Fatalf("WriteBuffers on a full disk: %v; want the bytes kept", err)
	}
	if held != 17 {
		t.Fatalf("%d bytes accounted as kept, want 17", held)
	}
	path := filepath.Join(t.TempDir(), "seg.m4s")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	k.F = f // space is back: the next write finds it (after keepRetry)
	if err := k.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := k.WriteBuffers([][]byte{[]byte("moof "), bytes.Repeat([]byte("v"), 40000), []byte(" end")}); err != nil {
		t.Fatal(err)
	}
	want := "moof video audio moof " + strings.Repeat("v", 40000) + " end"
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Fatalf("file holds %d bytes, want %d", len(b), len(want))
	}
	if held != 0 {
		t.Fatalf("%d bytes still accounted as kept", held)
	}
}
