package format

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestArena checks an Arena against a plain byte slice over random appends and discards
// that cross chunk boundaries, and that an emptied Arena holds no chunks.
func TestArena(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var a Arena
	var want []byte
	next := byte(0)
	for step := range 2000 {
		switch {
		case r.IntN(3) > 0: // append, sometimes more than a chunk
			p := make([]byte, r.IntN(2*ArenaChunkSize+10))
			for i := range p {
				p[i], next = next, next+1
			}
			if r.IntN(4) == 0 {
				a.AppendUint32(uint32(len(p)))
				want = append(want, byte(len(p)>>24), byte(len(p)>>16), byte(len(p)>>8), byte(len(p)))
			}
			a.Append(p)
			want = append(want, p...)
		default: // write a prefix and drop it
			n := r.IntN(len(want) + 1)
			got := bytes.Join(a.Buffers(nil, n), nil)
			if !bytes.Equal(got, want[:n]) {
				t.Fatalf("step %d: Buffers(%d) differs from what was appended", step, n)
			}
			a.Discard(n)
			want = want[n:]
		}
		if a.Len() != len(want) {
			t.Fatalf("step %d: Len %d, want %d", step, a.Len(), len(want))
		}
		if chunks := (a.off + a.n + ArenaChunkSize - 1) / ArenaChunkSize; len(a.c) != chunks {
			t.Fatalf("step %d: %d chunks for %d bytes at %d", step, len(a.c), a.n, a.off)
		}
	}
	if got := bytes.Join(a.Buffers(nil, a.Len()), nil); !bytes.Equal(got, want) {
		t.Fatal("the rest differs from what was appended")
	}
	a.Discard(a.Len())
	if len(a.c) != 0 || a.off != 0 {
		t.Fatalf("empty arena holds %d chunks (off %d)", len(a.c), a.off)
	}
}

// TestArenaWriter: what an ArenaWriter is given reaches the file in order, in writes of
// at least Max bytes until Flush; a write error is kept and later calls return it.
func TestArenaWriter(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	const max = 3*ArenaChunkSize + 100
	b := &ArenaWriter{W: &KeepWriter{F: f}, Max: max}
	var want []byte
	size := func() int64 {
		st, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	for range 500 {
		p := make([]byte, r.IntN(ArenaChunkSize))
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		if n, err := b.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write: %d, %v; want %d, nil", n, err, len(p))
		}
		want = append(want, p...)
		if held := int64(len(want)) - size(); held < 0 || held >= max {
			t.Fatalf("%d bytes not in the file, want 0 to %d", held, max-1)
		}
		if r.IntN(50) == 0 {
			if err := b.Flush(); err != nil {
				t.Fatal(err)
			}
			if size() != int64(len(want)) {
				t.Fatalf("after Flush the file has %d bytes, want %d", size(), len(want))
			}
		}
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the file differs from what was written (%d bytes, want %d)", len(got), len(want))
	}
	f.Close()
	if _, err := b.Write(make([]byte, max)); err == nil {
		t.Fatal("Write past Max to a closed file: no error")
	}
	if _, err := b.Write([]byte{1}); err == nil {
		t.Fatal("the write error was not kept")
	}
	if err := b.Flush(); err == nil {
		t.Fatal("Flush after a write error: no error")
	}
	b.Release()
	if b.a.Len() != 0 || len(b.a.c) != 0 {
		t.Fatalf("Release kept %d bytes in %d chunks", b.a.Len(), len(b.a.c))
	}
}
