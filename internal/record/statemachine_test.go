package record

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/rtmp"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
)

// The state machine's tests: a fake clock drives the stitch windows, a MemoryCatalog
// keeps the rows, the fixture is replayed as the media; no ffmpeg, no network.

// fakeClock is a clock whose time moves only by Advance, which runs the timers due.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *fakeClock
	at   time.Time
	f    func()
	done bool
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock by d and runs the timers that fall due, in order.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.done && !t.at.After(c.now) {
			t.done = true
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	slices.SortFunc(due, func(a, b *fakeTimer) int { return a.at.Compare(b.at) })
	for _, t := range due {
		t.f()
	}
}

// rig is a Manager on a fake clock and a MemoryCatalog, recording the events.
type rig struct {
	t     *testing.T
	m     *Manager
	cat   *MemoryCatalog
	clock *fakeClock
	cfg   Config

	mu     sync.Mutex
	events []Event
}

func newRig(t *testing.T, rs []rules.Rule, store storage.Store) *rig {
	t.Helper()
	dir := t.TempDir()
	if store == nil {
		st, err := storage.NewLocal(filepath.Join(dir, "files"))
		if err != nil {
			t.Fatal(err)
		}
		store = st
	}
	set, err := rules.NewSet(rs)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, cat: &MemoryCatalog{}, clock: &fakeClock{now: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}}
	r.cfg = Config{Rules: set, Catalog: r.cat, Store: store, WorkDir: filepath.Join(dir, "work"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: r.clock.Now, AfterFunc: r.clock.AfterFunc,
		OnEvent: func(ev Event) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.events = append(r.events, ev)
		}}
	r.m = NewManager(r.cfg)
	t.Cleanup(r.m.Drain) // the sync pool may still write the working files
	return r
}

// restart is a new process on the same catalog, working files and storage.
func (r *rig) restart() *rig {
	r2 := &rig{t: r.t, cat: r.cat, clock: r.clock, cfg: r.cfg}
	r2.cfg.OnEvent = func(ev Event) {
		r2.mu.Lock()
		defer r2.mu.Unlock()
		r2.events = append(r2.events, ev)
	}
	r2.m = NewManager(r2.cfg)
	r.t.Cleanup(r2.m.Drain)
	return r2
}

var fixtureTags = sync.OnceValue(func() []flv.Tag { return readTags(&testing.T{}, "../media/testdata/h264_aac.flv") })

// fixtureSpan is the fixture's media length plus one frame: a replay shifted by it
// continues the timeline.
const fixtureSpan = 2080

// publish starts a publish of stream in app "live" on domain "d".
func (r *rig) publish(stream string) rtmp.Session {
	r.t.Helper()
	s, err := r.m.Publish(&rtmp.PublishRequest{App: "live", Stream: stream, Domain: "d", Args: url.Values{}})
	if err != nil {
		r.t.Fatal(err)
	}
	return s
}

// feed sends the fixture n times with continuous timestamps starting at base (ms); it
// returns the base after the last replay. Every body is lent as the RTMP server lends
// it (rtmp.Session.Tag): one buffer, overwritten with garbage after each call, so that
// a recording that keeps a body without copying it records garbage.
func feed(t *testing.T, s rtmp.Session, n int, base uint32) uint32 {
	t.Helper()
	var lent []byte
	for i := 0; i < n; i++ {
		for _, tag := range fixtureTags() {
			if (i > 0 || base > 0) && tag.Type == flv.TagScript {
				continue
			}
			tag.Timestamp += base
			lent = append(lent[:0], tag.Body...)
			tag.Body = lent
			err := s.Tag(tag)
			for j := range lent {
				lent[j] = 0xEE
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		base += fixtureSpan
	}
	return base
}

func (r *rig) eventTypes(stream string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		if ev.Stream == stream && ev.Type != EventTimestampRepair {
			out = append(out, ev.Type)
		}
	}
	return out
}

// files returns the stream's file rows once every queued write is done.
func (r *rig) files(stream string) []catalog.File {
	r.m.Drain()
	var out []catalog.File
	for _, f := range r.cat.Files() {
		if f.Stream == stream {
			out = append(out, f)
		}
	}
	return out
}

func (r *rig) tasks(stream string) []catalog.Task {
	r.m.Drain()
	ids := map[string]bool{}
	for _, f := range r.files(stream) {
		ids[f.TaskID] = true
	}
	var out []catalog.Task
	for id := range ids {
		if t, ok := r.cat.Task(id); ok {
			out = append(out, t)
		}
	}
	return out
}

func m3u8Rule(delay int, formats ...rules.Format) []rules.Rule {
	r := rules.Rule{DomainName: "*", AppName: "*", DelayTime: delay}
	for _, f := range formats {
		rf := rules.RecordFormat{Format: f}
		if f == rules.M3U8 || f == rules.CMAF {
			rf.SliceDuration = 5
		}
		r.RecordFormats = append(r.RecordFormats, rf)
	}
	return []rules.Rule{r}
}

func wantEvents(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// TestStitchInsideWindow: a publish that comes back within delayTime continues the task
// and its file; the file is generated when the window after the last publish expires.
func TestStitchInsideWindow(t *testing.T) {
	r := newRig(t, m3u8Rule(60, rules.M3U8), nil)
	s := r.publish("a")
	feed(t, s, 3, 0)
	s.Close(nil)
	r.clock.Advance(59 * time.Second)
	if fs := r.files("a"); len(fs) != 1 || fs[0].Status != catalog.FileRecording {
		t.Fatalf("inside the window the file stays open: %+v", fs)
	}
	s = r.publish("a")
	feed(t, s, 3, 0) // timestamps restart: the timeline continues after the first run
	s.Close(nil)
	r.clock.Advance(59 * time.Second)
	if fs := r.files("a"); fs[0].Status != catalog.FileRecording {
		t.Fatalf("the second publish's window restarts at its end: %+v", fs)
	}
	r.clock.Advance(2 * time.Second)
	fs := r.files("a")
	if len(fs) != 1 || fs[0].Status != catalog.FileDone {
		t.Fatalf("one generated file: %+v", fs)
	}
	if d := fs[0].Duration; d < 12.4 || d > 12.6 {
		t.Fatalf("duration %.3f s, want the two publishes (12.48 s)", d)
	}
	wantEvents(t, r.eventTypes("a"), EventStarted, EventPaused, EventResumed, EventPaused, EventFileCreated, EventEnded)
	if ts := r.tasks("a"); len(ts) != 1 || ts[0].State != catalog.TaskEnded {
		t.Fatalf("tasks: %+v", ts)
	}
}

// TestStitchOutsideWindow: a publish after the window is a new task with its own file.
func TestStitchOutsideWindow(t *testing.T) {
	r := newRig(t, m3u8Rule(15, rules.M3U8, rules.FLV), nil)
	s := r.publish("b")
	feed(t, s, 2, 0)
	s.Close(nil)
	r.clock.Advance(15 * time.Second)
	if fs := r.files("b"); len(fs) != 2 || fs[0].Status != catalog.FileDone || fs[1].Status != catalog.FileDone {
		t.Fatalf("window expired: both formats generated: %+v", fs)
	}
	s = r.publish("b")
	feed(t, s, 2, 0)
	s.Close(nil)
	r.clock.Advance(16 * time.Second)
	fs := r.files("b")
	if len(fs) != 4 {
		t.Fatalf("two tasks × two formats: %+v", fs)
	}
	if ts := r.tasks("b"); len(ts) != 2 || ts[0].State != catalog.TaskEnded || ts[1].State != catalog.TaskEnded {
		t.Fatalf("tasks: %+v", ts)
	}
	keys := map[string]bool{}
	for _, f := range fs {
		if f.Status != catalog.FileDone || keys[f.Key] {
			t.Fatalf("file %+v not done or key used twice", f)
		}
		keys[f.Key] = true
	}
}

// TestCycleRollover: a file ends when its media duration reaches cycleDuration (media
// time, not wall time: the fake clock does not move), at the next keyframe.
func TestCycleRollover(t *testing.T) {
	rs := m3u8Rule(15, rules.M3U8, rules.FLV)
	rs[0].RecordFormats[0].SliceDuration = 30
	for i := range rs[0].RecordFormats {
		rs[0].RecordFormats[i].CycleDuration = 900
	}
	r := newRig(t, rs, nil)
	s := r.publish("c")
	feed(t, s, 500, 0) // 1040 s
	if fs := r.files("c"); len(fs) != 4 {
		t.Fatalf("at 1040 s of media each format rolled over once: %d files %+v", len(fs), fs)
	}
	s.Close(nil)
	r.clock.Advance(15 * time.Second)
	byFormat := map[string][]catalog.File{}
	for _, f := range r.files("c") {
		byFormat[f.Format] = append(byFormat[f.Format], f)
	}
	for format, fs := range byFormat {
		slices.SortFunc(fs, func(a, b catalog.File) int { return a.Sequence - b.Sequence })
		if len(fs) != 2 || fs[0].Sequence != 0 || fs[1].Sequence != 1 {
			t.Fatalf("%s: %+v", format, fs)
		}
		if d := fs[0].Duration; d < 900 || d > 903 {
			t.Fatalf("%s: first file %.3f s, want the cycle (900 s) up to the next keyframe", format, d)
		}
		if total := fs[0].Duration + fs[1].Duration; total < 1039.9 || total > 1040.1 {
			t.Fatalf("%s: files total %.3f s, want 1040 s", format, total)
		}
		if fs[0].Status != catalog.FileDone || fs[1].Status != catalog.FileDone {
			t.Fatalf("%s: %+v", format, fs)
		}
	}
}

// TestRestartAndCancelDelay: restart generates the open files and recording goes on in
// new ones; cancel_delay ends a paused task at once, without waiting for the window.
func TestRestartAndCancelDelay(t *testing.T) {
	r := newRig(t, m3u8Rule(180, rules.M3U8, rules.MP4), nil)
	ctx := context.Background()
	s := r.publish("r")
	base := feed(t, s, 3, 0)
	if err := r.m.Command(ctx, "d", "live", "r", CommandRestart); err != nil {
		t.Fatal(err)
	}
	if fs := r.files("r"); len(fs) != 2 || fs[0].Status != catalog.FileDone || fs[1].Status != catalog.FileDone {
		t.Fatalf("restart generates the open files: %+v", fs)
	}
	feed(t, s, 3, base)
	s.Close(nil)
	if err := r.m.Command(ctx, "d", "live", "r", CommandCancelDelay); err != nil {
		t.Fatal(err)
	}
	fs := r.files("r")
	if len(fs) != 4 {
		t.Fatalf("two files per format: %+v", fs)
	}
	for _, f := range fs {
		if f.Status != catalog.FileDone || f.Duration < 6 || f.Duration > 6.4 {
			t.Fatalf("file %+v: want done, ~6.24 s", f)
		}
	}
	if ts := r.tasks("r"); len(ts) != 1 || ts[0].State != catalog.TaskEnded {
		t.Fatalf("cancel_delay ends the task: %+v", ts)
	}
	if err := r.m.Command(ctx, "d", "live", "r", CommandCancelDelay); !errors.Is(err, ErrTaskNotStarted) {
		t.Fatalf("cancel_delay without a task: %v", err)
	}
	var ce *CommandError
	if err := r.m.Command(ctx, "d", "live", "r", "pause"); !errors.As(err, &ce) || ce.Code != CodeInvalidCommand {
		t.Fatalf("unknown command: %v", err)
	}
}

// TestRecoverOpenTasks: a process that dies with one task RECORDING and one PAUSED; the
// next start finalizes both from the working files, once, and ends the tasks.
func TestRecoverOpenTasks(t *testing.T) {
	r := newRig(t, m3u8Rule(180, rules.M3U8, rules.FLV), nil)
	live := r.publish("live1")
	feed(t, live, 10, 0) // 20.8 s: segments of 5 s stored, the flv flushed every second
	paused := r.publish("paused1")
	feed(t, paused, 10, 0)
	paused.Close(nil)
	r.m.cat.wait() // the rows reached the catalog before the "crash"
	// The crash: the first manager is dropped without Shutdown.

	r2 := r.restart()
	if err := r2.m.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, stream := range []string{"live1", "paused1"} {
		fs := r2.files(stream)
		if len(fs) != 2 {
			t.Fatalf("%s: %+v", stream, fs)
		}
		for _, f := range fs {
			if f.Status != catalog.FileDone || f.Duration < 15 {
				t.Fatalf("%s: recovered file %+v: want done with most of the 20.8 s", stream, f)
			}
		}
		if ts := r2.tasks(stream); len(ts) != 1 || ts[0].State != catalog.TaskEnded {
			t.Fatalf("%s: tasks %+v", stream, ts)
		}
		if got := r2.eventTypes(stream); !slices.Equal(got, []string{EventFileCreated, EventFileCreated}) {
			t.Fatalf("%s: events %v", stream, got)
		}
	}
	// Once: a second start finds nothing left open.
	r3 := r2.restart()
	if err := r3.m.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r3.eventTypes("live1"); len(got) != 0 {
		t.Fatalf("second recovery: %v", got)
	}
}

// failingStore refuses the final objects of one extension.
type failingStore struct {
	next storage.Store
	ext  string
}

func (s failingStore) Store(ctx context.Context, key, path string) error {
	if strings.HasSuffix(key, s.ext) {
		return errors.New("disk on fire")
	}
	return s.next.Store(ctx, key, path)
}

func (s failingStore) Open(ctx context.Context, key string) (storage.Object, error) {
	return s.next.Open(ctx, key)
}

func (s failingStore) Describe() string { return "failing " + s.next.Describe() }

// TestFinalizerFails: a file whose final object cannot be stored is retried, then
// reported (record_error, row failed, working files kept); the other format and the task
// end normally.
func TestFinalizerFails(t *testing.T) {
	defer func(old []time.Duration) { finishRetries = old }(finishRetries)
	finishRetries = []time.Duration{time.Millisecond, time.Millisecond}
	local, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, m3u8Rule(15, rules.M3U8, rules.FLV), failingStore{local, ".flv"})
	s := r.publish("f")
	feed(t, s, 3, 0)
	s.Close(nil)
	r.clock.Advance(16 * time.Second)
	fs := r.files("f")
	if len(fs) != 2 {
		t.Fatalf("%+v", fs)
	}
	for _, f := range fs {
		switch f.Format {
		case "flv":
			if f.Status != catalog.FileFailed || !strings.Contains(f.Error, "disk on fire") {
				t.Fatalf("flv: %+v", f)
			}
		case "m3u8":
			if f.Status != catalog.FileDone {
				t.Fatalf("m3u8: %+v", f)
			}
		}
	}
	got := r.eventTypes("f")
	if !slices.Contains(got, EventError) || !slices.Contains(got, EventFileCreated) {
		t.Fatalf("events %v: want record_error for the flv and file_created for the m3u8", got)
	}
	if ts := r.tasks("f"); len(ts) != 1 || ts[0].State != catalog.TaskEnded {
		t.Fatalf("tasks %+v", ts)
	}
}

// TestEmptyRecording: a push that ends before its first keyframe is no recording: no
// file, no record_error; the task still ends.
func TestEmptyRecording(t *testing.T) {
	r := newRig(t, m3u8Rule(15, rules.M3U8, rules.FLV, rules.MP4), nil)
	s := r.publish("e")
	for _, tag := range fixtureTags() {
		// Sequence headers and audio only up to the first video frame: no keyframe.
		if tag.Type == flv.TagVideo && len(tag.Body) > 1 && tag.Body[1] == 1 {
			break
		}
		if err := s.Tag(tag); err != nil {
			t.Fatal(err)
		}
	}
	s.Close(nil)
	r.clock.Advance(16 * time.Second)
	if fs := r.files("e"); len(fs) != 0 {
		t.Fatalf("files of an empty recording: %+v", fs)
	}
	wantEvents(t, r.eventTypes("e"), EventStarted, EventPaused, EventEnded)

	// A file that was opened but got no media (its writer finishes with ErrNoMedia).
	row := catalog.File{ID: "x", TaskID: "tx", Format: "mp4", Stream: "e2", Status: catalog.FileRecording}
	r.cat.CreateFile(context.Background(), &row)
	r.m.completeFile(&row, time.Time{}, formatResultZero, errNoMediaForTest, nil, nil)
	if fs := r.files("e2"); len(fs) != 0 {
		t.Fatalf("the empty file's row stays: %+v", fs)
	}
	if got := r.eventTypes("e2"); len(got) != 0 {
		t.Fatalf("events for an empty file: %v", got)
	}
}

var (
	formatResultZero  = format.Result{}
	errNoMediaForTest = fmt.Errorf("mp4 finish: %w", format.ErrNoMedia)
)

// TestRunningFigures: a file being recorded shows its running duration, bytes and
// segments in its row (per stored segment; single-file formats every 10 s of media).
func TestRunningFigures(t *testing.T) {
	r := newRig(t, m3u8Rule(15, rules.M3U8, rules.FLV), nil)
	s := r.publish("p")
	base := feed(t, s, 10, 0) // 20.8 s: four 5 s segments closed, two flv reports
	// Segments are stored once the sync pool synced them; the running figures count
	// them at the next unit.
	r.m.Drain()
	feed(t, s, 1, base)
	for _, f := range r.files("p") {
		if f.Status != catalog.FileRecording || f.Duration < 9 || f.Bytes == 0 {
			t.Fatalf("%s in progress: %+v", f.Format, f)
		}
		if f.Format == "m3u8" && (f.Segments < 3 || f.Duration < 15) {
			t.Fatalf("m3u8 in progress: %d segments, %.1f s", f.Segments, f.Duration)
		}
	}
	s.Close(nil)
}

// TestLentBodies: a recording made from lent tag bodies (feed: one buffer, overwritten
// after each Tag call, as the RTMP server reuses its message bodies) is byte for byte the
// one made from bodies of their own, in every format, through a stitch (the resumed
// publish's audio before its keyframe is held) and a manual start (the session's buffer
// of the current GOP is replayed to the task).
func TestLentBodies(t *testing.T) {
	record := func(lend bool, formats ...rules.Format) map[string][]byte {
		rs := m3u8Rule(60, formats...)
		rs = append([]rules.Rule{{DomainName: "*", AppName: "manual", OnDemand: rules.OnDemandManual,
			DelayTime: 60, RecordFormats: rs[0].RecordFormats}}, rs...)
		r := newRig(t, rs, nil)
		send := func(s rtmp.Session, n int, base uint32) {
			if lend {
				feed(t, s, n, base)
				return
			}
			for i := range n {
				for _, tag := range fixtureTags() {
					if (i > 0 || base > 0) && tag.Type == flv.TagScript {
						continue
					}
					tag.Timestamp += base + uint32(i)*fixtureSpan
					tag.Body = bytes.Clone(tag.Body)
					if err := s.Tag(tag); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		s := r.publish("a")
		send(s, 2, 0)
		s.Close(nil)
		s = r.publish("a")
		send(s, 2, 500) // audio of the resumed publish comes before its first keyframe
		s.Close(nil)

		m, err := r.m.Publish(&rtmp.PublishRequest{App: "manual", Stream: "b", Domain: "d", Args: url.Values{}})
		if err != nil {
			t.Fatal(err)
		}
		send(m, 1, 0)
		if err := r.m.Command(context.Background(), "d", "manual", "b", CommandStart); err != nil {
			t.Fatal(err)
		}
		send(m, 2, fixtureSpan)
		m.Close(nil)
		r.clock.Advance(61 * time.Second)
		r.m.Drain()
		root := r.cfg.Store.(*storage.Local).Root
		out := map[string][]byte{}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, _ := os.ReadFile(p)
				out[strings.TrimPrefix(p, root)] = b
			}
			return nil
		})
		return out
	}
	for _, fs := range [][]rules.Format{{rules.FLV, rules.M3U8, rules.MP4}, {rules.CMAF}} {
		own, lent := record(false, fs...), record(true, fs...)
		if len(own) < 2*len(fs) {
			t.Fatalf("%v: %d files recorded: %v", fs, len(own), slices.Collect(maps.Keys(own)))
		}
		for name, b := range own {
			if !bytes.Equal(lent[name], b) {
				t.Errorf("%s: %d bytes from lent bodies, %d from bodies of their own (equal: false)", name, len(lent[name]), len(b))
			}
		}
		if len(lent) != len(own) {
			t.Errorf("%v: %d files from lent bodies, %d from their own", fs, len(lent), len(own))
		}
	}
}
