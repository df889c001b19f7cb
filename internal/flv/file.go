package flv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Header is the FLV file header.
type Header struct {
	Version  uint8
	HasAudio bool
	HasVideo bool
}

// ErrNotFLV is returned by NewReader when the input does not start with an FLV header.
var ErrNotFLV = errors.New("flv: not an FLV file")

// MaxTagSize is the largest tag body the 24-bit DataSize field can describe.
const MaxTagSize = 1<<24 - 1

// Reader reads FLV tags from a file or stream. It is tolerant of a truncated tail (a file
// whose writer died mid-tag): ReadTag then returns io.EOF and Truncated reports true.
// PreviousTagSize fields are read but not enforced; mismatches are counted.
type Reader struct {
	r         *bufio.Reader
	hdr       Header
	buf       []byte
	hdrBuf    [15]byte
	truncated bool
	// Mismatches counts PreviousTagSize values that did not match the preceding tag.
	Mismatches int
	// FreshBodies makes ReadTag return every body in memory that the Reader never touches
	// again, so the caller may keep it (media.Demuxer.TakeTagBodies) instead of copying.
	// The input is then read in blocks of 1 MiB (or one tag, if larger), each allocated
	// anew, and the bodies are parts of them (no copy; a block stays in memory while a body in it is
	// referenced). By default one buffer is reused for every tag. Set it before the first
	// ReadTag.
	FreshBodies bool
	lastSize    uint32
	first       bool

	block []byte // FreshBodies: the current block; block[pos:] is not read yet
	pos   int
	off   int64 // input bytes consumed
}

// freshBlock is the size of the blocks a Reader with FreshBodies reads the input in.
const freshBlock = 1 << 20

// next returns the next n bytes of input: read into dst[:n] (reused by the caller), or
// with FreshBodies a part of the current block (never written again once handed out; the
// unread rest of a block is copied into the next one). On a short input it returns the
// error and the number of bytes there were.
func (r *Reader) next(n int, dst []byte) ([]byte, int, error) {
	if !r.FreshBodies {
		k, err := io.ReadFull(r.r, dst[:n])
		r.off += int64(k)
		return dst[:n], k, err
	}
	if len(r.block)-r.pos < n {
		b := make([]byte, max(freshBlock, n))
		m := copy(b, r.block[r.pos:])
		k, err := io.ReadAtLeast(r.r, b[m:], n-m)
		r.block, r.pos = b[:m+k], 0
		if err != nil {
			r.off += int64(m + k)
			r.block = nil
			return nil, m + k, err
		}
	}
	b := r.block[r.pos : r.pos+n : r.pos+n]
	r.pos += n
	r.off += int64(n)
	return b, n, nil
}

// NewReader reads the FLV header (and the first PreviousTagSize) from r.
func NewReader(r io.Reader) (*Reader, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	var h [9]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotFLV, err)
	}
	if h[0] != 'F' || h[1] != 'L' || h[2] != 'V' {
		return nil, ErrNotFLV
	}
	off := uint32(h[5])<<24 | uint32(h[6])<<16 | uint32(h[7])<<8 | uint32(h[8])
	if off < 9 || off > 1<<20 {
		return nil, fmt.Errorf("%w: data offset %d", ErrNotFLV, off)
	}
	if _, err := br.Discard(int(off - 9)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotFLV, err)
	}
	return &Reader{
		r:     br,
		hdr:   Header{Version: h[3], HasAudio: h[4]&0x04 != 0, HasVideo: h[4]&0x01 != 0},
		first: true,
		off:   int64(off),
	}, nil
}

// NewBytesReader reads the FLV file b held in memory (read or mapped whole). The tag
// bodies are parts of b (FreshBodies is set): nothing is copied or allocated per tag, and
// b must stay unmodified while bodies are in use.
func NewBytesReader(b []byte) (*Reader, error) {
	src := bytes.NewReader(b)
	br := bufio.NewReaderSize(src, 16)
	r, err := NewReader(br)
	if err != nil {
		return nil, err
	}
	r.FreshBodies = true
	r.block, r.pos = b[:len(b):len(b)], len(b)-src.Len()-br.Buffered()
	r.r = bufio.NewReaderSize(bytes.NewReader(nil), 16) // all input is in block
	return r, nil
}

// Header returns the file header.
func (r *Reader) Header() Header { return r.hdr }

// Offset returns the number of input bytes consumed so far (at the end of input: all of
// them, a truncated tail included).
func (r *Reader) Offset() int64 { return r.off }

// Truncated reports whether the input ended in the middle of a tag.
func (r *Reader) Truncated() bool { return r.truncated }

// ReadTag returns the next tag. Tag.Body is only valid until the next call (the buffer is
// reused), unless FreshBodies is set. At the end of input it returns io.EOF; a partial
// last tag is dropped (see Truncated). Tags of types other than audio, video and script
// are returned as they are.
func (r *Reader) ReadTag() (Tag, error) {
	// Each tag is preceded by a 4-byte PreviousTagSize (the first one, after the header,
	// is 0) and an 11-byte tag header.
	b, n, err := r.next(15, r.hdrBuf[:])
	if err != nil {
		// 0 or 4 bytes left is a clean end (the last PreviousTagSize may be missing).
		if n != 0 && n != 4 {
			r.truncated = true
		}
		return Tag{}, io.EOF
	}
	prev := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if !r.first && prev != r.lastSize {
		r.Mismatches++
	}
	r.first = false
	t := Tag{
		Type:      b[4] & 0x1f,
		Timestamp: uint32(b[8])<<16 | uint32(b[9])<<8 | uint32(b[10]) | uint32(b[11])<<24,
	}
	size := int(b[5])<<16 | int(b[6])<<8 | int(b[7])
	if !r.FreshBodies && cap(r.buf) < size {
		r.buf = make([]byte, size)
	}
	body, _, err := r.next(size, r.buf)
	if err != nil {
		r.truncated = true
		return Tag{}, io.EOF
	}
	t.Body = body
	r.lastSize = uint32(11 + size)
	return t, nil
}

// Writer writes an FLV file: the header, then tags, each followed by its PreviousTagSize.
type Writer struct {
	w   io.Writer
	buf []byte
	n   int64
}

// NewWriter writes the FLV header (version 1, with the given track flags) and the initial
// PreviousTagSize 0.
func NewWriter(w io.Writer, hasAudio, hasVideo bool) (*Writer, error) {
	var flags byte
	if hasAudio {
		flags |= 0x04
	}
	if hasVideo {
		flags |= 0x01
	}
	hdr := []byte{'F', 'L', 'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0}
	if _, err := w.Write(hdr); err != nil {
		return nil, err
	}
	return &Writer{w: w, n: int64(len(hdr))}, nil
}

// WriteTag writes one tag and its PreviousTagSize in a single Write call.
func (w *Writer) WriteTag(t Tag) error {
	if len(t.Body) > MaxTagSize {
		return fmt.Errorf("flv: tag body of %d bytes exceeds %d", len(t.Body), MaxTagSize)
	}
	size := len(t.Body)
	ts := t.Timestamp
	b := w.buf[:0]
	b = append(b, t.Type&0x1f, byte(size>>16), byte(size>>8), byte(size),
		byte(ts>>16), byte(ts>>8), byte(ts), byte(ts>>24), 0, 0, 0)
	b = append(b, t.Body...)
	total := uint32(11 + size)
	b = append(b, byte(total>>24), byte(total>>16), byte(total>>8), byte(total))
	w.buf = b
	_, err := w.w.Write(b)
	w.n += int64(len(b))
	return err
}

// Written returns the number of bytes written so far (header included).
func (w *Writer) Written() int64 { return w.n }
