package rtmp

import (
	"bufio"
	"io"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/bluenviron/gortmplib/pkg/bytecounter"
)

// Lent read buffers. A connection spends nearly all its time waiting for bytes, and a
// read buffer of its own would be held through every wait: 16 KiB per connection was a
// quarter of what an idle publisher cost, and it capped the read batching (the batch
// mark cannot exceed what one read takes). Instead a connection's reader borrows a
// buffer of readBufferSize from a pool of the process once the socket is readable, and
// gives it back when it has consumed what was read and waits again. A thousand
// connections on two cores hold a few buffers between them, so the buffer can be large
// enough for a batch of ~200 ms of a 2 Mbit/s stream in one read(2).
//
// Unread bytes at a wait are at most a split chunk header (a read ends inside one):
// they wait in the reader's carry, not in a lent buffer.

var readBufs = sync.Pool{New: func() any { return new([readBufferSize]byte) }}

// carrySize bounds what a lendReader keeps while it waits: more than the longest Peek
// of the chunk reader (an 11-byte message header).
const carrySize = 32

// lendSource is what a lendReader reads from.
type lendSource interface {
	// ReadLent reads into the buffer lend returns, calling it only once bytes can be
	// read, and calls unlend if it must wait after all (lend is then called again).
	// Errors are those of net.Conn.Read.
	ReadLent(lend func() []byte, unlend func()) (int, error)
}

// lendReader is the buffered reader of a connection (the chunk reader's bufio.Reader),
// on a buffer lent only while it holds unread bytes (see readBufs). Slices from Peek
// are valid until the next read, as with bufio. It is not safe for concurrent use.
type lendReader struct {
	src     lendSource
	counter *bytecounter.Reader   // counts the bytes read (acknowledgements)
	decrypt func(dst, src []byte) // RTMPE: decrypts what is read; nil: plain
	arr     *[readBufferSize]byte // the lent buffer; nil while waiting (or parked)
	buf     []byte                // arr[:], a parked copy, or nil
	r, w    int                   // unread bytes: buf[r:w]
	carry   [carrySize]byte       // unread bytes while waiting
	ncarry  int
	err     error // the source's error, returned once what was read is consumed

	lendFn   func() []byte // l.lend and l.unlend as values, made once
	unlendFn func()
}

func newLendReader(src lendSource, counter *bytecounter.Reader, decrypt func(dst, src []byte)) *lendReader {
	l := &lendReader{src: src, counter: counter, decrypt: decrypt}
	l.lendFn, l.unlendFn = l.lend, l.unlend
	return l
}

// lend is the source's callback: a buffer from the pool, the carry at its start.
func (l *lendReader) lend() []byte {
	l.arr = readBufs.Get().(*[readBufferSize]byte)
	l.buf = l.arr[:]
	l.r, l.w = 0, copy(l.buf, l.carry[:l.ncarry])
	return l.buf[l.w:]
}

// unlend gives the buffer back (the source waits).
func (l *lendReader) unlend() {
	if l.arr != nil {
		readBufs.Put(l.arr)
	}
	l.arr, l.buf, l.r, l.w = nil, nil, 0, 0
}

// park gives the lent buffer back before the connection waits in its handler
// (backpressure, PublishRequest.ReleaseReadBuffer), keeping the bytes not parsed yet in
// a copy of their size: a thousand publishes held back at once must not hold a buffer
// each.
func (l *lendReader) park() {
	if l.arr == nil {
		return
	}
	rest := append([]byte(nil), l.buf[l.r:l.w]...)
	readBufs.Put(l.arr)
	l.arr, l.buf, l.r, l.w = nil, rest, 0, len(rest)
}

// fill reads until at least need (≤ carrySize, or 1) bytes are unread.
func (l *lendReader) fill(need int) error {
	for l.w-l.r < need {
		if l.err != nil {
			return l.err
		}
		l.ncarry = 0
		if l.buf != nil {
			l.ncarry = copy(l.carry[:], l.buf[l.r:l.w])
			l.unlend()
		}
		n, err := l.src.ReadLent(l.lendFn, l.unlendFn)
		if l.buf == nil { // the read failed before anything was lent; the carry stays
			if err == nil {
				err = io.ErrNoProgress
			}
			l.err = err
			return err
		}
		if n > 0 {
			l.got(l.buf[l.w : l.w+n])
			l.w += n
		}
		if err != nil {
			l.err = err
			if l.r == l.w {
				l.unlend() // the connection ends: nothing to keep
			}
		}
	}
	return nil
}

// got accounts (and decrypts) bytes just read.
func (l *lendReader) got(p []byte) {
	if l.decrypt != nil {
		l.decrypt(p, p)
	}
	l.counter.SetCount(l.counter.Count() + uint64(len(p)))
}

// ReadByte reads one byte.
func (l *lendReader) ReadByte() (byte, error) {
	if err := l.fill(1); err != nil {
		return 0, err
	}
	b := l.buf[l.r]
	l.r++
	return b, nil
}

// Peek returns the next n (≤ carrySize) bytes without consuming them.
func (l *lendReader) Peek(n int) ([]byte, error) {
	if n > carrySize {
		return nil, bufio.ErrBufferFull
	}
	if err := l.fill(n); err != nil {
		return nil, err
	}
	return l.buf[l.r : l.r+n], nil
}

// Discard consumes n bytes that Peek returned.
func (l *lendReader) Discard(n int) (int, error) {
	n = min(n, l.w-l.r)
	l.r += n
	return n, nil
}

// Read reads up to len(p) bytes. With nothing unread and p at least as large as a lent
// buffer, it reads into p directly (a large chunk payload into its message body).
func (l *lendReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if l.r == l.w && len(p) >= readBufferSize && l.err == nil {
		if l.buf != nil {
			l.unlend()
		}
		n, err := l.src.ReadLent(func() []byte { return p }, func() {})
		if n > 0 {
			l.got(p[:n])
		}
		return n, err
	}
	if err := l.fill(1); err != nil {
		return 0, err
	}
	n := copy(p, l.buf[l.r:l.w])
	l.r += n
	return n, nil
}

// ReadLent implements lendSource with the deadlines of Read: on a TCP connection the
// buffer is lent from the socket's readiness callback, otherwise (a test's pipe) before
// the read.
func (d *deadlineConn) ReadLent(lend func() []byte, unlend func()) (int, error) {
	d.lend, d.unlend = lend, unlend
	n, err := d.Read(nil)
	d.lend, d.unlend = nil, nil
	return n, err
}

// readRaw reads once the socket is readable, into d.lend().
func (d *deadlineConn) readRaw() (int, error) {
	if d.raw == nil {
		return d.Conn.Read(d.lend())
	}
	d.rn, d.rerr = 0, nil
	if err := d.raw.Read(d.onReadable); err != nil {
		return 0, d.opError(err)
	}
	if d.rerr != nil {
		return 0, d.opError(os.NewSyscallError("read", d.rerr))
	}
	if d.rn == 0 {
		return 0, io.EOF
	}
	return d.rn, nil
}

// readable is the readiness callback of readRaw (bound once as d.onReadable).
func (d *deadlineConn) readable(fd uintptr) bool {
	p := d.lend()
	for {
		n, err := syscall.Read(int(fd), p)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			d.unlend()
			return false // wait for the socket (and the deadline)
		}
		d.rn, d.rerr = max(n, 0), err
		return true
	}
}

func (d *deadlineConn) opError(err error) error {
	return &net.OpError{Op: "read", Net: "tcp", Source: d.LocalAddr(), Addr: d.RemoteAddr(), Err: err}
}
