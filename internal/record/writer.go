package record

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/format/cmaf"
	"github.com/livrec/livrec/internal/format/flvfile"
	"github.com/livrec/livrec/internal/format/hls"
	"github.com/livrec/livrec/internal/format/mp4"
	"github.com/livrec/livrec/internal/keytemplate"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
)

// hlsWriter adapts hls.Writer, whose Finish reports segment details, to format.Writer.
type hlsWriter struct{ *hls.Writer }

func (w hlsWriter) Finish(ctx context.Context, key string) (format.Result, error) {
	res, err := w.Writer.Finish(ctx, key)
	return hlsResult(res), err
}

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
	switch f {
	case rules.M3U8, rules.CMAF:
		// A cmaf recording is an HLS playlist too (of fMP4 segments): players and the
		// content types served for it go by this extension.
		return ".m3u8"
	default:
		return "." + string(f)
	}
}

func newFileWriter(t *Task, rf rules.RecordFormat, dir string) (format.Writer, error) {
	switch rf.Format {
	case rules.M3U8:
		w, err := hls.New(hls.Config{
			SliceDuration: time.Duration(rf.SliceDuration) * time.Second,
			WorkDir:       dir,
			SegmentKey:    func(seq int, start time.Time) string { return t.sliceKey(rf, seq, start) + ".ts" },
			SegmentURI:    t.m.cfg.LiveURI,
			Store:         t.m.countSegments(t.store, rules.M3U8, ".ts"),
			Now:           func() time.Time { return t.wallAt(t.lastDTS) },
			Logger:        t.m.cfg.Logger.With("task", t.id, "format", "m3u8"),
			NoSync:        t.m.cfg.NoSync,
		})
		if err != nil {
			return nil, err
		}
		return hlsWriter{w}, nil
	case rules.CMAF:
		return cmaf.New(cmaf.Config{
			SliceDuration: time.Duration(rf.SliceDuration) * time.Second,
			WorkDir:       dir,
			SegmentKey:    func(seq int, start time.Time) string { return t.sliceKey(rf, seq, start) + ".m4s" },
			InitKey:       func(n int) string { return t.sliceKey(rf, n, t.wallAt(t.lastDTS)) + "_init.mp4" },
			SegmentURI:    t.m.cfg.LiveURI,
			Store:         t.m.countSegments(t.store, rules.CMAF, ".m4s"),
			Now:           func() time.Time { return t.wallAt(t.lastDTS) },
			Logger:        t.m.cfg.Logger.With("task", t.id, "format", "cmaf"),
			NoSync:        t.m.cfg.NoSync,
		})
	case rules.MP4:
		return mp4.New(mp4.Config{WorkDir: dir, Store: t.store, Now: func() time.Time { return t.wallAt(t.lastDTS) },
			Logger: t.m.cfg.Logger.With("task", t.id, "format", "mp4"), NoSync: t.m.cfg.NoSync})
	case rules.FLV:
		return flvfile.New(flvfile.Config{WorkDir: dir, Store: t.store, Now: func() time.Time { return t.wallAt(t.lastDTS) },
			Logger: t.m.cfg.Logger.With("task", t.id, "format", "flv"), MaxDuration: time.Duration(rf.CycleDuration) * time.Second,
			NoSync: t.m.cfg.NoSync})
	default:
		return nil, fmt.Errorf("format %q is not available in this build", rf.Format)
	}
}

// finishWriter closes w and stores the file under the object prefix rendered with vars.
func finishWriter(ctx context.Context, w format.Writer, rf rules.RecordFormat, vars keytemplate.Vars) (format.Result, error) {
	key, err := keytemplate.Render(rf.ObjectPrefix, vars)
	if err != nil {
		return format.Result{}, err
	}
	return w.Finish(ctx, key+extension(rf.Format))
}

func hlsResult(res hls.Result) format.Result {
	return format.Result{Key: res.PlaylistKey, Duration: res.Duration, Bytes: res.Bytes, Segments: len(res.Segments)}
}

// recoverFile finalizes a file left open by a crash from its working directory.
func recoverFile(ctx context.Context, store storage.Store, rf rules.RecordFormat, vars keytemplate.Vars, workDir string, log *slog.Logger) (format.Result, time.Time, error) {
	var end time.Time
	keyFn := func(e time.Time) string {
		end = e
		v := vars
		v.End = e
		key, err := keytemplate.Render(rf.ObjectPrefix, v)
		if err != nil {
			log.Error("object key template", "err", err)
		}
		return key + extension(rf.Format)
	}
	switch rf.Format {
	case rules.M3U8:
		res, err := hls.Recover(ctx, workDir, store, keyFn, log)
		return hlsResult(res), end, err
	case rules.CMAF:
		res, err := cmaf.Recover(ctx, workDir, store, keyFn, log)
		return res, end, err
	case rules.MP4:
		res, err := mp4.Recover(ctx, workDir, store, keyFn, log)
		return res, end, err
	case rules.FLV:
		res, err := flvfile.Recover(ctx, workDir, store, keyFn, log)
		return res, end, err
	default:
		return format.Result{}, end, fmt.Errorf("cannot recover format %q", rf.Format)
	}
}

// segmentCounter counts stored segments in livrec_segments_written_total as they are
// stored (not when their file is generated).
type segmentCounter struct {
	next   storage.Store
	m      *Manager
	format string
	ext    string
}

func (m *Manager) countSegments(st storage.Store, f rules.Format, ext string) storage.Store {
	return segmentCounter{next: st, m: m, format: string(f), ext: ext}
}

func (c segmentCounter) Store(ctx context.Context, key, path string) error {
	err := c.next.Store(ctx, key, path)
	if err == nil && strings.HasSuffix(key, c.ext) {
		c.m.cfg.Metrics.SegmentsWritten.WithLabelValues(c.format).Inc()
	}
	return err
}

func (c segmentCounter) Open(ctx context.Context, key string) (storage.Object, error) {
	return c.next.Open(ctx, key)
}

func (c segmentCounter) Describe() string { return c.next.Describe() }
