// Package catalog is livrec's index: recording tasks and the files they generated, in
// SQLite (pure Go, modernc.org/sqlite) under the data directory. The recorder writes a
// row when a file opens and completes it when the file is generated; the API reads it.
package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Task states (see design.md "Task states").
const (
	TaskRecording = "recording"
	TaskPaused    = "paused"
	TaskEnded     = "ended"
)

// File statuses.
const (
	FileRecording = "recording"
	FileDone      = "done"
	FileFailed    = "failed"
)

// Task is one recording task: one stream key recorded with one rule across publishes
// that come back within the stitch window.
type Task struct {
	ID        string    `json:"id"`
	Domain    string    `json:"domain"`
	App       string    `json:"app"`
	Stream    string    `json:"stream"`
	State     string    `json:"state"`
	Rule      string    `json:"-"` // the rule the task started with, as JSON
	StartedAt time.Time `json:"startTime"`
	UpdatedAt time.Time `json:"updatedAt"`
	EndedAt   time.Time `json:"endTime,omitzero"`
}

// File is one output of a task: per format per cycle.
type File struct {
	ID        string    `json:"id"`
	TaskID    string    `json:"taskId"`
	Domain    string    `json:"domain"`
	App       string    `json:"app"`
	Stream    string    `json:"stream"`
	Format    string    `json:"format"`
	Sequence  int       `json:"sequence"`
	Key       string    `json:"key,omitempty"` // object key of the playlist / file, set when generated
	WorkDir   string    `json:"-"`
	Start     time.Time `json:"startTime"`
	End       time.Time `json:"endTime,omitzero"`
	Duration  float64   `json:"duration"` // media seconds
	Width     int       `json:"width"`
	Height    int       `json:"height"`
	Codecs    string    `json:"codecs"`    // e.g. "h264,aac"
	FrameRate float64   `json:"frameRate"` // frames per second of the video track, 0 if unknown
	Bitrate   int64     `json:"bitrate"`   // average bit/s of the stored file(s)
	Bytes     int64     `json:"bytes"`
	Segments  int       `json:"segments"`
	Status    string    `json:"status"`
	// Where the file is: empty for the server's own storage, else the object store and
	// bucket (the key is the object name); Uploaded says whether it has reached it.
	OssEndpoint string `json:"ossEndpoint,omitempty"`
	OssBucket   string `json:"ossBucket,omitempty"`
	Uploaded    bool   `json:"uploaded"`
	Error       string `json:"error,omitempty"`
}

// Catalog wraps the SQLite database.
type Catalog struct {
	db *sql.DB
}

const schema = `
CREATE TABLE IF NOT EXISTS tasks (
	id TEXT PRIMARY KEY,
	domain TEXT NOT NULL, app TEXT NOT NULL, stream TEXT NOT NULL,
	state TEXT NOT NULL,
	rule TEXT NOT NULL,
	started_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, ended_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks(state);
CREATE TABLE IF NOT EXISTS files (
	id TEXT PRIMARY KEY,
	task_id TEXT NOT NULL,
	domain TEXT NOT NULL, app TEXT NOT NULL, stream TEXT NOT NULL,
	format TEXT NOT NULL, sequence INTEGER NOT NULL,
	key TEXT NOT NULL DEFAULT '', work_dir TEXT NOT NULL DEFAULT '',
	start_time INTEGER NOT NULL, end_time INTEGER NOT NULL DEFAULT 0,
	duration REAL NOT NULL DEFAULT 0,
	width INTEGER NOT NULL DEFAULT 0, height INTEGER NOT NULL DEFAULT 0,
	codecs TEXT NOT NULL DEFAULT '',
	frame_rate REAL NOT NULL DEFAULT 0, bitrate INTEGER NOT NULL DEFAULT 0,
	bytes INTEGER NOT NULL DEFAULT 0, segments INTEGER NOT NULL DEFAULT 0,
	status TEXT NOT NULL, error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS files_stream ON files(domain, app, stream, start_time);
CREATE INDEX IF NOT EXISTS files_task ON files(task_id);
CREATE INDEX IF NOT EXISTS files_status ON files(status);
CREATE TABLE IF NOT EXISTS signature_nonces (
	key TEXT PRIMARY KEY,
	expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS signature_nonces_expiry ON signature_nonces(expires_at);
CREATE TABLE IF NOT EXISTS uploaded_objects (
	bucket TEXT NOT NULL, key TEXT NOT NULL,
	PRIMARY KEY (bucket, key)
);
`

// Open opens (creating if needed) the catalog database file.
func Open(path string) (*Catalog, error) {
	return open(path, "journal_mode(WAL)", "synchronous(NORMAL)")
}

func open(path string, pragmas ...string) (*Catalog, error) {
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)"
	for _, p := range pragmas {
		dsn += "&_pragma=" + p
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	// SQLite allows one writer; a single connection avoids SQLITE_BUSY between our own goroutines.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	if err := migrate(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	return &Catalog{db: db}, nil
}

// columns added after the first schema: a catalog made by an older build gets them.
var addedColumns = []struct{ table, column, decl string }{
	{"files", "frame_rate", "REAL NOT NULL DEFAULT 0"},
	{"files", "bitrate", "INTEGER NOT NULL DEFAULT 0"},
	{"files", "oss_endpoint", "TEXT NOT NULL DEFAULT ''"},
	{"files", "oss_bucket", "TEXT NOT NULL DEFAULT ''"},
	{"files", "uploaded", "INTEGER NOT NULL DEFAULT 0"},
}

func migrate(db *sql.DB) error {
	for _, c := range addedColumns {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM pragma_table_info(?) WHERE name=?`, c.table, c.column).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			if _, err := db.Exec(`ALTER TABLE ` + c.table + ` ADD COLUMN ` + c.column + ` ` + c.decl); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close closes the database.
func (c *Catalog) Close() error { return c.db.Close() }

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// CreateTask inserts a task.
func (c *Catalog) CreateTask(ctx context.Context, t *Task) error {
	_, err := c.db.ExecContext(ctx, `INSERT INTO tasks(id,domain,app,stream,state,rule,started_at,updated_at) VALUES(?,?,?,?,?,?,?,?)`,
		t.ID, t.Domain, t.App, t.Stream, t.State, t.Rule, ms(t.StartedAt), ms(t.UpdatedAt))
	return err
}

// SetTaskState records a task's state change.
func (c *Catalog) SetTaskState(ctx context.Context, id, state string, at time.Time) error {
	end := int64(0)
	if state == TaskEnded {
		end = ms(at)
	}
	_, err := c.db.ExecContext(ctx, `UPDATE tasks SET state=?, updated_at=?, ended_at=? WHERE id=?`, state, ms(at), end, id)
	return err
}

// OpenTasks returns the tasks that are not ended (after a crash: those to finalize).
func (c *Catalog) OpenTasks(ctx context.Context) ([]Task, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT `+taskCols+` FROM tasks WHERE state<>? ORDER BY started_at`, TaskEnded)
	if err != nil {
		return nil, err
	}
	return scanTasks(rows)
}

const taskCols = `id,domain,app,stream,state,rule,started_at,updated_at,ended_at`

func scanTasks(rows *sql.Rows) ([]Task, error) {
	defer rows.Close()
	out := []Task{}
	for rows.Next() {
		var t Task
		var s, u, e int64
		if err := rows.Scan(&t.ID, &t.Domain, &t.App, &t.Stream, &t.State, &t.Rule, &s, &u, &e); err != nil {
			return nil, err
		}
		t.StartedAt, t.UpdatedAt, t.EndedAt = fromMS(s), fromMS(u), fromMS(e)
		out = append(out, t)
	}
	return out, rows.Err()
}

// CreateFile inserts a file row (status recording).
func (c *Catalog) CreateFile(ctx context.Context, f *File) error {
	_, err := c.db.ExecContext(ctx, `INSERT INTO files(id,task_id,domain,app,stream,format,sequence,key,work_dir,start_time,end_time,duration,width,height,codecs,frame_rate,bitrate,bytes,segments,status,error,oss_endpoint,oss_bucket,uploaded)
		VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		f.ID, f.TaskID, f.Domain, f.App, f.Stream, f.Format, f.Sequence, f.Key, f.WorkDir, ms(f.Start), ms(f.End),
		f.Duration, f.Width, f.Height, f.Codecs, f.FrameRate, f.Bitrate, f.Bytes, f.Segments, f.Status, f.Error,
		f.OssEndpoint, f.OssBucket, f.Uploaded || f.OssBucket == "" && f.Status == FileDone)
	return err
}

// UpdateFile writes every mutable field of a file row.
func (c *Catalog) UpdateFile(ctx context.Context, f *File) error {
	// uploaded is not taken from f (MarkUploaded, from the upload spool, races with this):
	// a file in the server's own storage counts as uploaded once it is done, one in a
	// bucket once MarkUploaded saw its key — possibly before the row had it, hence the
	// uploaded_objects lookup. (SET expressions see the row's old values: use the new
	// status and key from the arguments.)
	res, err := c.db.ExecContext(ctx, `UPDATE files SET key=?, work_dir=?, start_time=?, end_time=?, duration=?, width=?, height=?, codecs=?, frame_rate=?, bitrate=?, bytes=?, segments=?, status=?, error=?,
		uploaded = CASE WHEN oss_bucket='' AND ?='done' THEN 1
			WHEN EXISTS(SELECT 1 FROM uploaded_objects u WHERE u.bucket=files.oss_bucket AND u.key=?) THEN 1
			ELSE uploaded END WHERE id=?`,
		f.Key, f.WorkDir, ms(f.Start), ms(f.End), f.Duration, f.Width, f.Height, f.Codecs, f.FrameRate, f.Bitrate, f.Bytes, f.Segments, f.Status, f.Error,
		f.Status, f.Key, f.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("file %s: %w", f.ID, ErrNotFound)
	}
	return nil
}

// FileProgress records the running figures of a file being recorded (a file already
// generated or failed keeps its final figures).
func (c *Catalog) FileProgress(ctx context.Context, id string, duration float64, bytes int64, segments int) error {
	_, err := c.db.ExecContext(ctx, `UPDATE files SET duration=?, bytes=?, segments=? WHERE id=? AND status=?`,
		duration, bytes, segments, id, FileRecording)
	return err
}

// ErrNotFound is returned for an unknown id.
var ErrNotFound = errors.New("not found")

const fileCols = `id,task_id,domain,app,stream,format,sequence,key,work_dir,start_time,end_time,duration,width,height,codecs,frame_rate,bitrate,bytes,segments,status,error,oss_endpoint,oss_bucket,uploaded`

func scanFiles(rows *sql.Rows) ([]File, error) {
	defer rows.Close()
	out := []File{}
	for rows.Next() {
		var f File
		var s, e int64
		if err := rows.Scan(&f.ID, &f.TaskID, &f.Domain, &f.App, &f.Stream, &f.Format, &f.Sequence, &f.Key, &f.WorkDir, &s, &e,
			&f.Duration, &f.Width, &f.Height, &f.Codecs, &f.FrameRate, &f.Bitrate, &f.Bytes, &f.Segments, &f.Status, &f.Error, &f.OssEndpoint, &f.OssBucket, &f.Uploaded); err != nil {
			return nil, err
		}
		f.Start, f.End = fromMS(s), fromMS(e)
		out = append(out, f)
	}
	return out, rows.Err()
}

// TaskFiles returns the files of a task with the given status ("" = any).
func (c *Catalog) TaskFiles(ctx context.Context, taskID, status string) ([]File, error) {
	q := `SELECT ` + fileCols + ` FROM files WHERE task_id=?`
	args := []any{taskID}
	if status != "" {
		q += ` AND status=?`
		args = append(args, status)
	}
	rows, err := c.db.QueryContext(ctx, q+` ORDER BY format, sequence`, args...)
	if err != nil {
		return nil, err
	}
	return scanFiles(rows)
}

// GetFile returns one file by id.
func (c *Catalog) GetFile(ctx context.Context, id string) (*File, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT `+fileCols+` FROM files WHERE id=?`, id)
	if err != nil {
		return nil, err
	}
	fs, err := scanFiles(rows)
	if err != nil {
		return nil, err
	}
	if len(fs) == 0 {
		return nil, ErrNotFound
	}
	return &fs[0], nil
}

// FileQuery selects files; zero fields do not filter.
type FileQuery struct {
	Domain, App, Stream, Format, Status string
	From, To                            time.Time // files overlapping [From, To)
	Limit, Offset                       int
	Desc                                bool
}

// ListFiles returns files matching q, ordered by start time.
func (c *Catalog) ListFiles(ctx context.Context, q FileQuery) ([]File, error) {
	where, args := q.where()
	sqlq := `SELECT ` + fileCols + ` FROM files` + where
	order := "ASC"
	if q.Desc {
		order = "DESC"
	}
	sqlq += " ORDER BY start_time " + order + ", format, sequence"
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	sqlq += " LIMIT ? OFFSET ?"
	args = append(args, limit, q.Offset)
	rows, err := c.db.QueryContext(ctx, sqlq, args...)
	if err != nil {
		return nil, err
	}
	return scanFiles(rows)
}

// CountFiles counts the files matching q (Limit, Offset and Desc are ignored).
func (c *Catalog) CountFiles(ctx context.Context, q FileQuery) (int, error) {
	where, args := q.where()
	var n int
	err := c.db.QueryRowContext(ctx, `SELECT count(*) FROM files`+where, args...).Scan(&n)
	return n, err
}

// DeleteFile deletes a file row (not the stored object), or returns ErrNotFound.
func (c *Catalog) DeleteFile(ctx context.Context, id string) error {
	res, err := c.db.ExecContext(ctx, `DELETE FROM files WHERE id=?`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// GetTask returns one task by id, or ErrNotFound.
func (c *Catalog) GetTask(ctx context.Context, id string) (*Task, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT `+taskCols+` FROM tasks WHERE id=?`, id)
	if err != nil {
		return nil, err
	}
	ts, err := scanTasks(rows)
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, ErrNotFound
	}
	return &ts[0], nil
}

// Where builds a SQL WHERE clause from optional conditions (catalog queries and the
// tables other packages keep in the catalog).
type Where struct {
	conds []string
	args  []any
}

// Add adds a condition with its argument.
func (w *Where) Add(cond string, arg any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, arg)
}

// Eq adds "col=?" unless v is empty (an empty filter field does not filter).
func (w *Where) Eq(col, v string) {
	if v != "" {
		w.Add(col+"=?", v)
	}
}

// SQL returns the clause (with a leading space, or "") and its arguments.
func (w *Where) SQL() (string, []any) {
	if len(w.conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(w.conds, " AND "), w.args
}

// where returns the WHERE clause (with a leading space, or "") and its arguments.
func (q FileQuery) where() (string, []any) {
	var w Where
	w.Eq("domain", q.Domain)
	w.Eq("app", q.App)
	w.Eq("stream", q.Stream)
	w.Eq("format", q.Format)
	w.Eq("status", q.Status)
	if !q.From.IsZero() {
		w.Add("(end_time=0 OR end_time>=?)", ms(q.From))
	}
	if !q.To.IsZero() {
		w.Add("start_time<?", ms(q.To))
	}
	return w.SQL()
}

// DB exposes the database to packages that keep their own tables in the catalog (for
// example the callback queue). They create their tables with CREATE TABLE IF NOT EXISTS.
func (c *Catalog) DB() *sql.DB { return c.db }

// TaskQuery selects tasks ("recording content": the recording sessions of a stream).
type TaskQuery struct {
	Domain, App, Stream string
	From, To            time.Time // tasks overlapping [From, To)
	Limit, Offset       int
	Desc                bool
}

// ListTasks returns the tasks matching q, ordered by start time.
func (c *Catalog) ListTasks(ctx context.Context, q TaskQuery) ([]Task, error) {
	var w Where
	w.Eq("domain", q.Domain)
	w.Eq("app", q.App)
	w.Eq("stream", q.Stream)
	if !q.From.IsZero() {
		w.Add("(ended_at=0 OR ended_at>=?)", ms(q.From))
	}
	if !q.To.IsZero() {
		w.Add("started_at<?", ms(q.To))
	}
	where, args := w.SQL()
	order := "ASC"
	if q.Desc {
		order = "DESC"
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	args = append(args, limit, q.Offset)
	rows, err := c.db.QueryContext(ctx, `SELECT `+taskCols+` FROM tasks`+where+` ORDER BY started_at `+order+` LIMIT ? OFFSET ?`, args...)
	if err != nil {
		return nil, err
	}
	return scanTasks(rows)
}

// MarkUploaded records that the object key reached the bucket. A file row with that key
// is flagged now; a row that gets the key later (the upload can beat the catalog update)
// is flagged by UpdateFile, from uploaded_objects. The key is noted before the rows are
// looked at: noted after a search that found none, an UpdateFile running in between
// (another goroutine: the recorder's catalog queue) would see neither and the flag would
// be lost. The note goes once a row carries the flag.
func (c *Catalog) MarkUploaded(ctx context.Context, bucket, key string) error {
	if _, err := c.db.ExecContext(ctx, `INSERT OR IGNORE INTO uploaded_objects(bucket, key) VALUES(?, ?)`, bucket, key); err != nil {
		return err
	}
	res, err := c.db.ExecContext(ctx, `UPDATE files SET uploaded=1 WHERE oss_bucket=? AND key=? AND key<>''`, bucket, key)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		_, err = c.db.ExecContext(ctx, `DELETE FROM uploaded_objects WHERE bucket=? AND key=?`, bucket, key)
	}
	return err
}
