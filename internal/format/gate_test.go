package format

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/media"
)

var (
	testVideo = &media.Track{Codec: media.H264}
	testAudio = &media.Track{Codec: media.AAC}
)

func vid(ms int, key bool) *media.AccessUnit {
	d := time.Duration(ms) * time.Millisecond
	return &media.AccessUnit{Track: testVideo, DTS: d, PTS: d, Key: key, NALUs: [][]byte{{1}}}
}

func aud(ms int) *media.AccessUnit {
	d := time.Duration(ms) * time.Millisecond
	return &media.AccessUnit{Track: testAudio, DTS: d, PTS: d, Key: true, Data: []byte{1}}
}

// step is one unit offered to the gate and the expected answer; admitted units are
// reported written.
type step struct {
	au     *media.AccessUnit
	reason string // "" = admitted
}

func run(t *testing.T, g *Gate, hasVideo bool, steps []step) {
	t.Helper()
	for i, s := range steps {
		ok, reason := g.Admit(s.au, hasVideo)
		if ok != (s.reason == "") || reason != s.reason {
			t.Fatalf("step %d (%s dts %v key %v): Admit = %v %q, want %q", i, s.au.Track.Codec, s.au.DTS, s.au.Key, ok, reason, s.reason)
		}
		if ok {
			g.Wrote(s.au)
		}
	}
}

func TestGateStart(t *testing.T) {
	var g Gate
	if !g.WaitsForKey() {
		t.Error("a new gate does not wait for a keyframe")
	}
	g.Resume() // before the start: nothing to resume
	run(t, &g, true, []step{
		{aud(0), DropFirstKey},
		{vid(0, false), DropFirstKey},
		{&media.AccessUnit{Track: testVideo, Key: true}, DropEmpty},
		{vid(40, true), ""},
		{aud(20), ""}, // the writer's own rules decide on audio before the first picture
		{vid(80, false), ""},
	})
	if g.WaitsForKey() {
		t.Error("still waiting for a keyframe after one was written")
	}
	if g.Dropped() != 3 {
		t.Errorf("Dropped = %d, want 3", g.Dropped())
	}

	// Audio-only: any audio starts.
	var a Gate
	run(t, &a, false, []step{{aud(0), ""}, {aud(23), ""}})

	// An admitted unit the writer did not write (its file failed to open) starts nothing.
	var f Gate
	if ok, _ := f.Admit(vid(0, true), true); !ok {
		t.Fatal("keyframe refused")
	}
	run(t, &f, true, []step{{vid(40, false), DropFirstKey}, {vid(80, true), ""}})
}

func TestGateResume(t *testing.T) {
	var g Gate
	run(t, &g, true, []step{{vid(0, true), ""}, {aud(10), ""}, {vid(40, false), ""}})
	g.Resume()
	if !g.WaitsForKey() {
		t.Error("not waiting for a keyframe after Resume")
	}
	run(t, &g, true, []step{
		{vid(80, false), DropResumeKey},
		{aud(33), ""}, // audio goes on
		{vid(120, false), DropResumeKey},
		{vid(160, true), ""},
		{vid(200, false), ""},
	})
}

func TestGateBackwards(t *testing.T) {
	var g Gate
	run(t, &g, true, []step{
		{vid(100, true), ""},
		{aud(90), ""}, // the kinds are independent
		{vid(99, false), DropBackwards},
		{vid(100, false), ""}, // equal DTS is not backwards
		{aud(89), DropBackwards},
		{aud(110), ""},
	})
	// One timeline across a resume ...
	g.Resume()
	run(t, &g, true, []step{{vid(0, true), DropBackwards}, {vid(140, true), ""}})
	// ... or one per run.
	r := Gate{RunTimelines: true}
	run(t, &r, true, []step{{vid(100, true), ""}, {aud(100), ""}})
	r.Resume()
	run(t, &r, true, []step{{aud(0), ""}, {vid(0, false), DropResumeKey}, {vid(0, true), ""}, {vid(40, false), ""}})
}

func TestGateLog(t *testing.T) {
	var buf bytes.Buffer
	g := Gate{Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for range 2000 {
		g.Admit(aud(0), true) // routine: waiting for the first keyframe
	}
	g.Admit(&media.AccessUnit{Track: testAudio}, true) // empty: a warning
	g.Drop(aud(0), "too large")
	if g.Dropped() != 2002 {
		t.Errorf("Dropped = %d, want 2002", g.Dropped())
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var debug, warn int
	for _, l := range lines {
		switch {
		case strings.Contains(l, "level=DEBUG") && strings.Contains(l, DropFirstKey):
			debug++
		case strings.Contains(l, "level=WARN"):
			warn++
		default:
			t.Errorf("unexpected line %q", l)
		}
	}
	// 5 + the 1000th and 2000th routine drops; the warnings have their own budget, so a
	// flood of routine drops does not hide them.
	if debug != 7 || warn != 2 {
		t.Errorf("%d debug and %d warning lines, want 7 and 2:\n%s", debug, warn, buf.String())
	}
	if !strings.Contains(lines[len(lines)-1], "dropped_total=2002") {
		t.Errorf("last line lacks the total: %s", lines[len(lines)-1])
	}
}

func TestCanStart(t *testing.T) {
	for _, c := range []struct {
		au       *media.AccessUnit
		hasVideo bool
		want     bool
	}{
		{vid(0, true), true, true},
		{vid(0, false), true, false},
		{aud(0), true, false},
		{aud(0), false, true},
	} {
		if got := CanStart(c.au, c.hasVideo); got != c.want {
			t.Errorf("CanStart(%s key %v, hasVideo %v) = %v", c.au.Track.Codec, c.au.Key, c.hasVideo, got)
		}
	}
}
