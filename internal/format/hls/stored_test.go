package hls

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/format/segment"
	"github.com/livrec/livrec/internal/media"
)

// A file begun by one writer is continued by another from its StoredState (another
// node, another work directory): one playlist with the first writer's segments, then one
// discontinuity and the second's, on one monotonic timeline with all the video. The
// state alone also finalizes the first writer's part (FinishStored), and again to the
// same object.
func TestResumeFromStoredState(t *testing.T) {
	in := getInput(t, inH264AAC)
	st := newDiskStore(t)
	var part1, part2 []*media.AccessUnit
	for _, au := range in.AUs {
		if au.DTS < 6*time.Second {
			part1 = append(part1, au)
		}
		if au.DTS >= 3*time.Second {
			c := *au // the publish on the other node starts its timeline near 0
			c.DTS -= 3 * time.Second
			c.PTS -= 3 * time.Second
			part2 = append(part2, &c)
		}
	}
	w1, _ := newTestWriter(t, st, testSlice)
	if err := w1.SetTracks(in.Video, in.Audio); err != nil {
		t.Fatal(err)
	}
	if w1.StoredState() != nil {
		t.Fatal("a state before anything was stored")
	}
	feed(t, w1, part1)
	w1.Pause() // the publish ended: everything received is stored
	state := w1.StoredState()
	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}

	w2, err := New(Config{SliceDuration: testSlice, WorkDir: t.TempDir(), SegmentKey: testSegmentKey, SegmentURI: st.Path,
		Store: st, Now: fakeClock(), Logger: testLogger(t), Resume: state})
	if err != nil {
		t.Fatal(err)
	}
	if d := w2.Duration(); absDur(d-expectedDuration(part1, true)) > 30*time.Millisecond {
		t.Fatalf("resumed writer's duration %v, want the first part's %v", d, expectedDuration(part1, true))
	}
	if err := w2.SetTracks(in.Video, in.Audio); err != nil {
		t.Fatal(err)
	}
	w2.Discontinuity() // the task resumes
	feed(t, w2, part2)
	res, err := w2.Finish(context.Background(), testPlaylistKey)
	if err != nil {
		t.Fatal(err)
	}
	m := checkVOD(t, st, res, expectedDuration(part1, true)+expectedDuration(part2, true))
	if discs := discontinuities(m); len(discs) != 1 || discs[0] != 2 {
		t.Errorf("discontinuities at segments %v, want [2]", discs)
	}
	videoIncreasing(t, demuxTS(t, bytes.NewReader(concatSegments(t, st, res.Segments))).AUs)
	// All the video: part1 in the first writer's segments (checked below from the
	// state alone), then part2 from its first keyframe in the second writer's (its own
	// muxer: demuxed apart, as a player does after a discontinuity).
	var kept []*media.AccessUnit
	seen := false
	for _, au := range part2 {
		seen = seen || au.Track.Codec.IsVideo() && au.Key
		if seen {
			kept = append(kept, au)
		}
	}
	second := demuxTS(t, bytes.NewReader(concatSegments(t, st, res.Segments[2:])))
	if a, b := vcl(kept, false), vcl(second.AUs, false); !bytes.Equal(a, b) {
		t.Errorf("VCL differs: want %d bytes, got %d", len(a), len(b))
	}

	// The first part alone, from the state (its writer's node died).
	key := func(time.Time) string { return "rec/live/s1/2026-01-01/first.m3u8" }
	r1, err := segment.FinishStored(context.Background(), "hls", st, state, t.TempDir(), key, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	checkVOD(t, st, r1, expectedDuration(part1, true))
	if a, b := vcl(part1, false), vcl(demuxTS(t, bytes.NewReader(concatSegments(t, st, r1.Segments))).AUs, false); !bytes.Equal(a, b) {
		t.Errorf("VCL of the first part differs: want %d bytes, got %d", len(a), len(b))
	}
	r2, err := segment.FinishStored(context.Background(), "hls", st, state, t.TempDir(), key, testLogger(t))
	if err != nil || r2.PlaylistKey != r1.PlaylistKey {
		t.Fatalf("second FinishStored: %v, key %q want %q", err, r2.PlaylistKey, r1.PlaylistKey)
	}
}
