package moof

import (
	"encoding/binary"
	"sync"
)

// ChunkSize is the size of an Arena's chunks.
const ChunkSize = 16 << 10

// chunks is the pool every Arena of the process draws from. A track's fragment fills up
// to a fragment's worth of payload and is emptied when the fragment is written; in one
// slab per track that keeps its largest size, every stream would hold its largest
// fragment (a keyframe's) all the time. In pooled chunks, a thousand streams whose
// fragments are written at different moments hold about their average fill, half a
// fragment, and a finished stream holds nothing.
var chunks = sync.Pool{New: func() any { return new([ChunkSize]byte) }}

// Arena holds a track's payloads in order, in ChunkSize chunks from a pool shared by
// every Arena: Append at the end, Buffers to write a prefix (one writev), Discard to drop
// it. The zero Arena is empty and ready. It is not safe for concurrent use.
type Arena struct {
	c   []*[ChunkSize]byte
	off int // start of the data in c[0]
	n   int // bytes held
}

// Len returns the bytes held.
func (a *Arena) Len() int { return a.n }

// Append appends p.
func (a *Arena) Append(p []byte) {
	for len(p) > 0 {
		end := a.off + a.n // of the data, over the chunks
		if end == len(a.c)*ChunkSize {
			a.c = append(a.c, chunks.Get().(*[ChunkSize]byte))
		}
		k := copy(a.c[end/ChunkSize][end%ChunkSize:], p)
		a.n += k
		p = p[k:]
	}
}

// AppendUint32 appends v, big-endian (an AVCC NAL unit length).
func (a *Arena) AppendUint32(v uint32) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	a.Append(b[:])
}

// Buffers appends to dst the pieces of the first n bytes held (n ≤ Len). They are valid
// until the next Discard or Release.
func (a *Arena) Buffers(dst [][]byte, n int) [][]byte {
	at := a.off
	for i := 0; n > 0; i++ {
		k := min(ChunkSize-at, n)
		dst = append(dst, a.c[i][at:at+k])
		n -= k
		at = 0
	}
	return dst
}

// Discard drops the first n bytes held (n ≤ Len); chunks left empty go back to the pool.
func (a *Arena) Discard(n int) {
	a.off += n
	a.n -= n
	if a.n == 0 {
		a.Release()
		return
	}
	k := a.off / ChunkSize
	for _, c := range a.c[:k] {
		chunks.Put(c)
	}
	m := copy(a.c, a.c[k:])
	clear(a.c[m:]) // no stale references to chunks back in the pool
	a.c = a.c[:m]
	a.off -= k * ChunkSize
}

// Release drops everything held and gives the chunks back to the pool.
func (a *Arena) Release() {
	for i, c := range a.c {
		chunks.Put(c)
		a.c[i] = nil
	}
	a.c, a.off, a.n = a.c[:0], 0, 0
}
