package record

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/keytemplate"
	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
)

// Task records one stream key with one rule (design.md "Task").
type Task struct {
	m       *Manager
	id      string
	key     StreamKey
	rule    rules.Rule
	started time.Time
	store   storage.Store // where the rule's files go
	owner   *owner        // the stream's lease (Config.Leases), else nil

	mu       sync.Mutex
	state    string
	gen      uint64 // bumped on every pause/resume; a delay timer acts only on its own generation
	timer    Timer
	pub      *session
	pushArgs url.Values
	repair   media.TimestampRepair

	// Current tracks as the writers know them, and the demuxer's pointers they stand for
	// (a new publish re-announces equal tracks under new pointers).
	video, audio       *media.Track
	srcVideo, srcAudio *media.Track

	// Media-anchored wall clock: wall = anchorWall + (DTS - anchorDTS), re-anchored at the
	// first access unit of each publish, so a stream pushed faster than real time gets
	// distinct, media-consistent times and a real-time one gets the real clock.
	anchored   bool
	anchorWall time.Time
	anchorDTS  time.Duration
	lastDTS    time.Duration

	outs []*output
	// early is the audio since the last video unit, held while an output waits for a
	// keyframe to open a file (holdAudio).
	early []media.AccessUnit
	// inflight counts the task's files handed to the finalizers and not yet complete.
	inflight sync.WaitGroup

	// hold is what the task's writers keep in memory while the disk is full; diskGap:
	// past its bound new media was dropped, recording resumes at a keyframe.
	hold      *taskHold
	diskGap   bool
	keptTried time.Time

	manual  bool // started by a command: a re-push after a cut does not resume it
	stopped bool // paused by a stop command: only a start command resumes it
}

// output is one record format of the task: its open file and the next file sequence.
type output struct {
	rf        rules.RecordFormat
	nextSeq   int
	cur       *openFile
	errLogged bool
}

// curWriter is the writer of the open file, or nil.
func (o *output) curWriter() format.Writer {
	if o.cur == nil {
		return nil
	}
	return o.cur.w
}

type openFile struct {
	row      catalog.File
	w        format.Writer
	startDTS time.Duration
	prog     *progress
	reported progressMark // the running figures last queued for the catalog
}

func (m *Manager) newTask(key StreamKey, rule *rules.Rule, s *session) (*Task, error) {
	now := m.cfg.Now()
	store, err := m.storeFor(rule)
	if err != nil {
		return nil, err
	}
	t := m.task(uuid.NewString(), key, *rule, now, store, catalog.TaskRecording, s.owner)
	t.pub, t.pushArgs = s, s.req.Args
	for _, rf := range rule.RecordFormats {
		t.outs = append(t.outs, &output{rf: rf})
	}
	ruleJSON, _ := json.Marshal(rule)
	row := &catalog.Task{ID: t.id, Domain: key.Domain, App: key.App, Stream: key.Stream,
		State: catalog.TaskRecording, Rule: string(ruleJSON), StartedAt: now, UpdatedAt: now}
	started := t.event(EventStarted)
	m.cat.add(t.id, catalogOp{what: "create task", owner: t.owner,
		do:   func(ctx context.Context, c Catalog) error { return c.CreateTask(ctx, row) },
		then: func() { m.emit(started) }})
	return t, nil
}

// task makes a Task in state with what every task has — its disk-full hold, its repair
// events, a hold on its lease, its count in the metrics — whether it starts here
// (newTask) or continues a task another node handed over (adopt).
func (m *Manager) task(id string, key StreamKey, rule rules.Rule, started time.Time, store storage.Store, state string, own *owner) *Task {
	t := &Task{m: m, id: id, key: key, rule: rule, started: started, store: store, state: state, owner: own,
		hold: &taskHold{all: m.hold}}
	t.setRepairEvents()
	own.hold() // released after the task's last catalog write (end)
	m.cfg.Metrics.ActiveTasks.WithLabelValues(state).Inc()
	return t
}

// setRepairEvents reports the task's timestamp repairs as events.
func (t *Task) setRepairEvents() {
	t.repair.OnRepair = func(r media.Repair) {
		t.m.emit(Event{Type: EventTimestampRepair, TaskID: t.id, Domain: t.key.Domain, App: t.key.App, Stream: t.key.Stream,
			Code: r.Kind, Message: r.String()})
	}
}

func (t *Task) event(typ string) Event {
	return Event{Type: typ, TaskID: t.id, Domain: t.key.Domain, App: t.key.App, Stream: t.key.Stream, PushArgs: t.pushArgs}
}

// wallAt maps a (repaired) DTS to wall-clock time.
func (t *Task) wallAt(dts time.Duration) time.Time {
	if !t.anchored {
		return t.m.cfg.Now()
	}
	return t.anchorWall.Add(dts - t.anchorDTS)
}

func (t *Task) setTracks(s *session, video, audio *media.Track) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pub != s {
		return
	}
	t.srcVideo, t.srcAudio = video, audio
	if video.SameParams(t.video) && audio.SameParams(t.audio) {
		return
	}
	t.video, t.audio = video, audio
	for _, o := range t.outs {
		if o.cur != nil {
			err := o.cur.w.SetTracks(video, audio)
			if errors.Is(err, format.ErrNeedNewFile) {
				// The container cannot signal the change: this file is generated now and
				// the next one opens at the next access unit that can start a file.
				t.finishFile(o)
				continue
			}
			if err != nil {
				t.fileError(o, "track_change", err)
			}
			o.cur.row.Width, o.cur.row.Height, o.cur.row.FrameRate, o.cur.row.Codecs = trackInfo(video, audio)
			o.cur.row.CodecsRFC6381 = media.RFC6381(video, audio)
		}
	}
}

func (t *Task) writeAU(s *session, au *media.AccessUnit) {
	// Backpressure while the disk is behind (see syncPool), with no lock held.
	t.m.sync.wait(s.req.ReleaseReadBuffer)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pub != s || t.state != catalog.TaskRecording {
		return
	}
	switch au.Track {
	case t.srcVideo:
		au.Track = t.video
	case t.srcAudio:
		au.Track = t.audio
	}
	t.repair.Fix(au)
	if !t.anchored {
		t.anchored, t.anchorWall, t.anchorDTS = true, t.m.cfg.Now(), au.DTS
	}
	if au.DTS > t.lastDTS {
		t.lastDTS = au.DTS
	}
	if t.hold.over(t.diskGap) && !t.writeKept() {
		// The disk is full and the writers keep what they accept in memory, up to the
		// bound: past it new media is dropped here, before it reaches them, so what they
		// hold is written whole once space returns. The gap is a resume for the writers:
		// video goes on at a keyframe, segment formats open a new segment marked as a
		// discontinuity.
		if !t.diskGap {
			t.diskGap = true
			for _, o := range t.outs {
				if w := o.curWriter(); w != nil {
					w.Discontinuity()
				}
			}
			t.m.hold.exceeded(t)
		}
		t.m.hold.drop()
		return
	}
	if t.diskGap {
		// Space is back: recording resumes at a keyframe (the writers would skip the
		// pictures before it, and a file that ended on the full disk opens there); what
		// comes until then is dropped here, where it is counted.
		if t.video != nil && (au.Track != t.video || !au.Key) {
			t.m.hold.drop()
			return
		}
		t.diskGap = false
	}
	// A file opens (and a cycle rolls over) at a keyframe of the task's video track.
	canStart := format.CanStart(au, t.video != nil) && (t.video == nil || au.Track == t.video)
	t.holdAudio(au)
	for _, o := range t.outs {
		if o.cur != nil && canStart && o.cur.w.Duration() >= time.Duration(o.rf.CycleDuration)*time.Second {
			t.finishFile(o) // recording cycle reached: roll over at this keyframe
		}
		if o.cur == nil {
			if !canStart {
				continue
			}
			if err := t.openFile(o, au.DTS); err != nil {
				if !t.m.disk.noteFull(err) {
					t.fileError(o, "open_failed", err)
				}
				continue
			}
			t.writeUnit(o, au)
			for i := range t.early {
				if e := &t.early[i]; e.DTS >= au.DTS {
					t.writeUnit(o, e)
				}
			}
			continue
		}
		t.writeUnit(o, au)
	}
	if t.video != nil && au.Track == t.video {
		t.early = t.early[:0]
	}
}

// writeKept has the writers write what they keep in memory when the disk is no longer
// marked full (tried at most every keptRetry): past the hold bound the task feeds them
// nothing, so they would not try themselves. It reports whether the task is back
// within its bound. Called with t.mu held.
func (t *Task) writeKept() bool {
	now := time.Now()
	if t.m.disk.isFull() || now.Sub(t.keptTried) < keptRetry {
		return false
	}
	t.keptTried = now
	for _, o := range t.outs {
		if k, ok := o.curWriter().(format.Keeper); ok {
			_ = k.WriteKept() // still full: the next try is keptRetry later
		}
	}
	return !t.hold.over(t.diskGap)
}

// keptRetry is how often a task past its hold bound has its writers try the disk.
const keptRetry = 250 * time.Millisecond

// maxEarlyAudio bounds the audio units held while waiting for a keyframe (about 6 s of
// AAC at 44.1 kHz: far more than any encoder sends ahead of its video).
const maxEarlyAudio = 256

// holdAudio keeps a copy of an audio unit that arrives while an output has no file open
// and the task has video: an encoder may send its audio ahead of the pictures, so audio
// whose time is not before the keyframe that opens the file arrives before it, and
// belongs to the file (written after the keyframe). Only the audio since the last video
// unit is held. Called with t.mu held.
func (t *Task) holdAudio(au *media.AccessUnit) {
	if t.video == nil || au.Track != t.audio || au.Track == nil {
		return
	}
	for _, o := range t.outs {
		if o.cur == nil {
			if len(t.early) == maxEarlyAudio {
				t.early = append(t.early[:0], t.early[1:]...)
			}
			t.early = append(t.early, t.m.keep(au))
			return
		}
	}
}

// writeUnit writes au to the open file of o. Called with t.mu held.
func (t *Task) writeUnit(o *output, au *media.AccessUnit) {
	if o.cur == nil { // a write just failed for lack of space and ended the file
		return
	}
	if err := o.cur.w.WriteAU(au); err != nil {
		if !t.m.disk.noteFull(err) {
			t.fileError(o, "write_failed", err)
		} else {
			t.m.cfg.Metrics.DroppedUnits.WithLabelValues("disk_full").Inc()
			if !formats[o.rf.Format].segmented {
				// The file keeps what it holds and is generated once space returns (the
				// finalizers retry); recording goes on in the next file.
				t.finishFile(o)
				return
			}
		}
	}
	t.reportProgress(o.cur, au.DTS-o.cur.startDTS)
}

// fileError reports a writer error once per file (the stream keeps going).
func (t *Task) fileError(o *output, code string, err error) {
	if o.errLogged {
		return
	}
	o.errLogged = true
	ev := t.event(EventError)
	ev.Code, ev.Message = code, fmt.Sprintf("%s: %v", o.rf.Format, err)
	if o.cur != nil {
		row := o.cur.row
		ev.File = &row
	}
	t.m.emit(ev)
}

func trackInfo(video, audio *media.Track) (w, h int, fps float64, codecs string) {
	var names []string
	if video != nil {
		w, h, fps = video.Width, video.Height, video.FrameRate
		names = append(names, string(video.Codec))
	}
	if audio != nil {
		names = append(names, string(audio.Codec))
	}
	return w, h, fps, strings.Join(names, ",")
}

func (t *Task) keyVars(seq int) keytemplate.Vars {
	return keytemplate.Vars{AppName: t.key.App, StreamName: t.key.Stream, Sequence: seq, Location: t.m.cfg.Location}
}

func (t *Task) openFile(o *output, dts time.Duration) error {
	seq := o.nextSeq
	o.nextSeq++
	dir := filepath.Join(t.m.cfg.WorkDir, t.id, fmt.Sprintf("%s-%d", o.rf.Format, seq))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	row := catalog.File{ID: uuid.NewString(), TaskID: t.id, Domain: t.key.Domain, App: t.key.App, Stream: t.key.Stream,
		Format: string(o.rf.Format), Sequence: seq, WorkDir: dir, Start: t.wallAt(dts), Status: catalog.FileRecording,
		OssEndpoint: t.rule.OssEndpoint, OssBucket: t.rule.OssBucket}
	row.Width, row.Height, row.FrameRate, row.Codecs = trackInfo(t.video, t.audio)
	row.CodecsRFC6381 = media.RFC6381(t.video, t.audio)
	prog := &progress{}
	w, err := openWriter(t, o.rf, dir, prog, nil)
	if err != nil {
		return err
	}
	if err := w.SetTracks(t.video, t.audio); err != nil {
		return err
	}
	f := &openFile{row: row, w: w, startDTS: dts, prog: prog}
	t.m.cat.add(t.id, catalogOp{what: "create file", owner: t.owner,
		do: func(ctx context.Context, c Catalog) error { return c.CreateFile(ctx, &row) }})
	o.cur = f
	o.errLogged = false
	return nil
}

// finishFile hands the open file of o to the finalizers (its final object is stored,
// the catalog row completed and file_created emitted there); o has no open file after
// it, and the next one opens at the next unit that can start a file. Called with t.mu held.
func (t *Task) finishFile(o *output) {
	f := o.cur
	o.cur = nil
	if f == nil {
		return
	}
	vars := t.keyVars(f.row.Sequence)
	vars.Start, vars.End = f.row.Start, t.wallAt(f.startDTS+f.w.Duration())
	t.inflight.Add(1)
	t.m.fin.submit(&finalizeJob{w: f.w, rf: o.rf, row: f.row, vars: vars, pushArgs: t.pushArgs, owner: t.owner, done: t.inflight.Done})
}

// completeFile records the outcome of a finished (or recovered) file: the catalog row is
// completed, then file_created (or record_error) is emitted. A file that ended before
// any media reached it is no recording: its row goes, it is logged and counted, and no
// event is sent.
// own is the task's lease (nil: one node, or a recovered file).
func (m *Manager) completeFile(row *catalog.File, end time.Time, res format.Result, err error, pushArgs url.Values, own *owner) {
	if isNoMedia(err) {
		m.cfg.Metrics.EmptyFiles.WithLabelValues(row.Format).Inc()
		m.cfg.Logger.Info("empty recording: no media reached the file, nothing generated", "task", row.TaskID,
			"stream", row.Domain+"/"+row.App+"/"+row.Stream, "format", row.Format, "sequence", row.Sequence)
		id := row.ID
		m.cat.add(row.TaskID, catalogOp{what: "delete empty file", owner: own,
			do: func(ctx context.Context, c Catalog) error { return c.DeleteFile(ctx, id) }})
		return
	}
	row.End = end
	row.Key = res.Key
	row.Duration = res.Seconds()
	row.Bytes = res.Bytes
	row.Segments = res.Segments
	if res.Duration > 0 {
		row.Bitrate = int64(float64(res.Bytes*8) / res.Duration.Seconds())
	}
	if err != nil {
		row.Status, row.Error = catalog.FileFailed, err.Error()
	} else {
		row.Status, row.Error = catalog.FileDone, ""
	}
	ev := Event{TaskID: row.TaskID, Domain: row.Domain, App: row.App, Stream: row.Stream, File: row, PushArgs: pushArgs}
	if err != nil {
		ev.Type, ev.Code, ev.Message = EventError, "finalize_failed", fmt.Sprintf("%s file %d: %v (working files kept in %s)", row.Format, row.Sequence, err, row.WorkDir)
	} else {
		ev.Type = EventFileCreated
	}
	m.cat.add(row.TaskID, catalogOp{what: "complete file", owner: own,
		do:   func(ctx context.Context, c Catalog) error { return c.UpdateFile(ctx, row) },
		then: func() { m.emit(ev) }})
}

// pause detaches the ending publish: RECORDING → PAUSED, and the stitch window starts.
func (t *Task) pause(s *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pub != s || t.state != catalog.TaskRecording {
		return
	}
	t.pub = nil
	t.state = catalog.TaskPaused
	t.gen++
	gen := t.gen
	t.m.wg.Add(1)
	t.timer = t.m.cfg.AfterFunc(time.Duration(t.rule.DelayTime)*time.Second, func() { t.m.delayExpired(t, gen) })
	// What was received must be durable before the window starts (it can last hours):
	// the writers hand their buffers to the OS here, and the fsyncs run first in the
	// task's catalog queue, off the publisher's goroutine, so the row says paused (and
	// the paused event goes out) only once the data is on disk.
	var syncs []func() error
	for _, o := range t.outs {
		if p, ok := o.curWriter().(format.Pauser); ok {
			if sync := p.Pause(); sync != nil {
				syncs = append(syncs, sync)
			}
		}
	}
	if len(syncs) > 0 {
		id, log := t.id, t.m.cfg.Logger
		t.m.cat.add(t.id, catalogOp{what: "sync paused files", do: func(context.Context, Catalog) error {
			for _, sync := range syncs {
				if err := sync(); err != nil {
					log.Error("sync at pause failed: a crash in the stitch window may lose media", "task", id, "err", err)
				}
			}
			return nil
		}})
	}
	t.setState(catalog.TaskRecording, catalog.TaskPaused, t.event(EventPaused))
}

func (t *Task) stopTimer() {
	if t.timer != nil && t.timer.Stop() {
		t.m.wg.Done()
	}
	t.timer = nil
}

// resume attaches a new publish within the stitch window: PAUSED → RECORDING. The
// files continue: the timeline goes on after the last access unit and segment formats
// mark a discontinuity. It refuses (false) a task that a command stopped, or a manual
// task whose stream was cut, unless force (a start command). Called with Manager.mu
// held; the caller then attaches the session.
func (t *Task) resume(s *session) bool { return t.resumeWith(s, false) }

func (t *Task) resumeWith(s *session, force bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !force && (t.stopped || t.manual) {
		return false
	}
	t.stopTimer()
	t.gen++
	t.stopped = false
	t.pub = s
	t.pushArgs = s.req.Args
	t.srcVideo, t.srcAudio = nil, nil
	t.early = t.early[:0]
	t.anchored = false
	t.repair.Resume()
	for _, o := range t.outs {
		if o.cur != nil {
			o.cur.w.Discontinuity()
		}
	}
	if t.state == catalog.TaskPaused {
		t.setState(catalog.TaskPaused, catalog.TaskRecording, t.event(EventResumed))
		t.state = catalog.TaskRecording
	}
	return true
}

func (t *Task) pausedAt(gen uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state == catalog.TaskPaused && t.gen == gen
}

// setState counts the state change and queues its catalog write; ev, if set, is
// emitted after the write.
func (t *Task) setState(from, to string, ev ...Event) {
	t.m.cfg.Metrics.ActiveTasks.WithLabelValues(from).Dec()
	if to != catalog.TaskEnded {
		t.m.cfg.Metrics.ActiveTasks.WithLabelValues(to).Inc()
	}
	id, at, m := t.id, t.m.cfg.Now(), t.m
	op := catalogOp{what: "task " + to, owner: t.owner, do: func(ctx context.Context, c Catalog) error { return c.SetTaskState(ctx, id, to, at) }}
	if len(ev) > 0 {
		e := ev[0]
		op.then = func() { m.emit(e) }
	}
	t.m.cat.add(t.id, op)
}

// abandon stops a task whose lease was lost (leaseLost): its open files are dropped
// without being generated (their working files stay in the work directory: another
// node owns the stream, and this one must not store objects or rows for it).
func (t *Task) abandon() {
	t.mu.Lock()
	defer t.mu.Unlock()
	from, ok := t.halt(func(o *output) { o.cur = nil })
	t.hold.release()
	if ok {
		t.m.cfg.Metrics.ActiveTasks.WithLabelValues(from).Dec()
		go t.m.unhold(t.owner)
	}
}

// halt ends the task's writing: every output's open file goes to done. It returns the
// state left, false if the task had already ended. Called with t.mu held.
func (t *Task) halt(done func(o *output)) (string, bool) {
	if t.state == catalog.TaskEnded {
		return "", false
	}
	t.stopTimer()
	t.pub = nil
	for _, o := range t.outs {
		done(o)
	}
	from := t.state
	t.state = catalog.TaskEnded
	return from, true
}

// end hands every open file to the finalizers: → ENDED. The catalog row of the task is
// ended once all its files are complete (until then a crash leaves the task open, and
// the next start's recovery finalizes whatever did not complete).
func (t *Task) end(reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	from, ok := t.halt(t.finishFile)
	if !ok {
		return
	}
	t.m.ending.Add(1)
	go func() {
		defer t.m.ending.Done()
		t.inflight.Wait()
		t.setState(from, catalog.TaskEnded, t.event(EventEnded))
		// Only if empty: the working files of a failed file stay.
		t.m.cat.add(t.id, catalogOp{what: "remove work dir", do: func(context.Context, Catalog) error {
			os.Remove(filepath.Join(t.m.cfg.WorkDir, t.id))
			return nil
		}})
		// The lease is kept until the task's rows are final: no other node starts the
		// stream's next task before.
		t.m.cat.add(t.id, catalogOp{what: "release stream lease", do: func(context.Context, Catalog) error {
			t.m.unhold(t.owner)
			return nil
		}})
		t.m.cfg.Logger.Info("recording task ended", "task", t.id, "stream", t.key.String(), "reason", reason)
	}()
}
