package hls

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/livrec/livrec/internal/format/segment"
	"github.com/livrec/livrec/internal/storage"
)

// Recover finalizes a file whose writer died (crash, kill -9) from its working directory:
// it reads the journal, stores the complete segments that were not stored yet, cuts the
// partial current segment after its last complete frame (dropping it if it has none),
// stores it, and stores the VOD playlist under playlistKey(end), end being the wall start
// of the last segment plus its duration. If the journal already names a playlist key (the
// crash happened inside Finish or an earlier Recover), that key is used instead. On
// success the working files are removed.
//
// Recover is idempotent: run again after a failure, it finds the state it journaled and
// takes an ErrExists for an object it had already stored (same bytes) as success.
// ErrNoJournal means there is nothing to recover; ErrNoMedia that nothing decodable was
// recorded (the working files are removed).
func Recover(ctx context.Context, workDir string, store storage.Store, playlistKey func(end time.Time) string,
	logger *slog.Logger) (Result, error) {
	return segment.Recover(ctx, "hls", workDir, store, playlistKey, logger,
		func(_ context.Context, p segment.Partial) (time.Duration, int64, error) {
			return cutPartialSegment(p.Path, p.Whole)
		})
}

// cutPartialSegment truncates the MPEG-TS file at p after its last complete PES (whole
// 188-byte packets only) and returns the media duration it still holds, measured on the
// leading track (video if any). A zero duration means no complete frame: the file is left
// as is for the caller to drop. The first whole bytes are known to hold whole PES packets
// (the writer said so at a pause): a video PES, whose length is open, ending there is
// complete although no next PES follows it.
func cutPartialSegment(p string, whole int64) (time.Duration, int64, error) {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	scan, err := scanTS(bufio.NewReaderSize(f, 64<<10))
	if err != nil {
		return 0, 0, err
	}
	for _, pi := range scan.pes {
		if pi.end <= whole {
			pi.complete = true
		}
	}
	cut, kept := scan.completeCut()
	dur := leadDuration(kept)
	if dur <= 0 {
		return 0, 0, nil
	}
	if err := f.Truncate(cut); err != nil {
		return 0, 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, 0, err
	}
	return dur, cut, nil
}

const tsPacketSize = TSPacketSize

// pesInfo locates one PES in a TS file.
type pesInfo struct {
	pid        uint16
	video      bool  // stream id 0xE0–0xEF
	start, end int64 // offsets of its first packet and just past its last packet
	length     int   // PES_packet_length (0: unbounded)
	got        int   // PES bytes seen after the length field
	dts        int64 // 90 kHz (PTS if no DTS)
	complete   bool
}

type tsScan struct {
	pes   []*pesInfo
	valid int64 // bytes of whole, well-formed packets
}

// scanTS walks the packets of r and records every audio/video PES. It stops at the first
// short or malformed packet.
func scanTS(r io.Reader) (*tsScan, error) {
	s := &tsScan{}
	open := map[uint16]*pesInfo{}
	var pkt [tsPacketSize]byte
	var off int64
	for {
		if _, err := io.ReadFull(r, pkt[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			return nil, err
		}
		pid, pusi, payload, ok := SplitPacket(pkt[:])
		if !ok {
			break
		}
		s.valid = off + tsPacketSize
		if pusi && len(payload) >= 9 && payload[0] == 0 && payload[1] == 0 && payload[2] == 1 {
			if prev := open[pid]; prev != nil {
				prev.complete = true // the next PES of the PID started
			}
			sid := payload[3]
			if (sid < 0xC0 || sid > 0xEF) && sid != 0xBD {
				delete(open, pid)
				off += tsPacketSize
				continue
			}
			pi := &pesInfo{pid: pid, video: sid >= 0xE0, start: off, end: off + tsPacketSize,
				length: int(payload[4])<<8 | int(payload[5]), got: len(payload) - 6}
			if _, dts, ok := PESTimestamps(payload); ok {
				pi.dts = dts
			} else {
				pi.dts = -1
			}
			pi.complete = pi.length > 0 && pi.got >= pi.length
			s.pes = append(s.pes, pi)
			open[pid] = pi
		} else if pi := open[pid]; pi != nil && len(payload) > 0 {
			pi.got += len(payload)
			pi.end = off + tsPacketSize
			if pi.length > 0 && pi.got >= pi.length {
				pi.complete = true
			}
		}
		off += tsPacketSize
	}
	return s, nil
}

// completeCut returns the largest file length at which every PES left in the file is
// complete, and those PES.
func (s *tsScan) completeCut() (int64, []*pesInfo) {
	cut := s.valid
	for changed := true; changed; {
		changed = false
		for _, p := range s.pes {
			if p.start < cut && (!p.complete || p.end > cut) {
				cut = p.start
				changed = true
			}
		}
	}
	var kept []*pesInfo
	for _, p := range s.pes {
		if p.end <= cut && p.complete && p.dts >= 0 {
			kept = append(kept, p)
		}
	}
	return cut, kept
}

// leadDuration measures the leading track (video if any) of kept: last DTS − first DTS
// plus the last DTS delta (33-bit wrap handled).
func leadDuration(kept []*pesInfo) time.Duration {
	hasVideo := false
	for _, p := range kept {
		hasVideo = hasVideo || p.video
	}
	var first, last, prev int64
	n := 0
	for _, p := range kept {
		if p.video != hasVideo {
			continue
		}
		if n == 0 {
			first, last = p.dts, p.dts
		} else {
			prev = last
			last += (p.dts - last) & TSClockMask // forward difference modulo 2^33
		}
		n++
	}
	if n == 0 {
		return 0
	}
	frame := int64(90000 / 25)
	if !hasVideo {
		frame = 1920 // about one AAC frame at 48 kHz
	}
	if n > 1 && last > prev {
		frame = last - prev
	}
	return FromTicks(last - first + frame)
}
