package media

import "math"

// Frame-cadence smoothing parameters.
const (
	// cadenceEvidence is how many consecutive frames must fit a frame rate found in the
	// data (rather than declared by the stream) before the track is snapped to it.
	cadenceEvidence = 20
	// cadencePriorEvidence frames suffice for the frame rate the track declares (one: the
	// first frame of a recording is then already on the grid, and the output grid keeps
	// the first frame's phase); the lock stays provisional for cadenceEvidence frames,
	// in which each frame must follow the previous one in the next slot.
	cadencePriorEvidence = 1
	// cadenceLockTol is the largest deviation from the grid, in periods, of each frame used
	// to lock, and cadenceLockRMS their largest root-mean-square deviation (uniform jitter
	// of ±0.3 periods has 0.17; timestamps unrelated to the grid 0.29); cadenceTol ends the lock (a frame further off, or landing in a slot at or
	// before the previous one's, is not jitter around this rate); cadenceFar bounds the
	// distance of an output from its input (one frame at most, less while the output phase
	// still catches up with the estimate).
	cadenceLockTol = 0.40
	cadenceLockRMS = 0.20
	cadenceTol     = 0.45
	cadenceFar     = 0.75
	// cadenceUnitSteps: at least this share of the locking frames follow their predecessor
	// in the next slot (a cadence, not a variable-rate stream that happens to fit a grid).
	cadenceUnitSteps = 0.9
	// Periods (ms) considered: 120 fps down to 5 fps.
	cadenceMinPeriod = 1000.0 / 120
	cadenceMaxPeriod = 1000.0 / 5
	// The phase estimate is the circular mean of about the last cadencePhasorN frames'
	// positions within a period.
	cadencePhasorN = 64
	// The period is re-fitted every cadenceRefitEvery frames over the last cadenceRefitN
	// frames: to the standard rate nearest to the fit if the fit is consistent with it
	// (within cadenceSigmas standard errors), else to the fit if that refutes the period.
	cadenceRefitN     = 128
	cadenceRefitEvery = 32
	cadenceSigmas     = 4
	// The output phase follows the estimate by 1 ms per frame once they are more than
	// phaseStart periods apart, until they are within phaseStop ms: a wide dead band, so
	// that neither the estimate's noise nor its convergence after a lock turns into
	// steps of the output (a player rounding timestamps to its own frame grid, anchored
	// at the first frame, sees a step as a duplicate or a skipped frame); only a clock
	// that really drifts from the period moves the grid.
	phaseStart = 0.25
	phaseStop  = 0.5
	// cadenceMoved: an output this far (ms) from its input counts as snapped (less is the
	// rounding of fractional periods to milliseconds).
	cadenceMoved = 1
)

// standardRates are the frame rates a fitted period is snapped to, so that e.g. 25 fps
// gives exactly 40 ms spacing instead of a period fitted to a few microseconds.
var standardRates = [...]float64{5, 10, 12, 12.5, 15, 20, 24000.0 / 1001, 24, 25, 30000.0 / 1001, 30,
	48, 50, 60000.0 / 1001, 60, 90, 100, 120}

// cadence snaps the timestamps of one video track onto the grid of its frame rate when
// they wobble around it (an encoder stamping frames with a jittery clock).
//
// The track locks onto the frame rate it declares (SPS or metadata) from its first frame,
// provisionally: for cadenceEvidence frames each frame must land in the slot after the
// previous one. Otherwise it locks onto a period T once cadenceEvidence frames all lie
// within cadenceLockTol·T of a grid of that period, in increasing slots, mostly adjacent
// ones, T being a standard rate near their median spacing or the period fitted to them.
// While locked, a frame goes to the grid slot nearest to it: missing frames leave their
// slots empty (gaps are kept), the grid's phase follows the circular mean of the frames'
// positions (so the output never drifts from the stream's clock) and its period is
// re-fitted over the last cadenceRefitN frames. A frame off the grid by more than
// cadenceTol·T ends the lock (a real frame-rate change, or irregular timestamps): frames
// then pass unchanged until a rate fits again. A declared rate that was refuted is not
// tried again until the declaration changes.
//
// PTS goes to the grid slot nearest to it (not below the DTS's), so composition offsets of
// B-frames are kept whether the jitter was on both timestamps (CTS as encoded) or on the
// DTS only (CTS compensating); a PTS that sits off the grid keeps the received CTS.
//
// Outputs are strictly increasing. Timestamps are in milliseconds.
type cadence struct {
	prior       float64 // declared frame rate (0: none)
	priorFailed bool    // the declared rate locked and was refuted

	locked    bool
	fromPrior bool
	moved     bool    // a frame of this lock was snapped
	period    float64 // T, ms
	phase     float64 // output grid: slot n is at phase + n·T
	following bool    // the output phase is moving toward the estimate
	lastIdx   int64
	frames    int // frames since the lock

	re, im float64 // phasor sum of the positions within a period
	nPh    int

	fitN, fitD [cadenceRefitN]int64 // slots and input DTS of the last frames, a ring
	nFit, iFit int
	sinceFit   int

	hist  [cadenceEvidence]int64 // input DTS since the last lock ended, oldest first
	nHist int

	hasOut  bool
	lastOut int64
}

// cadenceOut is what cadence.fix made of a frame.
type cadenceOut struct {
	dts, pts int64
	onGrid   bool // pts is set (snapped); otherwise keep the received composition offset
	started  bool // the first snapped frame of a lock
}

// reset forgets the stream (a new publish), keeping only output monotonicity.
func (c *cadence) reset() {
	hasOut, lastOut := c.hasOut, c.lastOut
	*c = cadence{hasOut: hasOut, lastOut: lastOut}
}

// fix places one video frame with input DTS d and PTS p; prior is the declared frame rate.
func (c *cadence) fix(d, p int64, prior float64) cadenceOut {
	if prior != c.prior {
		c.prior, c.priorFailed = prior, false
	}
	if c.locked {
		if o, ok := c.snap(d, p); ok {
			return c.emit(d, o)
		}
		c.unlock()
	}
	c.push(d)
	if c.tryLock() {
		if o, ok := c.snap(d, p); ok {
			return c.emit(d, o)
		}
		c.unlock()
		c.push(d)
	}
	return c.emit(d, cadenceOut{dts: d})
}

// emit enforces strictly increasing output and records the snapping.
func (c *cadence) emit(d int64, o cadenceOut) cadenceOut {
	if c.hasOut && o.dts <= c.lastOut {
		o.dts = c.lastOut + 1
	}
	if o.onGrid && o.pts < o.dts {
		o.pts = o.dts
	}
	c.hasOut, c.lastOut = true, o.dts
	if c.locked && !c.moved && (o.dts-d > cadenceMoved || d-o.dts > cadenceMoved) {
		c.moved, o.started = true, true
	}
	return o
}

func (c *cadence) unlock() {
	if c.fromPrior && c.frames <= cadenceEvidence {
		c.priorFailed = true
	}
	prior, failed := c.prior, c.priorFailed
	c.reset()
	c.prior, c.priorFailed = prior, failed
}

func (c *cadence) push(d int64) {
	if c.nHist == len(c.hist) {
		copy(c.hist[:], c.hist[1:])
		c.nHist--
	}
	c.hist[c.nHist] = d
	c.nHist++
}

// wrapHalf maps x into [-T/2, T/2).
func wrapHalf(x, T float64) float64 { return x - T*math.Floor(x/T+0.5) }

// angle is the position of d within a period, as a phasor.
func angle(d int64, T float64) (sin, cos float64) {
	return math.Sincos(2 * math.Pi * math.Mod(float64(d), T) / T)
}

// gridFit fits frames (increasing DTS) to a grid of period T: the phase is their circular
// mean; idx receives their slots. ok reports whether they all lie within cadenceLockTol·T
// of the grid, in increasing and mostly adjacent slots; score is their mean squared
// deviation in periods².
func gridFit(frames []int64, T float64, idx []int64) (phase, score float64, ok bool) {
	var re, im float64
	for _, d := range frames {
		s, c := angle(d, T)
		re, im = re+c, im+s
	}
	phase = math.Atan2(im, re) * T / (2 * math.Pi)
	units := 0
	for i, d := range frames {
		x := float64(d) - phase
		n := int64(math.Round(x / T))
		r := (x - float64(n)*T) / T
		if math.Abs(r) > cadenceLockTol || (i > 0 && n <= idx[i-1]) {
			return 0, 0, false
		}
		if i > 0 && n == idx[i-1]+1 {
			units++
		}
		idx[i] = n
		score += r * r
	}
	score /= float64(len(frames))
	if steps := len(frames) - 1; float64(units) < cadenceUnitSteps*float64(steps) || score > cadenceLockRMS*cadenceLockRMS {
		return 0, 0, false
	}
	return phase, score, true
}

// slope is the least-squares period of DTS d over slots n, and its standard error.
func slope(n, d []int64) (T, stderr float64) {
	k := float64(len(n))
	var sn, sd, snn, snd float64
	for i := range n {
		x, y := float64(n[i]-n[0]), float64(d[i]-d[0])
		sn, sd, snn, snd = sn+x, sd+y, snn+x*x, snd+x*y
	}
	sxx := snn - sn*sn/k
	if sxx <= 0 || k < 3 {
		return 0, math.Inf(1)
	}
	T = (snd - sn*sd/k) / sxx
	b := (sd - T*sn) / k
	var rss float64
	for i := range n {
		r := float64(d[i]-d[0]) - b - T*float64(n[i]-n[0])
		rss += r * r
	}
	return T, math.Sqrt(rss / (k - 2) / sxx)
}

// consistentStandard returns the standard-rate period nearest to T if it is within
// cadenceSigmas standard errors of T.
func consistentStandard(T, stderr float64) (float64, bool) {
	best, ok := 0.0, false
	for _, fps := range standardRates {
		s := 1000 / fps
		if math.Abs(s-T) <= cadenceSigmas*stderr && (!ok || math.Abs(s-T) < math.Abs(best-T)) {
			best, ok = s, true
		}
	}
	return best, ok
}

// tryLock looks for a period that the frames since the last lock fit, and locks onto it
// with the state of all frames but the last (which snap then places).
func (c *cadence) tryLock() bool {
	hist := c.hist // a copy: locking resets c
	frames := hist[:c.nHist]
	var idx, best [cadenceEvidence]int64
	bestT, bestScore, bestPhase := 0.0, math.Inf(1), 0.0
	try := func(T float64) {
		if T < cadenceMinPeriod || T > cadenceMaxPeriod {
			return
		}
		ph, s, ok := gridFit(frames, T, idx[:len(frames)])
		if ok && (s < bestScore || (s == bestScore && T > bestT)) {
			bestT, bestScore, bestPhase, best = T, s, ph, idx
		}
	}
	priorT := 0.0
	if c.prior > 0 && !c.priorFailed && len(frames) >= cadencePriorEvidence {
		priorT = 1000 / c.prior
		try(priorT)
	}
	if len(frames) == cadenceEvidence {
		var deltas [cadenceEvidence - 1]int64
		for i := 1; i < len(frames); i++ {
			deltas[i-1] = frames[i] - frames[i-1]
		}
		m := float64(medianOf(deltas[:]))
		for _, fps := range standardRates {
			if T := 1000 / fps; math.Abs(T-m) <= 0.15*m {
				try(T)
			}
		}
		if m >= cadenceMinPeriod && m <= cadenceMaxPeriod {
			if _, _, ok := gridFit(frames, m, idx[:]); ok {
				T, _ := slope(idx[:], frames)
				try(T)
			}
		}
	}
	if bestT == 0 {
		return false
	}
	prior, failed := c.prior, c.priorFailed
	c.reset()
	c.prior, c.priorFailed = prior, failed
	c.locked, c.fromPrior = true, bestT == priorT
	c.period, c.phase, c.lastIdx = bestT, bestPhase, math.MinInt64
	for i, d := range frames[:len(frames)-1] {
		c.addPhasor(d)
		c.addFit(best[i], d)
		c.lastIdx = best[i]
	}
	return true
}

func medianOf(v []int64) int64 {
	// Insertion sort: at most cadenceEvidence-1 values, no allocation.
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && v[j-1] > v[j]; j-- {
			v[j-1], v[j] = v[j], v[j-1]
		}
	}
	return v[len(v)/2]
}

func (c *cadence) addPhasor(d int64) {
	if c.nPh >= cadencePhasorN {
		k := 1 - 1.0/cadencePhasorN
		c.re, c.im = c.re*k, c.im*k
	} else {
		c.nPh++
	}
	s, co := angle(d, c.period)
	c.re, c.im = c.re+co, c.im+s
}

func (c *cadence) addFit(n, d int64) {
	c.fitN[c.iFit], c.fitD[c.iFit] = n, d
	c.iFit = (c.iFit + 1) % cadenceRefitN
	c.nFit = min(c.nFit+1, cadenceRefitN)
}

// snap places a frame on the locked grid; false means it does not fit (the lock ends).
func (c *cadence) snap(d, p int64) (cadenceOut, bool) {
	T := c.period
	c.addPhasor(d)
	est := c.phase + wrapHalf(math.Atan2(c.im, c.re)*T/(2*math.Pi)-c.phase, T) // estimated grid origin
	fd := float64(d)
	n := int64(math.Round((fd - est) / T))
	if c.fromPrior && c.frames < cadenceEvidence && c.lastIdx != math.MinInt64 && n != c.lastIdx+1 {
		return cadenceOut{}, false
	}
	if n <= c.lastIdx || math.Abs(fd-est-float64(n)*T) > cadenceTol*T ||
		math.Abs(fd-c.phase-float64(n)*T) > cadenceFar*T {
		return cadenceOut{}, false
	}
	if r := fd - c.phase - float64(n)*T; c.lastIdx != math.MinInt64 && n > c.lastIdx+1 && math.Abs(r) > cadenceMoved {
		// Missing frames: the frames after a gap need not keep the phase of those before
		// (a cut, a file looped whose audio outlasts its video). The grid is re-anchored
		// on this frame, so that the gap keeps its length; kept, the old phase would
		// move every later frame by r, the phase follower would walk them back 1 ms per
		// frame (with B-frames their PTS then step unevenly), and a period fitted over
		// both sides would take the phase shift for a rate error (41 ms spacing at 25 fps).
		c.phase += r
		c.following = false
		c.re, c.im, c.nPh = 0, 0, 0
		c.addPhasor(d)
		c.nFit, c.iFit, c.sinceFit = 0, 0, 0
		est = c.phase
	}
	// Follow the estimate, 1 ms per frame, with a dead band.
	if delta := est - c.phase; math.Abs(delta) > phaseStart*T || (c.following && math.Abs(delta) > phaseStop) {
		c.following = true
		c.phase += max(-1, min(1, delta))
	} else {
		c.following = false
	}
	o := cadenceOut{dts: int64(math.Round(c.phase + float64(n)*T))}
	fp := float64(p)
	if m := int64(math.Round((fp - est) / T)); math.Abs(fp-est-float64(m)*T) <= cadenceTol*T {
		o.pts, o.onGrid = int64(math.Round(c.phase+float64(max(m, n))*T)), true
	}
	c.lastIdx = n
	c.frames++
	c.addFit(n, d)
	if c.sinceFit++; c.sinceFit >= cadenceRefitEvery && c.nFit >= cadenceRefitEvery {
		c.refit()
	}
	return o, true
}

// refit re-estimates the period over the last frames and re-anchors the grid so that the
// last slot stays where it was.
func (c *cadence) refit() {
	c.sinceFit = 0
	var ns, ds [cadenceRefitN]int64
	k := c.nFit
	for i := 0; i < k; i++ {
		j := (c.iFit - k + i + cadenceRefitN) % cadenceRefitN
		ns[i], ds[i] = c.fitN[j], c.fitD[j]
	}
	T, se := slope(ns[:k], ds[:k])
	if T < cadenceMinPeriod || T > cadenceMaxPeriod {
		return
	}
	if s, ok := consistentStandard(T, se); ok {
		T = s // e.g. 30 fps rather than 29.97 locked from a few frames that fit both
	} else if math.Abs(T-c.period) <= cadenceSigmas*se {
		return
	}
	if T == c.period {
		return
	}
	last := c.phase + float64(c.lastIdx)*c.period
	c.period, c.phase = T, last-float64(c.lastIdx)*T
	c.re, c.im, c.nPh = 0, 0, 0
	for i := max(0, k-cadencePhasorN); i < k; i++ {
		c.addPhasor(ds[i])
	}
}
