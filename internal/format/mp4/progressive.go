package mp4

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"
)

// movieTimescale is the mvhd/tkhd/elst timescale (what ffmpeg uses too).
const movieTimescale = 1000

// offsetLimit is the largest file offset a 32-bit field can hold: beyond it the file
// uses co64 and a 64-bit mdat size. A variable so that tests can exercise those paths.
var offsetLimit int64 = math.MaxUint32

// boxWriter writes boxes whose sizes were measured by a first, dry pass over the same
// code: in measure mode (w == nil) it only counts bytes and records the size of every
// box in start order; in write mode it emits the recorded sizes. So the moov is streamed
// to the file without being built in memory.
type boxWriter struct {
	w     *bufio.Writer
	n     int64
	sizes []int64
	next  int
	buf   [8]byte
	err   error
}

func (b *boxWriter) measuring() bool { return b.w == nil }

func (b *boxWriter) raw(p []byte) {
	b.n += int64(len(p))
	if b.w != nil && b.err == nil {
		_, b.err = b.w.Write(p)
	}
}

func (b *boxWriter) u8(v uint8) { b.buf[0] = v; b.raw(b.buf[:1]) }
func (b *boxWriter) u16(v uint16) {
	binary.BigEndian.PutUint16(b.buf[:2], v)
	b.raw(b.buf[:2])
}
func (b *boxWriter) u32(v uint32) {
	binary.BigEndian.PutUint32(b.buf[:4], v)
	b.raw(b.buf[:4])
}
func (b *boxWriter) u64(v uint64) {
	binary.BigEndian.PutUint64(b.buf[:8], v)
	b.raw(b.buf[:8])
}
func (b *boxWriter) zeros(n int) {
	var z [16]byte
	for n > 0 {
		k := min(n, len(z))
		b.raw(z[:k])
		n -= k
	}
}
func (b *boxWriter) str(s string) { b.raw([]byte(s)) }

// skip accounts for n bytes in measure mode (tables whose size is known in advance).
func (b *boxWriter) skip(n int64) { b.n += n }

func (b *boxWriter) box(typ string, fn func()) {
	if b.measuring() {
		i := len(b.sizes)
		b.sizes = append(b.sizes, 0)
		start := b.n
		b.n += 8
		fn()
		b.sizes[i] = b.n - start
		return
	}
	if b.next >= len(b.sizes) {
		b.err = errors.New("mp4: box layout changed between passes")
		return
	}
	size := b.sizes[b.next]
	b.next++
	if size > math.MaxUint32 {
		b.err = fmt.Errorf("mp4: %s box too large (%d bytes)", typ, size)
		return
	}
	b.u32(uint32(size))
	b.str(typ)
	fn()
}

func (b *boxWriter) fullBox(typ string, version uint8, flags uint32, fn func()) {
	b.box(typ, func() {
		b.u32(uint32(version)<<24 | flags&0xFFFFFF)
		fn()
	})
}

// matrix is the identity transformation matrix of mvhd and tkhd.
var matrix = [9]uint32{0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000}

func (b *boxWriter) matrix() {
	for _, v := range matrix {
		b.u32(v)
	}
}

// edit is one elst entry (movie timescale duration, media time or −1 for empty).
type edit struct {
	dur       int64
	mediaTime int64
}

// trackTables holds what a track's sample tables need before they are written.
type trackTables struct {
	stts, ctts, stss, stsc int    // entries
	chunks                 int    // chunk count
	constSize              uint32 // all samples have this size (0: table needed)
	cttsVersion            uint8
	edits                  []edit
	movieDur               int64 // tkhd duration (movie timescale)
}

func (x *index) tables(i int, tm timing) trackTables {
	t := x.tracks[i]
	var tt trackTables
	var lastDur uint32
	var lastCTS int32
	first := true
	sizeConst := true
	var size0 uint32
	t.each(func(_ int, s sample) {
		if first || s.dur != lastDur {
			tt.stts++
		}
		if first || s.cts != lastCTS {
			tt.ctts++
		}
		if s.sync() {
			tt.stss++
		}
		if first {
			size0 = s.bytes()
		} else if s.bytes() != size0 {
			sizeConst = false
		}
		lastDur, lastCTS, first = s.dur, s.cts, false
	})
	if sizeConst && t.n > 0 {
		tt.constSize = size0
	}
	if t.ctsNeg {
		tt.cttsVersion = 1
	}
	var lastCount uint32
	for _, c := range x.chunks {
		if int(c.track) != i {
			continue
		}
		if tt.chunks == 0 || c.count != lastCount {
			tt.stsc++
		}
		lastCount = c.count
		tt.chunks++
	}

	// Edit list: the track's samples play from tm.offset[i] on the movie timeline.
	// Video starts at its first picture (media time = first composition offset).
	mediaStart := int64(0)
	if t.video {
		mediaStart = int64(t.cts0)
	}
	segDur := durToTicks(ticksToDur(t.dur, t.timescale), movieTimescale)
	off := tm.offset[i]
	switch {
	case off > 0:
		if empty := durToTicks(off, movieTimescale); empty > 0 {
			tt.edits = append(tt.edits, edit{dur: empty, mediaTime: -1})
		}
	case off < 0:
		mediaStart += durToTicks(-off, t.timescale)
		segDur -= durToTicks(-off, movieTimescale)
	}
	tt.edits = append(tt.edits, edit{dur: max(segDur, 0), mediaTime: mediaStart})
	for _, e := range tt.edits {
		tt.movieDur += e.dur
	}
	return tt
}

// layout is everything the moov depends on.
type layout struct {
	tm        timing
	tt        []trackTables
	co64      bool
	dataStart int64 // file offset of the first mdat payload byte
	movieDur  int64
}

func fits32(v int64) bool { return v >= 0 && v <= math.MaxUint32 }

// writeFtyp writes the file type box: isom with iso2, avc1 (when an H.264 track is
// present) and mp41 compatibility, as ffmpeg's mp4 muxer does.
func (x *index) writeFtyp(b *boxWriter) {
	b.box("ftyp", func() {
		b.str("isom")
		b.u32(0x200)
		b.str("isom")
		b.str("iso2")
		for _, t := range x.tracks {
			if t.fourcc == "avc1" {
				b.str("avc1")
				break
			}
		}
		b.str("mp41")
	})
}

func (x *index) writeMoov(b *boxWriter, l *layout) {
	b.box("moov", func() {
		v := uint8(0)
		if !fits32(l.movieDur) {
			v = 1
		}
		b.fullBox("mvhd", v, 0, func() {
			if v == 1 {
				b.u64(0)
				b.u64(0)
				b.u32(movieTimescale)
				b.u64(uint64(l.movieDur))
			} else {
				b.u32(0)
				b.u32(0)
				b.u32(movieTimescale)
				b.u32(uint32(l.movieDur))
			}
			b.u32(0x00010000) // rate 1.0
			b.u16(0x0100)     // volume 1.0
			b.zeros(10)
			b.matrix()
			b.zeros(24)
			b.u32(uint32(len(x.tracks) + 1)) // next_track_ID
		})
		for i, t := range x.tracks {
			if t.n == 0 {
				continue
			}
			x.writeTrak(b, l, i)
		}
	})
}

func (x *index) writeTrak(b *boxWriter, l *layout, i int) {
	t := x.tracks[i]
	tt := &l.tt[i]
	b.box("trak", func() {
		v := uint8(0)
		if !fits32(tt.movieDur) {
			v = 1
		}
		b.fullBox("tkhd", v, 3, func() { // enabled, in movie
			if v == 1 {
				b.u64(0)
				b.u64(0)
				b.u32(t.id)
				b.u32(0)
				b.u64(uint64(tt.movieDur))
			} else {
				b.u32(0)
				b.u32(0)
				b.u32(t.id)
				b.u32(0)
				b.u32(uint32(tt.movieDur))
			}
			b.zeros(8)
			b.u16(0) // layer
			if t.video {
				b.u16(0) // alternate_group
				b.u16(0) // volume
			} else {
				b.u16(1)
				b.u16(0x0100)
			}
			b.u16(0)
			b.matrix()
			b.u32(uint32(t.width) << 16)
			b.u32(uint32(t.height) << 16)
		})
		b.box("edts", func() {
			ev := uint8(0)
			for _, e := range tt.edits {
				if !fits32(e.dur) || e.mediaTime > math.MaxInt32 {
					ev = 1
				}
			}
			b.fullBox("elst", ev, 0, func() {
				b.u32(uint32(len(tt.edits)))
				for _, e := range tt.edits {
					if ev == 1 {
						b.u64(uint64(e.dur))
						b.u64(uint64(e.mediaTime))
					} else {
						b.u32(uint32(e.dur))
						b.u32(uint32(int32(e.mediaTime)))
					}
					b.u16(1) // media_rate_integer
					b.u16(0)
				}
			})
		})
		b.box("mdia", func() {
			mv := uint8(0)
			if !fits32(t.dur) {
				mv = 1
			}
			b.fullBox("mdhd", mv, 0, func() {
				if mv == 1 {
					b.u64(0)
					b.u64(0)
					b.u32(t.timescale)
					b.u64(uint64(t.dur))
				} else {
					b.u32(0)
					b.u32(0)
					b.u32(t.timescale)
					b.u32(uint32(t.dur))
				}
				b.u16(0x55C4) // "und"
				b.u16(0)
			})
			b.fullBox("hdlr", 0, 0, func() {
				b.u32(0)
				if t.video {
					b.str("vide")
				} else {
					b.str("soun")
				}
				b.zeros(12)
				if t.video {
					b.str("VideoHandler\x00")
				} else {
					b.str("SoundHandler\x00")
				}
			})
			b.box("minf", func() {
				if t.video {
					b.fullBox("vmhd", 0, 1, func() { b.zeros(8) })
				} else {
					b.fullBox("smhd", 0, 0, func() { b.zeros(4) })
				}
				b.box("dinf", func() {
					b.fullBox("dref", 0, 0, func() {
						b.u32(1)
						b.fullBox("url ", 0, 1, func() {})
					})
				})
				b.box("stbl", func() {
					b.raw(t.stsd)
					x.writeSampleTables(b, l, i)
				})
			})
		})
	})
}

func (x *index) writeSampleTables(b *boxWriter, l *layout, i int) {
	t := x.tracks[i]
	tt := &l.tt[i]
	b.fullBox("stts", 0, 0, func() {
		b.u32(uint32(tt.stts))
		if b.measuring() {
			b.skip(8 * int64(tt.stts))
			return
		}
		var run, dur uint32
		t.each(func(_ int, s sample) {
			if run > 0 && s.dur != dur {
				b.u32(run)
				b.u32(dur)
				run = 0
			}
			dur = s.dur
			run++
		})
		if run > 0 {
			b.u32(run)
			b.u32(dur)
		}
	})
	if t.nonSync {
		b.fullBox("stss", 0, 0, func() {
			b.u32(uint32(tt.stss))
			if b.measuring() {
				b.skip(4 * int64(tt.stss))
				return
			}
			t.each(func(n int, s sample) {
				if s.sync() {
					b.u32(uint32(n + 1))
				}
			})
		})
	}
	if t.ctsUsed {
		b.fullBox("ctts", tt.cttsVersion, 0, func() {
			b.u32(uint32(tt.ctts))
			if b.measuring() {
				b.skip(8 * int64(tt.ctts))
				return
			}
			var run uint32
			var cts int32
			t.each(func(_ int, s sample) {
				if run > 0 && s.cts != cts {
					b.u32(run)
					b.u32(uint32(cts))
					run = 0
				}
				cts = s.cts
				run++
			})
			if run > 0 {
				b.u32(run)
				b.u32(uint32(cts))
			}
		})
	}
	b.fullBox("stsc", 0, 0, func() {
		b.u32(uint32(tt.stsc))
		if b.measuring() {
			b.skip(12 * int64(tt.stsc))
			return
		}
		n := uint32(0)
		var last uint32
		for _, c := range x.chunks {
			if int(c.track) != i {
				continue
			}
			n++
			if n == 1 || c.count != last {
				b.u32(n)
				b.u32(c.count)
				b.u32(1)
			}
			last = c.count
		}
	})
	b.fullBox("stsz", 0, 0, func() {
		b.u32(tt.constSize)
		b.u32(uint32(t.n))
		if tt.constSize != 0 {
			return
		}
		if b.measuring() {
			b.skip(4 * int64(t.n))
			return
		}
		t.each(func(_ int, s sample) { b.u32(s.bytes()) })
	})
	typ, width := "stco", int64(4)
	if l.co64 {
		typ, width = "co64", 8
	}
	b.fullBox(typ, 0, 0, func() {
		b.u32(uint32(tt.chunks))
		if b.measuring() {
			b.skip(width * int64(tt.chunks))
			return
		}
		off := l.dataStart
		for _, c := range x.chunks {
			if int(c.track) == i {
				if l.co64 {
					b.u64(uint64(off))
				} else {
					b.u32(uint32(off))
				}
			}
			off += int64(c.size)
		}
	})
}

// writeProgressive writes the progressive MP4 (ftyp, moov, mdat) described by x to path,
// copying the sample payloads from the working file at workPath, and fsyncs it (unless noSync). It
// returns the file size and the presentation duration.
func (x *index) writeProgressive(path, workPath string, noSync bool) (int64, time.Duration, error) {
	if x.samples() == 0 {
		return 0, 0, ErrNoMedia
	}
	l := &layout{tm: x.computeTiming()}
	l.tt = make([]trackTables, len(x.tracks))
	for i := range x.tracks {
		l.tt[i] = x.tables(i, l.tm)
		l.movieDur = max(l.movieDur, l.tt[i].movieDur)
	}
	payload := x.mediaBytes()
	mdatHeader := int64(8)
	if payload+8 > offsetLimit {
		mdatHeader = 16
	}

	// Dry pass (sizes), then the co64 decision, then the real pass.
	measure := func() *boxWriter {
		m := &boxWriter{}
		x.writeFtyp(m)
		x.writeMoov(m, l)
		return m
	}
	m := measure()
	if m.n+mdatHeader+payload > offsetLimit {
		l.co64 = true
		m = measure()
	}
	head := m.n
	l.dataStart = head + mdatHeader

	work, err := os.Open(workPath)
	if err != nil {
		return 0, 0, err
	}
	defer work.Close()
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, 0, err
	}
	ok := false
	defer func() {
		if !ok {
			out.Close()
			os.Remove(path)
		}
	}()
	bw := bufio.NewWriterSize(out, 256<<10)
	b := &boxWriter{w: bw, sizes: m.sizes}
	x.writeFtyp(b)
	x.writeMoov(b, l)
	if b.err != nil {
		return 0, 0, b.err
	}
	if b.n != head {
		return 0, 0, fmt.Errorf("mp4: moov is %d bytes, measured %d", b.n, head)
	}
	if mdatHeader == 16 {
		b.u32(1)
		b.str("mdat")
		b.u64(uint64(payload + 16))
	} else {
		b.u32(uint32(payload + 8))
		b.str("mdat")
	}
	if b.err != nil {
		return 0, 0, b.err
	}
	if err := bw.Flush(); err != nil {
		return 0, 0, err
	}

	// The payloads: chunk by chunk in working-file order, contiguous runs in one copy
	// (copy_file_range where the kernel offers it).
	copyRun := func(off, n int64) error {
		if n == 0 {
			return nil
		}
		if _, err := work.Seek(off, io.SeekStart); err != nil {
			return err
		}
		got, err := out.ReadFrom(&io.LimitedReader{R: work, N: n})
		if err == nil && got != n {
			err = fmt.Errorf("mp4: working file ends early (%d of %d bytes at %d)", got, n, off)
		}
		return err
	}
	var runOff, runLen int64
	for _, c := range x.chunks {
		if runLen > 0 && c.work == runOff+runLen {
			runLen += int64(c.size)
			continue
		}
		if err := copyRun(runOff, runLen); err != nil {
			return 0, 0, err
		}
		runOff, runLen = c.work, int64(c.size)
	}
	if err := copyRun(runOff, runLen); err != nil {
		return 0, 0, err
	}
	size := l.dataStart + payload
	if !noSync {
		if err := out.Sync(); err != nil {
			return 0, 0, err
		}
	}
	if err := out.Close(); err != nil {
		return 0, 0, err
	}
	ok = true
	return size, l.tm.duration, nil
}
