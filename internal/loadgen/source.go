package loadgen

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/livrec/livrec/internal/flv"
)

// Tag kinds of a Source (what the counters count).
const (
	kindOther uint8 = iota
	kindVideoFrame
	kindAudioFrame
)

// Source is an FLV file loaded into memory for looping: every publisher shares its tag
// slices (the bodies live in one buffer and are never copied or modified).
//
// Head holds the tags before the first coded frame (onMetaData, decoder configurations):
// they open every publish. Body holds the rest, without end-of-sequence markers and
// without repeated script tags, with timestamps relative to the first body tag; it is
// looped, loop k shifted by k·Span, so the timestamps continue without a jump.
type Source struct {
	Head []flv.Tag
	Body []flv.Tag
	kind []uint8 // per Body tag
	// Span is the loop length in milliseconds: the video's extent (first to last frame
	// plus one frame interval), audio that outlasts it by up to a second left out of Body,
	// so that both tracks continue across the seam without an overlap and the video
	// without a gap (see loopSpan).
	Span uint32
	// Bytes is the size of one loop's tag bodies; VideoFrames and AudioFrames count the
	// coded frames of one loop.
	Bytes                    int64
	VideoFrames, AudioFrames int
}

// LoadFile reads an FLV file into a Source.
func LoadFile(path string) (*Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := flv.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	src, err := Load(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return src, nil
}

// tagReader is what Load reads; *flv.Reader implements it.
type tagReader interface {
	ReadTag() (flv.Tag, error)
}

// Load reads every tag of r into a Source.
func Load(r tagReader) (*Source, error) {
	type rec struct {
		t    flv.Tag
		off  int
		kind uint8
		head bool
	}
	var recs []rec
	var buf []byte
	seenFrame := false
	for {
		t, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		kind, keep := kindOther, true
		switch t.Type {
		case flv.TagVideo:
			h, err := flv.ParseVideoTagHeader(t.Body)
			switch {
			case err != nil:
			case h.Kind == flv.PacketFrame:
				kind = kindVideoFrame
			case h.Kind == flv.PacketEnd:
				keep = false // end of sequence: not in the middle of a loop
			}
		case flv.TagAudio:
			if h, err := flv.ParseAudioTagHeader(t.Body); err == nil && h.Kind == flv.PacketFrame {
				kind = kindAudioFrame
			}
		case flv.TagScript:
			keep = !seenFrame // metadata once, at the start of a publish
		default:
			keep = false
		}
		if !keep {
			continue
		}
		if kind != kindOther && !seenFrame {
			seenFrame = true
		}
		recs = append(recs, rec{t: flv.Tag{Type: t.Type, Timestamp: t.Timestamp}, off: len(buf), kind: kind, head: !seenFrame})
		buf = append(buf, t.Body...)
	}
	if !seenFrame {
		return nil, errors.New("loadgen: the file has no audio or video frames")
	}
	s := &Source{}
	end := len(buf)
	for i := len(recs) - 1; i >= 0; i-- {
		recs[i].t.Body = buf[recs[i].off:end:end]
		end = recs[i].off
	}
	var first uint32
	firstSet := false
	var body []flv.Tag
	var kinds []uint8
	for _, rc := range recs {
		if rc.head {
			t := rc.t
			t.Timestamp = 0
			s.Head = append(s.Head, t)
			continue
		}
		if !firstSet {
			first, firstSet = rc.t.Timestamp, true
		}
		t := rc.t
		if off := int32(t.Timestamp - first); off > 0 {
			t.Timestamp = uint32(off)
		} else {
			t.Timestamp = 0 // tags before the first frame's time (rare): sent with it
		}
		body = append(body, t)
		kinds = append(kinds, rc.kind)
	}
	var keep func(i int) bool
	s.Span, keep = loopSpan(body, kinds)
	for i, t := range body {
		if !keep(i) {
			continue
		}
		s.Body = append(s.Body, t)
		s.kind = append(s.kind, kinds[i])
		s.Bytes += int64(len(t.Body))
		switch kinds[i] {
		case kindVideoFrame:
			s.VideoFrames++
		case kindAudioFrame:
			s.AudioFrames++
		}
	}
	return s, nil
}

// maxLoopTrim is the most audio (ms) cut from the end of a loop whose audio outlasts its
// video, so that both tracks continue across the seam.
const maxLoopTrim = 1000

// loopSpan chooses the loop length and which body tags a loop keeps. A track is
// continuous across a seam if the span is its extent: first to last frame plus its mean
// frame interval, measured from its own first frame (not from the body's start). The
// tracks share one span (A/V sync), the video's extent: the video is never cut (with
// B-frames, frames cut in decode order would leave references and presentation slots
// behind). Audio outlasting it loses the frames that would not end within the span (every
// AAC or MP3 frame stands alone), leaving a gap of less than one audio frame; audio
// shorter than the video gets a gap of the difference. Audio outlasting the video by more
// than maxLoopTrim is kept whole, its extent the span, and the video gets the gap. No
// track ever overlaps itself at a seam. At least 1 ms.
func loopSpan(body []flv.Tag, kind []uint8) (uint32, func(i int) bool) {
	type track struct {
		n                             int
		first, last, interval, extent uint32
	}
	var tr [3]track
	for i, t := range body {
		k := &tr[kind[i]]
		if k.n == 0 {
			k.first = t.Timestamp
		}
		k.last = max(k.last, t.Timestamp)
		k.n++
	}
	for _, k := range []uint8{kindVideoFrame, kindAudioFrame} {
		t := &tr[k]
		if t.n == 0 {
			continue
		}
		t.interval = 40
		if t.n > 1 && t.last > t.first {
			t.interval = max(1, (t.last-t.first+uint32(t.n-1)/2)/uint32(t.n-1))
		}
		t.extent = t.last - t.first + t.interval
	}
	v, a := tr[kindVideoFrame], tr[kindAudioFrame]
	if v.n > 0 && a.n > 0 && a.extent > v.extent && a.extent-v.extent <= maxLoopTrim {
		span := v.extent
		return span, func(i int) bool {
			ts := body[i].Timestamp
			switch kind[i] {
			case kindAudioFrame:
				return ts+a.interval <= a.first+span
			case kindOther:
				return ts < span
			}
			return true
		}
	}
	span := max(v.extent, a.extent, 1)
	if o := tr[kindOther]; o.n > 0 && o.last >= span {
		span = o.last + 1 // after every tag, e.g. a late decoder configuration
	}
	return span, func(int) bool { return true }
}

// WriteLoopedFLV writes an FLV file of at least d of media to w: the head, then the body
// looped with continuous timestamps, as a publisher sends it. Long recordings for tests
// and benchmarks are made from a short encoded file this way, without encoding hours.
func (s *Source) WriteLoopedFLV(w io.Writer, d time.Duration) error {
	var hasAudio, hasVideo bool
	for _, k := range s.kind {
		hasVideo = hasVideo || k == kindVideoFrame
		hasAudio = hasAudio || k == kindAudioFrame
	}
	fw, err := flv.NewWriter(w, hasAudio, hasVideo)
	if err != nil {
		return err
	}
	for _, t := range s.Head {
		if err := fw.WriteTag(t); err != nil {
			return err
		}
	}
	end := uint64(d / time.Millisecond)
	for base := uint64(0); base < end; base += uint64(s.Span) {
		if base+uint64(s.Span) > 1<<32-1 {
			return errors.New("loadgen: FLV timestamps would wrap (more than 49 days)")
		}
		for _, t := range s.Body {
			t.Timestamp += uint32(base)
			if err := fw.WriteTag(t); err != nil {
				return err
			}
		}
	}
	return nil
}
