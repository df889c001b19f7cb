package merge

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/livrec/livrec/internal/format/hls"
	"github.com/livrec/livrec/internal/storage"
)

const (
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
		_, pusi, pes, ok := hls.SplitPacket(b[off : off+tsPacketSize])
		if !ok {
			return 0, false
		}
		if !pusi || len(pes) < 9 || pes[0] != 0 || pes[1] != 0 || pes[2] != 1 || pes[3] < 0xC0 || pes[3] > 0xEF {
			continue
		}
		if _, dts, ok := hls.PESTimestamps(pes); ok {
			return dts, true
		}
	}
	return 0, false
}

// Shorter names of the shared MPEG-TS helpers.
const (
	tsPacketSize = hls.TSPacketSize
	tsClockMask  = hls.TSClockMask
)

var (
	ticks     = hls.Ticks
	fromTicks = hls.FromTicks
)
