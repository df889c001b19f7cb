package merge

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/livrec/livrec/internal/format/hls"
)

// MPEG-TS stream types livrec writes (and this demuxer reads).
const (
	tsTypeMPEG1Audio = 0x03
	tsTypeAAC        = 0x0F
	tsTypeMPEG4Video = 0x10
	tsTypeH264       = 0x1B
	tsTypeH265       = 0x24
)

// tsES is one elementary stream of a segment.
type tsES struct {
	pid uint16
	typ byte
	// The PES being collected.
	buf      []byte
	pts, dts int64
	open     bool
}

// tsDemuxer splits MPEG-TS bytes into PES payloads. It is hand-written for speed:
// mediacommon's reader (go-astits) re-parses a PES on every packet to see whether it is
// complete, which costs a third of an MP4 merge's CPU with large video PES; here a PES
// is complete when the next one of its PID starts or the segment ends (bounded PES when
// their length is reached), as in any TS demuxer. One value per merge: the PES buffers
// are reused across segments.
type tsDemuxer struct {
	pmtPID  uint16
	streams []*tsES
	free    [][]byte // buffers of the previous segment's streams
}

// tracks describes the stream set of the last segment (PID and type per stream).
func (d *tsDemuxer) tracks() string {
	var b strings.Builder
	for i, s := range d.streams {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(s.pid)) + ":" + strconv.Itoa(int(s.typ)))
	}
	return b.String()
}

// segment demuxes one segment (whole packets; a short tail is ignored) and calls onPES
// for every complete PES with a timestamp, in the order they complete. payload is only
// valid during the call. It returns the error of onPES, or one for a segment without
// PMT.
func (d *tsDemuxer) segment(b []byte, onPES func(es *tsES, pts, dts int64, payload []byte) error) error {
	for _, s := range d.streams {
		d.free = append(d.free, s.buf[:0])
	}
	d.streams, d.pmtPID = d.streams[:0], 0
	var pmtSeen bool
	for off := 0; off+tsPacketSize <= len(b); off += tsPacketSize {
		pid, pusi, payload, ok := hls.SplitPacket(b[off : off+tsPacketSize])
		if !ok {
			return fmt.Errorf("MPEG-TS: bad packet at offset %d", off)
		}
		if len(payload) == 0 {
			continue
		}
		switch {
		case pid == 0:
			if pusi && d.pmtPID == 0 {
				d.pmtPID = parsePAT(payload)
			}
			continue
		case pid == d.pmtPID && d.pmtPID != 0:
			if pusi && !pmtSeen {
				d.parsePMT(payload)
				pmtSeen = true
			}
			continue
		}
		es := d.stream(pid)
		if es == nil {
			continue
		}
		if pusi {
			if err := d.flush(es, onPES); err != nil {
				return err
			}
			es.open = true
		}
		if es.open {
			es.buf = append(es.buf, payload...)
			if n := pesBoundedLen(es.buf); n > 0 && len(es.buf) >= n {
				if err := d.flush(es, onPES); err != nil {
					return err
				}
			}
		}
	}
	if !pmtSeen {
		return errors.New("not MPEG-TS: no PMT")
	}
	for _, es := range d.streams {
		if err := d.flush(es, onPES); err != nil {
			return err
		}
	}
	return nil
}

func (d *tsDemuxer) stream(pid uint16) *tsES {
	for _, s := range d.streams {
		if s.pid == pid {
			return s
		}
	}
	return nil
}

// pesBoundedLen is the total size of a PES with a PES_packet_length, 0 if unbounded or
// not known yet.
func pesBoundedLen(b []byte) int {
	if len(b) < 6 {
		return 0
	}
	if n := int(b[4])<<8 | int(b[5]); n > 0 {
		return 6 + n
	}
	return 0
}

// flush hands the collected PES of es to onPES (a PES without a timestamp is dropped).
func (d *tsDemuxer) flush(es *tsES, onPES func(*tsES, int64, int64, []byte) error) error {
	if !es.open {
		return nil
	}
	es.open = false
	b := es.buf
	es.buf = es.buf[:0]
	if n := pesBoundedLen(b); n > 0 && len(b) > n {
		b = b[:n]
	}
	if len(b) < 9 || b[0] != 0 || b[1] != 0 || b[2] != 1 {
		return nil
	}
	hdr := 9 + int(b[8])
	if hdr > len(b) {
		return nil
	}
	pts, dts, ok := hls.PESTimestamps(b[:hdr])
	if !ok {
		return nil
	}
	return onPES(es, pts, dts, b[hdr:])
}

// section returns the PSI section that starts in a payload (after the pointer field).
func section(payload []byte) []byte {
	if len(payload) < 1 {
		return nil
	}
	p := 1 + int(payload[0])
	if p+3 > len(payload) {
		return nil
	}
	s := payload[p:]
	n := int(s[1]&0x0F)<<8 | int(s[2])
	if 3+n > len(s) || n < 9 {
		return nil // a section spanning packets: livrec's PAT/PMT fit in one
	}
	return s[:3+n-4] // without the CRC
}

// parsePAT returns the PMT PID of the first program (0 if none).
func parsePAT(payload []byte) uint16 {
	s := section(payload)
	if s == nil || s[0] != 0 {
		return 0
	}
	for i := 8; i+4 <= len(s); i += 4 {
		if prog := int(s[i])<<8 | int(s[i+1]); prog != 0 {
			return uint16(s[i+2]&0x1F)<<8 | uint16(s[i+3])
		}
	}
	return 0
}

// parsePMT declares the elementary streams.
func (d *tsDemuxer) parsePMT(payload []byte) {
	s := section(payload)
	if s == nil || s[0] != 2 || len(s) < 12 {
		return
	}
	i := 12 + (int(s[10]&0x0F)<<8 | int(s[11]))
	for i+5 <= len(s) {
		typ := s[i]
		pid := uint16(s[i+1]&0x1F)<<8 | uint16(s[i+2])
		i += 5 + (int(s[i+3]&0x0F)<<8 | int(s[i+4]))
		if d.stream(pid) != nil {
			continue
		}
		es := &tsES{pid: pid, typ: typ}
		if n := len(d.free); n > 0 {
			es.buf, d.free = d.free[n-1], d.free[:n-1]
		}
		d.streams = append(d.streams, es)
	}
}
