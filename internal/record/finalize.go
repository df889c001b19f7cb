package record

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/keytemplate"
	"github.com/livrec/livrec/internal/rules"
)

// DefaultFinalizers is the size of the finalizer pool when Config.Finalizers is 0.
const DefaultFinalizers = 2

// finalizers generate files off the publishers' paths. A file that ends (recording
// cycle, parameter change, restart, end of the task) is handed over with its writer; the
// task opens the next file at once, and one of a bounded number of workers runs Finish
// (an mp4 copies its whole working file, every format fsyncs), stores the result,
// completes the catalog row and emits file_created. Hand-over never blocks: jobs wait
// in an unbounded queue (a job is a writer that stopped growing).
type finalizers struct {
	m *Manager

	mu      sync.Mutex
	queue   []*finalizeJob
	running int // workers busy
	size    int
	active  map[*finalizeJob]struct{}
	idle    sync.Cond // signalled when a job completes
}

type finalizeJob struct {
	w        format.Writer
	rf       rules.RecordFormat
	row      catalog.File
	vars     keytemplate.Vars // with Start and End
	pushArgs url.Values
	owner    *owner // the task's lease
	queued   time.Time
	done     func() // the task's accounting, after the job's catalog write is queued
}

func newFinalizers(m *Manager, n int) *finalizers {
	if n <= 0 {
		n = DefaultFinalizers
	}
	f := &finalizers{m: m, size: n, active: map[*finalizeJob]struct{}{}}
	f.idle.L = &f.mu
	return f
}

// submit queues a job; it never blocks.
func (f *finalizers) submit(j *finalizeJob) {
	j.queued = time.Now()
	f.m.cfg.Metrics.Finalizing.Inc()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue = append(f.queue, j)
	if f.running < f.size {
		f.running++
		go f.work()
	}
}

// work runs queued jobs until the queue is empty; workers exist only while there is work.
func (f *finalizers) work() {
	for {
		f.mu.Lock()
		if len(f.queue) == 0 {
			f.running--
			f.mu.Unlock()
			return
		}
		j := f.queue[0]
		f.queue[0] = nil
		f.queue = f.queue[1:]
		f.active[j] = struct{}{}
		f.mu.Unlock()

		f.run(j)

		f.mu.Lock()
		delete(f.active, j)
		f.idle.Broadcast()
		f.mu.Unlock()
	}
}

func (f *finalizers) run(j *finalizeJob) {
	m := f.m
	defer func() {
		m.cfg.Metrics.Finalizing.Dec()
		m.cfg.Metrics.FinalizeSeconds.Observe(time.Since(j.queued).Seconds())
		if j.done != nil {
			j.done()
		}
	}()
	if !m.claimFinish(&j.row) {
		return // another node finalized it from its kept state: this node lost the stream
	}
	key, err := keytemplate.Render(j.rf.ObjectPrefix, j.vars)
	var res format.Result
	if err == nil {
		res, err = m.finishWithRetry(j.w, key+extension(j.rf.Format))
	}
	m.completeFile(&j.row, j.vars.End, res, err, j.pushArgs, j.owner)
}

// Finish is retried a few times: a store that failed (a bucket that answers again)
// keeps the writer's state, and the working files stay for the next start's recovery if
// every try fails. A full disk is retried for as long as it stays full (with a backoff up
// to diskFullRetryMax), until shutdown gives up waiting: freeing space must be enough
// for the file to be generated, without a restart.
var finishRetries = []time.Duration{time.Second, 5 * time.Second, 20 * time.Second}

const diskFullRetryMax = 30 * time.Second

func (m *Manager) finishWithRetry(w format.Writer, key string) (format.Result, error) {
	ctx := m.quit
	res, err := w.Finish(ctx, key)
	tries, wait := 0, time.Second
	for err != nil && !isNoMedia(err) && !errors.Is(err, format.ErrFinished) {
		var d time.Duration
		var usable <-chan struct{}
		switch {
		case m.disk.noteFull(err) || isDiskFull(err):
			// Tried again once the disk is usable, or after the backoff (space may come
			// back below what the free-space check waits for).
			d, wait, usable = wait, min(2*wait, diskFullRetryMax), m.disk.whenUsable()
		case tries < len(finishRetries):
			d = finishRetries[tries]
			tries++
		default:
			return res, err
		}
		if sleepUntil(ctx, d, usable) != nil {
			return res, err
		}
		res, err = w.Finish(ctx, key)
	}
	return res, err
}

// sleepUntil waits d or until wake is closed (nil: never), or returns ctx's error when
// it ends first.
func sleepUntil(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	case <-wake:
	}
	return nil
}

// sleepCtx waits d, or returns ctx's error when it ends first.
func sleepCtx(ctx context.Context, d time.Duration) error { return sleepUntil(ctx, d, nil) }

// wait returns when every job handed over so far is done, logging what it waits for.
func (f *finalizers) wait() {
	f.mu.Lock()
	defer f.mu.Unlock()
	logged := false
	for len(f.queue) > 0 || len(f.active) > 0 {
		if !logged {
			logged = true
			names := make([]string, 0, len(f.active)+len(f.queue))
			for j := range f.active {
				names = append(names, j.row.Domain+"/"+j.row.App+"/"+j.row.Stream+" "+j.row.Format+fmt.Sprintf(" #%d", j.row.Sequence))
			}
			for _, j := range f.queue {
				names = append(names, j.row.Domain+"/"+j.row.App+"/"+j.row.Stream+" "+j.row.Format+fmt.Sprintf(" #%d", j.row.Sequence))
			}
			f.m.cfg.Logger.Info("waiting for files being finalized", "files", len(names), "which", names)
		}
		f.idle.Wait()
	}
}

// isNoMedia reports a file that ended before any media reached it.
func isNoMedia(err error) bool { return errors.Is(err, format.ErrNoMedia) }
