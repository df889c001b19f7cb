package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/schema"
	"github.com/livrec/livrec/internal/schema/schematest"
	"github.com/livrec/livrec/internal/testenv"
)

type echoArgs struct {
	Msg  string `json:"msg"`
	Fail int    `json:"fail"` // fail this many attempts
}

func (echoArgs) Kind() string { return "test.echo" }

type blockArgs struct{ N int }

func (blockArgs) Kind() string { return "test.block" }

// openQueue opens the queue in the catalog database of driver at dsn.
func openQueue(t *testing.T, driver, dsn string, cfg Config) *Queue {
	t.Helper()
	cat, err := catalog.OpenDriver(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	q, err := Open(context.Background(), cat.DB(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func start(t *testing.T, q *Queue) {
	t.Helper()
	if err := q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		q.Stop(ctx)
	})
}

// waitState polls until job id reaches state.
func waitState(t *testing.T, q *Queue, id int64, state string, within time.Duration) Info {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		in, err := q.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if in.State == state {
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d is %s after %s, want %s (%+v)", id, in.State, within, state, in)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunProgressLogsUnique(t *testing.T) { schematest.Each(t, testRunProgressLogsUnique) }

func testRunProgressLogsUnique(t *testing.T, driver, dsn string) {
	q := openQueue(t, driver, dsn, Config{Concurrency: 1, PollInterval: 20 * time.Millisecond})
	var runs atomic.Int32
	seen := make(chan struct{})
	release := make(chan struct{})
	if err := Register(q, func(ctx context.Context, j *Job, a echoArgs) error {
		runs.Add(1)
		j.Logf("hello %s", a.Msg)
		j.Progress(100.0 / 3)
		time.Sleep(1100 * time.Millisecond) // Progress writes once a second
		j.Progress(50)
		close(seen)
		<-release
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	start(t, q)
	ctx := context.Background()
	id, dup, err := q.Enqueue(ctx, echoArgs{Msg: "world"}, EnqueueOptions{UniqueKey: "asset1/hd"})
	if err != nil || dup {
		t.Fatal(id, dup, err)
	}
	id2, dup, err := q.Enqueue(ctx, echoArgs{Msg: "again"}, EnqueueOptions{UniqueKey: "asset1/hd"})
	if err != nil || !dup || id2 != id {
		t.Fatalf("second enqueue with the key: id %d dup %v err %v, want id %d dup", id2, dup, err, id)
	}
	<-seen
	in := waitState(t, q, id, StateRunning, 5*time.Second)
	if in.Progress != 50 || in.Attempt != 1 || in.Kind != "test.echo" || string(in.Args) != `{"msg":"world","fail":0}` || in.UniqueKey != "asset1/hd" {
		t.Fatalf("running job: %+v", in)
	}
	if testutil.ToFloat64(q.cfg.Metrics.Running) != 1 {
		t.Fatal("running gauge is not 1")
	}
	close(release)
	in = waitState(t, q, id, StateCompleted, 5*time.Second)
	if in.Progress != 100 || len(in.Logs) != 1 || in.Logs[0].Line != "hello world" || in.FinishedAt.IsZero() {
		t.Fatalf("completed job: %+v", in)
	}
	if runs.Load() != 1 {
		t.Fatalf("worker ran %d times, want 1", runs.Load())
	}
	list, err := q.List(ctx, Filter{Kind: "test.echo", States: []string{StateCompleted}})
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("list: %+v %v", list, err)
	}
}

func TestRetriesWithBackoffThenDiscarded(t *testing.T) {
	schematest.Each(t, testRetriesWithBackoffThenDiscarded)
}

func testRetriesWithBackoffThenDiscarded(t *testing.T, driver, dsn string) {
	q := openQueue(t, driver, dsn, Config{MaxAttempts: 3, RetryBase: 200 * time.Millisecond, PollInterval: 20 * time.Millisecond})
	var mu sync.Mutex
	var at []time.Time
	Register(q, func(ctx context.Context, j *Job, a echoArgs) error {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		if j.Attempt <= a.Fail {
			return fmt.Errorf("boom %d", j.Attempt)
		}
		return nil
	})
	start(t, q)
	ctx := context.Background()
	okID, _, _ := q.Enqueue(ctx, echoArgs{Fail: 2}, EnqueueOptions{})
	in := waitState(t, q, okID, StateCompleted, 10*time.Second)
	if in.Attempt != 3 || in.LastError != "boom 2" {
		t.Fatalf("job that fails twice: %+v", in)
	}
	mu.Lock()
	gap1, gap2 := at[1].Sub(at[0]), at[2].Sub(at[1])
	mu.Unlock()
	// Backoff 200 ms then 400 ms.
	if gap1 < 180*time.Millisecond || gap2 < 380*time.Millisecond || gap2 < gap1 {
		t.Fatalf("retry gaps %s, %s: want ≥200 ms then ≥400 ms", gap1, gap2)
	}
	badID, _, _ := q.Enqueue(ctx, echoArgs{Fail: 99}, EnqueueOptions{MaxAttempts: 2})
	in = waitState(t, q, badID, StateDiscarded, 10*time.Second)
	if in.Attempt != 2 || in.LastError != "boom 2" || !strings.Contains(in.Logs[len(in.Logs)-1].Line, "attempt 2/2 failed: boom 2") {
		t.Fatalf("job that always fails: %+v", in)
	}
	if n := testutil.ToFloat64(q.cfg.Metrics.Failed.WithLabelValues("test.echo")); n != 4 {
		t.Fatalf("failed attempts counted %v, want 4", n)
	}
}

func TestCancelAndPermanent(t *testing.T) { schematest.Each(t, testCancelAndPermanent) }

func testCancelAndPermanent(t *testing.T, driver, dsn string) {
	q := openQueue(t, driver, dsn, Config{PollInterval: 20 * time.Millisecond})
	started := make(chan struct{}, 1)
	Register(q, func(ctx context.Context, j *Job, a blockArgs) error {
		if a.N < 0 {
			return Permanent(errors.New("negative N"))
		}
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	})
	start(t, q)
	ctx := context.Background()
	id, _, _ := q.Enqueue(ctx, blockArgs{N: 1}, EnqueueOptions{})
	<-started
	if err := q.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitState(t, q, id, StateCancelled, 5*time.Second)
	bad, _, _ := q.Enqueue(ctx, blockArgs{N: -1}, EnqueueOptions{})
	in := waitState(t, q, bad, StateCancelled, 5*time.Second)
	if in.Attempt != 1 || !strings.Contains(in.LastError, "negative N") {
		t.Fatalf("permanent failure: %+v", in)
	}
	if err := q.Cancel(ctx, 999999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancel of an unknown job: %v", err)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	schematest.EachDriver(t, func(t *testing.T, driver string) {
		for _, limit := range []int{1, 2} {
			t.Run(fmt.Sprint(limit), func(t *testing.T) { testConcurrencyLimit(t, driver, limit) })
		}
	})
}

func testConcurrencyLimit(t *testing.T, driver string, limit int) {
	q := openQueue(t, driver, schematest.DSN(t, driver), Config{Concurrency: limit, PollInterval: 20 * time.Millisecond})
	var now, peak atomic.Int32
	Register(q, func(ctx context.Context, j *Job, a blockArgs) error {
		n := now.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(300 * time.Millisecond)
		now.Add(-1)
		return nil
	})
	start(t, q)
	var ids []int64
	for i := range 4 {
		id, _, err := q.Enqueue(context.Background(), blockArgs{N: i}, EnqueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		waitState(t, q, id, StateCompleted, 10*time.Second)
	}
	if int(peak.Load()) != limit {
		t.Fatalf("peak concurrency %d, want %d", peak.Load(), limit)
	}
}

func TestConfigRangeErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Concurrency: 65}, "concurrency: 65 is out of range (allowed 1–64"},
		{Config{Concurrency: -1}, "concurrency: -1 is out of range"},
		{Config{MaxAttempts: 101}, "maxAttempts: 101 is out of range (allowed 1–100)"},
		{Config{StaleAfter: time.Millisecond}, "staleAfter: 1ms is too short"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want %q", c.cfg, err, c.want)
		}
	}
	if DefaultConcurrency() < 1 {
		t.Fatal("default concurrency < 1")
	}
}

// The kill -9 test runs this test binary again as the process that works the job, on
// the catalog database of driver childDriverEnv at childDSNEnv.
const (
	childEnv       = "LIVREC_JOBS_CHILD_DIR"
	childDriverEnv = "LIVREC_JOBS_CHILD_DRIVER"
	childDSNEnv    = "LIVREC_JOBS_CHILD_DSN"
)

type slowArgs struct{}

func (slowArgs) Kind() string { return "test.slow" }

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		if err := child(dir); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	testenv.Main(m)
}

func appendLine(path, line string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		panic(err)
	}
	fmt.Fprintln(f, line)
	f.Sync()
	f.Close()
}

// child enqueues the job (once: the key is fixed) and works it until it completed. The
// job runs until the file "release" exists.
func child(dir string) error {
	cat, err := catalog.OpenDriver(os.Getenv(childDriverEnv), os.Getenv(childDSNEnv))
	if err != nil {
		return err
	}
	defer cat.Close()
	ctx := context.Background()
	q, err := Open(ctx, cat.DB(), Config{StaleAfter: time.Second, PollInterval: 50 * time.Millisecond, RetryBase: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	Register(q, func(ctx context.Context, j *Job, _ slowArgs) error {
		appendLine(filepath.Join(dir, "marks"), fmt.Sprintf("start %d", j.Attempt))
		for p := 0.0; ; p++ {
			if _, err := os.Stat(filepath.Join(dir, "release")); err == nil {
				break
			}
			j.Progress(min(p, 90))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
		appendLine(filepath.Join(dir, "marks"), fmt.Sprintf("done %d", j.Attempt))
		return nil
	})
	if err := q.Start(ctx); err != nil {
		return err
	}
	id, _, err := q.Enqueue(ctx, slowArgs{}, EnqueueOptions{UniqueKey: "the-one"})
	if err != nil {
		return err
	}
	for {
		in, err := q.Get(ctx, id)
		if err != nil {
			return err
		}
		if in.State == StateCompleted {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return q.Stop(sctx)
}

// TestKill9MidJobRetriedOnce: the process working a job is killed with SIGKILL; the
// next start retries the job (attempt 2) and it completes once.
func TestKill9MidJobRetriedOnce(t *testing.T) { schematest.Each(t, testKill9MidJobRetriedOnce) }

func testKill9MidJobRetriedOnce(t *testing.T, driver, dsn string) {
	dir := t.TempDir()
	run := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+dir, childDriverEnv+"="+driver, childDSNEnv+"="+dsn)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	marks := func() string { b, _ := os.ReadFile(filepath.Join(dir, "marks")); return string(b) }
	first := run()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(marks(), "start 1"); {
		if time.Now().After(deadline) {
			first.Process.Kill()
			t.Fatal("the first process never started the job")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(1200 * time.Millisecond) // progress reached the catalog
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	os.WriteFile(filepath.Join(dir, "release"), nil, 0o644)

	second := run()
	done := make(chan error, 1)
	go func() { done <- second.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("second process: %v", err)
		}
	case <-time.After(30 * time.Second):
		second.Process.Kill()
		t.Fatalf("the job did not complete after the restart; marks:\n%s", marks())
	}
	if got, want := marks(), "start 1\nstart 2\ndone 2\n"; got != want {
		t.Fatalf("marks %q, want %q", got, want)
	}
	q := openQueue(t, driver, dsn, Config{})
	start(t, q)
	list, err := q.List(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("%d jobs, want 1 (enqueued once by each process with one key)", len(list))
	}
	in := list[0]
	if in.State != StateCompleted || in.Attempt != 2 || in.Progress != 100 || in.LastError == "" ||
		!strings.Contains(in.Logs[0].Line, "attempt 1/5: livrec stopped during the attempt") {
		t.Fatalf("job after restart: %+v", in)
	}
}

// Nodes starting together on one PostgreSQL database apply River's migrations once,
// without errors.
func TestConcurrentOpenPostgres(t *testing.T) {
	dsn := schematest.DSN(t, schema.Postgres)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			cat, err := catalog.OpenDriver(schema.Postgres, dsn)
			if err != nil {
				t.Error(err)
				return
			}
			defer cat.Close()
			if _, err := Open(context.Background(), cat.DB(), Config{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	q := openQueue(t, schema.Postgres, dsn, Config{})
	var n int
	if err := q.db.QueryRow(`SELECT count(*) FROM river_migration WHERE version = 1`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("River's version 1 recorded %d times (%v)", n, err)
	}
}

// Two nodes' queues on one PostgreSQL database: every job runs once, on one of them.
func TestTwoNodesRunEachJobOnce(t *testing.T) {
	dsn := schematest.DSN(t, schema.Postgres)
	var mu sync.Mutex
	runs := map[string][]string{} // msg → the nodes that ran it
	queues := []*Queue{}
	for _, node := range []string{"n1", "n2"} {
		q := openQueue(t, schema.Postgres, dsn, Config{Concurrency: 2, PollInterval: 20 * time.Millisecond})
		Register(q, func(ctx context.Context, j *Job, a echoArgs) error {
			mu.Lock()
			runs[a.Msg] = append(runs[a.Msg], node)
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
			return nil
		})
		start(t, q)
		queues = append(queues, q)
	}
	const total = 40
	var ids []int64
	for i := range total {
		id, _, err := queues[i%2].Enqueue(context.Background(), echoArgs{Msg: fmt.Sprint(i)}, EnqueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		waitState(t, queues[0], id, StateCompleted, 20*time.Second)
	}
	mu.Lock()
	defer mu.Unlock()
	per := map[string]int{}
	for i := range total {
		r := runs[fmt.Sprint(i)]
		if len(r) != 1 {
			t.Fatalf("job %d ran on %v, want once", i, r)
		}
		per[r[0]]++
	}
	t.Logf("jobs per node: %v", per)
}

// TestKill9MidJobTakenOverByOtherNode: the node working a job is killed with SIGKILL
// while another node's queue runs on the same PostgreSQL database; once the dead
// attempt's heartbeat is StaleAfter old, the other node runs the job (attempt 2), once.
func TestKill9MidJobTakenOverByOtherNode(t *testing.T) {
	dsn := schematest.DSN(t, schema.Postgres)
	dir := t.TempDir()
	marks := func() string { b, _ := os.ReadFile(filepath.Join(dir, "marks")); return string(b) }
	first := exec.Command(os.Args[0], "-test.run=^$")
	first.Env = append(os.Environ(), childEnv+"="+dir, childDriverEnv+"="+schema.Postgres, childDSNEnv+"="+dsn)
	first.Stderr = os.Stderr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(marks(), "start 1"); {
		if time.Now().After(deadline) {
			first.Process.Kill()
			t.Fatal("the first node never started the job")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The other node: same job kind, its own queue, running all along.
	other := openQueue(t, schema.Postgres, dsn, Config{StaleAfter: time.Second, PollInterval: 50 * time.Millisecond})
	Register(other, func(ctx context.Context, j *Job, _ slowArgs) error {
		appendLine(filepath.Join(dir, "marks"), fmt.Sprintf("other %d", j.Attempt))
		return nil
	})
	start(t, other)
	time.Sleep(1200 * time.Millisecond) // the first node's heartbeats reached the database
	if m := marks(); m != "start 1\n" {
		t.Fatalf("while the first node lives: marks %q", m)
	}
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	list, err := other.List(context.Background(), Filter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("jobs %+v, %v", list, err)
	}
	in := waitState(t, other, list[0].ID, StateCompleted, 15*time.Second)
	if got, want := marks(), "start 1\nother 2\n"; got != want || in.Attempt != 2 {
		t.Fatalf("marks %q (want %q), attempt %d", got, want, in.Attempt)
	}
}
