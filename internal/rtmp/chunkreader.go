package rtmp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Limits of the chunk-stream reader. A peer exceeding one gets an error naming it and
// the connection is closed.
const (
	// maxMessageSize bounds the length of one message (the header field would allow
	// 16 MiB - 1). It is the limit gortmplib's reader had.
	maxMessageSize = 10 << 20
	// maxChunkStreams bounds the chunk streams one connection may use (real clients use
	// fewer than ten).
	maxChunkStreams = 64
	// maxChunkSize is the largest chunk size a peer may set (the protocol's maximum).
	maxChunkSize = 0x7FFFFFFF
	// eagerAllocBudget: a message body is allocated whole, at its announced length, when
	// its first chunk arrives, as long as the bodies of the connection's unfinished
	// messages stay within this many bytes. Beyond it a body grows with the data received
	// (see lazyAllocStep), so a few header bytes can never make us allocate much.
	eagerAllocBudget = 1 << 20
	// lazyAllocStep is the smallest allocation of a body that grows with its data: such
	// a body at most doubles and is at most lazyAllocStep ahead of the received bytes.
	// Messages up to this size are allocated once in any case.
	lazyAllocStep = 16 << 10
	// untrustedAllocStep replaces lazyAllocStep, and no body is allocated eagerly, before
	// the peer is trusted (a publish was accepted): a stranger's bodies then hold at most
	// twice what it sent plus this per chunk stream, whatever lengths it announces.
	untrustedAllocStep = 1 << 10
)

// Chunk header formats (the two top bits of the basic header).
const (
	chunkType0 = 0 // 11-byte message header: timestamp, length, type, stream id
	chunkType1 = 1 // 7 bytes: timestamp delta, length, type
	chunkType2 = 2 // 3 bytes: timestamp delta
	chunkType3 = 3 // no message header
)

// extTimestampMode says whether the peer repeats the extended timestamp in type-3
// chunks. Most encoders (ffmpeg, librtmp/OBS, gortmplib) do, some (older Flash-era
// encoders) do not; the first such chunk of a connection decides.
type extTimestampMode uint8

const (
	extTimestampUnknown extTimestampMode = iota
	extTimestampRepeated
	extTimestampOmitted
)

// message is one RTMP message as read by chunkReader.
type message struct {
	ChunkStreamID uint32
	Timestamp     uint32 // milliseconds
	Type          uint8
	StreamID      uint32 // message stream id (decoded little-endian, as on the wire)
	// Body comes from the server's pool of bodies (bodyPool): it is valid until it is
	// given back (chunkReader.Release, once the message was handled). Copy what must
	// outlive that.
	Body []byte
}

// chunkStream is the header state of one chunk stream and its unfinished message.
type chunkStream struct {
	id        uint32
	hasHeader bool   // a type-0 chunk was read: types 1-3 may follow
	extended  bool   // the last message header's timestamp field was 0xFFFFFF
	extField  uint32 // the extended timestamp of that header
	typ       uint8
	streamID  uint32
	length    uint32
	timestamp uint32
	delta     uint32

	pending  bool   // a message is being received
	body     []byte // its body (len == cap; may be shorter than length while it grows)
	received uint32 // bytes of it received so far
}

// bufferedReader is what the chunk reader reads from: a bufio.Reader, or a connection's
// lendReader.
type bufferedReader interface {
	io.Reader
	io.ByteReader
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
}

// byteCounter reports the bytes read from the connection (bytecounter.Reader).
type byteCounter interface{ Count() uint64 }

// chunkReader reads RTMP messages from a chunk stream. It copies each chunk's payload
// from the bufio.Reader straight into the message body, taken from the server's pool of
// bodies (bodyPool) whole when the message starts (see eagerAllocBudget for the
// exception); it allocates nothing else per chunk or message. It is not safe for
// concurrent use.
type chunkReader struct {
	br      bufferedReader
	counter byteCounter
	onAck   func(count uint32) error // called when an acknowledgement is due

	chunkSize uint32
	window    uint32 // acknowledgement window; 0: no acknowledgements
	lastAck   uint32 // byte count acknowledged so far (in steps of window)
	extMode   extTimestampMode

	low      [64]*chunkStream // streams 2-63 (1-byte basic header)
	high     map[uint32]*chunkStream
	nstreams int
	reserved int // total len of the bodies of unfinished messages

	eagerBudget int // eagerAllocBudget, 0 while the peer is untrusted
	allocStep   int // lazyAllocStep, untrustedAllocStep while the peer is untrusted
}

// newChunkReader returns a reader with the protocol's initial chunk size of 128.
// counter counts the bytes read below br; onAck is called with the count when more than
// the window size was read since the last acknowledgement.
func newChunkReader(br bufferedReader, counter byteCounter, onAck func(uint32) error) *chunkReader {
	return &chunkReader{br: br, counter: counter, onAck: onAck, chunkSize: 128,
		eagerBudget: eagerAllocBudget, allocStep: lazyAllocStep}
}

// SetTrusted selects the allocation policy: trusted (the default), bodies are allocated
// whole within eagerAllocBudget; untrusted (before authentication), every body grows
// with the data received from untrustedAllocStep on, so that the memory a connection
// holds is proportional to what it actually sent.
func (r *chunkReader) SetTrusted(trusted bool) {
	r.eagerBudget, r.allocStep = eagerAllocBudget, lazyAllocStep
	if !trusted {
		r.eagerBudget, r.allocStep = 0, untrustedAllocStep
	}
}

// SetChunkSize applies the peer's Set Chunk Size.
func (r *chunkReader) SetChunkSize(v uint32) error {
	if v == 0 || v > maxChunkSize {
		return fmt.Errorf("rtmp: chunk size %d out of range 1-%d", v, maxChunkSize)
	}
	r.chunkSize = v
	return nil
}

// SetWindowAckSize sets the acknowledgement window (0: none).
func (r *chunkReader) SetWindowAckSize(v uint32) { r.window = v }

// AbortChunkStream discards the unfinished message of a chunk stream, if any (Abort
// Message). The stream's header state is kept.
func (r *chunkReader) AbortChunkStream(id uint32) {
	cs := r.lookup(id)
	if cs == nil || !cs.pending {
		return
	}
	r.reserved -= len(cs.body)
	bodies.put(cs.body)
	cs.pending, cs.body, cs.received = false, nil, 0
}

// Release gives the body of a message read back to the pool, once nothing uses it.
func (r *chunkReader) Release(body []byte) { bodies.put(body) }

func (r *chunkReader) lookup(id uint32) *chunkStream {
	if id < uint32(len(r.low)) {
		return r.low[id]
	}
	return r.high[id]
}

// stream returns the state of chunk stream id, creating it within maxChunkStreams.
func (r *chunkReader) stream(id uint32) (*chunkStream, error) {
	if cs := r.lookup(id); cs != nil {
		return cs, nil
	}
	if r.nstreams >= maxChunkStreams {
		return nil, fmt.Errorf("rtmp: chunk stream %d exceeds the limit of %d chunk streams per connection", id, maxChunkStreams)
	}
	cs := &chunkStream{id: id}
	if id < uint32(len(r.low)) {
		r.low[id] = cs
	} else {
		if r.high == nil {
			r.high = make(map[uint32]*chunkStream)
		}
		r.high[id] = cs
	}
	r.nstreams++
	return cs, nil
}

// Read returns the next complete message, whose body is valid until the next Read.
// After an error the reader must not be used.
func (r *chunkReader) Read() (message, error) {
	for {
		msg, ok, err := r.readChunk()
		if err != nil || ok {
			return msg, err
		}
	}
}

// readChunk reads one chunk; ok reports that it completed a message.
func (r *chunkReader) readChunk() (msg message, ok bool, err error) {
	b0, err := r.br.ReadByte()
	if err != nil {
		return msg, false, err // io.EOF here is a clean end between chunks
	}
	format := b0 >> 6
	id := uint32(b0 & 0x3F)
	switch id {
	case 0: // 2-byte basic header: 64-319
		b, err := r.next(1)
		if err != nil {
			return msg, false, err
		}
		id = 64 + uint32(b[0])
	case 1: // 3-byte basic header: 64-65599
		b, err := r.next(2)
		if err != nil {
			return msg, false, err
		}
		id = 64 + uint32(b[0]) + uint32(b[1])<<8
	}
	cs, err := r.stream(id)
	if err != nil {
		return msg, false, err
	}

	if format != chunkType3 {
		if !cs.hasHeader && format != chunkType0 {
			return msg, false, fmt.Errorf("rtmp: type %d chunk on chunk stream %d without a previous type 0 chunk", format, id)
		}
		if cs.pending {
			return msg, false, fmt.Errorf("rtmp: type %d chunk on chunk stream %d in the middle of a message (expected type 3)", format, id)
		}
		if err := r.readMessageHeader(cs, format); err != nil {
			return msg, false, err
		}
	} else {
		if !cs.hasHeader {
			return msg, false, fmt.Errorf("rtmp: type 3 chunk on chunk stream %d without a previous type 0 chunk", id)
		}
		if !cs.pending {
			cs.timestamp += cs.delta // a new message with the previous header
		}
		if cs.extended {
			if err := r.skipRepeatedExtTimestamp(cs); err != nil {
				return msg, false, err
			}
		}
	}

	if !cs.pending {
		r.startMessage(cs)
	}
	if n := min(cs.length-cs.received, r.chunkSize); n > 0 {
		if err := r.readPayload(cs, n); err != nil {
			return msg, false, err
		}
	}
	if err := r.checkAck(); err != nil {
		return msg, false, err
	}
	if cs.received < cs.length {
		return msg, false, nil
	}

	msg = message{ChunkStreamID: id, Timestamp: cs.timestamp, Type: cs.typ, StreamID: cs.streamID, Body: cs.body}
	if msg.Body == nil {
		msg.Body = []byte{} // an empty message; no allocation
	}
	r.reserved -= len(cs.body)
	cs.pending, cs.body, cs.received = false, nil, 0
	return msg, true, nil
}

// readMessageHeader reads the message header of a type 0, 1 or 2 chunk (and its
// extended timestamp) into cs.
func (r *chunkReader) readMessageHeader(cs *chunkStream, format byte) error {
	size := [3]int{11, 7, 3}[format]
	b, err := r.next(size)
	if err != nil {
		return err
	}
	field := uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
	length, typ, streamID := cs.length, cs.typ, cs.streamID
	if format <= chunkType1 {
		length = uint32(b[3])<<16 | uint32(b[4])<<8 | uint32(b[5])
		typ = b[6]
		if format == chunkType0 {
			streamID = binary.LittleEndian.Uint32(b[7:11])
		}
	}
	ts := field
	if field == 0xFFFFFF {
		b, err := r.next(4)
		if err != nil {
			return err
		}
		ts = binary.BigEndian.Uint32(b)
	}
	if length > maxMessageSize {
		return fmt.Errorf("rtmp: message of %d bytes on chunk stream %d exceeds the limit of %d bytes", length, cs.id, maxMessageSize)
	}
	cs.extended, cs.extField = field == 0xFFFFFF, ts
	cs.length, cs.typ, cs.streamID = length, typ, streamID
	if format == chunkType0 {
		cs.hasHeader = true
		cs.timestamp, cs.delta = ts, 0
	} else {
		cs.timestamp += ts
		cs.delta = ts
	}
	return nil
}

// skipRepeatedExtTimestamp consumes the extended timestamp that most encoders repeat
// in type-3 chunks when the header before had one. The first such chunk of the
// connection decides whether the peer does: it does if the 4 bytes equal that header's
// extended timestamp, the message's timestamp or zero (gortmplib's writer). A peer that
// omits them and whose first such chunk payload starts with one of these values would be
// misread, which the other choices (always or never skip) would do far more often.
func (r *chunkReader) skipRepeatedExtTimestamp(cs *chunkStream) error {
	switch r.extMode {
	case extTimestampOmitted:
		return nil
	case extTimestampUnknown:
		b, err := r.br.Peek(4)
		if err != nil {
			return noEOF(err)
		}
		v := binary.BigEndian.Uint32(b)
		if v != cs.extField && v != cs.timestamp && v != 0 {
			r.extMode = extTimestampOmitted
			return nil
		}
		r.extMode = extTimestampRepeated
	}
	_, err := r.next(4)
	return err
}

// startMessage begins receiving a message of cs.length bytes on cs.
func (r *chunkReader) startMessage(cs *chunkStream) {
	cs.pending, cs.received, cs.body = true, 0, nil
	if cs.length > 0 && (cs.length <= uint32(r.allocStep) || r.reserved+int(cs.length) <= r.eagerBudget) {
		cs.body = bodies.get(int(cs.length))
		r.reserved += len(cs.body)
	}
}

// readPayload reads n bytes of cs's message into its body, growing the body first if
// it was not allocated whole.
func (r *chunkReader) readPayload(cs *chunkStream, n uint32) error {
	end := cs.received + n
	for cs.received < end {
		if cs.received == uint32(len(cs.body)) {
			r.grow(cs)
		}
		to := min(end, uint32(len(cs.body)))
		if _, err := io.ReadFull(r.br, cs.body[cs.received:to]); err != nil {
			return noEOF(err)
		}
		cs.received = to
	}
	return nil
}

// grow enlarges a full body: double, at least allocStep, at most the message length.
func (r *chunkReader) grow(cs *chunkStream) {
	size := min(max(2*len(cs.body), r.allocStep), int(cs.length))
	b := bodies.get(size)
	copy(b, cs.body[:cs.received])
	r.reserved += size - len(cs.body)
	bodies.put(cs.body)
	cs.body = b
}

// checkAck calls onAck when more than a window was read since the last acknowledgement.
func (r *chunkReader) checkAck() error {
	if r.window == 0 {
		return nil
	}
	count := uint32(r.counter.Count())
	if count-r.lastAck > r.window {
		if err := r.onAck(count); err != nil {
			return err
		}
		r.lastAck += r.window
	}
	return nil
}

// next returns the next n bytes (n <= 11), valid until the next read.
func (r *chunkReader) next(n int) ([]byte, error) {
	b, err := r.br.Peek(n)
	if err != nil {
		return nil, noEOF(err)
	}
	r.br.Discard(n)
	return b, nil
}

// noEOF turns io.EOF inside a chunk into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
