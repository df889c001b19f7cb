package media

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// frame is one unit of a cadence test: the track, the true (unjittered) presentation time
// and the timestamps as sent.
type frame struct {
	tr       *Track
	truePTS  int64
	dts, pts int64
}

// run passes frames through a fresh TimestampRepair and returns the outputs and repairs.
func runFrames(frames []frame) ([]*AccessUnit, []Repair) {
	var r TimestampRepair
	var reps []Repair
	r.OnRepair = func(x Repair) { reps = append(reps, x) }
	var out []*AccessUnit
	for _, f := range frames {
		au := &AccessUnit{Track: f.tr, DTS: ms(f.dts), PTS: ms(f.pts)}
		r.Fix(au)
		out = append(out, au)
	}
	return out, reps
}

// jitteredCFR makes n video frames at fps starting at start ms, DTS and PTS both moved by
// the same uniform jitter in [-j, j] (CTS as encoded), no B-frames.
func jitteredCFR(rng *rand.Rand, tr *Track, start int64, fps float64, n int, j int64) []frame {
	var fs []frame
	for i := 0; i < n; i++ {
		t := start + int64(math.Round(float64(i)*1000/fps))
		d := t + rng.Int64N(2*j+1) - j
		fs = append(fs, frame{tr: tr, truePTS: t, dts: d, pts: d})
	}
	return fs
}

// withAudio interleaves AAC frames (1024 samples at 44.1 kHz) from start over the span
// of the video frames, in DTS order.
func withAudio(video []frame, start int64) []frame {
	end := video[len(video)-1].dts
	var out []frame
	vi := 0
	for k := int64(0); ; k++ {
		at := start + k*1024*1000/44100
		for vi < len(video) && video[vi].dts <= at {
			out = append(out, video[vi])
			vi++
		}
		if at > end {
			return append(out, video[vi:]...)
		}
		out = append(out, frame{tr: aTrack, truePTS: at, dts: at, pts: at})
	}
}

// checkCadence verifies the invariants every output keeps: per-track strictly increasing
// DTS, PTS >= DTS for video, audio unchanged (input minus the start offset), and video
// within one frame (period ms) of its input.
func checkCadence(t *testing.T, in []frame, out []*AccessUnit, period float64) {
	t.Helper()
	off := out[0].DTS - ms(in[0].dts)
	last := map[*Track]time.Duration{}
	for i, au := range out {
		if l, ok := last[au.Track]; ok && au.DTS <= l {
			t.Fatalf("unit %d: DTS %v after %v", i, au.DTS, l)
		}
		last[au.Track] = au.DTS
		if !au.Track.Codec.IsVideo() {
			if au.DTS != ms(in[i].dts)+off || au.PTS != au.DTS {
				t.Fatalf("audio unit %d moved: %v, want %v", i, au.DTS, ms(in[i].dts)+off)
			}
			continue
		}
		if au.PTS < au.DTS {
			t.Fatalf("unit %d: PTS %v < DTS %v", i, au.PTS, au.DTS)
		}
		if d := au.DTS - off - ms(in[i].dts); d.Abs() >= time.Duration(period*float64(time.Millisecond)) {
			t.Fatalf("unit %d: DTS %v is %v from its input", i, au.DTS, d)
		}
	}
}

func videoDTS(out []*AccessUnit) []int64 {
	var v []int64
	for _, au := range out {
		if au.Track.Codec.IsVideo() {
			v = append(v, int64(au.DTS/time.Millisecond))
		}
	}
	return v
}

func countKind(reps []Repair, kind string) int {
	n := 0
	for _, r := range reps {
		if r.Kind == kind {
			n++
		}
	}
	return n
}

// TestCadenceJitter: 25 fps with ±12 ms uniform jitter (the frame rate declared or not)
// comes out at exactly 40 ms spacing once settled, within a frame of the input, audio
// untouched, and is reported once.
func TestCadenceJitter(t *testing.T) {
	for _, fps := range []float64{25, 0} {
		rng := rand.New(rand.NewPCG(7, uint64(fps)))
		tr := &Track{Codec: H264, FrameRate: fps}
		in := withAudio(jitteredCFR(rng, tr, 1000, 25, 1500, 12), 1010)
		out, reps := runFrames(in)
		checkCadence(t, in, out, 40)
		v := videoDTS(out)
		// Settled after 4 s (locking takes up to cadenceEvidence frames, then the phase
		// estimate averages over ~cadencePhasorN frames).
		for i := 100; i < len(v); i++ {
			if v[i]-v[i-1] != 40 {
				t.Fatalf("fps %v: frame %d spaced %d ms after the previous, want 40 (%v)", fps, i, v[i]-v[i-1], v[i-5:i+1])
			}
		}
		if fps > 0 {
			// Snapped within the first few frames (as soon as a few frames fit), then on
			// the grid, the phase catching up at 1 ms per frame.
			from := 1
			for i := 1; i < 75; i++ {
				if d := v[i] - v[i-1]; d < 39 || d > 41 {
					from = i + 1
				}
			}
			if from > 8 {
				t.Fatalf("declared rate: frame %d spaced %d ms (%v)", from-1, v[from-1]-v[from-2], v[:from])
			}
		}
		if n := countKind(reps, RepairCadence); n != 1 || len(reps) != 1 {
			t.Fatalf("fps %v: repairs %v, want one cadence", fps, reps)
		}
		if reps[0].Delta != 40*time.Millisecond {
			t.Errorf("cadence reported as %v", reps[0].Delta)
		}
	}
}

// TestCadenceRateChange: a real change from 25 to 30 fps (both jittered) is followed within
// a second.
func TestCadenceRateChange(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tr := &Track{Codec: H264, FrameRate: 25}
	a := jitteredCFR(rng, tr, 1000, 25, 250, 12) // 10 s
	b := jitteredCFR(rng, tr, 11000, 30, 300, 12)
	in := append(a, b...)
	out, _ := runFrames(in)
	checkCadence(t, in, out, 40)
	v := videoDTS(out)
	// From 1 s after the change: 33.33 ms spacing (33 or 34 ms; ±1 ms more while the
	// phase settles), 1000 ms per 30 frames; from 3 s on exactly 33 or 34 ms.
	from := len(a) + 30
	for i := from; i < len(v); i++ {
		d := v[i] - v[i-1]
		if d < 32 || d > 35 || (i >= len(a)+90 && d != 33 && d != 34) {
			t.Fatalf("frame %d (%d after the change) spaced %d ms", i, i-len(a), d)
		}
		if i >= from+30 {
			if s := v[i] - v[i-30]; s < 996 || s > 1004 {
				t.Fatalf("frame %d: 30 frames span %d ms", i, s)
			}
		}
	}
}

// x264Order is the decode order of libx264's default B-frame structure (bf=3, b-pyramid
// normal: P, B-ref, b, b), as frame numbers in presentation order.
func x264Order(n int) []int {
	order := []int{0}
	for g := 0; 4*g+4 < n; g++ {
		order = append(order, 4*g+4, 4*g+2, 4*g+1, 4*g+3)
	}
	return order
}

// TestCadenceBFrames: B-frames with jitter keep their presentation order and PTS >= DTS,
// whether the jitter moved both timestamps (CTS as encoded) or only the DTS (CTS
// compensating), and both DTS and PTS come out on the 40 ms grid.
func TestCadenceBFrames(t *testing.T) {
	for _, dtsOnly := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(5, 6))
		tr := &Track{Codec: H264, FrameRate: 25}
		var in []frame
		for k, num := range x264Order(1000) {
			dts, pts := int64(1000+k*40), int64(1000+(num+2)*40)
			j := rng.Int64N(25) - 12
			f := frame{tr: tr, truePTS: pts, dts: dts + j, pts: pts + j}
			if dtsOnly {
				f.pts = pts
			}
			in = append(in, f)
		}
		in = withAudio(in, 1000)
		out, _ := runFrames(in)
		checkCadence(t, in, out, 40)
		type vp struct{ truePTS, pts int64 }
		var ps []vp
		for i, au := range out {
			if au.Track == tr {
				ps = append(ps, vp{in[i].truePTS, int64(au.PTS / time.Millisecond)})
			}
		}
		slices.SortFunc(ps, func(a, b vp) int { return int(a.truePTS - b.truePTS) })
		for i := 1; i < len(ps); i++ {
			if ps[i].pts <= ps[i-1].pts {
				t.Fatalf("dtsOnly=%v: presentation order broken at frame %d: PTS %d after %d", dtsOnly, i, ps[i].pts, ps[i-1].pts)
			}
			if i > 100 && ps[i].pts-ps[i-1].pts != 40 {
				t.Fatalf("dtsOnly=%v: frame %d presented %d ms after the previous", dtsOnly, i, ps[i].pts-ps[i-1].pts)
			}
		}
		v := videoDTS(out)
		for i := 100; i < len(v); i++ {
			if v[i]-v[i-1] != 40 {
				t.Fatalf("dtsOnly=%v: DTS spacing %d at %d", dtsOnly, v[i]-v[i-1], i)
			}
		}
	}
}

// TestCadenceHonestIrregular: honest timestamps are not distorted: a variable-frame-rate
// capture passes unchanged, and a constant rate with missing frames keeps its gaps (within
// the millisecond rounding of a fractional period).
func TestCadenceHonestIrregular(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, fps := range []float64{0, 30, 60} {
		tr := &Track{Codec: H264, FrameRate: fps}
		// Variable frame rate: frames when the screen changes, 5..300 ms apart.
		var vfr []frame
		ts := int64(500)
		for i := 0; i < 2000; i++ {
			vfr = append(vfr, frame{tr: tr, dts: ts, pts: ts})
			ts += 5 + rng.Int64N(296)
		}
		out, reps := runFrames(vfr)
		for i, au := range out {
			if au.DTS != ms(vfr[i].dts-vfr[0].dts) {
				t.Fatalf("VFR (declared %v fps) frame %d moved: %v, want %d ms", fps, i, au.DTS, vfr[i].dts-vfr[0].dts)
			}
		}
		if len(reps) != 0 {
			t.Fatalf("VFR: repairs %v", reps)
		}
	}
	for _, fps := range []float64{25, 30000.0 / 1001, 60} {
		for _, declared := range []float64{0, fps} {
			tr := &Track{Codec: H264, FrameRate: declared}
			var cfr []frame
			for i := 0; i < 3000; i++ {
				if rng.IntN(5) == 0 || (i >= 1000 && i < 1020) {
					continue // dropped frames, and a 20-frame hole
				}
				ts := 2000 + int64(math.Round(float64(i)*1000/fps))
				cfr = append(cfr, frame{tr: tr, dts: ts, pts: ts})
			}
			out, reps := runFrames(cfr)
			for i, au := range out {
				if d := au.DTS - ms(cfr[i].dts-cfr[0].dts); d.Abs() > time.Millisecond {
					t.Fatalf("CFR %v fps with gaps (declared %v): frame %d moved by %v", fps, declared, i, d)
				}
			}
			if len(reps) != 0 {
				t.Fatalf("CFR %v fps with gaps: repairs %v", fps, reps)
			}
		}
	}
}

// loopedBFrames is a 2 s clip of 25 fps video with B-frames looped n times the way a file
// whose audio outlasts its video loops: each loop starts span ms after the previous one,
// so the video has a gap at every seam that is not a whole number of frames. j is the
// jitter of each frame (both timestamps).
func loopedBFrames(rng *rand.Rand, tr *Track, n int, span, j int64) []frame {
	var in []frame
	for l := 0; l < n; l++ {
		base := 1000 + int64(l)*span
		for k, num := range x264Order(50) {
			dts, pts := base+int64(k*40), base+int64((num+2)*40)
			jj := int64(0)
			if j > 0 {
				jj = rng.Int64N(2*j+1) - j
			}
			in = append(in, frame{tr: tr, truePTS: pts, dts: dts + jj, pts: pts + jj})
		}
	}
	return withAudio(in, 1000)
}

// TestCadenceGapShiftsPhase: after a gap that is not a whole number of frames (a looped
// file whose audio outlasts its video by 70 ms: 210 ms from the last video frame of a loop
// to the first of the next), honest timestamps pass unchanged (the gap keeps its length,
// no 41 ms spacing), and neither honest nor jittered ones make a decoder rounding PTS to
// 1/25 s see two frames in one slot (ffmpeg's "non monotonically increasing dts").
func TestCadenceGapShiftsPhase(t *testing.T) {
	for _, j := range []int64{0, 6} {
		rng := rand.New(rand.NewPCG(3, uint64(j)))
		tr := &Track{Codec: H264, FrameRate: 25}
		in := loopedBFrames(rng, tr, 12, 2170, j)
		out, reps := runFrames(in)
		checkCadence(t, in, out, 40)
		off := out[0].DTS - ms(in[0].dts)
		type vp struct{ truePTS, pts int64 }
		var ps []vp
		for i, au := range out {
			if au.Track != tr {
				continue
			}
			if j == 0 && (au.DTS != ms(in[i].dts)+off || au.PTS != ms(in[i].pts)+off) {
				t.Fatalf("honest frame %d moved: DTS %v PTS %v, sent %d %d (+%v)", i, au.DTS, au.PTS, in[i].dts, in[i].pts, off)
			}
			ps = append(ps, vp{in[i].truePTS, int64(au.PTS / time.Millisecond)})
		}
		if j == 0 && countKind(reps, RepairCadence) != 0 {
			t.Errorf("honest timestamps reported as snapped: %v", reps)
		}
		slices.SortFunc(ps, func(a, b vp) int { return int(a.truePTS - b.truePTS) })
		for i := 1; i < len(ps); i++ {
			if a, b := math.Round(float64(ps[i-1].pts)/40), math.Round(float64(ps[i].pts)/40); b <= a {
				t.Fatalf("jitter %d: frames %d and %d fall into one 1/25 s slot (PTS %d, %d)", j, i-1, i, ps[i-1].pts, ps[i].pts)
			}
		}
		// Away from the seams the spacing is one period; with jitter the grid may move
		// by 1 ms per frame toward the frames' mean phase after a seam.
		v := videoDTS(out)
		for i := 1; i < len(v); i++ {
			d, k := v[i]-v[i-1], i%49
			if k != 0 && d != 40 && (j == 0 || d < 39 || d > 41) {
				t.Fatalf("jitter %d: DTS spacing %d at frame %d", j, d, i)
			}
		}
	}
}
