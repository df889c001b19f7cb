package moof

import (
	"bytes"
	"math/rand/v2"
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
			p := make([]byte, r.IntN(2*ChunkSize+10))
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
		if chunks := (a.off + a.n + ChunkSize - 1) / ChunkSize; len(a.c) != chunks {
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
