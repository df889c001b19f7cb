package segtest

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/format/journal"
)

// Syncer is a format.Syncer that runs nothing until Run: a test sees what a writer does
// on its caller's goroutine alone (CountJournalSyncs counts the fsyncs there), then what the
// jobs do.
type Syncer struct {
	mu   sync.Mutex
	jobs []func() error
}

var _ format.Syncer = (*Syncer)(nil)

// Go implements format.Syncer: fn is queued.
func (s *Syncer) Go(_ int64, fn func() error) {
	s.mu.Lock()
	s.jobs = append(s.jobs, fn)
	s.mu.Unlock()
}

// Len is the number of jobs queued.
func (s *Syncer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.jobs)
}

// Take removes the i-th queued job and returns it (a test runs the others first).
func (s *Syncer) Take(i int) func() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn := s.jobs[i]
	s.jobs = append(s.jobs[:i], s.jobs[i+1:]...)
	return fn
}

// Run runs the queued jobs (in order, on the caller's goroutine) and returns their errors.
func (s *Syncer) Run() error {
	s.mu.Lock()
	jobs := s.jobs
	s.jobs = nil
	s.mu.Unlock()
	var errs []error
	for _, fn := range jobs {
		errs = append(errs, fn())
	}
	return errors.Join(errs...)
}

// CheckQueuedAndRun checks that nothing was fsync'd on the caller's goroutine (syncs is
// CountJournalSyncs's counter) and that want jobs wait, then runs them and checks that
// they synced something.
func (s *Syncer) CheckQueuedAndRun(t testing.TB, syncs func() int64, want int) {
	t.Helper()
	if n, q := syncs(), s.Len(); n != 0 || q != want {
		t.Fatalf("%d fsyncs on the caller's goroutine (want 0), %d jobs queued (want %d)", n, q, want)
	}
	if err := s.Run(); err != nil {
		t.Fatal(err)
	}
	if syncs() == 0 {
		t.Fatal("the queued jobs synced nothing")
	}
}

// CountJournalSyncs counts the fsyncs of package journal (sidecars, journals, atomic
// writes and their directories: every durable start of a file goes through one) until the
// test ends. Not for parallel tests: it replaces journal.SyncFile.
func CountJournalSyncs(t interface{ Cleanup(func()) }) func() int64 {
	var n atomic.Int64
	prev := journal.SyncFile
	journal.SyncFile = func(f *os.File) error {
		n.Add(1)
		return prev(f)
	}
	t.Cleanup(func() { journal.SyncFile = prev })
	return n.Load
}
