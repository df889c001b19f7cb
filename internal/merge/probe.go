package merge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/livrec/livrec/internal/storage"
)

const (
	tsPacketSize = 188
	tsClockMask  = 1<<33 - 1
	// probeBytes is read from the head of a segment to find its PMT and first PES:
	// livrec writes PAT, PMT and the first keyframe's PES header in the first packets.
	probeBytes = 256 << 10
)

// segmentHead is what the join of two inputs is decided on.
type segmentHead struct {
	tracks string // PMT: PID and stream type of each elementary stream
	first  int64  // 90 kHz DTS (PTS if none) of the first PES with a timestamp
}

// probeSegment reads the head of the TS segment under key.
func probeSegment(ctx context.Context, store storage.Store, key string) (segmentHead, error) {
	obj, err := store.Open(ctx, key)
	if err != nil {
		return segmentHead{}, fmt.Errorf("segment %s: %w", key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(io.LimitReader(obj, probeBytes))
	if err != nil {
		return segmentHead{}, fmt.Errorf("segment %s: %w", key, err)
	}
	h, err := parseSegmentHead(b)
	if err != nil {
		return segmentHead{}, fmt.Errorf("segment %s: %w", key, err)
	}
	return h, nil
}

// parseSegmentHead finds the track set (PMT) and the first timestamp of an MPEG-TS head.
func parseSegmentHead(b []byte) (segmentHead, error) {
	var d tsDemuxer
	if err := d.segment(b, func(*tsES, int64, int64, []byte) error { return nil }); err != nil {
		return segmentHead{}, err
	}
	first, ok := firstTimestamp(b)
	if !ok {
		return segmentHead{}, errors.New("no timestamped PES in the first packets")
	}
	return segmentHead{tracks: d.tracks(), first: first}, nil
}

// firstTimestamp returns the DTS (or PTS) of the first audio/video PES start in b.
func firstTimestamp(b []byte) (int64, bool) {
	for off := 0; off+tsPacketSize <= len(b); off += tsPacketSize {
		pkt := b[off : off+tsPacketSize]
		if pkt[0] != 0x47 {
			return 0, false
		}
		if pkt[1]&0x40 == 0 { // not a payload unit start
			continue
		}
		afc := (pkt[3] >> 4) & 3
		p := 4
		if afc&2 != 0 {
			p += 1 + int(pkt[4])
		}
		if afc&1 == 0 || p+19 > tsPacketSize {
			continue
		}
		pes := pkt[p:]
		if pes[0] != 0 || pes[1] != 0 || pes[2] != 1 || pes[3] < 0xC0 || pes[3] > 0xEF {
			continue
		}
		switch flags := pes[7]; {
		case flags&0xC0 == 0xC0:
			return parseClock(pes[14:19]), true
		case flags&0x80 != 0:
			return parseClock(pes[9:14]), true
		}
	}
	return 0, false
}

// parseClock decodes a 33-bit PES timestamp.
func parseClock(b []byte) int64 {
	return int64(b[0]>>1&0x07)<<30 | int64(b[1])<<22 | int64(b[2]>>1)<<15 | int64(b[3])<<7 | int64(b[4]>>1)
}

// ticks converts a duration to the 90 kHz clock.
func ticks(d time.Duration) int64 {
	return int64(d/time.Second)*90000 + int64(d%time.Second)*90000/int64(time.Second)
}

// fromTicks converts 90 kHz ticks to a duration.
func fromTicks(t int64) time.Duration {
	return time.Duration(t/90000)*time.Second + time.Duration(t%90000)*time.Second/90000
}
