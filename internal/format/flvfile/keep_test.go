package flvfile

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
	k := &keepWriter{f: full}
	for _, p := range []string{"tag one ", "tag two ", "tag three"} {
		if n, err := k.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write on a full disk: %d, %v; want the bytes kept", n, err)
		}
	}
	if !k.holding() {
		t.Fatal("nothing kept")
	}
	if err := k.flush(); !format.IsDiskFull(err) || !k.holding() {
		t.Fatalf("flush on a full disk: %v, holding %v", err, k.holding())
	}
	path := filepath.Join(t.TempDir(), "work.flv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	k.f = f // space is back
	if err := k.flush(); err != nil || k.holding() {
		t.Fatalf("flush with space: %v, holding %v", err, k.holding())
	}
	k.Write([]byte(" and after"))
	if b, _ := os.ReadFile(path); !bytes.Equal(b, []byte("tag one tag two tag three and after")) {
		t.Fatalf("file holds %q", b)
	}
}
