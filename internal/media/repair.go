package media

import (
	"fmt"
	"time"
)

// Repair kinds reported by TimestampRepair.
const (
	RepairWrap     = "wrap"     // the 32-bit millisecond timestamp wrapped (unwrapped, not a discontinuity)
	RepairBackward = "backward" // a track stepped back: re-based
	RepairJump     = "jump"     // a track jumped forward by more than MaxJump: re-based
	RepairResume   = "resume"   // the first unit after Resume was placed after the previous output
	// RepairCadence: video timestamps wobbling around a steady frame rate are being snapped
	// onto its grid. Reported once when the snapping starts (not per frame), and at most once
	// per cadenceReportEvery of media time per stream.
	RepairCadence = "cadence"
)

// Repair describes one timestamp repair.
type Repair struct {
	Kind  string // RepairWrap, RepairBackward, RepairJump, RepairResume or RepairCadence
	Track *Track // the track whose unit revealed it
	// Delta is, for backward/jump, the change applied to the track's output-input offset
	// (negative for a forward jump that was closed); for wrap 2^32 ms; for resume the
	// output-input offset now applied; for cadence the frame period snapped to.
	Delta time.Duration
}

// String describes the repair for logs and events.
func (r Repair) String() string {
	kind := "audio"
	if r.Track != nil && r.Track.Codec.IsVideo() {
		kind = "video"
	}
	if r.Kind == RepairCadence {
		return fmt.Sprintf("%s timestamps snapped to a %v frame cadence", kind, r.Delta.Round(time.Microsecond))
	}
	return fmt.Sprintf("%s timestamps re-based by %v", kind, r.Delta)
}

// Repair parameters.
const (
	// MaxJump is how far beyond the expected frame spacing a unit may land before it is
	// treated as a forward jump.
	MaxJump = time.Second
	// defaultVideoSpacing and defaultAudioSpacing are the spacing estimates until a track
	// has history.
	defaultVideoSpacing = 40
	defaultAudioSpacing = 23
	// syncWindow is how long (output media time) a correction made on one track is offered
	// to the other track, so that a discontinuity both tracks see is closed by the same
	// amount on both (keeping A/V sync).
	syncWindow = 5000
	maxSpacing = 5000
	wrapPeriod = int64(1) << 32
	// cadenceReportEvery is the least media time (ms) between two RepairCadence reports of
	// a stream, so that a stream whose lock comes and goes does not flood the log.
	cadenceReportEvery = 60000
)

// TimestampRepair makes access-unit timestamps monotonic and continuous per track.
//
// Input DTS are 32-bit millisecond tag timestamps (values are taken modulo 2^32 ms). Each
// track keeps an output-input offset. A unit whose DTS would land
//   - within (0, spacing+MaxJump] after the previous unit of its track: kept;
//   - a little before (within the jitter tolerance, max(4 spacings, 100 ms)): nudged to
//     1 ms after the previous unit, offset unchanged (jitter is not a repair);
//   - further back, or further ahead: re-based so that it lands one expected spacing after
//     the previous unit of its track (RepairBackward / RepairJump).
//
// A correction made on one track is offered to the other for syncWindow: if the other
// track then shows a discontinuity that the same correction closes, it is applied there
// too (silently: one input discontinuity, one Repair) so both tracks keep their input
// relationship. If only one track jumped, the other track never needs it and keeps its own
// offset — there is no ping-pong between the tracks.
//
// The spacing is the median of the last 8 normal DTS deltas of the track (default 40 ms for
// video, 23 ms for audio). Output DTS are strictly increasing per track; PTS-DTS is kept,
// except that video wobbling around a steady frame rate is then snapped onto that rate's
// grid (see cadence; DTS and PTS each to their nearest slot, within a frame of the
// repaired timeline; RepairCadence).
// The first unit of a fresh repairer gets DTS 0; the other track starts on the same offset.
//
// Tracks are told apart by kind (Track.Codec.IsVideo); a parameter change (new *Track) keeps
// the timeline. A unit without a Track counts as audio. Not safe for concurrent use.
type TimestampRepair struct {
	// OnRepair, if set, is called for each repair.
	OnRepair func(Repair)

	tracks  [2]tsTrack
	hasRef  bool  // some track has input history in the current publish
	refIn   int64 // last unwrapped input (ms) of any track
	anyOut  bool
	lastOut int64 // largest output DTS so far (ms)
	epoch   int64 // highest wrap epoch reported
	resumed bool
	// maxPTS is the latest video presentation time output (ms); videoResumed is set by
	// Resume until the publish's first video unit is placed.
	maxPTS       int64
	anyPTS       bool
	videoResumed bool

	cad           cadence // video
	cadReported   bool
	cadReportedAt int64 // output DTS of the last RepairCadence report
}

type tsTrack struct {
	active  bool // input history in the current publish
	everOut bool
	lastIn  int64 // unwrapped input ms
	lastOut int64 // output ms
	off     int64 // output - input, ms
	deltas  [8]int64
	nDeltas int
	iDelta  int
	video   bool

	pendingOK    bool
	pendingC     int64
	pendingUntil int64
}

func (t *tsTrack) spacing() int64 {
	if t.nDeltas == 0 {
		if t.video {
			return defaultVideoSpacing
		}
		return defaultAudioSpacing
	}
	// Median by insertion sort of a stack copy: at most 8 values, called per access unit,
	// so no sort.Slice (its reflect swapper allocates).
	var s [len(t.deltas)]int64
	n := t.nDeltas
	for i := 0; i < n; i++ {
		x := t.deltas[i]
		j := i
		for ; j > 0 && s[j-1] > x; j-- {
			s[j] = s[j-1]
		}
		s[j] = x
	}
	return s[n/2]
}

func (t *tsTrack) addDelta(d int64) {
	if d <= 0 {
		return
	}
	d = min(d, maxSpacing)
	t.deltas[t.iDelta] = d
	t.iDelta = (t.iDelta + 1) % len(t.deltas)
	if t.nDeltas < len(t.deltas) {
		t.nDeltas++
	}
}

func unwrap(raw uint32, ref int64) int64 {
	return ref + int64(int32(raw-uint32(ref)))
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ms(d int64) time.Duration { return time.Duration(d) * time.Millisecond }

func (r *TimestampRepair) report(kind string, tr *Track, delta time.Duration) {
	if r.OnRepair != nil {
		r.OnRepair(Repair{Kind: kind, Track: tr, Delta: delta})
	}
}

// LastDTS returns the largest output DTS so far (0 before the first unit).
func (r *TimestampRepair) LastDTS() time.Duration { return ms(r.lastOut) }

// Resume makes the next unit continue the timeline after the last one output (a new publish
// joining a stitched recording): input history is forgotten, and the first unit is placed
// one expected spacing after the previous output of its track (and after everything output
// so far). This is reported as RepairResume, not as a jump or a backward step.
func (r *TimestampRepair) Resume() {
	for i := range r.tracks {
		r.tracks[i].active = false
		r.tracks[i].pendingOK = false
	}
	r.cad.reset()
	r.hasRef = false
	r.resumed = r.anyOut
	r.videoResumed = r.anyPTS
}

// Fix rewrites au.DTS and au.PTS in place.
func (r *TimestampRepair) Fix(au *AccessUnit) {
	k := 1
	if au.Track != nil && au.Track.Codec.IsVideo() {
		k = 0
	}
	t, o := &r.tracks[k], &r.tracks[1-k]
	t.video = k == 0
	cts := au.PTS - au.DTS
	raw := uint32(int64(au.DTS / time.Millisecond))

	var inU int64
	switch {
	case t.active:
		inU = unwrap(raw, t.lastIn)
	case r.hasRef:
		inU = unwrap(raw, r.refIn)
	default:
		inU = int64(raw)
	}
	if r.hasRef {
		if e := floorDiv(inU, wrapPeriod); e > r.epoch {
			r.epoch = e
			r.report(RepairWrap, au.Track, ms(wrapPeriod))
		}
	} else {
		r.epoch = floorDiv(inU, wrapPeriod)
	}

	sp := t.spacing()
	var out int64
	if !t.active {
		out = r.first(au, t, o, inU, sp)
	} else {
		out = r.next(au, t, o, inU, sp)
	}
	if t.video && r.videoResumed {
		// The previous publish may have ended inside a group of pictures: its last
		// pictures in decode order can show after the point where its timeline ended
		// (B-frames never sent). The new keyframe must show after all of them, or two
		// pictures would share a presentation time; video moves later by that much
		// (less than the reordering depth), audio keeps its place.
		r.videoResumed = false
		if need := r.maxPTS + sp - (out + int64(cts/time.Millisecond)); need > 0 {
			t.off += need
			out += need
		}
	}

	t.active, t.everOut = true, true
	t.lastIn, t.lastOut = inU, out
	r.hasRef, r.refIn = true, inU
	// The repair above works on its own (unsnapped) timeline; the cadence snapping is
	// applied to its output.
	au.DTS, au.PTS = ms(out), ms(out)+cts
	if t.video {
		var fps float64
		if au.Track != nil {
			fps = au.Track.FrameRate
		}
		c := r.cad.fix(out, out+int64(cts/time.Millisecond), fps)
		if c.started && (!r.cadReported || c.dts-r.cadReportedAt >= cadenceReportEvery) {
			r.cadReported, r.cadReportedAt = true, c.dts
			r.report(RepairCadence, au.Track, time.Duration(r.cad.period*float64(time.Millisecond)))
		}
		out = c.dts
		au.DTS, au.PTS = ms(out), ms(out)+cts
		if c.onGrid {
			au.PTS = ms(c.pts)
		}
	}
	if !r.anyOut || out > r.lastOut {
		r.lastOut = out
	}
	r.anyOut = true
	if t.video {
		if p := int64(au.PTS / time.Millisecond); !r.anyPTS || p > r.maxPTS {
			r.maxPTS, r.anyPTS = p, true
		}
	}
}

// first places the first unit of a track in the current publish.
func (r *TimestampRepair) first(au *AccessUnit, t, o *tsTrack, inU, sp int64) int64 {
	if !r.hasRef {
		// First unit of the publish.
		if r.resumed {
			r.resumed = false
			base := r.lastOut + sp
			for i := range r.tracks {
				if tr := &r.tracks[i]; tr.everOut {
					base = max(base, tr.lastOut+tr.spacing())
				}
			}
			t.off = base - inU
			r.report(RepairResume, au.Track, ms(t.off))
			return base
		}
		if !r.anyOut {
			t.off = -inU // fresh: start at 0
			return 0
		}
		// Resume was not called but the input history was lost: cannot happen (hasRef is
		// only cleared by Resume); fall through to the other-track rule.
	}
	t.off = o.off
	cand := inU + t.off
	lo := int64(0)
	if t.everOut {
		lo = t.lastOut + 1
	}
	hi := r.lastOut + sp + int64(MaxJump/time.Millisecond)
	switch {
	case cand < lo:
		out := lo
		if t.everOut {
			out = t.lastOut + sp
		}
		if !t.everOut && lo-cand > int64(MaxJump/time.Millisecond) {
			r.report(RepairBackward, au.Track, ms(out-cand))
		}
		t.off = out - inU
		return out
	case cand > hi:
		out := max(lo, o.lastOut)
		r.report(RepairJump, au.Track, ms(out-cand))
		t.off = out - inU
		return out
	}
	return cand
}

// next places a unit of a track with history.
func (r *TimestampRepair) next(au *AccessUnit, t, o *tsTrack, inU, sp int64) int64 {
	if t.pendingOK && t.lastOut > t.pendingUntil {
		t.pendingOK = false
	}
	maxFwd := sp + int64(MaxJump/time.Millisecond)
	tol := max(4*sp, 100)
	cand := inU + t.off
	d := cand - t.lastOut
	switch {
	case d > 0 && d <= maxFwd:
		t.addDelta(inU - t.lastIn)
		return cand
	case d <= 0 && d > -tol:
		return t.lastOut + 1
	}
	// Discontinuity. First see whether the other track's recent correction closes it.
	if t.pendingOK {
		t.pendingOK = false
		if d2 := cand + t.pendingC - t.lastOut; d2 > 0 && d2 <= maxFwd {
			t.off += t.pendingC
			return cand + t.pendingC
		}
	}
	out := t.lastOut + sp
	c := out - cand
	t.off += c
	kind := RepairJump
	if d <= 0 {
		kind = RepairBackward
	}
	r.report(kind, au.Track, ms(c))
	if o.active {
		o.pendingOK, o.pendingC, o.pendingUntil = true, c, o.lastOut+syncWindow
	}
	return out
}
