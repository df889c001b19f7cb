package media

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var (
	vTrack = &Track{Codec: H264}
	aTrack = &Track{Codec: AAC}
)

type in struct {
	video bool
	ts    int64 // raw ms (taken modulo 2^32)
	cts   int64
}

type repairRun struct {
	r       TimestampRepair
	repairs []Repair
	out     []*AccessUnit
}

func newRepairRun() *repairRun {
	rr := &repairRun{}
	rr.r.OnRepair = func(x Repair) { rr.repairs = append(rr.repairs, x) }
	return rr
}

func (rr *repairRun) feed(units ...in) {
	for _, u := range units {
		tr := aTrack
		if u.video {
			tr = vTrack
		}
		au := &AccessUnit{Track: tr, DTS: ms(u.ts), PTS: ms(u.ts + u.cts)}
		rr.r.Fix(au)
		rr.out = append(rr.out, au)
	}
}

func (rr *repairRun) kinds() map[string]int {
	m := map[string]int{}
	for _, x := range rr.repairs {
		m[x.Kind]++
	}
	return m
}

// av produces interleaved A/V units: video every 40 ms, audio every ~23.2 ms, from raw
// start times v0/a0, for d ms.
func av(v0, a0, d int64) []in {
	var out []in
	vi, ai := int64(0), int64(0)
	for {
		vt, at := vi*40, ai*1024*1000/44100
		if vt >= d && at >= d {
			return out
		}
		if vt <= at && vt < d {
			out = append(out, in{true, v0 + vt, 80})
			vi++
		} else {
			out = append(out, in{false, a0 + at, 0})
			ai++
		}
	}
}

// checkMonotonic verifies strictly increasing DTS per track, preserved CTS and continuity
// (no step above maxStep).
func checkMonotonic(t *testing.T, rr *repairRun, units []in, maxStep time.Duration) {
	t.Helper()
	last := map[*Track]time.Duration{}
	for i, au := range rr.out {
		if au.PTS-au.DTS != ms(units[i].cts) {
			t.Fatalf("unit %d: cts %v, want %d ms", i, au.PTS-au.DTS, units[i].cts)
		}
		if au.DTS < 0 {
			t.Fatalf("unit %d: negative DTS %v", i, au.DTS)
		}
		if l, ok := last[au.Track]; ok {
			if au.DTS <= l {
				t.Fatalf("unit %d (%s): DTS %v after %v", i, au.Track.Codec, au.DTS, l)
			}
			if au.DTS-l > maxStep {
				t.Fatalf("unit %d (%s): step %v", i, au.Track.Codec, au.DTS-l)
			}
		}
		last[au.Track] = au.DTS
	}
}

// avSkew returns the output DTS difference between the last video and last audio unit
// minus the same difference in input.
func lastOf(rr *repairRun, units []in, video bool) (out time.Duration, raw int64) {
	for i := len(rr.out) - 1; i >= 0; i-- {
		if units[i].video == video {
			return rr.out[i].DTS, units[i].ts
		}
	}
	return 0, 0
}

func TestRepairStartsAtZero(t *testing.T) {
	rr := newRepairRun()
	units := av(5000, 5010, 2000)
	rr.feed(units...)
	if rr.out[0].DTS != 0 || len(rr.repairs) != 0 {
		t.Fatalf("first DTS %v, repairs %v", rr.out[0].DTS, rr.repairs)
	}
	checkMonotonic(t, rr, units, 60*time.Millisecond)
	if rr.r.LastDTS() < 1950*time.Millisecond {
		t.Errorf("LastDTS %v", rr.r.LastDTS())
	}
}

func TestRepairDiscontinuities(t *testing.T) {
	const wrap = int64(1) << 32
	cases := []struct {
		name      string
		units     []in
		wantKinds map[string]int
	}{
		{"wrap", append(av(wrap-1000, wrap-1000, 1000), av(wrap, wrap, 2000)...), map[string]int{"wrap": 1}},
		{"backward both", append(av(100000, 100000, 2000), av(3000, 3000, 2000)...), map[string]int{"backward": 1}},
		{"jump both", append(av(0, 0, 2000), av(60000, 60000, 2000)...), map[string]int{"jump": 1}},
		{"jump both, audio 30 ms late", append(av(0, 0, 2000), av(60000, 60030, 2000)...), map[string]int{"jump": 1}},
		{"jump video only", append(av(0, 0, 2000), mapUnits(av(2000, 2000, 2000), func(u in) in {
			if u.video {
				u.ts += 30000
			}
			return u
		})...), map[string]int{"jump": 1}},
		{"backward audio only", append(av(20000, 20000, 2000), mapUnits(av(22000, 22000, 3000), func(u in) in {
			if !u.video {
				u.ts -= 15000
			}
			return u
		})...), map[string]int{"backward": 1}},
		{"jitter is not a repair", mapUnits(av(0, 0, 3000), func(u in) in {
			if !u.video && u.ts%3 == 0 {
				u.ts -= 30
			}
			return u
		}), map[string]int{}},
		{"single track jump", append(videoOnly(0, 2000), videoOnly(90000, 2000)...), map[string]int{"jump": 1}},
		{"slow frame rate is not a jump", videoEvery(0, 1000, 10), map[string]int{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rr := newRepairRun()
			rr.feed(tc.units...)
			got := rr.kinds()
			if len(got) != len(tc.wantKinds) {
				t.Fatalf("repairs %v, want %v", rr.repairs, tc.wantKinds)
			}
			for k, n := range tc.wantKinds {
				if got[k] != n {
					t.Fatalf("repairs %v, want %v", rr.repairs, tc.wantKinds)
				}
			}
			checkMonotonic(t, rr, tc.units, 1100*time.Millisecond)
			if !hasBoth(tc.units) {
				return
			}
			// A/V sync after the last repair: the output distance between the last video
			// and the last audio unit equals the input distance (both tracks repaired
			// together) or is within one frame of the re-base (one track repaired).
			vo, vr := lastOf(rr, tc.units, true)
			ao, ar := lastOf(rr, tc.units, false)
			skew := (vo - ao) - ms(vr-ar)
			if tc.name == "jump video only" || tc.name == "backward audio only" {
				skew = (vo - ao)
			}
			if skew < -100*time.Millisecond || skew > 100*time.Millisecond {
				t.Errorf("A/V skew %v", skew)
			}
		})
	}
}

func TestRepairResume(t *testing.T) {
	rr := newRepairRun()
	first := av(1000, 1000, 2000)
	rr.feed(first...)
	last := rr.r.LastDTS()
	rr.r.Resume()
	second := av(0, 5, 2000)
	rr.feed(second...)
	all := append(first, second...)
	checkMonotonic(t, rr, all, 200*time.Millisecond)
	k := rr.kinds()
	if k["resume"] != 1 || k["jump"]+k["backward"] != 0 {
		t.Fatalf("repairs %v", rr.repairs)
	}
	firstNew := rr.out[len(first)].DTS
	if firstNew <= last || firstNew > last+100*time.Millisecond {
		t.Errorf("resumed at %v after %v", firstNew, last)
	}
	if rr.r.LastDTS() < last+1900*time.Millisecond {
		t.Errorf("LastDTS %v", rr.r.LastDTS())
	}
}

// TestRepairResumeInsideGOP: the first publish ends right after a P-frame shown 160 ms
// after its decode time (its B-frames never sent); the resumed publish starts, audio
// first, with a keyframe shown 80 ms after its decode time. The keyframe is shown after
// every picture of the first publish: no two pictures share a presentation time.
func TestRepairResumeInsideGOP(t *testing.T) {
	rr := newRepairRun()
	first := []in{{true, 0, 80}, {false, 0, 0}, {true, 40, 160}, {true, 80, 40}, {true, 120, 80}, {false, 23, 0}, {true, 160, 160}}
	rr.feed(first...)
	rr.r.Resume()
	rr.feed(in{false, 5000, 0}, in{true, 5000, 80}, in{true, 5040, 160})
	var maxPTS time.Duration
	for _, au := range rr.out[:len(first)] {
		if au.Track == vTrack {
			maxPTS = max(maxPTS, au.PTS)
		}
	}
	if key := rr.out[len(first)+1]; key.PTS <= maxPTS {
		t.Fatalf("the resumed keyframe shows at %v, before the first publish's last picture at %v", key.PTS, maxPTS)
	}
	if d := rr.out[len(first)+1].PTS - maxPTS; d > 100*time.Millisecond {
		t.Errorf("the keyframe shows %v after the last picture: more than a frame of gap", d)
	}
}

func TestRepairLateSecondTrack(t *testing.T) {
	rr := newRepairRun()
	units := append(videoOnly(0, 1000), av(1000, 1000, 1000)...)
	rr.feed(units...)
	if len(rr.repairs) != 0 {
		t.Fatalf("repairs %v", rr.repairs)
	}
	checkMonotonic(t, rr, units, 50*time.Millisecond)
	for i, u := range units {
		if !u.video {
			if rr.out[i].DTS != ms(u.ts) {
				t.Fatalf("late audio placed at %v, want %d ms", rr.out[i].DTS, u.ts)
			}
			break
		}
	}
}

func mapUnits(units []in, f func(in) in) []in {
	out := make([]in, len(units))
	for i, u := range units {
		out[i] = f(u)
	}
	return out
}

func videoOnly(start, d int64) []in { return videoEvery(start, 40, d/40) }

func videoEvery(start, step, n int64) []in {
	var out []in
	for i := int64(0); i < n; i++ {
		out = append(out, in{true, start + i*step, 0})
	}
	return out
}

func hasBoth(units []in) bool {
	var v, a bool
	for _, u := range units {
		v, a = v || u.video, a || !u.video
	}
	return v && a
}

// TestSpacingMedian: spacing is the median (upper middle) of the recorded deltas, as a
// sort would give, for every fill level and order.
func TestSpacingMedian(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 2000; iter++ {
		tr := tsTrack{video: iter%2 == 0}
		var all []int64
		for k := rng.IntN(20); k > 0; k-- {
			d := rng.Int64N(60) + 1
			if rng.IntN(4) == 0 {
				d = 40 // duplicates
			}
			tr.addDelta(d)
			all = append(all, min(d, maxSpacing))
		}
		want := int64(defaultAudioSpacing)
		if tr.video {
			want = defaultVideoSpacing
		}
		if len(all) > 0 {
			last := slices.Clone(all[max(0, len(all)-len(tr.deltas)):])
			slices.Sort(last)
			want = last[len(last)/2]
		}
		if got := tr.spacing(); got != want {
			t.Fatalf("deltas %v: spacing %d, want %d", all, got, want)
		}
	}
}

// BenchmarkSpacing: the per-access-unit median of the timestamp repairer (0 allocs).
func BenchmarkSpacing(b *testing.B) {
	var tr tsTrack
	for _, d := range []int64{40, 41, 39, 40, 42, 38, 40, 40} {
		tr.addDelta(d)
	}
	b.ReportAllocs()
	var s int64
	for b.Loop() {
		s += tr.spacing()
	}
	if s == 0 {
		b.Fatal()
	}
}
