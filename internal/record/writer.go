package record

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/format/cmaf"
	"github.com/livrec/livrec/internal/format/flvfile"
	"github.com/livrec/livrec/internal/format/hls"
	"github.com/livrec/livrec/internal/format/mp4"
	"github.com/livrec/livrec/internal/format/segment"
	"github.com/livrec/livrec/internal/keytemplate"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
)

// formatImpl is what the recorder knows of one record format: adding a format is one
// entry in formats.
type formatImpl struct {
	// ext follows the rendered object prefix in the key of a recording file.
	ext string
	// segmented: the writer drops a segment it could not write whole and goes on in
	// the next one, so a failed write (a full disk) does not end the file.
	segmented bool
	// open returns the writer of a new file recorded in dir; resume, if set, is the kept
	// state of a file another node began (segmented formats only), continued here.
	open func(t *Task, rf rules.RecordFormat, dir string, prog *progress, resume []byte) (format.Writer, error)
	// finishStored finalizes a segmented file from its kept state (its node died).
	finishStored func(ctx context.Context, st storage.Store, state []byte, dir string, key func(end time.Time) string, log *slog.Logger) (format.Result, error)
	// recover finalizes a file a crash left open from its working directory.
	recover func(ctx context.Context, dir string, store storage.Store, key func(end time.Time) string, log *slog.Logger) (format.Result, error)
}

var formats = map[rules.Format]formatImpl{
	rules.M3U8: {
		// The VOD playlist of MPEG-TS segments.
		ext:       ".m3u8",
		segmented: true,
		open: func(t *Task, rf rules.RecordFormat, dir string, prog *progress, resume []byte) (format.Writer, error) {
			w, err := hls.New(hls.Config{
				SliceDuration: time.Duration(rf.SliceDuration) * time.Second,
				WorkDir:       dir,
				SegmentKey:    func(seq int, start time.Time) string { return t.sliceKey(rf, seq, start) + ".ts" },
				SegmentURI:    t.m.cfg.LiveURI,
				Store:         t.m.countSegments(t.store, rules.M3U8, ".ts", prog),
				Now:           t.clock,
				Logger:        t.m.cfg.Logger.With("task", t.id), // the segment engine names the format
				NoSync:        t.m.cfg.NoSync,
				Syncer:        t.m.syncer(),
				Hold:          t.writerHold(),
				Resume:        resume,
			})
			if err != nil {
				return nil, err
			}
			return hlsWriter{w}, nil
		},
		recover: func(ctx context.Context, dir string, store storage.Store, key func(time.Time) string, log *slog.Logger) (format.Result, error) {
			res, err := hls.Recover(ctx, dir, store, key, log)
			return hlsResult(res), err
		},
		finishStored: finishStored("hls"),
	},
	rules.CMAF: {
		// A cmaf recording is an HLS playlist too (of fMP4 segments): players and the
		// content types served for it go by this extension.
		ext:       ".m3u8",
		segmented: true,
		open: func(t *Task, rf rules.RecordFormat, dir string, prog *progress, resume []byte) (format.Writer, error) {
			return cmaf.New(cmaf.Config{
				SliceDuration: time.Duration(rf.SliceDuration) * time.Second,
				WorkDir:       dir,
				SegmentKey:    func(seq int, start time.Time) string { return t.sliceKey(rf, seq, start) + ".m4s" },
				InitKey:       func(n int) string { return t.sliceKey(rf, n, t.clock()) + "_init.mp4" },
				SegmentURI:    t.m.cfg.LiveURI,
				Store:         t.m.countSegments(t.store, rules.CMAF, ".m4s", prog),
				Now:           t.clock,
				Logger:        t.m.cfg.Logger.With("task", t.id),
				NoSync:        t.m.cfg.NoSync,
				Syncer:        t.m.syncer(),
				Hold:          t.writerHold(),
				Resume:        resume,
			})
		},
		recover:      cmaf.Recover,
		finishStored: finishStored("cmaf"),
	},
	rules.MP4: {
		ext: ".mp4",
		open: func(t *Task, rf rules.RecordFormat, dir string, _ *progress, _ []byte) (format.Writer, error) {
			return mp4.New(mp4.Config{WorkDir: dir, Store: t.store, Now: t.clock,
				Logger: t.m.cfg.Logger.With("task", t.id, "format", "mp4"), NoSync: t.m.cfg.NoSync, Hold: t.writerHold(),
				Syncer: t.m.syncer()})
		},
		recover: mp4.Recover,
	},
	rules.FLV: {
		ext: ".flv",
		open: func(t *Task, rf rules.RecordFormat, dir string, _ *progress, _ []byte) (format.Writer, error) {
			return flvfile.New(flvfile.Config{WorkDir: dir, Store: t.store, Now: t.clock,
				Logger: t.m.cfg.Logger.With("task", t.id, "format", "flv"), MaxDuration: time.Duration(rf.CycleDuration) * time.Second,
				NoSync: t.m.cfg.NoSync, Hold: t.writerHold(), Syncer: t.m.syncer()})
		},
		recover: flvfile.Recover,
	},
}

// writerHold is the format.Hold of the task's writers: nil without the disk-full
// handling (Config.DiskCheckInterval 0), where a full disk fails a write.
func (t *Task) writerHold() format.Hold {
	if t.m.disk == nil {
		return nil
	}
	return t.hold
}

// hlsWriter adapts hls.Writer, whose Finish reports segment details, to format.Writer.
type hlsWriter struct{ *hls.Writer }

func (w hlsWriter) Finish(ctx context.Context, key string) (format.Result, error) {
	res, err := w.Writer.Finish(ctx, key)
	return hlsResult(res), err
}

func hlsResult(res hls.Result) format.Result {
	return format.Result{Key: res.PlaylistKey, Duration: res.Duration, Bytes: res.Bytes, Segments: len(res.Segments)}
}

// clock is the wall clock the task's writers see (segment start times in keys): the
// media-anchored time of the last access unit. Writers call it only from WriteAU, which
// the task drives with t.mu held.
func (t *Task) clock() time.Time { return t.wallAt(t.lastDTS) }

// sliceKey renders the segment key template (without extension).
func (t *Task) sliceKey(rf rules.RecordFormat, seq int, start time.Time) string {
	v := t.keyVars(seq)
	v.Start, v.UnixTimestamp = start, start.Unix()
	key, err := keytemplate.Render(rf.SliceObjectPrefix, v)
	if err != nil { // the template was validated with the rule: only over-long names get here
		t.m.cfg.Logger.Error("segment key template", "err", err)
		key = fmt.Sprintf("record/%s/%d_%d", t.id, start.Unix(), seq)
	}
	return key
}

// extension is what follows the rendered object prefix in the key of a recording file.
func extension(f rules.Format) string {
	if impl, ok := formats[f]; ok {
		return impl.ext
	}
	return "." + string(f)
}

func openWriter(t *Task, rf rules.RecordFormat, dir string, prog *progress, resume []byte) (format.Writer, error) {
	impl, ok := formats[rf.Format]
	if !ok {
		return nil, fmt.Errorf("format %q is not available in this build", rf.Format)
	}
	if resume != nil && impl.finishStored == nil {
		return nil, fmt.Errorf("format %q cannot continue a file begun elsewhere", rf.Format)
	}
	return impl.open(t, rf, dir, prog, resume)
}

// finishStored is formatImpl.finishStored of the segment formats (name: "hls", "cmaf").
func finishStored(name string) func(ctx context.Context, st storage.Store, state []byte, dir string, key func(time.Time) string, log *slog.Logger) (format.Result, error) {
	return func(ctx context.Context, st storage.Store, state []byte, dir string, key func(time.Time) string, log *slog.Logger) (format.Result, error) {
		res, err := segment.FinishStored(ctx, name, st, state, dir, key, log)
		return hlsResult(res), err
	}
}

// recoverFile finalizes a file left open by a crash from its working directory.
func recoverFile(ctx context.Context, store storage.Store, rf rules.RecordFormat, vars keytemplate.Vars, workDir string, log *slog.Logger) (format.Result, time.Time, error) {
	impl, ok := formats[rf.Format]
	if !ok {
		return format.Result{}, time.Time{}, fmt.Errorf("cannot recover format %q", rf.Format)
	}
	return finalizeWith(rf, vars, log, func(key func(time.Time) string) (format.Result, error) {
		return impl.recover(ctx, workDir, store, key, log)
	})
}

// finalizeWith runs a finalization (fin) that names the file's object once it knows the
// file's end, from the format's object key template: the result, and that end.
func finalizeWith(rf rules.RecordFormat, vars keytemplate.Vars, log *slog.Logger, fin func(key func(end time.Time) string) (format.Result, error)) (format.Result, time.Time, error) {
	impl := formats[rf.Format]
	var end time.Time
	res, err := fin(func(e time.Time) string {
		end = e
		v := vars
		v.End = e
		key, err := keytemplate.Render(rf.ObjectPrefix, v)
		if err != nil {
			log.Error("object key template", "err", err)
		}
		return key + impl.ext
	})
	return res, end, err
}

// progress counts what a file's writer has stored so far (its segments), for the
// running figures of a recording in progress.
type progress struct {
	segments atomic.Int32
	bytes    atomic.Int64
}

// progressMark is what was last reported of a file.
type progressMark struct {
	segments int32
	dts      time.Duration
}

// progressInterval is how often (media time) the running figures of a single-file
// format are reported; segment formats report every stored segment.
const progressInterval = 10 * time.Second

// reportProgress queues the running figures of f when a segment was stored or
// progressInterval of media passed. Called with t.mu held, after a unit was written.
func (t *Task) reportProgress(f *openFile, dts time.Duration) {
	segs := f.prog.segments.Load()
	if segs == f.reported.segments && dts-f.reported.dts < progressInterval {
		return
	}
	if segs != f.reported.segments {
		t.saveWriterState(f)
	}
	f.reported = progressMark{segments: segs, dts: dts}
	id, dir, dur, bytes := f.row.ID, f.row.WorkDir, f.w.Duration().Seconds(), f.prog.bytes.Load()
	t.m.cat.add(t.id, catalogOp{what: "file progress", owner: t.owner, do: func(ctx context.Context, c Catalog) error {
		if segs == 0 {
			bytes = dirBytes(dir) // a single-file format: what its working files hold
		}
		return c.FileProgress(ctx, id, dur, bytes, int(segs))
	}})
}

// dirBytes sums the sizes of the files in dir.
func dirBytes(dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n
}

// segmentCounter counts stored segments in livrec_segments_written_total as they are
// stored (not when their file is generated), and in the file's progress.
type segmentCounter struct {
	next   storage.Store
	m      *Manager
	format string
	ext    string
	prog   *progress
}

func (m *Manager) countSegments(st storage.Store, f rules.Format, ext string, prog *progress) storage.Store {
	return segmentCounter{next: st, m: m, format: string(f), ext: ext, prog: prog}
}

func (c segmentCounter) Store(ctx context.Context, key, path string) error {
	var size int64
	if info, err := os.Stat(path); err == nil {
		size = info.Size()
	}
	err := c.next.Store(ctx, key, path)
	if err == nil && strings.HasSuffix(key, c.ext) {
		c.m.cfg.Metrics.SegmentsWritten.WithLabelValues(c.format).Inc()
		if c.prog != nil {
			c.prog.segments.Add(1)
			c.prog.bytes.Add(size)
		}
	}
	return err
}

func (c segmentCounter) Open(ctx context.Context, key string) (storage.Object, error) {
	return c.next.Open(ctx, key)
}

func (c segmentCounter) Describe() string { return c.next.Describe() }
