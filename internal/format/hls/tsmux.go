package hls

import (
	"io"
)

// This file is the hand-written MPEG-TS packetizer (see the package documentation,
// "Muxing"). It produces the same packets as mediacommon's mpegts.Writer on top of
// go-astits did: PAT/PMT layout and versions, PIDs, continuity counters, table
// repetition, PCR placement, PES headers and adaptation-field stuffing.

const (
	tsPATPID   = 0x0000
	tsPMTPID   = 0x1000
	tsFirstPID = 256

	// MPEG-TS stream types (ISO/IEC 13818-1 table 2-34).
	tsTypeMPEG1Audio = 0x03
	tsTypeMPEG2Audio = 0x04
	tsTypeAAC        = 0x0F
	tsTypeMPEG4Video = 0x10
	tsTypeH264       = 0x1B
	tsTypeH265       = 0x24

	tsStreamIDVideo = 0xE0
	tsStreamIDAudio = 0xC0

	// tsPCRDelay is how far below DTS the PCR is written (100 ms), as mediacommon does.
	tsPCRDelay = 90000 / 10
	// tsTablesPeriod repeats PAT/PMT every this many PES packets (astits' default).
	tsTablesPeriod = 40
	// tsFlushSize is the buffered size above which packets are handed to the writer: the
	// only write buffer of a recorded stream's segments (segment.BufferingMuxer). 16 KiB
	// is about 0.1 s of a 1.5 Mbit/s stream: ~10 writes a second, little memory.
	tsFlushSize = 16 * 1024
	// tsOfflineFlushSize replaces it for an offline conversion (Config.NoSync): one
	// writer running as fast as it can, so fewer, larger writes.
	tsOfflineFlushSize = 256 * 1024
	// tsTimeMask keeps the 33 bits of a 90 kHz timestamp.
	tsTimeMask = 1<<33 - 1
)

// tsStream is one elementary stream of the packetizer.
type tsStream struct {
	pid        uint16
	streamType byte
	streamID   byte
	cc         byte // continuity counter of the next packet
	leading    bool // carries the PCR
}

// tsPacketizer writes PAT/PMT and PES packets of at most two elementary streams into w.
// One exists per track set: continuity counters run on across segments.
type tsPacketizer struct {
	w       io.Writer
	streams []*tsStream

	pcrPID        uint16
	leadingChosen bool
	pcrCounter    int

	patCC, pmtCC  byte
	patVersion    int // wrapping 5-bit counters, astits style: 32 means "not yet set"
	pmtVersion    int
	patUpdated    bool
	pmtUpdated    bool
	tablesCounter int

	flushSize int       // tsFlushSize unless set
	buf       []byte    // packets not yet handed to w
	one       [1][]byte // the single piece of an audio PES
}

// init prepares the packetizer for the given streams (PIDs 256, 257, ... in order).
func (p *tsPacketizer) init(w io.Writer, streams ...*tsStream) {
	p.w = w
	p.streams = p.streams[:0]
	for i, s := range streams {
		s.pid = tsFirstPID + uint16(i)
		s.cc = 0
		s.leading = false
		p.streams = append(p.streams, s)
	}
	p.pcrPID = 0
	p.leadingChosen = false
	p.pcrCounter = 0
	p.patCC, p.pmtCC = 0, 0
	p.patVersion, p.pmtVersion = 32, 32
	p.patUpdated, p.pmtUpdated = true, true
	p.tablesCounter = tsTablesPeriod // tables before the first PES
	p.buf = p.buf[:0]
}

// limit is the buffered size above which packets are handed to w.
func (p *tsPacketizer) limit() int {
	if p.flushSize > 0 {
		return p.flushSize
	}
	return tsFlushSize
}

// flush hands the buffered packets to w. Packets are buffered until tsFlushSize is
// reached or flush is called (at the end of a segment).
func (p *tsPacketizer) flush() error {
	if len(p.buf) == 0 {
		return nil
	}
	_, err := p.w.Write(p.buf)
	p.buf = p.buf[:0]
	return err
}

// writeTables writes PAT and PMT (mediacommon's Writer.WriteTables).
func (p *tsPacketizer) writeTables() error {
	if !p.leadingChosen && len(p.streams) > 0 {
		p.pcrPID = p.streams[0].pid
		p.pmtUpdated = true
	}
	p.appendTables()
	return nil
}

// wrapInc increments a 5-bit version counter the way astits does.
func wrapInc(v int) int {
	v++
	if v > 31 {
		v = 0
	}
	return v
}

// appendTables appends one PAT and one PMT packet to the buffer.
func (p *tsPacketizer) appendTables() {
	if p.patUpdated {
		p.patVersion = wrapInc(p.patVersion)
		p.patUpdated = false
	}
	if p.pmtUpdated {
		p.pmtVersion = wrapInc(p.pmtVersion)
		p.pmtUpdated = false
	}

	// PAT: one program (1) on the PMT PID.
	pkt := p.newPSIPacket(tsPATPID, &p.patCC)
	sec := pkt[5:5]
	sec = append(sec, 0x00, 0xB0, 13, // table_id, syntax indicator, section_length
		0x00, 0x00, // transport_stream_id
		0xC1|byte(p.patVersion&0x1F)<<1, 0, 0, // version, current_next, section numbers
		0x00, 0x01, 0xE0|tsPMTPID>>8, tsPMTPID&0xFF)
	sec = appendCRC(sec)
	_ = sec

	// PMT.
	pkt = p.newPSIPacket(tsPMTPID, &p.pmtCC)
	sec = pkt[5:5]
	sectionLength := 5 + 4 + 5*len(p.streams) + 4
	sec = append(sec, 0x02, 0xB0|byte(sectionLength>>8), byte(sectionLength),
		0x00, 0x01, // program_number
		0xC1|byte(p.pmtVersion&0x1F)<<1, 0, 0,
		0xE0|byte(p.pcrPID>>8), byte(p.pcrPID),
		0xF0, 0x00) // program_info_length
	for _, s := range p.streams {
		sec = append(sec, s.streamType, 0xE0|byte(s.pid>>8), byte(s.pid), 0xF0, 0x00)
	}
	_ = appendCRC(sec)
}

// newPSIPacket appends a 0xFF-filled packet with a PSI header (pointer_field 0) and
// returns it.
func (p *tsPacketizer) newPSIPacket(pid uint16, cc *byte) []byte {
	off := len(p.buf)
	p.buf = growPacket(p.buf, p.limit())
	pkt := p.buf[off : off+tsPacketSize]
	pkt[0] = 0x47
	pkt[1] = 0x40 | byte(pid>>8)
	pkt[2] = byte(pid)
	pkt[3] = 0x10 | *cc
	*cc = (*cc + 1) & 0x0F
	pkt[4] = 0 // pointer_field
	for i := 5; i < tsPacketSize; i++ {
		pkt[i] = 0xFF
	}
	return pkt
}

// growPacket extends b by one packet. The first allocation holds what the packetizer
// buffers at most (tsFlushSize and the packets of a PES head and the tables), so it
// does not grow after that.
func growPacket(b []byte, limit int) []byte {
	n := len(b) + tsPacketSize
	if n > cap(b) {
		nb := make([]byte, len(b), max(2*cap(b), limit+4*tsPacketSize))
		copy(nb, b)
		b = nb
	}
	return b[:n]
}

// appendCRC appends the CRC-32/MPEG-2 of sec.
func appendCRC(sec []byte) []byte {
	crc := uint32(0xFFFFFFFF)
	for _, b := range sec {
		crc = crc<<8 ^ crcTable[byte(crc>>24)^b]
	}
	return append(sec, byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc))
}

var crcTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04C11DB7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// chooseLeading makes s the PCR stream if no stream carries it yet (the first stream
// written, as mediacommon does).
func (p *tsPacketizer) chooseLeading(s *tsStream) {
	if !p.leadingChosen {
		p.leadingChosen = true
		s.leading = true
		p.pcrPID = s.pid
		p.pmtUpdated = true
	}
}

// writeVideo writes one video access unit, the concatenation of data's pieces, as an
// unbounded PES (mediacommon's writeVideo): random access points get the
// random_access_indicator and a PCR. The pieces are copied straight into the packets, so
// an access unit in Annex B form needs no contiguous copy (see tsMuxer.annexB).
func (p *tsPacketizer) writeVideo(s *tsStream, pts, dts int64, randomAccess bool, data [][]byte) error {
	p.chooseLeading(s)
	pcr := int64(-1)
	if s.leading {
		if randomAccess || p.pcrCounter == 0 {
			pcr = dts - tsPCRDelay
			p.pcrCounter = 3
		}
		p.pcrCounter--
	}
	return p.writePES(s, randomAccess, pcr, pts, dts, data)
}

// writeAudio writes one audio PES (mediacommon's writeAudio): always flagged as a
// random access point, PTS only.
func (p *tsPacketizer) writeAudio(s *tsStream, pts int64, data []byte) error {
	p.chooseLeading(s)
	pcr := int64(-1)
	if s.leading {
		if p.pcrCounter == 0 {
			pcr = pts - tsPCRDelay
			p.pcrCounter = 3
		}
		p.pcrCounter--
	}
	p.one[0] = data
	err := p.writePES(s, true, pcr, pts, pts, p.one[:])
	p.one[0] = nil
	return err
}

// writePES packetizes one PES (astits' Muxer.WriteData) whose payload is the
// concatenation of data's pieces. pcr < 0 means no PCR.
func (p *tsPacketizer) writePES(s *tsStream, rai bool, pcr, pts, dts int64, data [][]byte) error {
	hasAF := rai || pcr >= 0
	p.tablesCounter++
	if (hasAF && rai && s.pid == p.pcrPID) || p.tablesCounter >= tsTablesPeriod {
		p.appendTables()
		p.tablesCounter = 0
	}
	size := 0
	for _, d := range data {
		size += len(d)
	}
	if size == 0 {
		return nil
	}

	// PES header.
	var hdr [19]byte
	hdr[2] = 1
	hdr[3] = s.streamID
	optLen := 3 + 5
	if dts != pts {
		optLen += 5
	}
	if s.streamID != tsStreamIDVideo {
		if l := size + optLen; l <= 0xFFFF {
			hdr[4], hdr[5] = byte(l>>8), byte(l)
		}
	}
	hdr[6] = 0x80
	if dts != pts {
		hdr[7] = 0xC0
		hdr[8] = 10
		putTimestamp(hdr[9:], 0x3, pts)
		putTimestamp(hdr[14:], 0x1, dts)
	} else {
		hdr[7] = 0x80
		hdr[8] = 5
		putTimestamp(hdr[9:], 0x2, pts)
	}
	pesHdr := hdr[:6+optLen]

	// First packet: adaptation field (flags, PCR, stuffing), PES header, payload.
	afLen := 0 // adaptation_field_length without stuffing
	if hasAF {
		afLen = 1
		if pcr >= 0 {
			afLen += 6
		}
	}
	first := true
	for size > 0 {
		off := len(p.buf)
		p.buf = growPacket(p.buf, p.limit())
		pkt := p.buf[off : off+tsPacketSize]
		pkt[0] = 0x47
		pkt[1] = byte(s.pid >> 8)
		pkt[2] = byte(s.pid)
		pkt[3] = 0x10 | s.cc
		s.cc = (s.cc + 1) & 0x0F

		avail := tsPacketSize - 4
		head := 0
		if first {
			pkt[1] |= 0x40
			if hasAF {
				avail -= 1 + afLen
			}
			head = len(pesHdr)
		}
		n := min(avail-head, size)
		stuff := avail - head - n
		pos := 4
		if first && hasAF {
			pkt[3] |= 0x20
			pkt[4] = byte(afLen + stuff)
			flags := byte(0)
			if rai {
				flags |= 0x40
			}
			if pcr >= 0 {
				flags |= 0x10
			}
			pkt[5] = flags
			pos = 6
			if pcr >= 0 {
				b := uint64(pcr) & tsTimeMask
				pkt[6] = byte(b >> 25)
				pkt[7] = byte(b >> 17)
				pkt[8] = byte(b >> 9)
				pkt[9] = byte(b >> 1)
				pkt[10] = byte(b<<7) | 0x7E
				pkt[11] = 0
				pos = 12
			}
			for range stuff {
				pkt[pos] = 0xFF
				pos++
			}
		} else if stuff > 0 {
			pkt[3] |= 0x20
			if stuff == 1 {
				pkt[4] = 0
				pos = 5
			} else {
				pkt[4] = byte(stuff - 1)
				pkt[5] = 0
				pos = 6
				for range stuff - 2 {
					pkt[pos] = 0xFF
					pos++
				}
			}
		}
		if first {
			pos += copy(pkt[pos:], pesHdr)
			first = false
		}
		size -= n
		for dst := pkt[pos : pos+n]; len(dst) > 0; {
			c := copy(dst, data[0])
			dst, data[0] = dst[c:], data[0][c:]
			if len(data[0]) == 0 {
				data = data[1:]
			}
		}
		if len(p.buf) >= p.limit() {
			if err := p.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// putTimestamp writes a 5-byte PES PTS/DTS field with the 4-bit prefix flag.
func putTimestamp(b []byte, flag byte, ts int64) {
	t := uint64(ts) & tsTimeMask
	b[0] = flag<<4 | byte(t>>30)<<1 | 1
	b[1] = byte(t >> 22)
	b[2] = byte(t>>15)<<1 | 1
	b[3] = byte(t >> 7)
	b[4] = byte(t)<<1 | 1
}
