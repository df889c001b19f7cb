package hls

import "time"

// The MPEG-TS packet and clock helpers the readers of livrec's segments share (recovery
// here; merges that demux stored segments).

// TSPacketSize is the size of an MPEG-TS packet.
const TSPacketSize = 188

// TSClockMask is the range of the 33-bit 90 kHz PES clock.
const TSClockMask = 1<<33 - 1

// SplitPacket returns the PID, the payload_unit_start_indicator and the payload of one
// 188-byte packet (nil payload: none). ok is false for a packet without sync byte or
// whose adaptation field overruns it.
func SplitPacket(pkt []byte) (pid uint16, pusi bool, payload []byte, ok bool) {
	if len(pkt) < TSPacketSize || pkt[0] != 0x47 {
		return 0, false, nil, false
	}
	pid = uint16(pkt[1]&0x1F)<<8 | uint16(pkt[2])
	pusi = pkt[1]&0x40 != 0
	afc := (pkt[3] >> 4) & 3
	p := 4
	if afc&2 != 0 {
		p += 1 + int(pkt[4])
	}
	if p > TSPacketSize {
		return 0, false, nil, false
	}
	if afc&1 != 0 && p < TSPacketSize {
		payload = pkt[p:TSPacketSize]
	}
	return pid, pusi, payload, true
}

// PESTimestamps returns the PTS and DTS (DTS = PTS when absent) of a PES whose header
// starts b; ok is false without a PTS or when b is too short.
func PESTimestamps(b []byte) (pts, dts int64, ok bool) {
	if len(b) < 9 {
		return 0, 0, false
	}
	switch flags := b[7]; {
	case flags&0xC0 == 0xC0 && len(b) >= 19:
		return PESClock(b[9:14]), PESClock(b[14:19]), true
	case flags&0x80 != 0 && len(b) >= 14:
		pts = PESClock(b[9:14])
		return pts, pts, true
	}
	return 0, 0, false
}

// PESClock decodes a 33-bit PES timestamp (5 bytes).
func PESClock(b []byte) int64 {
	return int64(b[0]>>1&0x07)<<30 | int64(b[1])<<22 | int64(b[2]>>1)<<15 | int64(b[3])<<7 | int64(b[4]>>1)
}

// Ticks converts a duration to the 90 kHz clock without overflow for any realistic value.
func Ticks(d time.Duration) int64 {
	return int64(d/time.Second)*90000 + int64(d%time.Second)*90000/int64(time.Second)
}

// FromTicks converts 90 kHz ticks to a duration.
func FromTicks(t int64) time.Duration {
	return time.Duration(t/90000)*time.Second + time.Duration(t%90000)*time.Second/90000
}
