package vod

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/record"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
)

// Hooks let the work done after the fact follow the library. They run on the library's
// event goroutine, in the order of the recorder's events: they should only queue work.
type Hooks struct {
	// AssetCreated is called after an asset was stored (a cycle asset, or one given to
	// Create).
	AssetCreated func(ctx context.Context, a *Asset)
	// TaskEnded is called when a VOD-rule task ended, with its cycle assets in
	// recording order (possibly none).
	TaskEnded func(ctx context.Context, taskID string, assets []Asset)
}

// Options configure a Library.
type Options struct {
	Catalog *catalog.Catalog
	// StoreFor returns the store of an endpoint and bucket ("" and "": the server's own).
	StoreFor func(endpoint, bucket string) (storage.Store, error)
	// Outbox delivers the library's events (notify.Notifier); nil: none are sent.
	Outbox Outbox
	// Callback is where the events go; an empty URL sends none.
	Callback CallbackConfig
	Hooks    Hooks
	Logger   *slog.Logger
	Now      func() time.Time
}

// Library keeps the assets.
type Library struct {
	o   Options
	db  *sql.DB
	log *slog.Logger

	mu      sync.Mutex
	queue   []record.Event
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	started bool
}

// New creates the library's table if needed.
func New(o Options) (*Library, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	db := o.Catalog.DB() // table vod_assets: a catalog migration
	return &Library{o: o, db: db, log: o.Logger, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// SetHooks replaces the hooks (before Start).
func (l *Library) SetHooks(h Hooks) { l.o.Hooks = h }

// Start catches up with files generated while the library was not following (a crash
// between a file's generation and its asset), then follows OnEvent until Close.
func (l *Library) Start(ctx context.Context) {
	l.mu.Lock()
	l.started = true
	l.mu.Unlock()
	go l.run(ctx)
}

// Close stops following after the queued events are handled.
func (l *Library) Close() {
	l.mu.Lock()
	started := l.started
	l.mu.Unlock()
	if !started {
		return
	}
	close(l.stop)
	<-l.done
}

// OnEvent takes a recorder event (record.Config.OnEvent); it never waits.
func (l *Library) OnEvent(ev record.Event) {
	if ev.Type != record.EventFileCreated && ev.Type != record.EventEnded {
		return
	}
	l.mu.Lock()
	l.queue = append(l.queue, ev)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *Library) run(ctx context.Context) {
	defer close(l.done)
	if err := l.catchUp(ctx); err != nil {
		l.log.Error("vod: catching up with generated files", "err", err)
	}
	rulesOf := map[string]*rules.Rule{} // task → its rule, while the task runs
	for {
		l.mu.Lock()
		evs := l.queue
		l.queue = nil
		l.mu.Unlock()
		for _, ev := range evs {
			l.handle(context.WithoutCancel(ctx), ev, rulesOf)
		}
		if len(evs) > 0 {
			continue
		}
		select {
		case <-l.wake:
		case <-l.stop:
			l.mu.Lock()
			n := len(l.queue)
			l.mu.Unlock()
			if n == 0 {
				return
			}
		}
	}
}

// taskRule returns the rule a task started with, nil if it is not a VOD rule.
func (l *Library) taskRule(ctx context.Context, id string, cache map[string]*rules.Rule) *rules.Rule {
	if r, ok := cache[id]; ok {
		return r
	}
	t, err := l.o.Catalog.GetTask(ctx, id)
	if err != nil {
		l.log.Error("vod: reading a task", "task", id, "err", err)
		return nil
	}
	var r rules.Rule
	if err := json.Unmarshal([]byte(t.Rule), &r); err != nil || !r.IsVod() {
		cache[id] = nil
		return nil
	}
	cache[id] = &r
	return &r
}

func (l *Library) handle(ctx context.Context, ev record.Event, cache map[string]*rules.Rule) {
	switch ev.Type {
	case record.EventFileCreated:
		if ev.File == nil || ev.File.Format != string(rules.M3U8) {
			return
		}
		r := l.taskRule(ctx, ev.File.TaskID, cache)
		if r == nil {
			return
		}
		if _, err := l.fromFile(ctx, ev.File, r); err != nil {
			l.log.Error("vod: making an asset of a generated file", "file", ev.File.ID, "key", ev.File.Key, "err", err)
		}
	case record.EventEnded:
		r := l.taskRule(ctx, ev.TaskID, cache)
		delete(cache, ev.TaskID)
		if r == nil || l.o.Hooks.TaskEnded == nil {
			return
		}
		as, _, err := l.List(ctx, Query{TaskID: ev.TaskID, Kind: KindCycle, Asc: true, Limit: MaxPageSize * 10})
		if err != nil {
			l.log.Error("vod: listing a task's assets", "task", ev.TaskID, "err", err)
			return
		}
		l.o.Hooks.TaskEnded(ctx, ev.TaskID, as)
	}
}

// catchUp makes the assets of generated m3u8 files of VOD-rule tasks that have none.
func (l *Library) catchUp(ctx context.Context) error {
	rows, err := l.db.QueryContext(ctx, `SELECT f.id, t.rule FROM files f JOIN tasks t ON t.id=f.task_id
		WHERE f.status=$1 AND f.format=$2 AND t.rule LIKE '%"vod":%'
		AND NOT EXISTS(SELECT 1 FROM vod_assets a WHERE a.file_id=f.id) ORDER BY f.start_time`, catalog.FileDone, string(rules.M3U8))
	if err != nil {
		return err
	}
	type pending struct {
		file string
		rule rules.Rule
	}
	var todo []pending
	for rows.Next() {
		var p pending
		var js string
		if err := rows.Scan(&p.file, &js); err != nil {
			rows.Close()
			return err
		}
		if json.Unmarshal([]byte(js), &p.rule) == nil && p.rule.IsVod() {
			todo = append(todo, p)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, p := range todo {
		f, err := l.o.Catalog.GetFile(ctx, p.file)
		if err != nil {
			return err
		}
		if _, err := l.fromFile(ctx, f, &p.rule); err != nil {
			return err
		}
		l.log.Info("vod: asset made of a file generated before the restart", "file", f.ID, "key", f.Key)
	}
	return nil
}

// fromFile stores the asset of a generated file (once: a second call finds it).
func (l *Library) fromFile(ctx context.Context, f *catalog.File, r *rules.Rule) (*Asset, error) {
	var id string
	switch err := l.db.QueryRowContext(ctx, `SELECT id FROM vod_assets WHERE file_id=$1`, f.ID).Scan(&id); {
	case err == nil:
		return l.Get(ctx, id)
	case !errors.Is(err, sql.ErrNoRows):
		return nil, err
	}
	end := f.End
	if end.IsZero() {
		end = f.Start.Add(time.Duration(f.Duration * float64(time.Second)))
	}
	now := l.now()
	a := &Asset{
		Title:    rules.RenderTitle(r.Vod.TitleTemplate, f.Domain, f.App, f.Stream, f.Start, end),
		Duration: f.Duration, Size: f.Bytes, Status: StatusNormal, Kind: KindCycle,
		Domain: f.Domain, App: f.App, Stream: f.Stream, TaskID: f.TaskID, FileID: f.ID,
		RecordStart: f.Start, RecordEnd: end, OssEndpoint: f.OssEndpoint, OssBucket: f.OssBucket,
		TranscodeGroupID: r.Vod.TranscodeGroupID, AutoCompose: r.Vod.AutoCompose, ComposeTranscodeGroupID: r.Vod.ComposeTranscodeGroupID,
		PlayInfos: []PlayInfo{{Definition: DefinitionOriginal, Format: f.Format, Width: f.Width, Height: f.Height, Fps: f.FrameRate,
			Bitrate: f.Bitrate, Duration: f.Duration, Size: f.Bytes, Key: f.Key, Status: string(StatusNormal), CreatedAt: now, ModifiedAt: now}},
	}
	if err := l.insert(ctx, a); err != nil {
		// Another node of the cluster made the file's asset meanwhile (its catch-up at
		// start raced this node's event): the unique index on file_id kept theirs, and
		// they emit its events and start its jobs.
		if l.db.QueryRowContext(ctx, `SELECT id FROM vod_assets WHERE file_id=$1`, f.ID).Scan(&id) == nil {
			return l.Get(ctx, id)
		}
		return nil, err
	}
	l.log.Info("vod: asset created", "id", a.ID, "title", a.Title, "duration", a.Duration, "key", f.Key)
	l.emit(EventAddLiveRecordVideoComplete, a, addLiveRecordVideoComplete(a, now))
	if l.o.Hooks.AssetCreated != nil {
		l.o.Hooks.AssetCreated(ctx, a)
	}
	return a, nil
}

// Create stores a new asset made by other work (a merged asset: Kind KindComposed with
// Sources). ID, times, and an empty status (StatusUploading) are filled in. The
// AssetCreated hook is called.
func (l *Library) Create(ctx context.Context, a *Asset) (*Asset, error) {
	c := *a
	if c.Kind == "" {
		c.Kind = KindComposed
	}
	if c.Status == "" {
		c.Status = StatusUploading
	}
	if err := l.insert(ctx, &c); err != nil {
		return nil, err
	}
	if l.o.Hooks.AssetCreated != nil {
		l.o.Hooks.AssetCreated(ctx, &c)
	}
	return &c, nil
}

func (l *Library) now() time.Time { return time.UnixMilli(l.o.Now().UnixMilli()).UTC() }

// newID returns 32 lowercase hex digits, the shape of the VOD service's video ids.
func newID() string {
	u := uuid.New()
	return hex.EncodeToString(u[:])
}

func ms(t time.Time) int64     { return catalog.MS(t) }
func fromMS(v int64) time.Time { return catalog.FromMS(v) }

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (l *Library) insert(ctx context.Context, a *Asset) error {
	if a.ID == "" {
		a.ID = newID()
	}
	now := l.now()
	if a.CreatedAt.IsZero() {
		a.CreatedAt = now
	}
	a.ModifiedAt = now
	if a.Snapshots == nil {
		a.Snapshots = []string{}
	}
	if a.PlayInfos == nil {
		a.PlayInfos = []PlayInfo{}
	}
	_, err := l.db.ExecContext(ctx, `INSERT INTO vod_assets(`+assetCols+`) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,$26,$27)`,
		a.ID, a.Kind, a.Domain, a.App, a.Stream, a.TaskID, a.FileID, a.Title, a.Description, a.Duration, a.Size,
		string(a.Status), a.Error, ms(a.RecordStart), ms(a.RecordEnd), a.Cover, js(a.Snapshots), js(a.PlayInfos),
		a.OssEndpoint, a.OssBucket, a.TranscodeGroupID, a.AutoCompose, a.ComposeTranscodeGroupID, js(orEmpty(a.Sources)),
		a.Thumbnails, ms(a.CreatedAt), ms(a.ModifiedAt))
	return err
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

const assetCols = `id,kind,domain,app,stream,task_id,file_id,title,description,duration,size,status,error,record_start,record_end,
	cover,snapshots,play_infos,oss_endpoint,oss_bucket,transcode_group,auto_compose,compose_group,sources,thumbnails,created_at,modified_at`

func scanAssets(rows *sql.Rows) ([]Asset, error) {
	defer rows.Close()
	out := []Asset{}
	for rows.Next() {
		var a Asset
		var status, snaps, infos, sources string
		var rs, re, ca, mo int64
		if err := rows.Scan(&a.ID, &a.Kind, &a.Domain, &a.App, &a.Stream, &a.TaskID, &a.FileID, &a.Title, &a.Description,
			&a.Duration, &a.Size, &status, &a.Error, &rs, &re, &a.Cover, &snaps, &infos, &a.OssEndpoint, &a.OssBucket,
			&a.TranscodeGroupID, &a.AutoCompose, &a.ComposeTranscodeGroupID, &sources, &a.Thumbnails, &ca, &mo); err != nil {
			return nil, err
		}
		a.Status = Status(status)
		a.RecordStart, a.RecordEnd, a.CreatedAt, a.ModifiedAt = fromMS(rs), fromMS(re), fromMS(ca), fromMS(mo)
		if err := errors.Join(json.Unmarshal([]byte(snaps), &a.Snapshots), json.Unmarshal([]byte(infos), &a.PlayInfos),
			json.Unmarshal([]byte(sources), &a.Sources)); err != nil {
			return nil, fmt.Errorf("vod: asset %s: %w", a.ID, err)
		}
		if len(a.Sources) == 0 {
			a.Sources = nil
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Get returns an asset or ErrNotFound.
func (l *Library) Get(ctx context.Context, id string) (*Asset, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT `+assetCols+` FROM vod_assets WHERE id=$1`, id)
	if err != nil {
		return nil, err
	}
	as, err := scanAssets(rows)
	if err != nil {
		return nil, err
	}
	if len(as) == 0 {
		return nil, ErrNotFound
	}
	return &as[0], nil
}

// Paging limits.
const (
	DefaultPageSize = 10
	MaxPageSize     = 100
)

// Query selects assets; zero fields do not filter.
type Query struct {
	Domain, App, Stream string
	TaskID, Kind        string
	Statuses            []Status
	// CreatedFrom/CreatedTo filter on the creation time, RecordFrom/RecordTo on the
	// recording: assets whose recording overlaps [RecordFrom, RecordTo).
	CreatedFrom, CreatedTo time.Time
	RecordFrom, RecordTo   time.Time
	Limit, Offset          int  // Limit 0: DefaultPageSize
	Asc                    bool // oldest first (default newest first)
}

// List returns a page of assets and the number matching q.
func (l *Library) List(ctx context.Context, q Query) ([]Asset, int, error) {
	var conds []string
	var args []any
	// arg adds v to the arguments and returns its placeholder.
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	for _, c := range []struct{ col, v string }{{"domain", strings.ToLower(q.Domain)}, {"app", q.App}, {"stream", q.Stream},
		{"task_id", q.TaskID}, {"kind", q.Kind}} {
		if c.v != "" {
			conds = append(conds, c.col+"="+arg(c.v))
		}
	}
	if len(q.Statuses) > 0 {
		ps := make([]string, len(q.Statuses))
		for i, s := range q.Statuses {
			ps[i] = arg(string(s))
		}
		conds = append(conds, "status IN ("+strings.Join(ps, ",")+")")
	}
	for _, c := range []struct {
		cond string
		t    time.Time
	}{{"created_at>=", q.CreatedFrom}, {"created_at<", q.CreatedTo}, {"record_end>", q.RecordFrom}, {"record_start<", q.RecordTo}} {
		if !c.t.IsZero() {
			conds = append(conds, c.cond+arg(ms(c.t)))
		}
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	var total int
	if err := l.db.QueryRowContext(ctx, `SELECT count(*) FROM vod_assets`+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultPageSize
	}
	order := " ORDER BY created_at DESC, id DESC"
	if q.Asc {
		order = " ORDER BY created_at, id"
	}
	page := fmt.Sprintf(" LIMIT $%d OFFSET $%d", len(args)+1, len(args)+2)
	rows, err := l.db.QueryContext(ctx, `SELECT `+assetCols+` FROM vod_assets`+where+order+page, append(args, limit, q.Offset)...)
	if err != nil {
		return nil, 0, err
	}
	as, err := scanAssets(rows)
	return as, total, err
}

// Patch is an update through the APIs; nil fields are left as they are.
type Patch struct {
	Title       *string
	Description *string
	// Cover is one of the asset's snapshots (a key) or an http(s) URL; "" clears it.
	Cover *string
}

// MaxCoverURLLen bounds a cover URL.
const MaxCoverURLLen = 1024

// Check validates a patch against the asset; field names are the JSON API's.
func (p *Patch) Check(a *Asset) error {
	if p.Title != nil {
		if err := rules.CheckTitle(*p.Title); err != nil {
			return &FieldError{"title", err.Error()}
		}
	}
	if p.Description != nil {
		if err := rules.CheckDescription(*p.Description); err != nil {
			return &FieldError{"description", err.Error()}
		}
	}
	if p.Cover != nil && *p.Cover != "" && !slices.Contains(a.Snapshots, *p.Cover) && *p.Cover != a.Cover {
		u, err := url.Parse(*p.Cover)
		switch {
		case len(*p.Cover) > MaxCoverURLLen:
			return &FieldError{"cover", fmt.Sprintf("is %d bytes, at most %d", len(*p.Cover), MaxCoverURLLen)}
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			return &FieldError{"cover", fmt.Sprintf("%.80q is neither one of the asset's snapshots nor an http(s) URL", *p.Cover)}
		}
	}
	return nil
}

// Update applies a patch. Errors: ErrNotFound, *FieldError.
func (l *Library) Update(ctx context.Context, id string, p Patch) (*Asset, error) {
	return l.modify(ctx, id, func(a *Asset) error {
		if err := p.Check(a); err != nil {
			return err
		}
		if p.Title != nil {
			a.Title = *p.Title
		}
		if p.Description != nil {
			a.Description = *p.Description
		}
		if p.Cover != nil {
			a.Cover = *p.Cover
		}
		return nil
	})
}

// modify reads, changes and writes an asset in one transaction.
func (l *Library) modify(ctx context.Context, id string, change func(*Asset) error) (*Asset, error) {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT `+assetCols+` FROM vod_assets WHERE id=$1`, id)
	if err != nil {
		return nil, err
	}
	as, err := scanAssets(rows)
	if err != nil {
		return nil, err
	}
	if len(as) == 0 {
		return nil, ErrNotFound
	}
	a := &as[0]
	if err := change(a); err != nil {
		return nil, err
	}
	a.ModifiedAt = l.now()
	if _, err := tx.ExecContext(ctx, `UPDATE vod_assets SET title=$1, description=$2, duration=$3, size=$4, status=$5, error=$6, cover=$7,
		snapshots=$8, play_infos=$9, thumbnails=$10, modified_at=$11 WHERE id=$12`, a.Title, a.Description, a.Duration, a.Size, string(a.Status), a.Error,
		a.Cover, js(a.Snapshots), js(a.PlayInfos), a.Thumbnails, ms(a.ModifiedAt), id); err != nil {
		return nil, err
	}
	return a, tx.Commit()
}

// SetStatus sets an asset's status; reason is kept as its error ("" clears it).
func (l *Library) SetStatus(ctx context.Context, id string, s Status, reason string) error {
	if !s.Valid() {
		return fmt.Errorf("vod: status %q is not one of %v", s, Statuses)
	}
	_, err := l.modify(ctx, id, func(a *Asset) error {
		a.Status, a.Error = s, reason
		return nil
	})
	return err
}

// SetCover sets the cover to a key in the library's storage (made by livrec), which
// is also added to the snapshots.
func (l *Library) SetCover(ctx context.Context, id, key string) error {
	_, err := l.modify(ctx, id, func(a *Asset) error {
		a.Cover = key
		if !slices.Contains(a.Snapshots, key) {
			a.Snapshots = append(a.Snapshots, key)
		}
		return nil
	})
	return err
}

// SetThumbnails sets the seek-preview track (a WebVTT key in the library's storage) and
// adds its sprite sheets to the snapshots.
func (l *Library) SetThumbnails(ctx context.Context, id, vtt string, sheets []string) error {
	_, err := l.modify(ctx, id, func(a *Asset) error {
		a.Thumbnails = vtt
		for _, k := range sheets {
			if !slices.Contains(a.Snapshots, k) {
				a.Snapshots = append(a.Snapshots, k)
			}
		}
		return nil
	})
	return err
}

// AddSnapshots adds image keys (in the library's storage) to an asset's snapshots.
func (l *Library) AddSnapshots(ctx context.Context, id string, keys ...string) error {
	_, err := l.modify(ctx, id, func(a *Asset) error {
		for _, k := range keys {
			if !slices.Contains(a.Snapshots, k) {
				a.Snapshots = append(a.Snapshots, k)
			}
		}
		return nil
	})
	return err
}

// AddPlayInfo adds a rendition, replacing one with the same definition and format. For
// a composed asset made with Create, the first play info added with DefinitionOriginal
// also sets the asset's duration and size.
func (l *Library) AddPlayInfo(ctx context.Context, id string, p PlayInfo) error {
	_, err := l.modify(ctx, id, func(a *Asset) error {
		now := l.now()
		if p.CreatedAt.IsZero() {
			p.CreatedAt = now
		}
		p.ModifiedAt = now
		if p.Status == "" {
			p.Status = string(StatusNormal)
		}
		a.PlayInfos = slices.DeleteFunc(a.PlayInfos, func(o PlayInfo) bool { return o.Definition == p.Definition && o.Format == p.Format })
		a.PlayInfos = append(a.PlayInfos, p)
		if p.Definition == DefinitionOriginal && a.Duration == 0 {
			a.Duration, a.Size = p.Duration, p.Size
		}
		return nil
	})
	return err
}

// busy are the statuses in which an asset is not deleted: a job is writing its files.
var busy = []Status{StatusTranscoding, StatusUploading}

// Delete deletes an asset and the library's files of it: each play info (a playlist and
// its segments), cover and snapshots. An asset being transcoded is refused
// (*BusyError). Errors: ErrNotFound, *BusyError, or a file that could not be deleted
// (the asset is then kept, so a retry deletes the rest).
func (l *Library) Delete(ctx context.Context, id string) error {
	a, err := l.Get(ctx, id)
	if err != nil {
		return err
	}
	if slices.Contains(busy, a.Status) {
		return &BusyError{ID: id, Status: a.Status}
	}
	st, err := l.o.StoreFor(a.OssEndpoint, a.OssBucket)
	if err != nil {
		return err
	}
	keys, err := l.ownKeys(ctx, st, a)
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		d, ok := st.(storage.Deleter)
		if !ok {
			return fmt.Errorf("the storage %s cannot delete objects", st.Describe())
		}
		for _, k := range keys {
			if err := d.Delete(ctx, k); err != nil {
				return fmt.Errorf("deleting %s: %w", k, err)
			}
		}
	}
	if _, err := l.db.ExecContext(ctx, `DELETE FROM vod_assets WHERE id=$1`, id); err != nil {
		return err
	}
	l.log.Info("vod: asset deleted", "id", id, "files", len(keys))
	return nil
}

// ownKeys lists the keys of an asset's files: segments first, each playlist after its
// segments (so a failure leaves a playlist that still lists what is left). A key shared
// with another asset (a composed asset's playlist lists its sources' segments) is kept.
func (l *Library) ownKeys(ctx context.Context, st storage.Store, a *Asset) ([]string, error) {
	others, err := l.otherKeys(ctx, st, a)
	if err != nil {
		return nil, err
	}
	var out []string
	add := func(k string) {
		if k != "" && !strings.Contains(k, "://") && !others[k] && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	for _, p := range a.PlayInfos {
		if p.Format == string(rules.M3U8) {
			segs, err := playlistKeys(ctx, st, p.Key)
			if err != nil {
				return nil, err
			}
			for _, s := range segs {
				add(s)
			}
		}
		add(p.Key)
	}
	for _, s := range a.Snapshots {
		add(s)
	}
	add(a.Cover)
	add(a.Thumbnails)
	return out, nil
}

// otherKeys are the keys of the files of the assets sharing files with a (its sources,
// or the composed assets made of it): their play infos and the segments these list.
func (l *Library) otherKeys(ctx context.Context, st storage.Store, a *Asset) (map[string]bool, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT `+assetCols+` FROM vod_assets WHERE id<>$1 AND (task_id=$2 AND task_id<>'')`, a.ID, a.TaskID)
	if err != nil {
		return nil, err
	}
	as, err := scanAssets(rows)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, o := range as {
		if o.Kind != KindComposed && a.Kind != KindComposed {
			continue // two cycle assets share nothing
		}
		for _, p := range o.PlayInfos {
			out[p.Key] = true
			if p.Format != string(rules.M3U8) {
				continue
			}
			segs, err := playlistKeys(ctx, st, p.Key)
			if err != nil {
				return nil, err
			}
			for _, k := range segs {
				out[k] = true
			}
		}
	}
	return out, nil
}

// playlistKeys returns the keys of the media a playlist lists (segment URIs and EXT-X-MAP
// URIs, relative to the playlist). A missing playlist lists nothing.
func playlistKeys(ctx context.Context, st storage.Store, key string) ([]string, error) {
	o, err := st.Open(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer o.Close()
	dir := path.Dir(key)
	var out []string
	sc := bufio.NewScanner(o)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		uri := line
		if strings.HasPrefix(line, "#EXT-X-MAP:") {
			_, rest, ok := strings.Cut(line, `URI="`)
			if !ok {
				continue
			}
			uri, _, _ = strings.Cut(rest, `"`)
		} else if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.Contains(uri, "://") || strings.HasPrefix(uri, "/") {
			continue // not the library's relative keys
		}
		u, err := url.PathUnescape(uri)
		if err != nil {
			continue
		}
		out = append(out, path.Clean(path.Join(dir, u)))
	}
	return out, sc.Err()
}
