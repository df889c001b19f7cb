// Package catalog is livrec's index: recording tasks and the files they generated, in
// SQLite (pure Go, modernc.org/sqlite) under the data directory or in PostgreSQL (see
// package schema, which opens the database and migrates its tables). The recorder writes
// a row when a file opens and completes it when the file is generated; the API reads it.
package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/livrec/livrec/internal/schema"
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
	ID       string    `json:"id"`
	TaskID   string    `json:"taskId"`
	Domain   string    `json:"domain"`
	App      string    `json:"app"`
	Stream   string    `json:"stream"`
	Format   string    `json:"format"`
	Sequence int       `json:"sequence"`
	Key      string    `json:"key,omitempty"` // object key of the playlist / file, set when generated
	WorkDir  string    `json:"-"`
	Start    time.Time `json:"startTime"`
	End      time.Time `json:"endTime,omitzero"`
	Duration float64   `json:"duration"` // media seconds
	Width    int       `json:"width"`
	Height   int       `json:"height"`
	Codecs   string    `json:"codecs"` // e.g. "h264,aac"
	// CodecsRFC6381 is the same as HLS's CODECS wants it ("avc1.64001f,mp4a.40.2"); it
	// is not stored, only carried by the file_created event of a running task (the
	// multi-variant playlist needs it).
	CodecsRFC6381 string  `json:"-"`
	FrameRate     float64 `json:"frameRate"` // frames per second of the video track, 0 if unknown
	Bitrate       int64   `json:"bitrate"`   // average bit/s of the stored file(s)
	Bytes         int64   `json:"bytes"`
	Segments      int     `json:"segments"`
	Status        string  `json:"status"`
	// Where the file is: empty for the server's own storage, else the object store and
	// bucket (the key is the object name); Uploaded says whether it has reached it.
	OssEndpoint string `json:"ossEndpoint,omitempty"`
	OssBucket   string `json:"ossBucket,omitempty"`
	Uploaded    bool   `json:"uploaded"`
	Error       string `json:"error,omitempty"`
}

// Catalog wraps the catalog database.
type Catalog struct {
	db     *sql.DB
	driver string   // schema.SQLite or schema.Postgres
	stmts  sync.Map // query → *sql.Stmt of the writes (see stmt)
}

// Open opens (creating if needed) the SQLite catalog database file.
func Open(path string) (*Catalog, error) { return OpenDriver(schema.SQLite, path) }

// OpenDriver opens the catalog database of driver (schema.SQLite, the default when "", or
// schema.Postgres) at dsn — the file for SQLite, a connection string for PostgreSQL — and
// migrates it to the newest schema (see package schema).
func OpenDriver(driver, dsn string) (*Catalog, error) {
	if driver == "" {
		driver = schema.SQLite
	}
	db, err := schema.Open(context.Background(), driver, dsn)
	if err != nil {
		return nil, err
	}
	return &Catalog{db: db, driver: driver}, nil
}

// Close closes the database.
func (c *Catalog) Close() error {
	c.stmts.Range(func(_, st any) bool {
		st.(*sql.Stmt).Close()
		return true
	})
	return c.db.Close()
}

// MS is how the catalog's tables keep a time: unix milliseconds, 0 for none. The
// packages with tables of their own in the catalog database (notify, vod) keep theirs so.
func MS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// FromMS is the time of a column written by MS (UTC; the zero time for 0).
func FromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// CreateTask inserts a task.
func (c *Catalog) CreateTask(ctx context.Context, t *Task) error {
	_, err := c.exec(ctx, `INSERT INTO tasks(id,domain,app,stream,state,rule,started_at,updated_at) VALUES($1,$2,$3,$4,$5,$6,$7,$8)`,
		t.ID, t.Domain, t.App, t.Stream, t.State, t.Rule, MS(t.StartedAt), MS(t.UpdatedAt))
	return err
}

// SetTaskState records a task's state change.
func (c *Catalog) SetTaskState(ctx context.Context, id, state string, at time.Time) error {
	end := int64(0)
	if state == TaskEnded {
		end = MS(at)
	}
	_, err := c.exec(ctx, `UPDATE tasks SET state=$1, updated_at=$2, ended_at=$3 WHERE id=$4`, state, MS(at), end, id)
	return err
}

// OpenTasks returns the tasks that are not ended (after a crash: those to finalize).
func (c *Catalog) OpenTasks(ctx context.Context) ([]Task, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT `+taskCols+` FROM tasks WHERE state<>$1 ORDER BY started_at`, TaskEnded)
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
		t.StartedAt, t.UpdatedAt, t.EndedAt = FromMS(s), FromMS(u), FromMS(e)
		out = append(out, t)
	}
	return out, rows.Err()
}

// CreateFile inserts a file row (status recording).
func (c *Catalog) CreateFile(ctx context.Context, f *File) error {
	_, err := c.exec(ctx, `INSERT INTO files(id,task_id,domain,app,stream,format,sequence,key,work_dir,start_time,end_time,duration,width,height,codecs,frame_rate,bitrate,bytes,segments,status,error,oss_endpoint,oss_bucket,uploaded)
		VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24)`,
		f.ID, f.TaskID, f.Domain, f.App, f.Stream, f.Format, f.Sequence, f.Key, f.WorkDir, MS(f.Start), MS(f.End),
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
	res, err := c.exec(ctx, `UPDATE files SET key=$1, work_dir=$2, start_time=$3, end_time=$4, duration=$5, width=$6, height=$7, codecs=$8, frame_rate=$9, bitrate=$10, bytes=$11, segments=$12, status=$13, error=$14,
		uploaded = CASE WHEN oss_bucket='' AND $13='done' THEN TRUE
			WHEN EXISTS(SELECT 1 FROM uploaded_objects u WHERE u.bucket=files.oss_bucket AND u.key=$1) THEN TRUE
			ELSE uploaded END WHERE id=$15`,
		f.Key, f.WorkDir, MS(f.Start), MS(f.End), f.Duration, f.Width, f.Height, f.Codecs, f.FrameRate, f.Bitrate, f.Bytes, f.Segments, f.Status, f.Error,
		f.ID)
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
	_, err := c.exec(ctx, `UPDATE files SET duration=$1, bytes=$2, segments=$3 WHERE id=$4 AND status=$5`,
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
		f.Start, f.End = FromMS(s), FromMS(e)
		out = append(out, f)
	}
	return out, rows.Err()
}

// TaskFiles returns the files of a task with the given status ("" = any).
func (c *Catalog) TaskFiles(ctx context.Context, taskID, status string) ([]File, error) {
	var w Where
	w.Add("task_id=" + w.Arg(taskID))
	w.Eq("status", status)
	rows, err := c.db.QueryContext(ctx, `SELECT `+fileCols+` FROM files`+w.SQL()+` ORDER BY format, sequence`, w.Args()...)
	if err != nil {
		return nil, err
	}
	return scanFiles(rows)
}

// GetFile returns one file by id.
func (c *Catalog) GetFile(ctx context.Context, id string) (*File, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT `+fileCols+` FROM files WHERE id=$1`, id)
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
	w := q.where()
	sqlq := `SELECT ` + fileCols + ` FROM files` + w.SQL()
	order := "ASC"
	if q.Desc {
		order = "DESC"
	}
	sqlq += " ORDER BY start_time " + order + ", format, sequence"
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	sqlq += " LIMIT " + w.Arg(limit)
	sqlq += " OFFSET " + w.Arg(q.Offset)
	rows, err := c.db.QueryContext(ctx, sqlq, w.Args()...)
	if err != nil {
		return nil, err
	}
	return scanFiles(rows)
}

// CountFiles counts the files matching q (Limit, Offset and Desc are ignored).
func (c *Catalog) CountFiles(ctx context.Context, q FileQuery) (int, error) {
	w := q.where()
	var n int
	err := c.db.QueryRowContext(ctx, `SELECT count(*) FROM files`+w.SQL(), w.Args()...).Scan(&n)
	return n, err
}

// DeleteFile deletes a file row (not the stored object), or returns ErrNotFound.
func (c *Catalog) DeleteFile(ctx context.Context, id string) error {
	res, err := c.exec(ctx, `DELETE FROM files WHERE id=$1`, id)
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
	rows, err := c.db.QueryContext(ctx, `SELECT `+taskCols+` FROM tasks WHERE id=$1`, id)
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
// tables other packages keep in the catalog), numbering the placeholders: the arguments
// of a LIMIT or OFFSET after it take the next numbers with Arg.
type Where struct {
	conds []string
	args  []any
}

// Arg adds an argument and returns its placeholder ($1, $2, ...).
func (w *Where) Arg(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

// Add adds a condition, which names its arguments with Arg: w.Add("x>=" + w.Arg(v)).
func (w *Where) Add(cond string) { w.conds = append(w.conds, cond) }

// Eq adds "col=v" unless v is empty (an empty filter field does not filter).
func (w *Where) Eq(col, v string) {
	if v != "" {
		w.Add(col + "=" + w.Arg(v))
	}
}

// SQL returns the clause, with a leading space, or "".
func (w *Where) SQL() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// Args returns the arguments of every placeholder made so far.
func (w *Where) Args() []any { return w.args }

// where returns the conditions of q.
func (q FileQuery) where() *Where {
	var w Where
	w.Eq("domain", q.Domain)
	w.Eq("app", q.App)
	w.Eq("stream", q.Stream)
	w.Eq("format", q.Format)
	w.Eq("status", q.Status)
	if !q.From.IsZero() {
		w.Add("(end_time=0 OR end_time>=" + w.Arg(MS(q.From)) + ")")
	}
	if !q.To.IsZero() {
		w.Add("start_time<" + w.Arg(MS(q.To)))
	}
	return &w
}

// DB exposes the database to packages that keep their own tables in the catalog (for
// example the callback queue). Their tables are created by package schema's migrations;
// their queries use $N placeholders and SQL both drivers take.
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
		w.Add("(ended_at=0 OR ended_at>=" + w.Arg(MS(q.From)) + ")")
	}
	if !q.To.IsZero() {
		w.Add("started_at<" + w.Arg(MS(q.To)))
	}
	order := "ASC"
	if q.Desc {
		order = "DESC"
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	where := w.SQL()
	page := ` LIMIT ` + w.Arg(limit) + ` OFFSET ` + w.Arg(q.Offset)
	rows, err := c.db.QueryContext(ctx, `SELECT `+taskCols+` FROM tasks`+where+` ORDER BY started_at `+order+page, w.Args()...)
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
	if _, err := c.db.ExecContext(ctx, `INSERT INTO uploaded_objects(bucket, key) VALUES($1, $2) ON CONFLICT DO NOTHING`, bucket, key); err != nil {
		return err
	}
	res, err := c.db.ExecContext(ctx, `UPDATE files SET uploaded=TRUE WHERE oss_bucket=$1 AND key=$2 AND key<>''`, bucket, key)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		_, err = c.db.ExecContext(ctx, `DELETE FROM uploaded_objects WHERE bucket=$1 AND key=$2`, bucket, key)
	}
	return err
}
