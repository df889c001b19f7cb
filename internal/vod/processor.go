// This file holds the work done after an asset is made, as durable jobs: its cover and
// seek previews, its transcodes, and the merge of a task's cycle assets.

package vod

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/livrec/livrec/internal/jobs"
	"github.com/livrec/livrec/internal/merge"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
	"github.com/livrec/livrec/internal/thumbnail"
)

// Job kinds of the processor (TranscodeKind besides).
const (
	SnapshotKind = "vod.snapshot"
	ComposeKind  = "vod.compose"
)

// SnapshotJob makes an asset's cover, sprite sheets and WebVTT track.
type SnapshotJob struct {
	AssetID string `json:"assetId"`
}

// Kind implements jobs.Args.
func (SnapshotJob) Kind() string { return SnapshotKind }

// ComposeJob merges a task's cycle assets into a composed asset.
type ComposeJob struct {
	TaskID string `json:"taskId"`
}

// Kind implements jobs.Args.
func (ComposeJob) Kind() string { return ComposeKind }

// ProcessorOptions configure a Processor.
type ProcessorOptions struct {
	Library *Library
	Queue   *jobs.Queue
	Groups  *TranscodeGroups // nil: the built-in group only
	// WorkDir holds inputs fetched from object storage and outputs before they are
	// stored.
	WorkDir string
	// CoverOffset is where the cover is taken (0: thumbnail.DefaultCoverOffset);
	// SpriteInterval the time between seek-preview tiles (0: thumbnail.DefaultInterval).
	CoverOffset    time.Duration
	SpriteInterval time.Duration
	FFmpeg         string // "" for the one on PATH
	FFprobe        string
	Logger         *slog.Logger
}

// Processor queues and runs the jobs of the library's assets: on each new asset a
// snapshot job and one transcode job per template of its group; on the end of an
// autoCompose task a compose job, whose merged asset gets the same.
type Processor struct {
	o   ProcessorOptions
	log *slog.Logger
	// doneMu serializes the "all renditions made" check of concurrent transcodes.
	doneMu sync.Mutex
}

type jobKey struct{}

// NewProcessor registers the processor's workers on the queue (before it starts).
func NewProcessor(o ProcessorOptions) (*Processor, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Groups == nil {
		g, err := NewTranscodeGroups(nil)
		if err != nil {
			return nil, err
		}
		o.Groups = g
	}
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return nil, err
	}
	p := &Processor{o: o, log: o.Logger}
	transcode := TranscodeWorker(TranscodeOptions{FFmpeg: o.FFmpeg, FFprobe: o.FFprobe}, p.transcoded)
	err := errors.Join(
		jobs.Register(o.Queue, p.snapshot),
		jobs.Register(o.Queue, p.compose),
		jobs.Register(o.Queue, func(ctx context.Context, j *jobs.Job, a TranscodeJob) error {
			err := p.transcode(context.WithValue(ctx, jobKey{}, j), j, a, transcode)
			if err != nil && p.last(ctx, j, err) {
				p.transcodeFailed(context.WithoutCancel(ctx), j, a, err)
			}
			return err
		}))
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Hooks are the library hooks that queue the jobs.
func (p *Processor) Hooks() Hooks {
	return Hooks{AssetCreated: func(ctx context.Context, a *Asset) {
		if _, ok := a.original(); ok { // a composed asset is processed once merged
			p.process(ctx, a)
		}
	}, TaskEnded: p.taskEnded}
}

// last reports whether a failed attempt is the job's last: retries are used up or the
// error is permanent. A stop of livrec is not a failure (the job runs again after it).
func (p *Processor) last(ctx context.Context, j *jobs.Job, err error) bool {
	return ctx.Err() == nil && (j.Attempt >= j.MaxAttempts || jobs.IsPermanent(err))
}

func (a *Asset) original() (PlayInfo, bool) {
	for _, pi := range a.PlayInfos {
		if pi.Definition == DefinitionOriginal {
			return pi, true
		}
	}
	return PlayInfo{}, false
}

// process queues an asset's snapshot job and transcodes; the asset is Transcoding until
// every rendition is made.
func (p *Processor) process(ctx context.Context, a *Asset) {
	if _, _, err := p.o.Queue.Enqueue(ctx, SnapshotJob{AssetID: a.ID}, jobs.EnqueueOptions{UniqueKey: SnapshotKind + "/" + a.ID}); err != nil {
		p.log.Error("vod: queueing the snapshot job", "asset", a.ID, "err", err)
	}
	g, err := p.o.Groups.Lookup(a.TranscodeGroupID)
	if err != nil {
		p.setStatus(ctx, a.ID, StatusTranscodeFail, err.Error())
		return
	}
	if len(g.Templates) == 0 {
		if a.Status == StatusUploading {
			p.setStatus(ctx, a.ID, StatusNormal, "")
		}
		return
	}
	orig, _ := a.original()
	p.setStatus(ctx, a.ID, StatusTranscoding, "")
	for _, t := range g.Templates {
		args := TranscodeJob{AssetID: a.ID, GroupID: g.ID, Template: t, Input: orig.Key,
			OutDir: filepath.Join(p.o.WorkDir, a.ID, strings.ToLower(t.Definition)+"-"+t.Container)}
		if _, _, err := p.o.Queue.Enqueue(ctx, args, jobs.EnqueueOptions{UniqueKey: args.UniqueKey()}); err != nil {
			p.setStatus(ctx, a.ID, StatusTranscodeFail, "queueing the transcode: "+err.Error())
			return
		}
	}
	p.log.Info("vod: transcodes queued", "asset", a.ID, "group", g.ID, "templates", len(g.Templates))
}

func (p *Processor) setStatus(ctx context.Context, id string, s Status, reason string) {
	if err := p.o.Library.SetStatus(ctx, id, s, reason); err != nil && !errors.Is(err, ErrNotFound) {
		p.log.Error("vod: setting an asset's status", "asset", id, "status", s, "err", err)
	}
}

func (p *Processor) taskEnded(ctx context.Context, taskID string, as []Asset) {
	if len(as) == 0 || !as[0].AutoCompose {
		return
	}
	if _, _, err := p.o.Queue.Enqueue(ctx, ComposeJob{TaskID: taskID}, jobs.EnqueueOptions{UniqueKey: ComposeKind + "/" + taskID}); err != nil {
		p.log.Error("vod: queueing the compose job", "task", taskID, "err", err)
	}
}

// assetDir is where an asset's own files go: beside its original, in a directory named
// after it.
func assetDir(a *Asset) string {
	orig, _ := a.original()
	return strings.TrimSuffix(orig.Key, path.Ext(orig.Key)) + "_vod"
}

// fileURL is how events name a stored key: the /files/ path of the server's own storage,
// the key in a bucket.
func fileURL(a *Asset, key string) string {
	if a.OssBucket == "" {
		return storage.URLPath(key)
	}
	return key
}

// input returns a local path ffmpeg reads the asset's original from. The server's own
// storage gives the file itself; an object store's playlist and segments are fetched
// into the work directory first (the same layout, so the playlist's relative URIs hold),
// which works with any S3 store and no credentials in ffmpeg's arguments.
func (p *Processor) input(ctx context.Context, a *Asset) (string, func(), error) {
	orig, ok := a.original()
	if !ok {
		return "", nil, fmt.Errorf("asset %s has no original", a.ID)
	}
	st, err := p.o.Library.o.StoreFor(a.OssEndpoint, a.OssBucket)
	if err != nil {
		return "", nil, err
	}
	if l, ok := st.(interface{ Path(string) (string, error) }); ok {
		pth, err := l.Path(orig.Key)
		return pth, func() {}, err
	}
	dir, err := os.MkdirTemp(p.o.WorkDir, "input-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	keys := []string{orig.Key}
	if orig.Format == string(rules.M3U8) {
		refs, err := merge.References(ctx, st, orig.Key)
		if err != nil {
			cleanup()
			return "", nil, err
		}
		keys = append(keys, refs...)
	}
	for _, k := range keys {
		if err := fetch(ctx, st, k, filepath.Join(dir, filepath.FromSlash(k))); err != nil {
			cleanup()
			return "", nil, fmt.Errorf("fetching %s: %w", k, err)
		}
	}
	return filepath.Join(dir, filepath.FromSlash(orig.Key)), cleanup, nil
}

func fetch(ctx context.Context, st storage.Store, key, dst string) error {
	o, err := st.Open(ctx, key)
	if err != nil {
		return err
	}
	defer o.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	_, err = f.ReadFrom(o)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// put stores a local file under key, replacing what an earlier attempt left there.
func put(ctx context.Context, st storage.Store, key, file string) error {
	err := st.Store(ctx, key, file)
	if errors.Is(err, storage.ErrExists) {
		d, ok := st.(storage.Deleter)
		if !ok {
			return err
		}
		if err := d.Delete(ctx, key); err != nil {
			return err
		}
		err = st.Store(ctx, key, file)
	}
	return err
}

func (p *Processor) storeOf(a *Asset) (storage.Store, error) {
	return p.o.Library.o.StoreFor(a.OssEndpoint, a.OssBucket)
}

// snapshot makes the cover at the configured offset, the sprite sheets and the WebVTT
// track, stores them beside the asset and sends SnapshotComplete.
func (p *Processor) snapshot(ctx context.Context, j *jobs.Job, args SnapshotJob) error {
	lib := p.o.Library
	a, err := lib.Get(ctx, args.AssetID)
	if errors.Is(err, ErrNotFound) {
		return jobs.Permanent(err) // deleted since
	}
	if err != nil {
		return err
	}
	err = p.snapshotOf(ctx, j, a)
	if err != nil && p.last(ctx, j, err) {
		lib.EmitSnapshotComplete(a, SnapshotComplete{Status: "fail", SubType: "SpecifiedTime", ErrorCode: "SnapshotFail", ErrorMessage: err.Error()})
	}
	return err
}

func (p *Processor) snapshotOf(ctx context.Context, j *jobs.Job, a *Asset) error {
	lib := p.o.Library
	in, cleanup, err := p.input(ctx, a)
	if err != nil {
		return err
	}
	defer cleanup()
	dir := filepath.Join(p.o.WorkDir, a.ID, "snapshot")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dur := time.Duration(a.Duration * float64(time.Second))
	cover, err := thumbnail.Cover(ctx, in, filepath.Join(dir, "cover.jpg"), thumbnail.CoverOptions{FFmpeg: p.o.FFmpeg,
		Offset: p.o.CoverOffset, Duration: dur})
	if err != nil {
		return fmt.Errorf("cover: %w", err)
	}
	j.Logf("cover %dx%d", cover.Width, cover.Height)
	sp, err := thumbnail.Sprites(ctx, in, dir, thumbnail.SpriteOptions{FFmpeg: p.o.FFmpeg, Duration: dur, Interval: p.o.SpriteInterval})
	if err != nil {
		return fmt.Errorf("sprites: %w", err)
	}
	j.Logf("%d sprite sheets, %d tiles of %dx%d", len(sp.Sheets), sp.Tiles, sp.TileWidth, sp.TileHeight)
	st, err := p.storeOf(a)
	if err != nil {
		return err
	}
	base := assetDir(a)
	var sheets []string
	for _, s := range sp.Sheets {
		k := base + "/" + filepath.Base(s)
		if err := put(ctx, st, k, s); err != nil {
			return err
		}
		sheets = append(sheets, k)
	}
	vtt := base + "/" + filepath.Base(sp.VTT)
	coverKey := base + "/cover.jpg"
	if err := errors.Join(put(ctx, st, vtt, sp.VTT), put(ctx, st, coverKey, cover.Path)); err != nil {
		return err
	}
	cur, err := lib.Get(ctx, a.ID)
	if err != nil {
		return err
	}
	if cur.Cover == "" || cur.Cover == coverKey { // a cover chosen through the API stays
		err = lib.SetCover(ctx, a.ID, coverKey)
	} else {
		err = lib.AddSnapshots(ctx, a.ID, coverKey)
	}
	if err := errors.Join(err, lib.SetThumbnails(ctx, a.ID, vtt, sheets)); err != nil {
		return err
	}
	lib.EmitSnapshotComplete(a, SnapshotComplete{Status: "success", SubType: "SpecifiedTime", CoverUrl: fileURL(a, coverKey),
		SnapshotInfos: []SnapshotInfo{{Status: "success", SnapshotFormat: "jpg", SnapshotRegular: fileURL(a, base+"/sprite_{Index}.jpg"),
			SnapshotCount: len(sheets), JobId: strconv.FormatInt(j.ID, 10)}}})
	return nil
}

// transcode runs one template on the asset's original (fetched if remote).
func (p *Processor) transcode(ctx context.Context, j *jobs.Job, args TranscodeJob,
	work func(context.Context, *jobs.Job, TranscodeJob) error) error {
	a, err := p.o.Library.Get(ctx, args.AssetID)
	if errors.Is(err, ErrNotFound) {
		return jobs.Permanent(err)
	}
	if err != nil {
		return err
	}
	in, cleanup, err := p.input(ctx, a)
	if err != nil {
		return err
	}
	defer cleanup()
	args.Input = in
	return work(ctx, j, args)
}

// transcoded stores a rendition beside the asset (segments before their playlist) and
// adds its play info; the last one makes the asset Normal.
func (p *Processor) transcoded(ctx context.Context, args TranscodeJob, r Rendition) error {
	lib := p.o.Library
	a, err := lib.Get(ctx, args.AssetID)
	if err != nil {
		return err
	}
	st, err := p.storeOf(a)
	if err != nil {
		return err
	}
	dir := assetDir(a) + "/" + filepath.Base(args.OutDir)
	name := filepath.Base(r.Path)
	for _, f := range r.Files {
		if f != name {
			if err := put(ctx, st, dir+"/"+f, filepath.Join(args.OutDir, f)); err != nil {
				return err
			}
		}
	}
	if err := put(ctx, st, dir+"/"+name, r.Path); err != nil {
		return err
	}
	os.RemoveAll(args.OutDir)
	var jobID string
	if j, ok := ctx.Value(jobKey{}).(*jobs.Job); ok {
		jobID = strconv.FormatInt(j.ID, 10)
	}
	if err := lib.AddPlayInfo(ctx, a.ID, PlayInfo{Definition: args.Template.Definition, Format: r.Format, Width: r.Width, Height: r.Height,
		Fps: r.FPS, Bitrate: r.Bitrate, Duration: r.Duration.Seconds(), Size: r.Size, Key: dir + "/" + name, JobID: jobID}); err != nil {
		return err
	}
	p.finish(ctx, args, nil)
	return nil
}

// transcodeFailed makes the asset TranscodeFail with the job's error (ffmpeg's last
// lines) once a transcode job has failed for good.
func (p *Processor) transcodeFailed(ctx context.Context, j *jobs.Job, args TranscodeJob, err error) {
	p.finish(ctx, args, &StreamInfo{Status: "fail", Definition: args.Template.Definition, Format: args.Template.Container,
		ErrorCode: "TranscodeFail", ErrorMessage: err.Error(), JobId: strconv.FormatInt(j.ID, 10)})
}

// finish ends the asset's transcode when every template of its group has a play info
// (Normal) or one failed (TranscodeFail), with TranscodeComplete.
func (p *Processor) finish(ctx context.Context, args TranscodeJob, failed *StreamInfo) {
	p.doneMu.Lock()
	defer p.doneMu.Unlock()
	lib := p.o.Library
	a, err := lib.Get(ctx, args.AssetID)
	if err != nil || a.Status != StatusTranscoding {
		return
	}
	templates := []TranscodeTemplate{args.Template}
	if g, err := p.o.Groups.Lookup(args.GroupID); err == nil {
		templates = g.Templates
	}
	var streams []StreamInfo
	all := true
	for _, t := range templates {
		var found *PlayInfo
		for i, pi := range a.PlayInfos {
			if strings.EqualFold(pi.Definition, t.Definition) && pi.Format == t.Container {
				found = &a.PlayInfos[i]
			}
		}
		if found == nil {
			all = false
			continue
		}
		streams = append(streams, StreamInfo{Status: "success", Bitrate: strconv.FormatInt(found.Bitrate/1000, 10),
			Definition: found.Definition, Duration: found.Duration, FileUrl: fileURL(a, found.Key), Format: found.Format,
			Fps: strconv.FormatFloat(found.Fps, 'f', -1, 64), Height: found.Height, Width: found.Width, Size: found.Size,
			JobId: found.JobID, StartTime: evTime(found.CreatedAt), FinishTime: evTime(found.ModifiedAt)})
	}
	switch {
	case failed != nil:
		streams = append(streams, *failed)
		p.setStatus(ctx, a.ID, StatusTranscodeFail, failed.Definition+" "+failed.Format+": "+failed.ErrorMessage)
		p.log.Warn("vod: transcode failed", "asset", a.ID, "definition", failed.Definition, "err", failed.ErrorMessage)
	case all:
		p.setStatus(ctx, a.ID, StatusNormal, "")
		p.log.Info("vod: transcodes done", "asset", a.ID, "renditions", len(streams))
	default:
		return
	}
	lib.EmitTranscodeComplete(a, streams)
}

// compose merges the task's cycle assets into one playlist referencing their segments
// (no media copied), as a composed asset transcoded with the rule's compose group. A
// retry finds the asset made by the failed attempt.
func (p *Processor) compose(ctx context.Context, j *jobs.Job, args ComposeJob) error {
	lib := p.o.Library
	cycles, _, err := lib.List(ctx, Query{TaskID: args.TaskID, Kind: KindCycle, Asc: true, Limit: merge.MaxInputs})
	if err != nil || len(cycles) == 0 {
		return err
	}
	first, last := cycles[0], cycles[len(cycles)-1]
	made, _, err := lib.List(ctx, Query{TaskID: args.TaskID, Kind: KindComposed, Limit: 1})
	if err != nil {
		return err
	}
	var a *Asset
	if len(made) > 0 {
		a = &made[0]
		if _, ok := a.original(); ok {
			return nil
		}
	} else {
		c := &Asset{Kind: KindComposed, Status: StatusUploading, Title: first.Title, Domain: first.Domain, App: first.App,
			Stream: first.Stream, TaskID: args.TaskID, RecordStart: first.RecordStart, RecordEnd: last.RecordEnd,
			OssEndpoint: first.OssEndpoint, OssBucket: first.OssBucket, TranscodeGroupID: first.ComposeTranscodeGroupID}
		for _, s := range cycles {
			c.Sources = append(c.Sources, s.ID)
		}
		if a, err = lib.Create(ctx, c); err != nil {
			return err
		}
		lib.EmitComposeStart(a)
	}
	err = p.merge(ctx, j, a, cycles)
	if err != nil && p.last(ctx, j, err) {
		p.setStatus(context.WithoutCancel(ctx), a.ID, StatusProduceFail, err.Error())
	}
	return err
}

func (p *Processor) merge(ctx context.Context, j *jobs.Job, a *Asset, cycles []Asset) error {
	var inputs []string
	var size int64
	for _, c := range cycles {
		o, ok := c.original()
		if !ok {
			return jobs.Permanent(fmt.Errorf("cycle asset %s has no original", c.ID))
		}
		inputs = append(inputs, o.Key)
		size += o.Size
	}
	st, err := p.storeOf(&cycles[0])
	if err != nil {
		return err
	}
	first, _ := cycles[0].original()
	key := strings.TrimSuffix(first.Key, path.Ext(first.Key)) + "_composed.m3u8"
	res, err := merge.Playlist(ctx, st, inputs, key, p.o.WorkDir)
	if errors.Is(err, storage.ErrExists) { // an attempt that died after storing it
		if d, ok := st.(storage.Deleter); ok {
			if err = d.Delete(ctx, key); err == nil {
				res, err = merge.Playlist(ctx, st, inputs, key, p.o.WorkDir)
			}
		}
	}
	if err != nil {
		return err
	}
	j.Logf("merged %d assets: %d segments, %.3f s, %d discontinuities", len(cycles), res.Segments, res.Duration.Seconds(), res.Discontinuities)
	d := res.Duration.Seconds()
	if err := p.o.Library.AddPlayInfo(ctx, a.ID, PlayInfo{Definition: DefinitionOriginal, Format: string(rules.M3U8), Width: first.Width,
		Height: first.Height, Fps: first.Fps, Bitrate: int64(float64(size) * 8 / max(d, 0.001)), Duration: d, Size: size, Key: key}); err != nil {
		return err
	}
	a, err = p.o.Library.Get(ctx, a.ID)
	if err != nil {
		return err
	}
	p.log.Info("vod: cycle assets merged", "asset", a.ID, "task", a.TaskID, "sources", len(cycles), "duration", d, "key", key)
	p.process(ctx, a)
	return nil
}
