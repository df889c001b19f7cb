// Package jobs is livrec's durable job queue: background work (transcoding recordings
// after the fact, ...) kept in the catalog database, so that a job enqueued once runs to
// completion once even across restarts and kill -9.
//
// It is built on River (riverqueue/river) with the driver of the catalog's database
// (riversqlite for SQLite, riverdatabasesql over the same *sql.DB for PostgreSQL);
// River's own tables and migrations live next to the catalog's. River stays behind this package: callers see
// Register, Enqueue, List, Get and Cancel, and a Job handle to report progress and log
// lines. Two small tables of ours hold what River does not: unique keys, progress,
// heartbeats and per-job logs.
//
// A job whose process died (kill -9, power loss) stays "running" in River's table; the
// heartbeat every running job writes tells it apart from a live one, and a job whose
// heartbeat is older than Config.StaleAfter is made available again (or discarded when
// it has used its attempts). River's own rescuer, which knows no heartbeat and would
// retry a long transcode while it still runs, is pushed back to a week.
package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/livrec/livrec/internal/schema"
)

// Job states (River's names).
const (
	StateAvailable = "available"
	StateScheduled = "scheduled"
	StateRetryable = "retryable" // failed, waiting for its next attempt
	StateRunning   = "running"
	StateCompleted = "completed"
	StateCancelled = "cancelled"
	StateDiscarded = "discarded" // failed its last attempt
)

// Ranges and defaults of Config.
const (
	MaxConcurrency     = 64
	MaxMaxAttempts     = 100
	DefaultMaxAttempts = 5
	DefaultRetryBase   = 10 * time.Second
	DefaultRetryMax    = 10 * time.Minute
	DefaultStaleAfter  = 30 * time.Second
	// keepLogLines bounds the log lines kept per job.
	keepLogLines = 200
	// retention of finished jobs: long enough to show an asset's transcode history.
	retention = 30 * 24 * time.Hour
)

// DefaultConcurrency is one job per two cores (at least one): a transcode keeps ffmpeg
// busy on several cores already.
func DefaultConcurrency() int { return max(1, runtime.NumCPU()/2) }

// ErrNotFound: no job has that id.
var ErrNotFound = errors.New("job not found")

// Args are a job's arguments, stored as JSON; Kind names the worker that runs them.
type Args interface{ Kind() string }

// Config of a Queue. Zero values take the defaults.
type Config struct {
	// Concurrency bounds the jobs running at once in this process (1–MaxConcurrency;
	// 0: DefaultConcurrency).
	Concurrency int
	// MaxAttempts of a job unless Enqueue says otherwise (1–MaxMaxAttempts; 0: 5).
	MaxAttempts int
	// RetryBase is the wait before the first retry; it doubles per attempt up to RetryMax.
	RetryBase, RetryMax time.Duration
	// StaleAfter: a running job without a heartbeat for this long belongs to a process
	// that died, and is retried. Heartbeats come every StaleAfter/6.
	StaleAfter time.Duration
	// PollInterval of the workers for new jobs (0: 1 s).
	PollInterval time.Duration
	Logger       *slog.Logger
	Metrics      *Metrics
}

// Validate checks c; errors name the field and the allowed range.
func (c *Config) Validate() error {
	var es []string
	if c.Concurrency < 0 || c.Concurrency > MaxConcurrency {
		es = append(es, fmt.Sprintf("concurrency: %d is out of range (allowed 1–%d, or 0 for one per two cores)", c.Concurrency, MaxConcurrency))
	}
	if c.MaxAttempts < 0 || c.MaxAttempts > MaxMaxAttempts {
		es = append(es, fmt.Sprintf("maxAttempts: %d is out of range (allowed 1–%d)", c.MaxAttempts, MaxMaxAttempts))
	}
	if c.RetryBase < 0 || c.RetryMax < 0 || c.StaleAfter < 0 || c.PollInterval < 0 {
		es = append(es, "retryBase, retryMax, staleAfter, pollInterval: must not be negative")
	}
	if c.StaleAfter > 0 && c.StaleAfter < 600*time.Millisecond {
		es = append(es, fmt.Sprintf("staleAfter: %s is too short (at least 600ms)", c.StaleAfter))
	}
	if len(es) > 0 {
		return errors.New("jobs: " + strings.Join(es, "; "))
	}
	return nil
}

func (c *Config) defaults() {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency()
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RetryBase == 0 {
		c.RetryBase = DefaultRetryBase
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	c.RetryMax = max(c.RetryMax, c.RetryBase)
	if c.StaleAfter == 0 {
		c.StaleAfter = DefaultStaleAfter
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics()
	}
}

// Queue is the job queue of one process.
type Queue struct {
	db      *sql.DB
	cfg     Config
	dialect dialect
	driver  riverdriver.Driver[*sql.Tx]
	workers *river.Workers
	kinds   map[string]bool

	mu      sync.Mutex
	client  *river.Client[*sql.Tx]
	stop    context.CancelFunc
	reaperD chan struct{}
}

// Open prepares the queue in db (the catalog's database as schema.Open returned it, of
// either driver): it applies River's migrations (our tables are the catalog's). Register
// the workers, then Start.
func Open(ctx context.Context, db *sql.DB, cfg Config) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	var driver riverdriver.Driver[*sql.Tx]
	d := dialectSQLite
	if schema.DriverOfDB(db) == schema.Postgres {
		driver, d = riverdatabasesql.New(db), dialectPostgres
	} else {
		driver = riversqlite.New(db)
	}
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: quiet(cfg.Logger)})
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("jobs: river migrations: %w", err)
	}
	// Our tables beside River's (livrec_job_runs, livrec_job_logs) are catalog
	// migrations; no foreign key to river_job: River's SQLite migrations rebuild that
	// table, and rows of jobs River deleted are swept instead.
	return &Queue{db: db, cfg: cfg, dialect: d, driver: driver, workers: river.NewWorkers(), kinds: map[string]bool{}}, nil
}

// Job is the handle a worker gets for the job it runs.
type Job struct {
	ID          int64
	Kind        string
	Attempt     int // 1 on the first run
	MaxAttempts int

	q    *Queue
	mu   sync.Mutex
	pct  float64
	sent float64
	at   time.Time
}

// Progress reports how far the job is, in percent (0–100). Calls are cheap: the value
// is written at most once a second, and at 100.
func (j *Job) Progress(percent float64) {
	percent = min(max(percent, 0), 100)
	j.mu.Lock()
	j.pct = percent
	write := percent == 100 || time.Since(j.at) >= time.Second
	if write {
		j.sent, j.at = percent, time.Now()
	}
	j.mu.Unlock()
	if write {
		j.q.writeProgress(j.ID, percent)
	}
}

// Logf adds a line to the job's log (kept with the job; the last lines are kept).
func (j *Job) Logf(format string, args ...any) {
	j.q.addLog(j.ID, j.Attempt, fmt.Sprintf(format, args...))
}

// Permanent marks a worker's error as one no retry can fix (bad arguments, a missing
// input): the job is cancelled with it instead of retried.
func Permanent(err error) error { return river.JobCancel(err) }

// IsPermanent reports whether err was marked by Permanent.
func IsPermanent(err error) bool {
	var c *rivertype.JobCancelError
	return errors.As(err, &c)
}

// Register adds the worker for args of type A (its Kind). Call it before Start.
func Register[A Args](q *Queue, work func(ctx context.Context, job *Job, args A) error) error {
	var zero A
	kind := zero.Kind()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.client != nil {
		return fmt.Errorf("jobs: register %s: the queue is started", kind)
	}
	if q.kinds[kind] {
		return fmt.Errorf("jobs: kind %s is already registered", kind)
	}
	q.kinds[kind] = true
	return river.AddWorkerSafely(q.workers, river.WorkFunc(func(ctx context.Context, rj *river.Job[A]) error {
		return q.run(ctx, rj.JobRow, func(ctx context.Context, j *Job) error { return work(ctx, j, rj.Args) })
	}))
}

// run wraps one attempt: heartbeat, progress reset, metrics, and the error in the log.
func (q *Queue) run(ctx context.Context, row *rivertype.JobRow, work func(context.Context, *Job) error) error {
	j := &Job{ID: row.ID, Kind: row.Kind, Attempt: row.Attempt, MaxAttempts: row.MaxAttempts, q: q}
	q.startAttempt(ctx, j.ID, j.Attempt)
	m := q.cfg.Metrics
	m.Running.Inc()
	defer m.Running.Dec()
	hbCtx, hbStop := context.WithCancel(context.WithoutCancel(ctx))
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		t := time.NewTicker(q.cfg.StaleAfter / 6)
		defer t.Stop()
		for {
			select {
			case <-hbCtx.Done():
				return
			case <-t.C:
				j.mu.Lock()
				p := j.pct
				j.mu.Unlock()
				q.heartbeat(j.ID, p)
			}
		}
	}()
	start := time.Now()
	err := work(ctx, j)
	hbStop()
	<-hbDone
	m.Duration.WithLabelValues(row.Kind).Observe(time.Since(start).Seconds())
	if err != nil {
		m.Failed.WithLabelValues(row.Kind).Inc()
		j.Logf("attempt %d/%d failed: %v", j.Attempt, j.MaxAttempts, err)
		q.cfg.Logger.Warn("job failed", "id", j.ID, "kind", j.Kind, "attempt", j.Attempt, "err", err)
		return err
	}
	j.Progress(100)
	return nil
}

// retryPolicy doubles the wait from RetryBase up to RetryMax.
type retryPolicy struct{ base, max time.Duration }

func (p retryPolicy) NextRetry(row *rivertype.JobRow) time.Time {
	d := p.base
	for i := 1; i < row.Attempt && d < p.max; i++ {
		d *= 2
	}
	return time.Now().Add(min(d, p.max))
}

// Start starts the workers and the reaper of dead attempts; ctx bounds the start only.
func (q *Queue) Start(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.client != nil {
		return errors.New("jobs: already started")
	}
	cfg := &river.Config{
		Logger:                      quiet(q.cfg.Logger),
		Queues:                      map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: q.cfg.Concurrency}},
		MaxAttempts:                 q.cfg.MaxAttempts,
		RetryPolicy:                 retryPolicy{q.cfg.RetryBase, q.cfg.RetryMax},
		JobTimeout:                  -1, // a transcode takes as long as it takes
		RescueStuckJobsAfter:        7 * 24 * time.Hour,
		CompletedJobRetentionPeriod: retention,
		CancelledJobRetentionPeriod: retention,
		DiscardedJobRetentionPeriod: retention,
		FetchPollInterval:           q.cfg.PollInterval,
		FetchCooldown:               min(q.cfg.PollInterval, 100*time.Millisecond),
		PollOnly:                    true, // SQLite has no LISTEN/NOTIFY, riverdatabasesql no listener
	}
	if len(q.kinds) > 0 {
		cfg.Workers = q.workers
	} else {
		cfg.Queues = nil // insert-only
	}
	client, err := river.NewClient(q.driver, cfg)
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	// Dead attempts are reaped before the workers fetch, so a restart retries them at once
	// when their heartbeat is already stale.
	q.reap(ctx)
	if cfg.Workers != nil {
		if err := client.Start(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("jobs: %w", err)
		}
	}
	q.client = client
	rctx, stop := context.WithCancel(context.Background())
	q.stop = stop
	q.reaperD = make(chan struct{})
	go q.reaper(rctx)
	return nil
}

// Stop stops the workers: running jobs get a cancelled context and are retried later
// (after a restart). It waits until they returned or ctx ends.
func (q *Queue) Stop(ctx context.Context) error {
	q.mu.Lock()
	client, stop, done := q.client, q.stop, q.reaperD
	q.mu.Unlock()
	if client == nil {
		return nil
	}
	stop()
	<-done
	if len(q.kinds) == 0 {
		return nil
	}
	return client.StopAndCancel(ctx)
}

func (q *Queue) started() (*river.Client[*sql.Tx], error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.client == nil {
		return nil, errors.New("jobs: the queue is not started")
	}
	return q.client, nil
}

// EnqueueOptions of one job.
type EnqueueOptions struct {
	// UniqueKey, if set, makes the job enqueued once: while a job with the key is kept
	// (finished jobs for 30 days), Enqueue returns that job instead.
	UniqueKey string
	// MaxAttempts of this job (0: the queue's).
	MaxAttempts int
}

// Enqueue adds a job. With a UniqueKey already used it returns the existing job's id
// and duplicate true.
func (q *Queue) Enqueue(ctx context.Context, args Args, o EnqueueOptions) (id int64, duplicate bool, err error) {
	client, err := q.started()
	if err != nil {
		return 0, false, err
	}
	if o.MaxAttempts < 0 || o.MaxAttempts > MaxMaxAttempts {
		return 0, false, fmt.Errorf("jobs: maxAttempts: %d is out of range (allowed 1–%d)", o.MaxAttempts, MaxMaxAttempts)
	}
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, fmt.Errorf("jobs: enqueue %s: %w", args.Kind(), err)
	}
	defer tx.Rollback()
	if o.UniqueKey != "" {
		err := tx.QueryRowContext(ctx, `SELECT r.job_id FROM livrec_job_runs r JOIN river_job j ON j.id = r.job_id WHERE r.unique_key = $1`, o.UniqueKey).Scan(&id)
		switch {
		case err == nil:
			return id, true, nil
		case !errors.Is(err, sql.ErrNoRows):
			return 0, false, fmt.Errorf("jobs: enqueue %s: %w", args.Kind(), err)
		}
		// A key left by a job River deleted is free again.
		if _, err := tx.ExecContext(ctx, `DELETE FROM livrec_job_runs WHERE unique_key = $1`, o.UniqueKey); err != nil {
			return 0, false, fmt.Errorf("jobs: enqueue %s: %w", args.Kind(), err)
		}
	}
	res, err := client.InsertTx(ctx, tx, args, &river.InsertOpts{MaxAttempts: o.MaxAttempts})
	if err != nil {
		return 0, false, fmt.Errorf("jobs: enqueue %s: %w", args.Kind(), err)
	}
	id = res.Job.ID
	var key any
	if o.UniqueKey != "" {
		key = o.UniqueKey
	}
	// SQLite may reuse the id of a deleted job: what we kept for that one goes.
	if _, err := tx.ExecContext(ctx, `INSERT INTO livrec_job_runs (job_id, unique_key) VALUES ($1, $2)
		ON CONFLICT (job_id) DO UPDATE SET unique_key = excluded.unique_key, attempt = 0, progress = 0, heartbeat_at = 0,
		died_error = '', died_at = 0`, id, key); err != nil {
		return 0, false, fmt.Errorf("jobs: enqueue %s: %w", args.Kind(), err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM livrec_job_logs WHERE job_id = $1`, id); err != nil {
		return 0, false, fmt.Errorf("jobs: enqueue %s: %w", args.Kind(), err)
	}
	if err := tx.Commit(); err != nil {
		return 0, false, fmt.Errorf("jobs: enqueue %s: %w", args.Kind(), err)
	}
	q.cfg.Logger.Info("job enqueued", "id", id, "kind", args.Kind(), "key", o.UniqueKey)
	return id, false, nil
}

// Cancel cancels a job: a queued one never runs, a running one gets its context
// cancelled (its worker should return promptly). A finished job is left as it is.
func (q *Queue) Cancel(ctx context.Context, id int64) error {
	client, err := q.started()
	if err != nil {
		return err
	}
	if _, err := client.JobCancel(ctx, id); err != nil {
		if errors.Is(err, rivertype.ErrNotFound) {
			return fmt.Errorf("jobs: cancel %d: %w", id, ErrNotFound)
		}
		return fmt.Errorf("jobs: cancel %d: %w", id, err)
	}
	return nil
}

// Info describes a job.
type Info struct {
	ID          int64           `json:"id"`
	Kind        string          `json:"kind"`
	Args        json.RawMessage `json:"args"`
	State       string          `json:"state"`
	Attempt     int             `json:"attempt"`
	MaxAttempts int             `json:"maxAttempts"`
	Progress    float64         `json:"progress"` // percent of the current (or last) attempt
	LastError   string          `json:"lastError,omitempty"`
	UniqueKey   string          `json:"uniqueKey,omitempty"`
	CreatedAt   time.Time       `json:"createdAt"`
	AttemptedAt time.Time       `json:"attemptedAt,omitzero"`
	FinishedAt  time.Time       `json:"finishedAt,omitzero"`
	Logs        []LogLine       `json:"logs,omitempty"`
}

// LogLine is one line of a job's log.
type LogLine struct {
	At      time.Time `json:"at"`
	Attempt int       `json:"attempt"`
	Line    string    `json:"line"`
}

// Get returns a job with its whole kept log.
func (q *Queue) Get(ctx context.Context, id int64) (Info, error) {
	client, err := q.started()
	if err != nil {
		return Info{}, err
	}
	row, err := client.JobGet(ctx, id)
	if err != nil {
		if errors.Is(err, rivertype.ErrNotFound) {
			return Info{}, fmt.Errorf("jobs: %d: %w", id, ErrNotFound)
		}
		return Info{}, fmt.Errorf("jobs: %d: %w", id, err)
	}
	infos, err := q.infos(ctx, []*rivertype.JobRow{row}, keepLogLines)
	if err != nil {
		return Info{}, err
	}
	return infos[0], nil
}

// Filter of List. Zero fields match everything.
type Filter struct {
	Kind   string
	States []string
	// Limit of jobs (newest first; 0: 100, at most 10000) and of log lines per job (0: 20).
	Limit, LogLines int
}

// List returns jobs, newest first, each with its last log lines.
func (q *Queue) List(ctx context.Context, f Filter) ([]Info, error) {
	client, err := q.started()
	if err != nil {
		return nil, err
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 10000)
	if f.LogLines <= 0 {
		f.LogLines = 20
	}
	p := river.NewJobListParams().First(f.Limit).OrderBy(river.JobListOrderByID, river.SortOrderDesc)
	if f.Kind != "" {
		p = p.Kinds(f.Kind)
	}
	if len(f.States) > 0 {
		states := make([]rivertype.JobState, len(f.States))
		for i, s := range f.States {
			states[i] = rivertype.JobState(s)
		}
		p = p.States(states...)
	}
	res, err := client.JobList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("jobs: list: %w", err)
	}
	return q.infos(ctx, res.Jobs, f.LogLines)
}
