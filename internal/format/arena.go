package format

import (
	"encoding/binary"
	"sync"
)

// ArenaChunkSize is the size of an Arena's chunks.
const ArenaChunkSize = 16 << 10

// chunks is the pool every Arena of the process draws from. A track's fragment fills up
// to a fragment's worth of payload and is emptied when the fragment is written; in one
// slab per track that keeps its largest size, every stream would hold its largest
// fragment (a keyframe's) all the time. In pooled chunks, a thousand streams whose
// fragments are written at different moments hold about their average fill, half a
// fragment, and a finished stream holds nothing.
var chunks = sync.Pool{New: func() any { return new([ArenaChunkSize]byte) }}

// Arena holds a track's payloads in order, in ArenaChunkSize chunks from a pool shared by
// every Arena: Append at the end, Buffers to write a prefix (one writev), Discard to drop
// it. The zero Arena is empty and ready. It is not safe for concurrent use.
type Arena struct {
	c   []*[ArenaChunkSize]byte
	off int // start of the data in c[0]
	n   int // bytes held
}

// Len returns the bytes held.
func (a *Arena) Len() int { return a.n }

// Append appends p.
func (a *Arena) Append(p []byte) {
	for len(p) > 0 {
		end := a.off + a.n // of the data, over the chunks
		if end == len(a.c)*ArenaChunkSize {
			a.c = append(a.c, chunks.Get().(*[ArenaChunkSize]byte))
		}
		k := copy(a.c[end/ArenaChunkSize][end%ArenaChunkSize:], p)
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
		k := min(ArenaChunkSize-at, n)
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
	k := a.off / ArenaChunkSize
	for _, c := range a.c[:k] {
		chunks.Put(c)
	}
	m := copy(a.c, a.c[k:])
	clear(a.c[m:]) // no stale references to chunks back in the pool
	a.c = a.c[:m]
	a.off -= k * ArenaChunkSize
}

// Release drops everything held and gives the chunks back to the pool.
func (a *Arena) Release() {
	for i, c := range a.c {
		chunks.Put(c)
		a.c[i] = nil
	}
	a.c, a.off, a.n = a.c[:0], 0, 0
}

// ArenaWriter is a write buffer in an Arena, for a file written a piece at a time: what
// it holds lives in pooled chunks (none while it is empty), so it can batch more than an
// owned buffer of the same cost, and a flush is one writev. Write flushes once Max bytes
// are held; the caller flushes on its own schedule as well. As with bufio.Writer, an
// error is kept: every later call returns it.
type ArenaWriter struct {
	W   *KeepWriter
	Max int

	a   Arena
	iov [][]byte
	err error
}

// Write appends p, flushing once Max bytes are held.
func (b *ArenaWriter) Write(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	b.a.Append(p)
	if b.a.Len() >= b.Max {
		if err := b.Flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush writes what is held.
func (b *ArenaWriter) Flush() error {
	if b.err != nil || b.a.Len() == 0 {
		return b.err
	}
	n := b.a.Len()
	b.iov = b.a.Buffers(b.iov[:0], n)
	err := b.W.WriteBuffers(b.iov)
	clear(b.iov)
	b.a.Discard(n)
	b.err = err
	return err
}

// Release drops what is held, giving its chunks back (the file is given up).
func (b *ArenaWriter) Release() { b.a.Release() }
