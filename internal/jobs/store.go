package jobs

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river/rivertype"
)

// maxLogLine bounds one log line (an ffmpeg tail fits).
const maxLogLine = 4096

// The queue's own writes must not fail a job: they are logged and the job goes on.
func (q *Queue) exec(query string, args ...any) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := q.db.ExecContext(ctx, query, args...); err != nil {
		q.cfg.Logger.Warn("jobs: catalog write failed", "err", err)
	}
}

func nowMs() int64 { return time.Now().UnixMilli() }

func (q *Queue) startAttempt(ctx context.Context, id int64, attempt int) {
	q.exec(`INSERT INTO livrec_job_runs (job_id, attempt, progress, heartbeat_at) VALUES ($1, $2, 0, $3)
		ON CONFLICT (job_id) DO UPDATE SET attempt = excluded.attempt, progress = 0, heartbeat_at = excluded.heartbeat_at`,
		id, attempt, nowMs())
}

func (q *Queue) heartbeat(id int64, progress float64) {
	q.exec(`UPDATE livrec_job_runs SET heartbeat_at = $1, progress = $2 WHERE job_id = $3`, nowMs(), progress, id)
}

func (q *Queue) writeProgress(id int64, progress float64) {
	q.exec(`UPDATE livrec_job_runs SET progress = $1, heartbeat_at = $2 WHERE job_id = $3`, progress, nowMs(), id)
}

func (q *Queue) addLog(id int64, attempt int, line string) {
	if len(line) > maxLogLine {
		line = line[:maxLogLine] + "…"
	}
	q.exec(`INSERT INTO livrec_job_logs (job_id, at, attempt, line) VALUES ($1, $2, $3, $4)`, id, nowMs(), attempt, line)
	q.exec(`DELETE FROM livrec_job_logs WHERE job_id = $1 AND seq <= (SELECT max(seq) FROM livrec_job_logs WHERE job_id = $1) - $2`,
		id, keepLogLines)
}

// infos joins River's rows with ours.
func (q *Queue) infos(ctx context.Context, rows []*rivertype.JobRow, logLines int) ([]Info, error) {
	out := make([]Info, len(rows))
	for i, r := range rows {
		in := Info{ID: r.ID, Kind: r.Kind, Args: compact(r.EncodedArgs), State: string(r.State), Attempt: r.Attempt,
			MaxAttempts: r.MaxAttempts, CreatedAt: r.CreatedAt}
		if r.AttemptedAt != nil {
			in.AttemptedAt = *r.AttemptedAt
		}
		if r.FinalizedAt != nil {
			in.FinishedAt = *r.FinalizedAt
		}
		var lastAt time.Time
		if n := len(r.Errors); n > 0 {
			in.LastError, lastAt = r.Errors[n-1].Error, r.Errors[n-1].At
		}
		var key sql.NullString
		var diedErr string
		var diedAt int64
		err := q.db.QueryRowContext(ctx, `SELECT unique_key, progress, died_error, died_at FROM livrec_job_runs WHERE job_id = $1`, r.ID).
			Scan(&key, &in.Progress, &diedErr, &diedAt)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("jobs: %d: %w", r.ID, err)
		}
		in.UniqueKey = key.String
		if diedErr != "" && time.UnixMilli(diedAt).After(lastAt) {
			in.LastError = diedErr
		}
		if in.State == StateCompleted {
			in.Progress = 100
		}
		lrows, err := q.db.QueryContext(ctx, `SELECT at, attempt, line FROM (SELECT seq, at, attempt, line FROM livrec_job_logs
			WHERE job_id = $1 ORDER BY seq DESC LIMIT $2) AS l ORDER BY seq`, r.ID, logLines)
		if err != nil {
			return nil, fmt.Errorf("jobs: %d: %w", r.ID, err)
		}
		for lrows.Next() {
			var l LogLine
			var at int64
			if err := lrows.Scan(&at, &l.Attempt, &l.Line); err != nil {
				lrows.Close()
				return nil, fmt.Errorf("jobs: %d: %w", r.ID, err)
			}
			l.At = time.UnixMilli(at)
			in.Logs = append(in.Logs, l)
		}
		lrows.Close()
		if err := lrows.Err(); err != nil {
			return nil, fmt.Errorf("jobs: %d: %w", r.ID, err)
		}
		out[i] = in
	}
	return out, nil
}

// compact is args without the spaces PostgreSQL's jsonb adds, so that both drivers show
// them alike.
func compact(args []byte) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, args) != nil {
		return args
	}
	return b.Bytes()
}

// reaper reaps dead attempts, sweeps rows of deleted jobs and refreshes the queued gauge.
func (q *Queue) reaper(ctx context.Context) {
	defer close(q.reaperD)
	t := time.NewTicker(q.cfg.StaleAfter / 3)
	defer t.Stop()
	sweep := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		q.reap(ctx)
		if time.Since(sweep) > time.Hour {
			sweep = time.Now()
			q.exec(`DELETE FROM livrec_job_runs WHERE job_id NOT IN (SELECT id FROM river_job)`)
			q.exec(`DELETE FROM livrec_job_logs WHERE job_id NOT IN (SELECT id FROM river_job)`)
		}
	}
}

// reap finds running jobs whose attempt started more than StaleAfter ago and whose
// heartbeat is older than that: their process died. Each goes back to available (River
// counts the next fetch as the next attempt) or, with no attempt left, to discarded.
//
// This is the one place that reads and writes River's table directly.
func (q *Queue) reap(ctx context.Context) {
	stale := q.cfg.StaleAfter
	rows, err := q.db.QueryContext(ctx, `SELECT j.id, j.kind, j.attempt, j.max_attempts FROM river_job j
		LEFT JOIN livrec_job_runs r ON r.job_id = j.id
		WHERE j.state = 'running' AND `+q.dialect.startedBefore+`
		AND coalesce(r.heartbeat_at, 0) < $2`, stale.Seconds(), nowMs()-stale.Milliseconds())
	if err != nil {
		if ctx.Err() == nil {
			q.cfg.Logger.Warn("jobs: looking for dead attempts failed", "err", err)
		}
		return
	}
	type dead struct {
		id                int64
		kind              string
		attempt, attempts int
	}
	var ds []dead
	for rows.Next() {
		var d dead
		if err := rows.Scan(&d.id, &d.kind, &d.attempt, &d.attempts); err == nil {
			ds = append(ds, d)
		}
	}
	rows.Close()
	for _, d := range ds {
		msg := fmt.Sprintf("attempt %d/%d: livrec stopped during the attempt (no heartbeat for %s)", d.attempt, d.attempts, stale)
		state := StateAvailable
		if d.attempt >= d.attempts {
			state = StateDiscarded
			msg += "; no attempt left"
		} else {
			msg += "; retried"
		}
		now := q.dialect.now
		res, err := q.db.ExecContext(ctx, `UPDATE river_job SET state = $1, scheduled_at = `+now+`,
			finalized_at = CASE WHEN $2 THEN `+now+` END
			WHERE id = $3 AND state = 'running'`, state, state == StateDiscarded, d.id)
		if err != nil {
			q.cfg.Logger.Warn("jobs: reaping a dead attempt failed", "id", d.id, "err", err)
			continue
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue
		}
		q.exec(`INSERT INTO livrec_job_runs (job_id, died_error, died_at) VALUES ($1, $2, $3)
			ON CONFLICT (job_id) DO UPDATE SET died_error = excluded.died_error, died_at = excluded.died_at`, d.id, msg, nowMs())
		q.addLog(d.id, d.attempt, msg)
		q.cfg.Metrics.Failed.WithLabelValues(d.kind).Inc()
		q.cfg.Logger.Warn("job attempt died with its process", "id", d.id, "kind", d.kind, "attempt", d.attempt, "state", state)
	}
	var n int
	if err := q.db.QueryRowContext(ctx, `SELECT count(*) FROM river_job WHERE state IN ('available', 'scheduled', 'retryable', 'pending')`).Scan(&n); err == nil {
		q.cfg.Metrics.Queued.Set(float64(n))
	}
}

// dialect is the SQL on River's timestamps, which each River driver stores its own way:
// SQLite text in UTC ('YYYY-MM-DD HH:MM:SS.SSS'), PostgreSQL timestamptz.
type dialect struct {
	// startedBefore is "attempted_at is more than $1 seconds ago".
	startedBefore string
	// now is the current time as River's column holds it.
	now string
}

var (
	dialectSQLite = dialect{
		startedBefore: `julianday(j.attempted_at) < julianday('now') - $1 / 86400.0`,
		now:           `strftime('%Y-%m-%d %H:%M:%f', 'now')`,
	}
	dialectPostgres = dialect{
		startedBefore: `j.attempted_at < now() - make_interval(secs => $1)`,
		now:           `now()`,
	}
)

// quiet passes River's warnings and errors on; its info lines are noise in livrec's log.
func quiet(l *slog.Logger) *slog.Logger {
	return slog.New(levelHandler{l.Handler(), slog.LevelWarn}).With("component", "river")
}

type levelHandler struct {
	slog.Handler
	min slog.Level
}

func (h levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return levelHandler{h.Handler.WithAttrs(as), h.min}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{h.Handler.WithGroup(name), h.min}
}
