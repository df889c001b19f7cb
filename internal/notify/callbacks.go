package notify

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/livrec/livrec/internal/catalog"
)

// Callback statuses.
const (
	StatusPending = "pending"
	StatusSuccess = "success"
	StatusFailed  = "failed"
)

// Callback is one queued callback and its delivery history.
type Callback struct {
	ID     string `json:"id"`
	Domain string `json:"domain"` // lower case (the body keeps the event's spelling)
	App    string `json:"app"`
	Stream string `json:"stream"`
	TaskID string `json:"taskId,omitempty"`
	Event  string `json:"event"` // file_created, record_started, ...
	URL    string `json:"url"`   // the notifyUrl when the callback was queued
	Body   string `json:"body"`  // the JSON sent
	// Headers are the headers of the last try (before the first try: those known then).
	Headers   map[string]string `json:"headers"`
	Status    string            `json:"status"`
	Tries     int               `json:"tries"`
	NextTryAt time.Time         `json:"nextTryAt,omitzero"` // pending only
	CreatedAt time.Time         `json:"createdAt"`
	UpdatedAt time.Time         `json:"updatedAt"`
	// LastError describes the last failed try ("HTTP 500", "timeout ..."), "" after success.
	LastError string    `json:"lastError,omitempty"`
	Attempts  []Attempt `json:"attempts"`

	authKey string // the key when queued ("" = unsigned); never shown
	signing string // SigningLive or SigningVOD
}

// Attempt is one try of a callback.
type Attempt struct {
	Try          int           `json:"try"` // 1-based
	Time         time.Time     `json:"time"`
	ResponseCode int           `json:"responseCode"` // 0 when no HTTP answer
	Error        string        `json:"error,omitempty"`
	Response     string        `json:"response,omitempty"` // start of the answer's body
	Duration     time.Duration `json:"-"`
	DurationMS   float64       `json:"durationMs"`
}

func ms(t time.Time) int64     { return catalog.MS(t) }
func fromMS(v int64) time.Time { return catalog.FromMS(v) }

func headersJSON(h map[string]string) string {
	b, _ := json.Marshal(h)
	return string(b)
}

// insertBatch writes new callback rows in one transaction.
func (n *Notifier) insertBatch(ctx context.Context, cbs []*Callback) error {
	tx, err := n.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO callbacks(id,domain,app,stream,task_id,event,url,body,headers,auth_key,signing,status,tries,next_try_at,created_at,updated_at)
		VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, cb := range cbs {
		if _, err := stmt.ExecContext(ctx, cb.ID, cb.Domain, cb.App, cb.Stream, cb.TaskID, cb.Event, cb.URL, cb.Body,
			headersJSON(cb.Headers), cb.authKey, cb.signing, cb.Status, cb.Tries, ms(cb.NextTryAt), ms(cb.CreatedAt), ms(cb.UpdatedAt)); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	n.setPending(n.pending.Add(int64(len(cbs))))
	return nil
}

// Query selects callbacks; zero fields do not filter.
type Query struct {
	Domain, App, Stream string
	Event               string // file_created, record_started, ...
	Status              string // pending, success, failed
	From, To            time.Time
	Limit, Offset       int  // Limit defaults to 100, at most 1000
	Desc                bool // newest first
}

func (q Query) where() *catalog.Where {
	var w catalog.Where
	w.Eq("domain", normDomain(q.Domain))
	w.Eq("app", q.App)
	w.Eq("stream", q.Stream)
	w.Eq("event", q.Event)
	w.Eq("status", q.Status)
	if !q.From.IsZero() {
		w.Add("created_at>=" + w.Arg(ms(q.From)))
	}
	if !q.To.IsZero() {
		w.Add("created_at<" + w.Arg(ms(q.To)))
	}
	return &w
}

const callbackCols = `id,domain,app,stream,task_id,event,url,body,headers,auth_key,signing,status,tries,next_try_at,created_at,updated_at,last_error`

func scanCallbacks(rows *sql.Rows) ([]*Callback, error) {
	defer rows.Close()
	var out []*Callback
	for rows.Next() {
		cb := &Callback{}
		var headers string
		var next, created, updated int64
		if err := rows.Scan(&cb.ID, &cb.Domain, &cb.App, &cb.Stream, &cb.TaskID, &cb.Event, &cb.URL, &cb.Body, &headers,
			&cb.authKey, &cb.signing, &cb.Status, &cb.Tries, &next, &created, &updated, &cb.LastError); err != nil {
			return nil, err
		}
		_ = json.Unmarshal([]byte(headers), &cb.Headers)
		cb.NextTryAt, cb.CreatedAt, cb.UpdatedAt = fromMS(next), fromMS(created), fromMS(updated)
		if cb.Status != StatusPending {
			cb.NextTryAt = time.Time{}
		}
		out = append(out, cb)
	}
	return out, rows.Err()
}

// ListCallbacks returns the callbacks matching q (by creation time, oldest first unless
// q.Desc) with their attempts. Domains are matched in lower case.
func (n *Notifier) ListCallbacks(ctx context.Context, q Query) ([]Callback, error) {
	w := q.where()
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	order := "ASC"
	if q.Desc {
		order = "DESC"
	}
	where := w.SQL()
	page := ` LIMIT ` + w.Arg(limit) + ` OFFSET ` + w.Arg(max(q.Offset, 0))
	rows, err := n.db.QueryContext(ctx, `SELECT `+callbackCols+` FROM callbacks`+where+
		` ORDER BY created_at `+order+`, id `+order+page, w.Args()...)
	if err != nil {
		return nil, err
	}
	cbs, err := scanCallbacks(rows) // closes rows: the single connection is free again
	if err != nil {
		return nil, err
	}
	out := make([]Callback, len(cbs))
	for i, cb := range cbs {
		if cb.Attempts, err = n.attempts(ctx, cb.ID); err != nil {
			return nil, err
		}
		out[i] = *cb
	}
	return out, nil
}

// CountCallbacks counts the callbacks matching q (Limit, Offset and Desc are ignored).
func (n *Notifier) CountCallbacks(ctx context.Context, q Query) (int, error) {
	w := q.where()
	var c int
	err := n.db.QueryRowContext(ctx, `SELECT count(*) FROM callbacks`+w.SQL(), w.Args()...).Scan(&c)
	return c, err
}

// GetCallback returns one callback with its attempts, ErrNotFound if unknown.
func (n *Notifier) GetCallback(ctx context.Context, id string) (*Callback, error) {
	rows, err := n.db.QueryContext(ctx, `SELECT `+callbackCols+` FROM callbacks WHERE id=$1`, id)
	if err != nil {
		return nil, err
	}
	cbs, err := scanCallbacks(rows)
	if err != nil {
		return nil, err
	}
	if len(cbs) == 0 {
		return nil, fmt.Errorf("callback %s: %w", id, ErrNotFound)
	}
	if cbs[0].Attempts, err = n.attempts(ctx, id); err != nil {
		return nil, err
	}
	return cbs[0], nil
}

func (n *Notifier) attempts(ctx context.Context, id string) ([]Attempt, error) {
	rows, err := n.db.QueryContext(ctx, `SELECT try,at,response_code,error,response,duration_us FROM callback_attempts WHERE callback_id=$1 ORDER BY id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Attempt{}
	for rows.Next() {
		var a Attempt
		var at, us int64
		if err := rows.Scan(&a.Try, &at, &a.ResponseCode, &a.Error, &a.Response, &us); err != nil {
			return nil, err
		}
		a.Time = fromMS(at)
		a.Duration = time.Duration(us) * time.Microsecond
		a.DurationMS = float64(us) / 1000
		out = append(out, a)
	}
	return out, rows.Err()
}

// pruneRows bounds the rows one Prune transaction deletes: the catalog's database has
// a single connection, which recording must not wait for behind a long delete.
const pruneRows = 1000

// Prune deletes delivered and failed callbacks created before t, with their attempts,
// and returns how many callbacks went. Pending callbacks are kept.
func (n *Notifier) Prune(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		k, err := n.pruneBatch(ctx, before)
		total += k
		if err != nil || k < pruneRows {
			return total, err
		}
	}
}

func (n *Notifier) pruneBatch(ctx context.Context, before time.Time) (int64, error) {
	tx, err := n.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	const old = `SELECT id FROM callbacks WHERE status<>$1 AND created_at<$2 ORDER BY created_at, id LIMIT $3`
	args := []any{StatusPending, ms(before), pruneRows}
	if _, err := tx.ExecContext(ctx, `DELETE FROM callback_attempts WHERE callback_id IN (`+old+`)`, args...); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM callbacks WHERE id IN (`+old+`)`, args...)
	if err != nil {
		return 0, err
	}
	k, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	return k, tx.Commit()
}
