package rtmp

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/bluenviron/gortmplib/pkg/bytecounter"
)

// pieceSource is a lendSource that returns data in pieces of random sizes and waits
// (borrows, then gives back, as on EAGAIN) before every other piece. It checks that its
// reader holds no lent buffer when a read begins, and that lent buffers come from the
// pool's size.
type pieceSource struct {
	t     testing.TB
	data  []byte
	rnd   *rand.Rand
	max   int
	l     *lendReader
	reads int
}

func (s *pieceSource) ReadLent(lend func() []byte, unlend func()) (int, error) {
	if s.l != nil && s.l.buf != nil {
		s.t.Fatalf("read %d begins with a lent buffer held", s.reads)
	}
	s.reads++
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	if s.reads%2 == 0 {
		lend()
		unlend()
	}
	p := lend()
	n := copy(p[:min(len(p), 1+s.rnd.IntN(s.max))], s.data)
	s.data = s.data[n:]
	return n, nil
}

// lendChunkReader reads b through a lendReader on a pieceSource (pieces of 1..max bytes).
func lendChunkReader(t testing.TB, b []byte, seed uint64, max int) (*chunkReader, *bytecounter.Reader) {
	bc := bytecounter.NewReader(nil)
	src := &pieceSource{t: t, data: b, rnd: rand.New(rand.NewPCG(seed, 1)), max: max}
	l := newLendReader(src, bc, nil)
	src.l = l
	return newChunkReader(l, bc, func(uint32) error { return nil }), bc
}

// TestLendReader: messages read through lent buffers, with reads that end anywhere (in
// headers, in payloads), equal those read through a bufio.Reader, payloads larger than
// a buffer included, and every byte is counted.
func TestLendReader(t *testing.T) {
	big, small := pattern(3*readBufferSize+5, 1), pattern(300, 2)
	var e chunkEnc
	cs := 2 * readBufferSize // chunks larger than a buffer: read into the body directly
	e.type0(2, 0, 4, msgSetChunkSize, 0).data(binary.BigEndian.AppendUint32(nil, uint32(cs)))
	for i := range 20 {
		e.type0(6, uint32(1000+i), uint32(len(big)), msgVideo, 1)
		for off := 0; off < len(big); off += cs {
			if off > 0 {
				e.type3(6)
			}
			e.data(big[off:min(off+cs, len(big))])
		}
		e.type0(4, uint32(1000+i), uint32(len(small)), msgAudio, 1).data(small)
		e.type0(7, 0xFFFFFF+uint32(i), 3, msgDataAMF0, 1).data([]byte{1, 2, 3}) // extended timestamp
	}
	input := e.Bytes()
	want := mustRead(t, input, 4096)
	for _, max := range []int{1, 5, 700, 5 * readBufferSize} {
		r, bc := lendChunkReader(t, input, uint64(max), max)
		got, err := readMessages(r)
		if err != io.EOF {
			t.Fatalf("pieces of up to %d: %v after %d messages", max, err, len(got))
		}
		checkMessages(t, got, want)
		if bc.Count() != uint64(len(input)) {
			t.Fatalf("pieces of up to %d: %d bytes counted, want %d", max, bc.Count(), len(input))
		}
	}
}

// TestLendReaderPark: parking between messages (a session about to block) gives the
// lent buffer back and loses no unread byte.
func TestLendReaderPark(t *testing.T) {
	var e chunkEnc
	for i := range 200 {
		p := pattern(100+i*37, byte(i))
		e.type0(6, uint32(i), uint32(len(p)), msgVideo, 1).data(p[:min(128, len(p))])
		for off := 128; off < len(p); off += 128 {
			e.type3(6).data(p[off:min(off+128, len(p))])
		}
	}
	input := e.Bytes()
	want := mustRead(t, input, 4096)
	r, _ := lendChunkReader(t, input, 7, 3000)
	l := r.br.(*lendReader)
	var got []message
	for {
		m, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		m.Body = append([]byte{}, m.Body...)
		got = append(got, m)
		if len(got)%3 == 0 {
			l.park()
			if l.arr != nil {
				t.Fatal("a parked reader holds its lent buffer")
			}
		}
	}
	checkMessages(t, got, want)
}

// TestLendReaderErrors: a read error is returned once the bytes before it are consumed,
// and Peek beyond the carry is refused.
func TestLendReaderErrors(t *testing.T) {
	boom := errors.New("boom")
	src := &failingSource{data: []byte("abcdef"), err: boom}
	l := newLendReader(src, bytecounter.NewReader(nil), nil)
	if b, err := l.Peek(3); err != nil || string(b) != "abc" {
		t.Fatalf("Peek: %q, %v", b, err)
	}
	l.Discard(3)
	p := make([]byte, 10)
	if n, err := l.Read(p); n != 3 || err != nil || string(p[:3]) != "def" {
		t.Fatalf("Read: %d %q %v", n, p[:n], err)
	}
	if _, err := l.ReadByte(); err != boom {
		t.Fatalf("ReadByte after the data: %v, want boom", err)
	}
	if _, err := l.Peek(carrySize + 1); err != bufio.ErrBufferFull {
		t.Fatalf("Peek beyond the carry: %v", err)
	}
}

// failingSource returns data in one read together with err.
type failingSource struct {
	data []byte
	err  error
}

func (s *failingSource) ReadLent(lend func() []byte, _ func()) (int, error) {
	n := copy(lend(), s.data)
	s.data = s.data[n:]
	return n, s.err
}
