package mp4

import (
	"encoding/binary"
	"errors"
	"time"
)

// sample is the in-memory index entry of one sample: 12 bytes. The payload stays in the
// working file; the chunk list says where.
type sample struct {
	size uint32 // payload bytes; bit 31 set: not a sync sample
	dur  uint32 // media ticks
	cts  int32  // composition offset (PTS − DTS), media ticks
}

const nonSyncBit = 1 << 31

func (s sample) bytes() uint32 { return s.size &^ nonSyncBit }
func (s sample) sync() bool    { return s.size&nonSyncBit == 0 }

// blockLen is the number of samples per index block. Blocks keep the index growing in
// fixed steps (no doubling copies of a large slice) and make the memory bound obvious:
// at most one partly filled block per track on top of 12 bytes per sample. 1024 samples
// (12 KiB, ~30 s of video) keep what a just-started recording holds small: it exists
// once per track of every recorded stream.
const blockLen = 1024

// trackIndex is what the progressive file needs to know about one track.
type trackIndex struct {
	id        uint32
	video     bool
	timescale uint32
	stsd      []byte // the complete stsd box, taken from the working file's init
	width     uint16 // visual sample entry size (video)
	height    uint16
	fourcc    string // sample entry type: avc1, hvc1, mp4v, mp4a

	base   int64 // decode time of the first sample, media ticks from the file origin
	blocks [][]sample
	n      int   // samples
	dur    int64 // sum of durations, media ticks

	nonSync bool // some sample is not a sync sample
	ctsUsed bool // some composition offset is not zero
	ctsNeg  bool // some composition offset is negative
	cts0    int32
}

func (t *trackIndex) add(s sample) {
	if t.n%blockLen == 0 {
		t.blocks = append(t.blocks, make([]sample, 0, blockLen))
	}
	b := &t.blocks[len(t.blocks)-1]
	*b = append(*b, s)
	if t.n == 0 {
		t.cts0 = s.cts
	}
	t.n++
	t.dur += int64(s.dur)
	t.nonSync = t.nonSync || !s.sync()
	t.ctsUsed = t.ctsUsed || s.cts != 0
	t.ctsNeg = t.ctsNeg || s.cts < 0
}

// each calls fn for every sample in order.
func (t *trackIndex) each(fn func(i int, s sample)) {
	i := 0
	for _, b := range t.blocks {
		for _, s := range b {
			fn(i, s)
			i++
		}
	}
}

// chunk is a run of consecutive samples of one track stored contiguously in the working
// file (one trun of one fragment). The progressive file keeps the same runs, in the same
// order, as its chunks.
type chunk struct {
	work  int64  // offset of the first payload byte in the working file
	size  uint32 // payload bytes
	count uint32 // samples
	track uint8  // index into index.tracks
}

// index describes a recording: the tracks with their samples and the chunk layout.
type index struct {
	tracks []*trackIndex
	chunks []chunk
}

func (x *index) samples() int {
	n := 0
	for _, t := range x.tracks {
		n += t.n
	}
	return n
}

func (x *index) mediaBytes() int64 {
	var n int64
	for _, c := range x.chunks {
		n += int64(c.size)
	}
	return n
}

// timing is the presentation layout of the progressive file: where each track starts on
// the movie timeline and how long the whole presentation lasts.
type timing struct {
	// per track: the offset on the movie timeline of the track's first decode time,
	// relative to the presentation start (video: 0; audio: how much later than the first
	// picture its first frame plays; negative is cut by the edit list).
	offset []time.Duration
	// per track: the duration of the track on the movie timeline (edits included).
	length   []time.Duration
	duration time.Duration
}

// ticksToDur converts media ticks to a time.Duration without overflow.
func ticksToDur(t int64, timescale uint32) time.Duration {
	ts := int64(timescale)
	return time.Duration(t/ts)*time.Second + time.Duration(t%ts)*time.Second/time.Duration(ts)
}

// durToTicks converts a duration to media ticks, rounding to nearest.
func durToTicks(d time.Duration, timescale uint32) int64 {
	neg := d < 0
	if neg {
		d = -d
	}
	ts := int64(timescale)
	t := int64(d/time.Second)*ts + (int64(d%time.Second)*ts+int64(time.Second)/2)/int64(time.Second)
	if neg {
		return -t
	}
	return t
}

// computeTiming lays the tracks out: the presentation starts at the first picture
// (first video sample's decode time plus its composition offset); audio-only files start
// at the first audio frame.
func (x *index) computeTiming() timing {
	tm := timing{offset: make([]time.Duration, len(x.tracks)), length: make([]time.Duration, len(x.tracks))}
	var start time.Duration
	lead := -1
	for i, t := range x.tracks {
		if t.video && t.n > 0 {
			lead = i
			break
		}
	}
	if lead < 0 {
		for i, t := range x.tracks {
			if t.n > 0 {
				lead = i
				break
			}
		}
	}
	if lead < 0 {
		return tm
	}
	lt := x.tracks[lead]
	start = ticksToDur(lt.base, lt.timescale)
	if lt.video {
		start += ticksToDur(int64(lt.cts0), lt.timescale)
	}
	for i, t := range x.tracks {
		if t.n == 0 {
			continue
		}
		if t.video {
			// The edit list skips to the first picture: the track plays from movie time
			// 0 for its sample duration.
			tm.offset[i] = ticksToDur(t.base, t.timescale) + ticksToDur(int64(t.cts0), t.timescale) - start
		} else {
			tm.offset[i] = ticksToDur(t.base, t.timescale) - start
		}
		tm.length[i] = tm.offset[i] + ticksToDur(t.dur, t.timescale)
		tm.duration = max(tm.duration, tm.length[i])
	}
	return tm
}

// Errors from parsing a sample entry.
var errBadStsd = errors.New("mp4: malformed stsd box")

// describeStsd fills fourcc (and width/height of a visual sample entry) from t.stsd.
func (t *trackIndex) describeStsd() error {
	b := t.stsd
	// stsd: size, type, version+flags, entry_count, then the first sample entry.
	if len(b) < 16+8 || string(b[4:8]) != "stsd" || binary.BigEndian.Uint32(b[12:16]) < 1 {
		return errBadStsd
	}
	e := b[16:]
	if sz := binary.BigEndian.Uint32(e[0:4]); sz < 8 || int(sz) > len(e) {
		return errBadStsd
	}
	t.fourcc = string(e[4:8])
	if t.video {
		if len(e) < 36 {
			return errBadStsd
		}
		t.width = binary.BigEndian.Uint16(e[32:34])
		t.height = binary.BigEndian.Uint16(e[34:36])
	}
	return nil
}

// setVisualSize overwrites width and height of the visual sample entry in stsd.
func setVisualSize(stsd []byte, w, h int) {
	if len(stsd) < 16+36 {
		return
	}
	e := stsd[16:]
	binary.BigEndian.PutUint16(e[32:34], uint16(w))
	binary.BigEndian.PutUint16(e[34:36], uint16(h))
}
