package record

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/livrec/livrec/internal/catalog"
)

// Catalog is what the recorder needs of the catalog: rows for tasks and for the files
// they generate. The SQLite catalog (catalog.Catalog) implements it for `livrec serve`;
// MemoryCatalog serves `livrec remux` and tests. A PostgreSQL catalog implements the same
// methods: no SQL lives in this package.
//
// The recorder never calls it on a publisher's path: writes go through an ordered queue
// per task (see catalogQueue), so a slow catalog delays rows, not media.
type Catalog interface {
	CreateTask(ctx context.Context, t *catalog.Task) error
	SetTaskState(ctx context.Context, id, state string, at time.Time) error
	CreateFile(ctx context.Context, f *catalog.File) error
	// UpdateFile writes every mutable field of a file row (a file generated or failed).
	UpdateFile(ctx context.Context, f *catalog.File) error
	// DeleteFile removes the row of a file that ended before any media reached it.
	DeleteFile(ctx context.Context, id string) error
	// FileProgress records the running figures of a file still being recorded.
	FileProgress(ctx context.Context, id string, duration float64, bytes int64, segments int) error
	// OpenTasks returns the tasks not ended (at start-up: those a crash left open).
	OpenTasks(ctx context.Context) ([]catalog.Task, error)
	// TaskFiles returns a task's files with the given status ("" = any).
	TaskFiles(ctx context.Context, taskID, status string) ([]catalog.File, error)
}

var _ Catalog = (*catalog.Catalog)(nil)

// MemoryCatalog is a Catalog in memory: for offline conversion, where the rows live only
// as long as the run, and for tests. The zero value is ready to use.
type MemoryCatalog struct {
	mu    sync.Mutex
	tasks map[string]catalog.Task
	files map[string]catalog.File
}

var _ Catalog = (*MemoryCatalog)(nil)

func (c *MemoryCatalog) CreateTask(_ context.Context, t *catalog.Task) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tasks == nil {
		c.tasks = map[string]catalog.Task{}
	}
	if _, ok := c.tasks[t.ID]; ok {
		return fmt.Errorf("task %s exists", t.ID)
	}
	c.tasks[t.ID] = *t
	return nil
}

func (c *MemoryCatalog) SetTaskState(_ context.Context, id, state string, at time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tasks[id]
	if !ok {
		return fmt.Errorf("task %s: %w", id, catalog.ErrNotFound)
	}
	t.State, t.UpdatedAt = state, at
	if state == catalog.TaskEnded {
		t.EndedAt = at
	}
	c.tasks[id] = t
	return nil
}

func (c *MemoryCatalog) CreateFile(_ context.Context, f *catalog.File) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.files == nil {
		c.files = map[string]catalog.File{}
	}
	if _, ok := c.files[f.ID]; ok {
		return fmt.Errorf("file %s exists", f.ID)
	}
	c.files[f.ID] = *f
	return nil
}

func (c *MemoryCatalog) UpdateFile(_ context.Context, f *catalog.File) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.files[f.ID]; !ok {
		return fmt.Errorf("file %s: %w", f.ID, catalog.ErrNotFound)
	}
	c.files[f.ID] = *f
	return nil
}

func (c *MemoryCatalog) DeleteFile(_ context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.files[id]; !ok {
		return fmt.Errorf("file %s: %w", id, catalog.ErrNotFound)
	}
	delete(c.files, id)
	return nil
}

func (c *MemoryCatalog) FileProgress(_ context.Context, id string, duration float64, bytes int64, segments int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.files[id]
	if !ok {
		return fmt.Errorf("file %s: %w", id, catalog.ErrNotFound)
	}
	if f.Status == catalog.FileRecording {
		f.Duration, f.Bytes, f.Segments = duration, bytes, segments
		c.files[id] = f
	}
	return nil
}

func (c *MemoryCatalog) OpenTasks(context.Context) ([]catalog.Task, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []catalog.Task
	for _, t := range c.tasks {
		if t.State != catalog.TaskEnded {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartedAt.Before(out[j].StartedAt) })
	return out, nil
}

func (c *MemoryCatalog) TaskFiles(_ context.Context, taskID, status string) ([]catalog.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []catalog.File
	for _, f := range c.files {
		if f.TaskID == taskID && (status == "" || f.Status == status) {
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b catalog.File) int {
		if a.Format != b.Format {
			if a.Format < b.Format {
				return -1
			}
			return 1
		}
		return a.Sequence - b.Sequence
	})
	return out, nil
}

// Files returns every file row (tests).
func (c *MemoryCatalog) Files() []catalog.File {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]catalog.File, 0, len(c.files))
	for _, f := range c.files {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b catalog.File) int { return a.Start.Compare(b.Start) })
	return out
}

// Task returns one task row (tests).
func (c *MemoryCatalog) Task(id string) (catalog.Task, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tasks[id]
	return t, ok
}

// catalogQueue applies the recorder's catalog writes in the background: in order for
// one task (a file row is created before it is completed, a task ends after its files),
// concurrently across tasks. A task's queue runs on a goroutine that exists only while
// the queue has work. A failed write is logged and the next one goes on: the recording
// itself never waits for, nor stops on, the catalog.
type catalogQueue struct {
	cat Catalog
	m   *Manager

	mu    sync.Mutex
	lists map[string]*catalogOps
	wg    sync.WaitGroup
}

type catalogOps struct {
	ops []catalogOp
}

type catalogOp struct {
	what string // for the log: "create task", "complete file", ...
	// owner, if set, is the stream lease the write is fenced with (catalog.WithFence):
	// once lost, the write is skipped.
	owner *owner
	do    func(ctx context.Context, c Catalog) error
	then  func() // after the write, successful or not (events that must follow their row)
}

func newCatalogQueue(m *Manager, c Catalog) *catalogQueue {
	return &catalogQueue{cat: c, m: m, lists: map[string]*catalogOps{}}
}

// add queues op for the task; it never blocks.
func (q *catalogQueue) add(taskID string, op catalogOp) {
	q.mu.Lock()
	defer q.mu.Unlock()
	l := q.lists[taskID]
	if l != nil {
		l.ops = append(l.ops, op)
		return
	}
	l = &catalogOps{ops: []catalogOp{op}}
	q.lists[taskID] = l
	q.wg.Add(1)
	go q.run(taskID, l)
}

func (q *catalogQueue) run(taskID string, l *catalogOps) {
	defer q.wg.Done()
	for {
		q.mu.Lock()
		if len(l.ops) == 0 {
			delete(q.lists, taskID)
			q.mu.Unlock()
			return
		}
		op := l.ops[0]
		l.ops[0] = catalogOp{}
		l.ops = l.ops[1:]
		q.mu.Unlock()
		if op.owner != nil && op.owner.lost.Load() {
			q.m.cfg.Logger.Warn("catalog update skipped: the stream's lease is lost", "task", taskID, "op", op.what)
			continue
		}
		start := time.Now()
		err := q.try(op)
		// The catalog lives on the data directory's disk: a write that found it full is
		// retried while it stays full (the task's later writes wait behind it, in order),
		// until shutdown gives up waiting.
		for wait := time.Second; isDiskFull(err); wait = min(2*wait, diskFullRetryMax) {
			q.m.disk.noteFull(err)
			if sleepCtx(q.m.quit, wait) != nil {
				break
			}
			err = q.try(op)
		}
		q.m.cfg.Metrics.CatalogSeconds.Observe(time.Since(start).Seconds())
		if err != nil {
			q.m.cfg.Metrics.CatalogErrors.Inc()
			q.m.cfg.Logger.Error("catalog update failed", "task", taskID, "op", op.what, "err", err)
			if op.owner != nil && errors.Is(err, catalog.ErrFenced) {
				q.m.leaseLost(op.owner, err)
				continue // the events of the write do not go out either
			}
		}
		if op.then != nil {
			op.then()
		}
	}
}

// try runs one catalog write.
func (q *catalogQueue) try(op catalogOp) error {
	ctx, cancel := context.WithTimeout(context.Background(), catalogTimeout)
	defer cancel()
	if op.owner != nil {
		ctx = catalog.WithFence(ctx, op.owner.fence)
	}
	return op.do(ctx, q.cat)
}

// catalogTimeout bounds one catalog write.
const catalogTimeout = 30 * time.Second

// wait returns when every queued write is done (shutdown, tests).
func (q *catalogQueue) wait() { q.wg.Wait() }
