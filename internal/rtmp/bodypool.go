package rtmp

import (
	"math/bits"
	"sync"
)

// Message bodies come from one pool for the whole server, in size classes (powers of two
// from minPooledBody to maxPooledBody): a connection takes a body when a message starts
// and gives it back once the message was handled (conn.run), so between messages a
// publisher holds no body at all, and a keyframe is no allocation. A real-time
// publisher's frames arrive whole in one read, so the bodies in use at once number about
// the connections being served at that moment, not the connections. (Each chunk stream
// kept its largest body of up to 32 KiB before: 32 KiB per publisher, and larger
// keyframes were allocated each time.)
const (
	minPooledBody = 512
	maxPooledBody = 1 << 20
	// poolBudget bounds the free bodies kept; beyond it they are left to the GC.
	poolBudget  = 64 << 20
	poolClasses = 12 // 512 B .. 1 MiB
)

type bodyPool struct {
	mu    sync.Mutex
	free  [poolClasses][][]byte
	bytes int // total cap of the free bodies
}

var bodies bodyPool

// class is the index of the smallest class that holds n bytes (n <= maxPooledBody).
func class(n int) int {
	if n <= minPooledBody {
		return 0
	}
	return bits.Len(uint(n-1)) - bits.Len(minPooledBody-1)
}

// get returns a body of n bytes whose content is undefined: a pooled one when n fits a
// class (its cap is the class size), else a new one.
func (p *bodyPool) get(n int) []byte {
	if n > maxPooledBody {
		return make([]byte, n)
	}
	c := class(n)
	p.mu.Lock()
	if l := len(p.free[c]); l > 0 {
		b := p.free[c][l-1]
		p.free[c][l-1] = nil
		p.free[c] = p.free[c][:l-1]
		p.bytes -= cap(b)
		p.mu.Unlock()
		return b[:n]
	}
	p.mu.Unlock()
	return make([]byte, n, minPooledBody<<c)
}

// put gives b back to the pool. Only bodies of a class size are kept (others, and any
// beyond poolBudget, are left to the GC). Nothing may use b afterwards.
func (p *bodyPool) put(b []byte) {
	c := cap(b)
	if c < minPooledBody || c > maxPooledBody || c&(c-1) != 0 {
		return
	}
	i := class(c)
	p.mu.Lock()
	if p.bytes+c <= poolBudget {
		p.free[i] = append(p.free[i], b[:0])
		p.bytes += c
	}
	p.mu.Unlock()
}
