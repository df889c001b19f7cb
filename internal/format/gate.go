package format

import (
	"context"
	"log/slog"
	"time"

	"github.com/livrec/livrec/internal/media"
)

// Reasons the Gate gives for a dropped unit.
const (
	DropEmpty     = "empty access unit"
	DropFirstKey  = "before the first keyframe"
	DropResumeKey = "after a resume, before a keyframe"
	DropBackwards = "DTS going backwards"
)

// CanStart reports whether au may open a file or a segment: a video keyframe, or any
// unit of a file without video.
func CanStart(au *media.AccessUnit, hasVideo bool) bool {
	return !hasVideo || au.Key && au.Track.Codec.IsVideo()
}

// Gate holds the rules that decide, alike for every writer, whether an access unit may be
// written, and logs the units it drops. A writer embeds one and asks Admit before writing
// a unit, then reports with Wrote that it did:
//   - an empty unit is dropped;
//   - until the first unit is written, only a unit that can start the file passes
//     (CanStart): a decoder needs a keyframe first, and audio before it would play over
//     nothing;
//   - after Resume (a stitched publish), video waits for its next keyframe: the frames
//     before it reference pictures of the other publish. Audio goes on;
//   - a unit whose DTS is before the last written one of its kind is dropped (repaired
//     input never does that; a container cannot hold it).
//
// A unit's kind is its codec's (media.Codec.IsVideo): the writers check that the declared
// video track has a video codec. The zero Gate is ready; it is not safe for concurrent use
// (the writers call it under their lock).
type Gate struct {
	// Log receives the drop messages. Nil discards.
	Log *slog.Logger
	// RunTimelines: every run after a Resume has its own timeline (input timestamps may
	// restart), so the DTS rule starts over. For a writer that maps each run onto its
	// output timeline itself; the others keep one timeline across a resume.
	RunTimelines bool

	started bool
	waitKey bool             // Resume: video waits for a keyframe
	any     [2]bool          // per kind (0 video, 1 audio): a unit was written
	last    [2]time.Duration // per kind: DTS of the last unit written
	dropped int64
	logged  [2]int64 // drops per level (0 routine, 1 warning), for the log's rate limit
}

func kindOf(au *media.AccessUnit) int {
	if au.Track.Codec.IsVideo() {
		return 0
	}
	return 1
}

// Admit reports whether au may be written to a file that has (hasVideo) a video track; a
// refused unit is counted and logged, and reason says why.
func (g *Gate) Admit(au *media.AccessUnit, hasVideo bool) (ok bool, reason string) {
	k := kindOf(au)
	switch {
	case au.Size() == 0:
		reason = DropEmpty
	case !g.started && !CanStart(au, hasVideo):
		reason = DropFirstKey
	case g.waitKey && k == 0 && !au.Key:
		reason = DropResumeKey
	case g.any[k] && au.DTS < g.last[k]:
		reason = DropBackwards
	default:
		return true, ""
	}
	if reason == DropBackwards || reason == DropEmpty {
		g.Drop(au, reason)
	} else {
		g.Wait(au, reason)
	}
	return false, reason
}

// Wrote records that au, admitted, was written: the file has started, a resume ends at a
// video unit (a keyframe: Admit let it through), the DTS rule moves on.
func (g *Gate) Wrote(au *media.AccessUnit) {
	k := kindOf(au)
	g.started = true
	if k == 0 {
		g.waitKey = false
	}
	g.any[k], g.last[k] = true, au.DTS
}

// Resume marks a stitched resume: video waits for its next keyframe. A Gate that has not
// started yet waits for its first unit anyway.
func (g *Gate) Resume() {
	if !g.started {
		return
	}
	g.waitKey = true
	if g.RunTimelines {
		g.any = [2]bool{}
	}
}

// WaitsForKey reports whether video units are being dropped until a keyframe: before the
// first unit, and after Resume.
func (g *Gate) WaitsForKey() bool { return !g.started || g.waitKey }

// Dropped returns the number of units dropped so far.
func (g *Gate) Dropped() int64 { return g.dropped }

// Wait counts and logs a routine drop at debug level: a unit waiting for one that opens
// the file, a segment or a run (every start and resume has some).
func (g *Gate) Wait(au *media.AccessUnit, reason string) { g.log(au, reason, 0) }

// Drop counts and logs, as a warning, a unit dropped for a reason that is not routine
// (broken input, a limit of the container).
func (g *Gate) Drop(au *media.AccessUnit, reason string) { g.log(au, reason, 1) }

// log logs the first few drops of each level, then one in logEvery: a broken stream must
// not flood the log.
func (g *Gate) log(au *media.AccessUnit, reason string, level int) {
	const logFirst, logEvery = 5, 1000
	g.dropped++
	g.logged[level]++
	if g.Log == nil || g.logged[level] > logFirst && g.logged[level]%logEvery != 0 {
		return
	}
	lv := slog.LevelDebug
	if level == 1 {
		lv = slog.LevelWarn
	}
	g.Log.Log(context.Background(), lv, "access unit dropped", "reason", reason, "codec", au.Track.Codec,
		"dts", au.DTS, "key", au.Key, "bytes", au.Size(), "dropped_total", g.dropped)
}
