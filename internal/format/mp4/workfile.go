package mp4

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Limits applied while parsing a working file (which may end in garbage after a crash).
const (
	maxMoovSize = 16 << 20 // init segment
	maxMoofSize = 64 << 20 // one fragment's moof
)

var errBadBox = errors.New("mp4: malformed box")

// eachChild calls fn for every box in b (a sequence of boxes) with its type, its body
// (after the header) and the whole box. It fails on a box that does not fit.
func eachChild(b []byte, fn func(typ string, body, whole []byte) error) error {
	for len(b) > 0 {
		if len(b) < 8 {
			return errBadBox
		}
		size := uint64(binary.BigEndian.Uint32(b[0:4]))
		hdr := uint64(8)
		switch size {
		case 0:
			size = uint64(len(b))
		case 1:
			if len(b) < 16 {
				return errBadBox
			}
			size, hdr = binary.BigEndian.Uint64(b[8:16]), 16
		}
		if size < hdr || size > uint64(len(b)) {
			return errBadBox
		}
		if err := fn(string(b[4:8]), b[hdr:size], b[:size]); err != nil {
			return err
		}
		b = b[size:]
	}
	return nil
}

// trexDefaults are a track's fragment defaults from mvex/trex.
type trexDefaults struct {
	dur, size, flags uint32
}

// initInfo is what Recover (and Finish, which parses its own init the same way) takes
// from the working file's init segment.
type initInfo struct {
	tracks []*trackIndex
	trex   map[uint32]trexDefaults
}

func (ii *initInfo) trackByID(id uint32) int {
	for i, t := range ii.tracks {
		if t.id == id {
			return i
		}
	}
	return -1
}

// parseInit reads the tracks of an init segment's moov body.
func parseInit(moov []byte) (*initInfo, error) {
	ii := &initInfo{trex: map[uint32]trexDefaults{}}
	err := eachChild(moov, func(typ string, body, _ []byte) error {
		switch typ {
		case "trak":
			t, err := parseTrak(body)
			if err != nil {
				return err
			}
			if t != nil {
				ii.tracks = append(ii.tracks, t)
			}
		case "mvex":
			return eachChild(body, func(typ string, body, _ []byte) error {
				if typ == "trex" && len(body) >= 24 {
					ii.trex[binary.BigEndian.Uint32(body[4:8])] = trexDefaults{
						dur:   binary.BigEndian.Uint32(body[12:16]),
						size:  binary.BigEndian.Uint32(body[16:20]),
						flags: binary.BigEndian.Uint32(body[20:24]),
					}
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(ii.tracks) == 0 || len(ii.tracks) > 255 {
		return nil, fmt.Errorf("mp4: init segment with %d tracks", len(ii.tracks))
	}
	return ii, nil
}

// parseTrak returns the track described by a trak body, or nil for a track that is
// neither video nor audio.
func parseTrak(trak []byte) (*trackIndex, error) {
	t := &trackIndex{}
	var handler string
	var visit func(b []byte) error
	visit = func(b []byte) error {
		return eachChild(b, func(typ string, body, whole []byte) error {
			switch typ {
			case "mdia", "minf", "stbl":
				return visit(body)
			case "tkhd":
				if len(body) < 1 {
					return errBadBox
				}
				off := 12
				if body[0] == 1 {
					off = 20
				}
				if len(body) < off+4 {
					return errBadBox
				}
				t.id = binary.BigEndian.Uint32(body[off : off+4])
			case "mdhd":
				if len(body) < 1 {
					return errBadBox
				}
				off := 12
				if body[0] == 1 {
					off = 20
				}
				if len(body) < off+4 {
					return errBadBox
				}
				t.timescale = binary.BigEndian.Uint32(body[off : off+4])
			case "hdlr":
				if len(body) < 12 {
					return errBadBox
				}
				handler = string(body[8:12])
			case "stsd":
				t.stsd = whole // a subslice: the writer patches the init through it
			}
			return nil
		})
	}
	if err := visit(trak); err != nil {
		return nil, err
	}
	switch handler {
	case "vide":
		t.video = true
	case "soun":
	default:
		return nil, nil
	}
	if t.id == 0 || t.timescale == 0 || t.stsd == nil {
		return nil, fmt.Errorf("mp4: incomplete trak (id %d, timescale %d)", t.id, t.timescale)
	}
	if err := t.describeStsd(); err != nil {
		return nil, err
	}
	return t, nil
}

// run is one trun of a parsed fragment.
type run struct {
	track   int
	work    int64 // payload offset in the working file
	size    int64
	samples []sample
	tfdt    int64
}

// parseMoof reads the runs of one fragment. moofOff is the moof's file offset; every run
// must lie within [dataStart, dataEnd) (the following mdat's payload).
func parseMoof(ii *initInfo, moof []byte, moofOff, dataStart, dataEnd int64) ([]run, error) {
	var runs []run
	err := eachChild(moof, func(typ string, body, _ []byte) error {
		if typ != "traf" {
			return nil
		}
		var (
			track                  = -1
			base                   = moofOff
			def                    trexDefaults
			tfdt                   int64
			haveTfdt               bool
			next                   int64 = -1 // where a trun without data offset starts
			trackRunsStart               = len(runs)
			tfhdSeen, explicitBase bool
		)
		return eachChild(body, func(typ string, b []byte, _ []byte) error {
			switch typ {
			case "tfhd":
				if len(b) < 8 {
					return errBadBox
				}
				flags := binary.BigEndian.Uint32(b[0:4]) & 0xFFFFFF
				id := binary.BigEndian.Uint32(b[4:8])
				track = ii.trackByID(id)
				if track < 0 {
					return fmt.Errorf("mp4: fragment of unknown track %d", id)
				}
				def = ii.trex[id]
				p := 8
				field := func() (uint32, error) {
					if len(b) < p+4 {
						return 0, errBadBox
					}
					v := binary.BigEndian.Uint32(b[p : p+4])
					p += 4
					return v, nil
				}
				if flags&0x01 != 0 {
					if len(b) < p+8 {
						return errBadBox
					}
					base = int64(binary.BigEndian.Uint64(b[p : p+8]))
					explicitBase = true
					p += 8
				}
				if flags&0x02 != 0 {
					if _, err := field(); err != nil {
						return err
					}
				}
				var err error
				if flags&0x08 != 0 {
					if def.dur, err = field(); err != nil {
						return err
					}
				}
				if flags&0x10 != 0 {
					if def.size, err = field(); err != nil {
						return err
					}
				}
				if flags&0x20 != 0 {
					if def.flags, err = field(); err != nil {
						return err
					}
				}
				if !explicitBase && flags&0x020000 == 0 && len(runs) > 0 {
					// Neither an explicit base nor default-base-is-moof: the data
					// follows the previous traf's data.
					last := runs[len(runs)-1]
					base = last.work + last.size
					next = base
				}
				tfhdSeen = true
			case "tfdt":
				if len(b) < 8 {
					return errBadBox
				}
				if b[0] == 1 {
					if len(b) < 12 {
						return errBadBox
					}
					tfdt = int64(binary.BigEndian.Uint64(b[4:12]))
				} else {
					tfdt = int64(binary.BigEndian.Uint32(b[4:8]))
				}
				haveTfdt = true
			case "trun":
				if !tfhdSeen {
					return errBadBox
				}
				if len(b) < 8 {
					return errBadBox
				}
				version := b[0]
				flags := binary.BigEndian.Uint32(b[0:4]) & 0xFFFFFF
				count := binary.BigEndian.Uint32(b[4:8])
				p := 8
				start := next
				if flags&0x01 != 0 {
					if len(b) < p+4 {
						return errBadBox
					}
					start = base + int64(int32(binary.BigEndian.Uint32(b[p:p+4])))
					p += 4
				}
				if start < 0 {
					start = base
				}
				firstFlags, haveFirst := uint32(0), false
				if flags&0x04 != 0 {
					if len(b) < p+4 {
						return errBadBox
					}
					firstFlags, haveFirst = binary.BigEndian.Uint32(b[p:p+4]), true
					p += 4
				}
				per := 0
				for _, f := range []uint32{0x100, 0x200, 0x400, 0x800} {
					if flags&f != 0 {
						per += 4
					}
				}
				if uint64(count)*uint64(per) > uint64(len(b)-p) {
					return errBadBox
				}
				r := run{track: track, work: start, samples: make([]sample, 0, count)}
				for i := uint32(0); i < count; i++ {
					dur, size, sflags, cts := def.dur, def.size, def.flags, int32(0)
					if i == 0 && haveFirst {
						sflags = firstFlags
					}
					if flags&0x100 != 0 {
						dur = binary.BigEndian.Uint32(b[p:])
						p += 4
					}
					if flags&0x200 != 0 {
						size = binary.BigEndian.Uint32(b[p:])
						p += 4
					}
					if flags&0x400 != 0 {
						sflags = binary.BigEndian.Uint32(b[p:])
						p += 4
					}
					if flags&0x800 != 0 {
						v := binary.BigEndian.Uint32(b[p:])
						if version == 0 && v > 1<<31-1 {
							return errBadBox
						}
						cts = int32(v)
						p += 4
					}
					if size == 0 || size >= nonSyncBit {
						return errBadBox
					}
					s := sample{size: size, dur: dur, cts: cts}
					if sflags&0x10000 != 0 {
						s.size |= nonSyncBit
					}
					r.samples = append(r.samples, s)
					r.size += int64(size)
				}
				if r.work < dataStart || r.work+r.size > dataEnd {
					return fmt.Errorf("mp4: fragment data outside its mdat")
				}
				next = r.work + r.size
				if haveTfdt {
					r.tfdt = tfdt
				} else if len(runs) > trackRunsStart {
					return errBadBox
				}
				// Later runs of the same traf continue the decode time.
				for _, prev := range runs[trackRunsStart:] {
					for _, s := range prev.samples {
						r.tfdt += int64(s.dur)
					}
				}
				if len(r.samples) > 0 {
					runs = append(runs, r)
				}
			}
			return nil
		})
	})
	return runs, err
}

// scanWorkFile rebuilds the index of a working file: its init segment, then every
// complete fragment (a moof whose following mdat is entirely in the file and whose runs
// lie inside that mdat). It stops at the first incomplete or malformed box: that is
// where the writer was killed.
func scanWorkFile(path string) (*index, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	fileSize := st.Size()
	br := bufio.NewReaderSize(f, 64<<10)
	var off int64

	type header struct {
		typ       string
		off, size int64
		hdr       int64
	}
	readHeader := func() (header, bool, error) {
		var b [16]byte
		if _, err := io.ReadFull(br, b[:8]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return header{}, false, nil
			}
			return header{}, false, err
		}
		h := header{typ: string(b[4:8]), off: off, size: int64(binary.BigEndian.Uint32(b[0:4])), hdr: 8}
		if h.size == 1 {
			if _, err := io.ReadFull(br, b[8:16]); err != nil {
				return header{}, false, nil
			}
			h.size, h.hdr = int64(binary.BigEndian.Uint64(b[8:16])), 16
		}
		if h.size < h.hdr || h.off+h.size > fileSize {
			return h, false, nil // size 0 ("to the end"), garbage, or cut short
		}
		return h, true, nil
	}
	readBody := func(h header, limit int64) ([]byte, bool, error) {
		n := h.size - h.hdr
		if n > limit {
			return nil, false, nil
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, false, err
		}
		return b, true, nil
	}
	skipBody := func(h header) error {
		_, err := br.Discard(int(h.size - h.hdr))
		return err
	}

	var ii *initInfo
	var x *index
	valid := int64(0)
	for {
		h, ok, err := readHeader()
		if err != nil {
			return nil, 0, err
		}
		if !ok {
			break
		}
		if ii == nil {
			// ftyp, then moov.
			switch h.typ {
			case "ftyp":
				if err := skipBody(h); err != nil {
					return nil, 0, err
				}
			case "moov":
				body, ok, err := readBody(h, maxMoovSize)
				if err != nil {
					return nil, 0, err
				}
				if !ok {
					return nil, 0, errors.New("mp4: init segment too large")
				}
				if ii, err = parseInit(body); err != nil {
					return nil, 0, fmt.Errorf("mp4: init segment: %w", err)
				}
				x = &index{tracks: ii.tracks}
			default:
				return nil, 0, fmt.Errorf("mp4: working file starts with %q, not an init segment", h.typ)
			}
			off += h.size
			valid = off
			continue
		}
		if h.typ != "moof" {
			if h.typ == "mdat" || h.typ == "free" || h.typ == "skip" {
				if err := skipBody(h); err != nil {
					return nil, 0, err
				}
				off += h.size
				valid = off
				continue
			}
			break
		}
		moof, ok, err := readBody(h, maxMoofSize)
		if err != nil {
			return nil, 0, err
		}
		if !ok {
			break
		}
		off += h.size
		mh, ok, err := readHeader()
		if err != nil {
			return nil, 0, err
		}
		if !ok || mh.typ != "mdat" {
			break
		}
		runs, err := parseMoof(ii, moof, h.off, mh.off+mh.hdr, mh.off+mh.size)
		if err != nil {
			break
		}
		for _, r := range runs {
			t := x.tracks[r.track]
			if t.n == 0 {
				t.base = r.tfdt
			}
			x.chunks = append(x.chunks, chunk{work: r.work, size: uint32(r.size), count: uint32(len(r.samples)), track: uint8(r.track)})
			for _, s := range r.samples {
				t.add(s)
			}
		}
		if err := skipBody(mh); err != nil {
			return nil, 0, err
		}
		off += mh.size
		valid = off
	}
	if ii == nil {
		return nil, 0, errors.New("mp4: working file has no init segment")
	}
	return x, valid, nil
}
