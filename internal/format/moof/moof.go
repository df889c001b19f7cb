// Package moof lays out the head of an ISO BMFF movie fragment — moof, then the mdat
// header — for writers that keep the payloads apart (one arena per track) and write them
// after it, so a fragment is never copied whole into one buffer. The mp4 working file and
// the cmaf segments share it.
//
// Hand-written rather than mediacommon's fmp4.Part.Marshal, which needs the payloads in
// the samples, marshals them into one buffer with the boxes (the fragment held twice) and
// goes through go-mp4's reflection (about 60 allocations per access unit).
package moof

import (
	"encoding/binary"
	"math"
)

// Sample is a sample of a fragment; its payload is written by the caller.
type Sample struct {
	Size uint32
	Dur  uint32
	CTS  int32 // composition offset (PTS - DTS) in the track's timescale
	Sync bool
}

// Track is a track's part of a fragment: its samples, whose payloads follow each other
// in the mdat, after those of the tracks before it.
type Track struct {
	ID       uint32
	BaseTime uint64 // decode time of the first sample (tfdt)
	Samples  []Sample
}

// Append appends to b the moof of fragment seq (mfhd, then per track a traf with tfhd
// default-base-is-moof, tfdt v1 and one trun v1) and the mdat header for the payloads of
// tracks, track after track. Tracks without samples are left out. The caller writes the
// payloads right after the returned bytes.
func Append(b []byte, seq uint32, tracks []Track) []byte {
	be := binary.BigEndian
	u32 := func(v uint32) { b = be.AppendUint32(b, v) }
	boxStart := func(typ string) int {
		at := len(b)
		b = append(b, 0, 0, 0, 0)
		b = append(b, typ...)
		return at
	}
	boxEnd := func(at int) { be.PutUint32(b[at:], uint32(len(b)-at)) }

	moof := boxStart("moof")
	mfhd := boxStart("mfhd")
	u32(0)
	u32(seq)
	boxEnd(mfhd)
	type fix struct{ at, rel int }
	var fixBuf [4]fix
	fixes := fixBuf[:0]
	payload := 0
	for _, t := range tracks {
		if len(t.Samples) == 0 {
			continue
		}
		traf := boxStart("traf")
		tfhd := boxStart("tfhd")
		u32(0x020000) // default-base-is-moof
		u32(t.ID)
		boxEnd(tfhd)
		tfdt := boxStart("tfdt")
		u32(1 << 24)
		b = be.AppendUint64(b, t.BaseTime)
		boxEnd(tfdt)
		flags := uint32(0x001 | 0x100 | 0x200) // data offset, durations, sizes
		for _, s := range t.Samples {
			if !s.Sync {
				flags |= 0x400
			}
			if s.CTS != 0 {
				flags |= 0x800
			}
		}
		trun := boxStart("trun")
		u32(1<<24 | flags)
		u32(uint32(len(t.Samples)))
		fixes = append(fixes, fix{at: len(b), rel: payload})
		u32(0) // data offset, fixed below
		for _, s := range t.Samples {
			u32(s.Dur)
			u32(s.Size)
			if flags&0x400 != 0 {
				if s.Sync {
					u32(0x02000000) // depends on no other sample
				} else {
					u32(0x01010000) // depends on others, non-sync
				}
			}
			if flags&0x800 != 0 {
				u32(uint32(s.CTS))
			}
			payload += int(s.Size)
		}
		boxEnd(trun)
		boxEnd(traf)
	}
	boxEnd(moof)
	if payload+8 > math.MaxUint32 {
		b = append(b, 0, 0, 0, 1)
		b = append(b, "mdat"...)
		b = be.AppendUint64(b, uint64(payload+16))
	} else {
		u32(uint32(payload + 8))
		b = append(b, "mdat"...)
	}
	data := len(b)
	for _, f := range fixes {
		be.PutUint32(b[f.at:], uint32(data-moof+f.rel))
	}
	return b
}
