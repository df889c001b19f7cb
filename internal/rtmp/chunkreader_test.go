package rtmp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"
)

// chunkEnc builds chunk streams byte by byte, for what rawmessage.Writer cannot write:
// interleaved chunks, 2- and 3-byte chunk stream ids, omitted extended timestamps.
type chunkEnc struct{ bytes.Buffer }

func (e *chunkEnc) basic(format byte, csid uint32) {
	switch {
	case csid < 64:
		e.WriteByte(format<<6 | byte(csid))
	case csid < 320:
		e.WriteByte(format << 6)
		e.WriteByte(byte(csid - 64))
	default:
		e.WriteByte(format<<6 | 1)
		e.WriteByte(byte(csid - 64))
		e.WriteByte(byte((csid - 64) >> 8))
	}
}

func (e *chunkEnc) u24(v uint32) { e.Write([]byte{byte(v >> 16), byte(v >> 8), byte(v)}) }

// ts writes a 3-byte timestamp field (0xFFFFFF if v needs the extended field).
func (e *chunkEnc) ts(v uint32) { e.u24(min(v, 0xFFFFFF)) }

// ext writes the extended timestamp if v needs one.
func (e *chunkEnc) ext(v uint32) {
	if v >= 0xFFFFFF {
		e.Write(binary.BigEndian.AppendUint32(nil, v))
	}
}

func (e *chunkEnc) type0(csid, ts, length uint32, typ uint8, msid uint32) *chunkEnc {
	e.basic(0, csid)
	e.ts(ts)
	e.u24(length)
	e.WriteByte(typ)
	e.Write(binary.LittleEndian.AppendUint32(nil, msid))
	e.ext(ts)
	return e
}

func (e *chunkEnc) type1(csid, delta, length uint32, typ uint8) *chunkEnc {
	e.basic(1, csid)
	e.ts(delta)
	e.u24(length)
	e.WriteByte(typ)
	e.ext(delta)
	return e
}

func (e *chunkEnc) type2(csid, delta uint32) *chunkEnc {
	e.basic(2, csid)
	e.ts(delta)
	e.ext(delta)
	return e
}

// type3 writes a type-3 basic header followed by the given 4-byte values (the repeated
// extended timestamp, if any).
func (e *chunkEnc) type3(csid uint32, ext ...uint32) *chunkEnc {
	e.basic(3, csid)
	for _, v := range ext {
		e.Write(binary.BigEndian.AppendUint32(nil, v))
	}
	return e
}

func (e *chunkEnc) data(b []byte) *chunkEnc {
	e.Write(b)
	return e
}

// pattern returns n bytes that differ between seeds and positions.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7) + byte(i>>8)
	}
	return b
}

// testChunkReader reads b through a bufio.Reader of size bufSize (bufio's minimum is 16,
// which makes headers and payloads straddle refills).
func testChunkReader(b []byte, bufSize int) *chunkReader {
	bc := bytecounter.NewReader(bytes.NewReader(b))
	return newChunkReader(bufio.NewReaderSize(bc, bufSize), bc, func(uint32) error { return nil })
}

// readMessages reads until an error, applying Set Chunk Size and Abort as conn does. It
// returns the messages (with copies of their bodies, which are only valid until the
// next Read) and the error (io.EOF for a clean end).
func readMessages(r *chunkReader) ([]message, error) {
	var msgs []message
	for {
		m, err := r.Read()
		if err != nil {
			return msgs, err
		}
		c := m
		c.Body = append([]byte{}, m.Body...)
		msgs = append(msgs, c)
		switch {
		case m.Type == msgSetChunkSize && len(m.Body) == 4:
			if err := r.SetChunkSize(binary.BigEndian.Uint32(m.Body) & 0x7FFFFFFF); err != nil {
				return msgs, err
			}
		case m.Type == msgAbort && len(m.Body) == 4:
			r.AbortChunkStream(binary.BigEndian.Uint32(m.Body))
		}
	}
}

func mustRead(t *testing.T, input []byte, bufSize int) []message {
	t.Helper()
	msgs, err := readMessages(testChunkReader(input, bufSize))
	if err != io.EOF {
		t.Fatalf("read: %v (after %d messages)", err, len(msgs))
	}
	return msgs
}

func checkMessages(t *testing.T, got, want []message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ChunkStreamID != w.ChunkStreamID || g.Timestamp != w.Timestamp || g.Type != w.Type ||
			g.StreamID != w.StreamID || !bytes.Equal(g.Body, w.Body) || g.Body == nil {
			t.Errorf("message %d: got csid %d ts %d type %d msid %#x %d bytes, want csid %d ts %d type %d msid %#x %d bytes (bodies equal %v)",
				i, g.ChunkStreamID, g.Timestamp, g.Type, g.StreamID, len(g.Body),
				w.ChunkStreamID, w.Timestamp, w.Type, w.StreamID, len(w.Body), bytes.Equal(g.Body, w.Body))
		}
	}
}

// Messages split in chunks interleaved across chunk streams with 1-, 2- and 3-byte ids
// come out whole, in the order they complete.
func TestChunkReaderInterleaved(t *testing.T) {
	v, a, s1, c, s2 := pattern(300, 1), pattern(200, 2), pattern(10, 3), pattern(130, 4), pattern(10, 5)
	var e chunkEnc
	e.type0(6, 1000, 300, msgVideo, 1).data(v[:128])
	e.type0(4, 1010, 200, msgAudio, 1).data(a[:128])
	e.type0(100, 5, 10, msgDataAMF0, 1).data(s1)
	e.type3(6).data(v[128:256])
	e.type0(65599, 7, 130, msgCommandAMF0, 0x01020304).data(c[:128])
	e.type3(4).data(a[128:])
	e.type0(319, 9, 0, msgAudio, 1)
	e.type3(65599).data(c[128:])
	e.type0(320, 11, 1, msgVideo, 1).data([]byte{42})
	e.type3(6).data(v[256:])
	e.type3(100).data(s2) // a new message with the same header, delta 0
	want := []message{
		{100, 5, msgDataAMF0, 1, s1},
		{4, 1010, msgAudio, 1, a},
		{319, 9, msgAudio, 1, []byte{}},
		{65599, 7, msgCommandAMF0, 0x01020304, c},
		{320, 11, msgVideo, 1, []byte{42}},
		{6, 1000, msgVideo, 1, v},
		{100, 5, msgDataAMF0, 1, s2},
	}
	for _, size := range []int{16, 100, readBufferSize} {
		checkMessages(t, mustRead(t, e.Bytes(), size), want)
	}
}

// Timestamps follow the header types: absolute (0), delta (1, 2), repeated delta (3
// starting a message; 0 after a type-0 header, as gortmplib reads it).
func TestChunkReaderHeaderTypes(t *testing.T) {
	var e chunkEnc
	e.type0(3, 100, 4, msgAudio, 1).data(pattern(4, 0))
	e.type1(3, 20, 6, msgVideo).data(pattern(6, 1))
	e.type2(3, 30).data(pattern(6, 2))
	e.type3(3).data(pattern(6, 3))
	e.type3(3).data(pattern(6, 4))
	e.type1(3, 0, 0, msgVideo)
	e.type0(3, 50, 2, msgAudio, 7).data(pattern(2, 5))
	e.type3(3).data(pattern(2, 6))
	e.type1(3, 0xFFFFFFFF-49, 1, msgAudio).data([]byte{1}) // wraps around to 0
	want := []message{
		{3, 100, msgAudio, 1, pattern(4, 0)},
		{3, 120, msgVideo, 1, pattern(6, 1)},
		{3, 150, msgVideo, 1, pattern(6, 2)},
		{3, 180, msgVideo, 1, pattern(6, 3)},
		{3, 210, msgVideo, 1, pattern(6, 4)},
		{3, 210, msgVideo, 1, []byte{}},
		{3, 50, msgAudio, 7, pattern(2, 5)},
		{3, 50, msgAudio, 7, pattern(2, 6)},
		{3, 0, msgAudio, 7, []byte{1}},
	}
	checkMessages(t, mustRead(t, e.Bytes(), 16), want)
}

func TestChunkReaderExtendedTimestamp(t *testing.T) {
	const big = 0x01000000
	v1, v2, v3 := pattern(300, 0xA0), pattern(300, 0xB0), pattern(10, 0xC0)
	want := []message{
		{5, big, msgVideo, 1, v1},
		{5, big, msgVideo, 1, v2}, // type 3 after type 0: delta 0
		{5, 2 * big, msgVideo, 1, v3},
		{5, 3 * big, msgVideo, 1, v3},
		{5, 3*big + 40, msgVideo, 1, v1},
	}
	// build writes the stream, calling rep for the 4 bytes a type-3 chunk carries (none
	// if it returns nil).
	build := func(rep func(field uint32) []uint32) []byte {
		var e chunkEnc
		e.type0(5, big, 300, msgVideo, 1).data(v1[:128])
		e.type3(5, rep(big)...).data(v1[128:256])
		e.type3(5, rep(big)...).data(v1[256:])
		e.type3(5, rep(big)...).data(v2[:128])
		e.type3(5, rep(big)...).data(v2[128:256])
		e.type3(5, rep(big)...).data(v2[256:])
		e.type1(5, big, 10, msgVideo).data(v3) // extended delta
		e.type3(5, rep(big)...).data(v3)
		e.type1(5, 40, 300, msgVideo).data(v1[:128]) // a 3-byte delta: no more extended fields
		e.type3(5).data(v1[128:256])
		e.type3(5).data(v1[256:])
		return e.Bytes()
	}
	t.Run("repeated", func(t *testing.T) { // ffmpeg, librtmp
		in := build(func(f uint32) []uint32 { return []uint32{f} })
		checkMessages(t, mustRead(t, in, 16), want)
	})
	t.Run("zeros", func(t *testing.T) { // gortmplib's writer
		in := build(func(uint32) []uint32 { return []uint32{0} })
		checkMessages(t, mustRead(t, in, 16), want)
	})
	t.Run("omitted", func(t *testing.T) {
		in := build(func(uint32) []uint32 { return nil })
		checkMessages(t, mustRead(t, in, 16), want)
	})
	t.Run("decided once", func(t *testing.T) {
		// Once the peer was seen repeating the field, any 4 bytes are taken for it.
		n := 0
		in := build(func(f uint32) []uint32 {
			n++
			if n == 1 {
				return []uint32{f}
			}
			return []uint32{0xDEADBEEF}
		})
		checkMessages(t, mustRead(t, in, 16), want)
	})
	t.Run("absolute timestamp repeated", func(t *testing.T) {
		// A type-1 header with an extended delta, whose type-3 chunks repeat the message's
		// absolute timestamp instead.
		var e chunkEnc
		e.type0(5, 10, 1, msgAudio, 1).data([]byte{1})
		e.type1(5, big, 200, msgVideo).data(v1[:128])
		e.type3(5, big+10).data(v1[128:200])
		checkMessages(t, mustRead(t, e.Bytes(), 16), []message{
			{5, 10, msgAudio, 1, []byte{1}},
			{5, big + 10, msgVideo, 1, v1[:200]},
		})
		// The same when the first type-3 chunk starts a new message.
		e.Reset()
		e.type0(5, 10, 1, msgAudio, 1).data([]byte{1})
		e.type1(5, big, 5, msgVideo).data(v1[:5])
		e.type3(5, 2*big+10).data(v1[5:10])
		checkMessages(t, mustRead(t, e.Bytes(), 16), []message{
			{5, 10, msgAudio, 1, []byte{1}},
			{5, big + 10, msgVideo, 1, v1[:5]},
			{5, 2*big + 10, msgVideo, 1, v1[5:10]},
		})
	})
}

// What gortmplib's writer produces (any chunk size, chunk stream, timestamp incl.
// extended and decreasing ones, message type and length) reads back unchanged.
func TestChunkReaderGortmplibWriter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, chunkSize := range []uint32{1, 7, 128, 4096, 1 << 20} {
		var buf bytes.Buffer
		w := rawmessage.NewWriter(&buf, bytecounter.NewWriter(&buf), false)
		w.SetChunkSize(chunkSize)
		var want []message
		tss := map[byte]uint32{}
		for range 300 {
			csid := byte(2 + rng.IntN(10))
			switch rng.IntN(6) {
			case 0:
				tss[csid] = uint32(rng.Int64N(1 << 32))
			case 1:
				tss[csid] -= uint32(rng.IntN(1000))
			case 2:
				tss[csid] += 0xFFFFFF + uint32(rng.IntN(3))
			default:
				tss[csid] += uint32(rng.IntN(50))
			}
			ts := tss[csid]
			msid := []uint32{0, rawStreamID, rng.Uint32()}[rng.IntN(3)]
			typ := uint8(3 + rng.IntN(27)) // not Set Chunk Size or Abort
			body := pattern(rng.IntN(1000), byte(rng.IntN(256)))
			if rng.IntN(20) == 0 {
				body = body[:0]
			}
			if err := w.Write(&rawmessage.Message{ChunkStreamID: csid, Type: typ, MessageStreamID: msid,
				Timestamp: time.Duration(ts) * time.Millisecond, Body: body}); err != nil {
				t.Fatal(err)
			}
			want = append(want, message{uint32(csid), ts, typ, bits.ReverseBytes32(msid), body})
		}
		r := testChunkReader(buf.Bytes(), 64)
		if err := r.SetChunkSize(chunkSize); err != nil {
			t.Fatal(err)
		}
		got, err := readMessages(r)
		if err != io.EOF {
			t.Fatalf("chunk size %d: %v", chunkSize, err)
		}
		checkMessages(t, got, want)
	}
}

// A Set Chunk Size between two chunks of a message applies to the message's next chunk.
func TestChunkReaderChunkSizeChange(t *testing.T) {
	v, v2 := pattern(1000, 1), pattern(600, 2)
	var e chunkEnc
	e.type0(6, 0, 1000, msgVideo, 1).data(v[:128])
	e.type0(2, 0, 4, msgSetChunkSize, 0).data(be32(500))
	e.type3(6).data(v[128:628])
	e.type3(6).data(v[628:])
	e.type1(6, 40, 600, msgVideo).data(v2[:500])
	e.type0(2, 0, 4, msgSetChunkSize, 0).data(be32(1))
	e.type3(6).data(v2[500:501])
	for i := 501; i < 600; i++ {
		e.type3(6).data(v2[i : i+1])
	}
	checkMessages(t, mustRead(t, e.Bytes(), 16), []message{
		{2, 0, msgSetChunkSize, 0, be32(500)},
		{6, 0, msgVideo, 1, v},
		{2, 0, msgSetChunkSize, 0, be32(1)},
		{6, 40, msgVideo, 1, v2},
	})
}

// Abort discards the unfinished message of a chunk stream and keeps its header.
func TestChunkReaderAbort(t *testing.T) {
	v, a := pattern(300, 1), pattern(300, 2)
	var e chunkEnc
	e.type0(6, 0, 300, msgVideo, 1).data(pattern(128, 9))
	e.type0(7, 10, 300, msgAudio, 1).data(pattern(128, 9))
	e.type0(2, 0, 4, msgAbort, 0).data(be32(6))
	e.type0(2, 0, 4, msgAbort, 0).data(be32(7))
	e.type0(2, 0, 4, msgAbort, 0).data(be32(99))       // unknown stream
	e.type0(2, 0, 4, msgAbort, 0).data(be32(6))        // nothing pending
	e.type0(6, 40, 20, msgVideo, 1).data(v[:20])       // a type 0 is fine again
	e.type3(7).data(a[:128]).type3(7).data(a[128:256]) // a new message with the header
	e.type3(7).data(a[256:])
	r := testChunkReader(e.Bytes(), 16)
	got, err := readMessages(r)
	if err != io.EOF {
		t.Fatal(err)
	}
	checkMessages(t, got, []message{
		{2, 0, msgAbort, 0, be32(6)},
		{2, 0, msgAbort, 0, be32(7)},
		{2, 0, msgAbort, 0, be32(99)},
		{2, 0, msgAbort, 0, be32(6)},
		{6, 40, msgVideo, 1, v[:20]},
		{7, 10, msgAudio, 1, a},
	})
	if r.reserved != 0 {
		t.Errorf("reserved %d after all messages completed or aborted", r.reserved)
	}
}

func TestChunkReaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input func(e *chunkEnc)
		err   string // substring; "EOF" and "unexpected EOF" are matched exactly
	}{
		{"empty", func(*chunkEnc) {}, "EOF"},
		{"type 1 first", func(e *chunkEnc) { e.type1(3, 0, 1, 8).data([]byte{1}) }, "type 1 chunk on chunk stream 3 without a previous type 0"},
		{"type 2 first", func(e *chunkEnc) { e.type2(3, 0).data([]byte{1}) }, "type 2 chunk on chunk stream 3 without"},
		{"type 3 first", func(e *chunkEnc) { e.type3(70).data([]byte{1}) }, "type 3 chunk on chunk stream 70 without"},
		{"type 0 mid-message", func(e *chunkEnc) {
			e.type0(3, 0, 200, 8, 1).data(pattern(128, 0)).type0(3, 0, 1, 8, 1).data([]byte{1})
		}, "type 0 chunk on chunk stream 3 in the middle of a message"},
		{"type 1 mid-message", func(e *chunkEnc) {
			e.type0(3, 0, 200, 8, 1).data(pattern(128, 0)).type1(3, 0, 1, 8).data([]byte{1})
		}, "type 1 chunk on chunk stream 3 in the middle"},
		{"message too long", func(e *chunkEnc) { e.type0(3, 0, maxMessageSize+1, 9, 1) },
			"message of 10485761 bytes on chunk stream 3 exceeds the limit of 10485760 bytes"},
		{"type 1 too long", func(e *chunkEnc) { e.type0(3, 0, 0, 9, 1).type1(3, 0, 0xFFFFFF, 9) },
			"exceeds the limit of 10485760 bytes"},
		{"truncated basic header", func(e *chunkEnc) { e.WriteByte(1) }, "unexpected EOF"},
		{"truncated message header", func(e *chunkEnc) { e.Write([]byte{3, 0, 0, 0, 0}) }, "unexpected EOF"},
		{"truncated extended timestamp", func(e *chunkEnc) { e.type0(3, 0xFFFFFF, 1, 8, 1).Truncate(e.Len() - 1) }, "unexpected EOF"},
		{"truncated payload", func(e *chunkEnc) { e.type0(3, 0, 10, 8, 1).data([]byte{1, 2}) }, "unexpected EOF"},
		{"truncated repeated extended timestamp", func(e *chunkEnc) {
			e.type0(3, 0xFFFFFF, 200, 8, 1).data(pattern(128, 0)).type3(3).data([]byte{0, 0})
		}, "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e chunkEnc
			tc.input(&e)
			msgs, err := readMessages(testChunkReader(e.Bytes(), 16))
			switch {
			case len(msgs) > 1:
				t.Errorf("%d messages", len(msgs))
			case err == nil:
				t.Errorf("no error")
			case tc.err == "EOF" || tc.err == "unexpected EOF":
				if err.Error() != tc.err {
					t.Errorf("error %q, want %q", err, tc.err)
				}
			case !strings.Contains(err.Error(), tc.err):
				t.Errorf("error %q, want %q", err, tc.err)
			}
		})
	}
}

func TestChunkReaderLimits(t *testing.T) {
	t.Run("chunk streams", func(t *testing.T) {
		var e chunkEnc
		for i := range uint32(maxChunkStreams) {
			id := 2 + i // 1-byte ids, then 3-byte ones
			if i >= maxChunkStreams/2 {
				id = 1000 + i
			}
			e.type0(id, 0, 1, msgAudio, 1).data([]byte{1})
		}
		e.type0(3, 0, 1, msgAudio, 1).data([]byte{1}) // a known one is fine
		e.type0(65599, 0, 1, msgAudio, 1).data([]byte{1})
		msgs, err := readMessages(testChunkReader(e.Bytes(), 16))
		if len(msgs) != maxChunkStreams+1 || err == nil ||
			err.Error() != "rtmp: chunk stream 65599 exceeds the limit of 64 chunk streams per connection" {
			t.Fatalf("%d messages, error %v", len(msgs), err)
		}
	})
	t.Run("chunk size", func(t *testing.T) {
		r := testChunkReader(nil, 16)
		for _, v := range []uint32{0, maxChunkSize + 1} {
			if err := r.SetChunkSize(v); err == nil || !strings.Contains(err.Error(), "out of range 1-2147483647") {
				t.Errorf("SetChunkSize(%d): %v", v, err)
			}
		}
		if err := r.SetChunkSize(maxChunkSize); err != nil {
			t.Error(err)
		}
	})
	t.Run("allocation", func(t *testing.T) {
		// Headers announcing big messages do not make the reader allocate them whole
		// beyond eagerAllocBudget.
		var e chunkEnc
		e.type0(3, 0, 600<<10, msgVideo, 1).data(pattern(128, 0)) // eager
		e.type0(4, 0, 600<<10, msgVideo, 1).data(pattern(128, 0)) // over the budget
		e.type0(5, 0, maxMessageSize, msgVideo, 1).data(pattern(128, 0))
		e.type0(6, 0, 1000, msgVideo, 1).data(pattern(128, 0)) // small: exact
		r := testChunkReader(e.Bytes(), 16)
		if _, err := readMessages(r); err != io.EOF {
			t.Fatal(err)
		}
		lens := []int{len(r.low[3].body), len(r.low[4].body), len(r.low[5].body), len(r.low[6].body)}
		if want := []int{600 << 10, lazyAllocStep, lazyAllocStep, 1000}; !reflect.DeepEqual(lens, want) {
			t.Errorf("body sizes %v, want %v", lens, want)
		}
		if r.reserved != 600<<10+2*lazyAllocStep+1000 {
			t.Errorf("reserved %d", r.reserved)
		}
	})
	t.Run("growing body", func(t *testing.T) {
		// A message over the budget is read correctly into a growing body.
		big := pattern(3<<20+5, 7)
		var e chunkEnc
		e.type0(2, 0, 4, msgSetChunkSize, 0).data(be32(100000))
		e.type0(3, 0, uint32(len(big)), msgVideo, 1)
		for i := 0; i < len(big); i += 100000 {
			if i > 0 {
				e.type3(3)
			}
			e.data(big[i:min(i+100000, len(big))])
		}
		msgs := mustRead(t, e.Bytes(), readBufferSize)
		checkMessages(t, msgs[1:], []message{{3, 0, msgVideo, 1, big}})
	})
}

// An acknowledgement is due every window's worth of bytes read, as with gortmplib.
func TestChunkReaderAck(t *testing.T) {
	var buf bytes.Buffer
	w := rawmessage.NewWriter(&buf, bytecounter.NewWriter(&buf), false)
	for i := range 200 {
		w.Write(&rawmessage.Message{ChunkStreamID: 6, Type: msgVideo, Body: pattern(i*7%500, byte(i))})
	}
	acks := func(read func(br *bufio.Reader, bc *bytecounter.Reader, onAck func(uint32) error) error) []uint32 {
		var got []uint32
		bc := bytecounter.NewReader(bytes.NewReader(buf.Bytes()))
		err := read(bufio.NewReaderSize(bc, 4096), bc, func(n uint32) error { got = append(got, n); return nil })
		if err != io.EOF {
			t.Fatal(err)
		}
		return got
	}
	ours := acks(func(br *bufio.Reader, bc *bytecounter.Reader, onAck func(uint32) error) error {
		r := newChunkReader(br, bc, onAck)
		r.SetWindowAckSize(1000)
		_, err := readMessages(r)
		return err
	})
	theirs := acks(func(br *bufio.Reader, bc *bytecounter.Reader, onAck func(uint32) error) error {
		r := rawmessage.NewReader(br, bc, onAck)
		r.SetWindowAckSize(1000)
		for {
			if _, err := r.Read(); err != nil {
				return err
			}
		}
	})
	if len(ours) < buf.Len()/1000-5 || !reflect.DeepEqual(ours, theirs) {
		t.Errorf("acknowledgements %v, gortmplib's %v (%d bytes)", ours, theirs, buf.Len())
	}

	// An error of the callback ends the read.
	bc := bytecounter.NewReader(bytes.NewReader(buf.Bytes()))
	boom := errors.New("boom")
	r := newChunkReader(bufio.NewReaderSize(bc, 16), bc, func(uint32) error { return boom })
	r.SetWindowAckSize(100)
	if _, err := readMessages(r); err != boom {
		t.Errorf("error %v", err)
	}
}

// Bodies come from the server's pool: a body given back (Release) serves a later
// message of any size it holds, of any chunk stream or connection; one not given back is
// never handed out again while in use; each body is complete when Read returns it,
// whichever memory it is in; and the pool keeps at most poolBudget free.
func TestChunkReaderPoolsBodies(t *testing.T) {
	var e chunkEnc
	type sent struct {
		csid uint32
		body []byte
	}
	var want []sent
	add := func(csid uint32, n int) {
		b := pattern(n, byte(len(want)))
		want = append(want, sent{csid, b})
		e.type0(csid, uint32(len(want)), uint32(len(b)), msgVideo, 1)
		for j := 0; j < len(b); j += 128 {
			if j > 0 {
				e.type3(csid)
			}
			e.data(b[j:min(j+128, len(b))])
		}
	}
	for i := range 30 {
		add(uint32(3+i%3), 50+i*397) // up to ~11 KiB, on three chunk streams
	}
	add(6, maxPooledBody+1) // beyond the classes: its own memory, not pooled
	r := testChunkReader(e.Bytes(), 16)
	r2 := testChunkReader(e.Bytes(), 16) // a second connection, sharing the pool
	held := map[*byte]int{}              // bodies in use (not released) → message
	released := map[*byte]bool{}
	reused := 0
	for i, w := range want {
		for k, rd := range []*chunkReader{r, r2} {
			m, err := rd.Read()
			if err != nil {
				t.Fatalf("reader %d message %d: %v", k, i, err)
			}
			if m.ChunkStreamID != w.csid || !bytes.Equal(m.Body, w.body) {
				t.Fatalf("reader %d message %d: chunk stream %d, %d bytes, want %d, %d bytes (equal %v)",
					k, i, m.ChunkStreamID, len(m.Body), w.csid, len(w.body), bytes.Equal(m.Body, w.body))
			}
			p := unsafe.SliceData(m.Body)
			if at, ok := held[p]; ok {
				t.Fatalf("reader %d message %d got the memory of message %d, still in use", k, i, at)
			}
			if released[p] {
				reused++
				delete(released, p)
			}
			checkChunkReaderMemory(t, rd)
			if k == 0 && i%2 == 0 {
				held[p] = i // kept by its session: never released
				continue
			}
			rd.Release(m.Body)
			if c := cap(m.Body); c >= minPooledBody && c <= maxPooledBody {
				released[p] = true
			}
		}
	}
	if reused < len(want)/2 {
		t.Errorf("%d of %d messages reused a released body", reused, 2*len(want))
	}
	bodies.mu.Lock()
	free := bodies.bytes
	bodies.mu.Unlock()
	if free > poolBudget {
		t.Errorf("the pool keeps %d bytes free, budget %d", free, poolBudget)
	}
}

// Reading a message of several chunks allocates nothing once a body of its class was
// given back to the pool: the previous message's memory is reused.
func TestChunkReaderAllocs(t *testing.T) {
	var e chunkEnc
	body := pattern(15000, 1)
	e.type0(6, 0, uint32(len(body)), msgVideo, 1)
	for i := 0; i < len(body); i += 4096 {
		if i > 0 {
			e.type3(6)
		}
		e.data(body[i:min(i+4096, len(body))])
	}
	in := e.Bytes()
	src := bytes.NewReader(in)
	bc := bytecounter.NewReader(src)
	br := bufio.NewReaderSize(bc, readBufferSize)
	r := newChunkReader(br, bc, func(uint32) error { return nil })
	r.SetChunkSize(4096)
	r.SetWindowAckSize(1000)
	allocs := testing.AllocsPerRun(100, func() {
		src.Reset(in)
		br.Reset(bc)
		m, err := r.Read()
		if err != nil || len(m.Body) != len(body) {
			t.Fatalf("%v, %d bytes", err, len(m.Body))
		}
		r.Release(m.Body)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per message, want 0", allocs)
	}
}

// The server takes commands and media on chunk streams with 2- and 3-byte ids and
// replies to commands from them (on chunk stream 3).
func TestConnExtendedChunkStreamIDs(t *testing.T) {
	var e chunkEnc
	msg := func(csid, ts uint32, typ uint8, msid uint32, body []byte) {
		e.type0(csid, ts, uint32(len(body)), typ, msid)
		for i := 0; i < len(body); i += 128 {
			if i > 0 {
				e.type3(csid)
			}
			e.data(body[i:min(i+128, len(body))])
		}
	}
	msg(300, 0, msgCommandAMF0, 0, amfBytes(t, "connect", 1.0, amf0.Object{
		{Key: "app", Value: "live"}, {Key: "tcUrl", Value: "rtmp://h/live"},
	}))
	msg(64, 0, msgCommandAMF0, 0, amfBytes(t, "createStream", 2.0, nil))
	msg(65599, 0, msgCommandAMF0, 1, amfBytes(t, "publish", 3.0, nil, "s", "live"))
	video := append([]byte{0x17, 0, 0, 0, 0}, pattern(400, 1)...)
	msg(1000, 40, msgVideo, 1, video)
	msg(319, 0xFFFFFF+5, msgAudio, 1, pattern(200, 2))
	msg(64, 0, msgCommandAMF0, 0, amfBytes(t, "deleteStream", 4.0, nil, 1.0))
	h := runConn(t, fuzzInput(e.Bytes()))
	ss := h.sessions()
	if len(ss) != 1 {
		t.Fatalf("%d sessions", len(ss))
	}
	s := ss[0]
	if s.closeErr != nil || len(s.tags) != 2 || s.tags[0].Timestamp != 40 || !bytes.Equal(s.tags[0].Body, video) ||
		s.tags[1].Timestamp != 0xFFFFFF+5 || len(s.tags[1].Body) != 200 {
		t.Fatalf("close %v, tags %d", s.closeErr, len(s.tags))
	}
}

// BenchmarkChunkReader reads 1000 video messages of 15000 bytes (4 chunks of 4096 bytes)
// each followed by a 400-byte audio message, with gortmplib's reader and with ours.
func BenchmarkChunkReader(b *testing.B) {
	var buf bytes.Buffer
	w := rawmessage.NewWriter(&buf, bytecounter.NewWriter(&buf), false)
	w.SetChunkSize(4096)
	video, audio := pattern(15000, 1), pattern(400, 2)
	for i := range 1000 {
		ts := time.Duration(i) * 40 * time.Millisecond
		w.Write(&rawmessage.Message{ChunkStreamID: 6, Type: msgVideo, MessageStreamID: rawStreamID, Timestamp: ts, Body: video})
		w.Write(&rawmessage.Message{ChunkStreamID: 4, Type: msgAudio, MessageStreamID: rawStreamID, Timestamp: ts, Body: audio})
	}
	in := buf.Bytes()
	run := func(b *testing.B, read func(br *bufio.Reader, bc *bytecounter.Reader) int) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for range b.N {
			bc := bytecounter.NewReader(bytes.NewReader(in))
			if n := read(bufio.NewReaderSize(bc, readBufferSize), bc); n != 2000 {
				b.Fatalf("%d messages", n)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2000), "ns/msg")
	}
	noAck := func(uint32) error { return nil }
	b.Run("gortmplib", func(b *testing.B) {
		run(b, func(br *bufio.Reader, bc *bytecounter.Reader) int {
			r := rawmessage.NewReader(br, bc, noAck)
			r.SetChunkSize(4096)
			r.SetWindowAckSize(DefaultWindowAckSize)
			n := 0
			for {
				if _, err := r.Read(); err != nil {
					return n
				}
				n++
			}
		})
	})
	b.Run("chunkReader", func(b *testing.B) {
		run(b, func(br *bufio.Reader, bc *bytecounter.Reader) int {
			r := newChunkReader(br, bc, noAck)
			r.SetChunkSize(4096)
			r.SetWindowAckSize(DefaultWindowAckSize)
			n := 0
			for {
				if _, err := r.Read(); err != nil {
					return n
				}
				n++
			}
		})
	})
}
