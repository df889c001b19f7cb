package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// memStore is an in-memory create-only Store with an outage switch.
type memStore struct {
	mu     sync.Mutex
	objs   map[string][]byte
	order  []string // keys in upload order
	down   bool
	calls  int
	delay  time.Duration
	active atomic.Int32
	maxAct atomic.Int32
	stored func(key string) // after a successful Store, outside the lock (a crash point)
}

func newMemStore() *memStore { return &memStore{objs: map[string][]byte{}} }

func (m *memStore) Describe() string { return "mem" }

func (m *memStore) Store(ctx context.Context, key, p string) error {
	n := m.active.Add(1)
	defer m.active.Add(-1)
	for {
		c := m.maxAct.Load()
		if n <= c || m.maxAct.CompareAndSwap(c, n) {
			break
		}
	}
	if m.delay > 0 {
		select {
		case <-time.After(m.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.down {
		return errors.New("dial tcp: connection refused")
	}
	if _, ok := m.objs[key]; ok {
		return fmt.Errorf("%s: %w", key, ErrExists)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	m.objs[key] = b
	m.order = append(m.order, key)
	err = os.Remove(p)
	if m.stored != nil {
		m.mu.Unlock()
		m.stored(key)
		m.mu.Lock()
	}
	return err
}

func (m *memStore) Open(_ context.Context, key string) (Object, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, errors.New("dial tcp: connection refused")
	}
	b, ok := m.objs[key]
	if !ok {
		return nil, ErrNotFound
	}
	return memObject{bytes.NewReader(b)}, nil
}

func (m *memStore) setDown(d bool) {
	m.mu.Lock()
	m.down = d
	m.mu.Unlock()
}

func (m *memStore) get(key string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[key]
	return b, ok
}

func (m *memStore) uploaded() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.order)
}

type memObject struct{ *bytes.Reader }

func (memObject) Close() error                 { return nil }
func (memObject) ModTime() time.Time           { return time.Time{} }
func (o memObject) Size() int64                { return o.Reader.Size() }
func (o memObject) Read(p []byte) (int, error) { return o.Reader.Read(p) }

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func fastOpts(t testing.TB) UploaderOptions {
	return UploaderOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 80 * time.Millisecond, Logger: testLogger(t)}
}

func newTestUploader(t testing.TB, dir string, st Store, opts UploaderOptions) *Uploader {
	t.Helper()
	u, err := NewUploader(dir, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

// spoolFiles lists the spool directory without the lock file.
func spoolFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != ".lock" {
			out = append(out, e.Name())
		}
	}
	return out
}

func body(key string) []byte { return []byte("content of " + key) }

func TestUploaderFIFOPerStream(t *testing.T) {
	ms := newMemStore()
	ms.delay = 2 * time.Millisecond
	spool := t.TempDir()
	var upMu sync.Mutex
	var ups []string
	opts := fastOpts(t)
	opts.Workers = 2
	opts.OnUploaded = func(key string, _ int64) { upMu.Lock(); ups = append(ups, key); upMu.Unlock() }
	u := newTestUploader(t, spool, ms, opts)
	work := t.TempDir()
	ctx := context.Background()
	want := map[string][]string{}
	for i := range 10 {
		for _, s := range []string{"a", "b", "c"} {
			key := fmt.Sprintf("rec/%s/%03d.ts", s, i)
			if i == 9 {
				key = fmt.Sprintf("rec/%s/index.m3u8", s)
			}
			p := writeTemp(t, work, "seg", body(key))
			if err := u.Store(WithStream(ctx, s), key, p); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("Store left the working file in place")
			}
			want[s] = append(want[s], key)
		}
	}
	// Before Start: served from the spool, refused as a duplicate.
	if got := readAll(t, u, "rec/a/003.ts"); !bytes.Equal(got, body("rec/a/003.ts")) {
		t.Fatalf("spool read %q", got)
	}
	if err := u.Store(ctx, "rec/a/003.ts", writeTemp(t, work, "dup", []byte("x"))); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate key in the spool: want ErrExists, got %v", err)
	}
	if st := u.Stats(); st.Items != 30 || st.Oldest.IsZero() {
		t.Fatalf("stats before start: %+v", st)
	}
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := u.Drain(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, k := range ms.uploaded() {
		s := strings.Split(k, "/")[1]
		got[s] = append(got[s], k)
	}
	for s := range want {
		if !slices.Equal(got[s], want[s]) {
			t.Errorf("stream %s uploaded in order %v, want %v", s, got[s], want[s])
		}
	}
	if ms.maxAct.Load() < 2 {
		t.Errorf("streams did not upload in parallel (max %d)", ms.maxAct.Load())
	}
	if ms.maxAct.Load() > 2 {
		t.Errorf("more uploads at once (%d) than Workers", ms.maxAct.Load())
	}
	if f := spoolFiles(t, spool); len(f) != 0 {
		t.Errorf("spool not empty: %v", f)
	}
	if got := readAll(t, u, "rec/b/index.m3u8"); !bytes.Equal(got, body("rec/b/index.m3u8")) {
		t.Fatalf("backend read %q", got)
	}
	if st := u.Stats(); st.Items != 0 || st.Bytes != 0 || !st.Oldest.IsZero() {
		t.Fatalf("stats after drain: %+v", st)
	}
	if n := metricValue(u.m.Uploads.WithLabelValues("uploaded")); n != 30 {
		t.Errorf("uploads metric %v", n)
	}
	upMu.Lock()
	defer upMu.Unlock()
	if len(ups) != 30 {
		t.Errorf("OnUploaded called %d times", len(ups))
	}
}

func TestUploaderOutageAndLimit(t *testing.T) {
	ms := newMemStore()
	ms.setDown(true)
	spool := t.TempDir()
	var alarms []bool
	var amu sync.Mutex
	opts := fastOpts(t)
	opts.SpoolLimit = 100
	opts.OnSpoolLimit = func(over bool, b, l int64) {
		amu.Lock()
		alarms = append(alarms, over)
		amu.Unlock()
	}
	u := newTestUploader(t, spool, ms, opts)
	ctx := context.Background()
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	var keys []string
	for i := range 8 {
		key := fmt.Sprintf("live/%02d.ts", i)
		keys = append(keys, key)
		if err := u.Store(ctx, key, writeTemp(t, work, "s", body(key))); err != nil {
			t.Fatal(err)
		}
	}
	keys = append(keys, "live/index.m3u8")
	if err := u.Store(ctx, "live/index.m3u8", writeTemp(t, work, "p", body("live/index.m3u8"))); err != nil {
		t.Fatal(err)
	}
	// Retries accumulate while the store is down; nothing is dropped.
	deadline := time.Now().Add(5 * time.Second)
	for metricValue(u.m.Retries) < 5 {
		if time.Now().After(deadline) {
			t.Fatal("no retries while the store is down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := u.Stats()
	if st.Items != 9 || !st.OverLimit || metricValue(u.m.OverLimit) != 1 {
		t.Fatalf("stats during outage: %+v", st)
	}
	if len(spoolFiles(t, spool)) != 18 {
		t.Fatalf("spool files: %v", spoolFiles(t, spool))
	}
	ms.setDown(false)
	if err := u.Drain(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := ms.uploaded(); !slices.Equal(got, keys) {
		t.Fatalf("upload order after outage %v, want %v", got, keys)
	}
	u.Close() // waits for the callbacks
	amu.Lock()
	defer amu.Unlock()
	if !slices.Equal(alarms, []bool{true, false}) {
		t.Fatalf("spool alarms %v, want [true false]", alarms)
	}
	if metricValue(u.m.OverLimit) != 0 {
		t.Fatal("over-limit gauge still set")
	}
}

func TestUploaderClash(t *testing.T) {
	ms := newMemStore()
	ms.objs["k/same.ts"] = body("k/same.ts")
	ms.objs["k/clash.ts"] = []byte("someone else's bytes")
	var errs []string
	var emu sync.Mutex
	opts := fastOpts(t)
	opts.OnError = func(key string, err error) {
		emu.Lock()
		errs = append(errs, key)
		emu.Unlock()
		if !errors.Is(err, ErrExists) {
			t.Errorf("OnError err %v", err)
		}
	}
	spool := t.TempDir()
	u := newTestUploader(t, spool, ms, opts)
	ctx := context.Background()
	work := t.TempDir()
	for _, k := range []string{"k/same.ts", "k/clash.ts", "k/new.ts"} {
		if err := u.Store(ctx, k, writeTemp(t, work, "f", body(k))); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := u.Drain(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if b, _ := ms.get("k/clash.ts"); string(b) != "someone else's bytes" {
		t.Fatal("clashing object replaced")
	}
	if _, ok := ms.get("k/new.ts"); !ok {
		t.Fatal("item after the clash not uploaded")
	}
	st := u.Stats()
	if st.Items != 1 || st.Parked != 1 || st.Bytes != int64(len(body("k/clash.ts"))) {
		t.Fatalf("stats: %+v", st)
	}
	if got := readAll(t, u, "k/clash.ts"); string(got) != "someone else's bytes" {
		t.Fatalf("Open of a parked key must serve the stored object, got %q", got)
	}
	if err := u.Store(ctx, "k/clash.ts", writeTemp(t, work, "g", []byte("again"))); !errors.Is(err, ErrExists) {
		t.Fatalf("re-store of a parked key: %v", err)
	}
	if n := metricValue(u.m.Uploads.WithLabelValues("already_stored")); n != 1 {
		t.Errorf("already_stored = %v", n)
	}
	if n := metricValue(u.m.Parked); n != 1 {
		t.Errorf("clashes = %v", n)
	}
	u.Close()
	emu.Lock()
	if !slices.Equal(errs, []string{"k/clash.ts"}) {
		t.Errorf("OnError calls %v", errs)
	}
	emu.Unlock()
	// The parked file is still in the spool and is looked at again at the next start
	// (still a clash: never uploaded over the object).
	u2 := newTestUploader(t, spool, ms, fastOpts(t))
	if st := u2.Stats(); st.Items != 1 {
		t.Fatalf("parked item not kept across restart: %+v", st)
	}
	u2.Start(ctx)
	if err := u2.Drain(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if b, _ := ms.get("k/clash.ts"); string(b) != "someone else's bytes" {
		t.Fatal("clashing object replaced after restart")
	}
	if st := u2.Stats(); st.Parked != 1 {
		t.Fatalf("after restart: %+v", st)
	}
}

// TestUploaderRestart: what one process spooled, the next uploads, in order; traces of a
// crash in the middle of Store or of cleanup are handled.
func TestUploaderRestart(t *testing.T) {
	ms := newMemStore()
	spool := t.TempDir()
	work := t.TempDir()
	ctx := context.Background()
	u := newTestUploader(t, spool, ms, fastOpts(t))
	if _, err := NewUploader(spool, ms, fastOpts(t)); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second uploader on the same spool: %v", err)
	}
	var keys []string
	for i := range 5 {
		k := fmt.Sprintf("r/%d.ts", i)
		keys = append(keys, k)
		if err := u.Store(ctx, k, writeTemp(t, work, "f", body(k))); err != nil {
			t.Fatal(err)
		}
	}
	u.Close()
	if err := u.Store(ctx, "r/x.ts", writeTemp(t, work, "x", []byte("x"))); !errors.Is(err, ErrClosed) {
		t.Fatalf("Store after Close: %v", err)
	}
	// Crash traces: a journal entry whose data never arrived, a half-copied file, and an
	// item that was uploaded but not cleaned up (the backend has identical bytes).
	os.WriteFile(filepath.Join(spool, fmt.Sprintf("%020d.json", 99)), []byte(`{"key":"r/lost.ts","stream":""}`), 0o644)
	os.WriteFile(filepath.Join(spool, fmt.Sprintf("%020d.data.tmp", 100)), []byte("partial"), 0o644)
	ms.objs["r/0.ts"] = body("r/0.ts")
	ms.order = append(ms.order, "r/0.ts")

	u2 := newTestUploader(t, spool, ms, fastOpts(t))
	if st := u2.Stats(); st.Items != 5 {
		t.Fatalf("reloaded %d items", st.Items)
	}
	if u2.nextSeq <= 99 {
		t.Fatalf("new items would reuse sequence numbers: next %d", u2.nextSeq)
	}
	if err := u2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := u2.Drain(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := ms.uploaded(); !slices.Equal(got, keys) {
		t.Fatalf("order %v, want %v", got, keys)
	}
	if f := spoolFiles(t, spool); len(f) != 0 {
		t.Fatalf("spool left %v", f)
	}
}

// TestUploaderKillAfterUpload: a process killed after the backend stored an object (and
// removed the file it was given) but before OnUploaded ran leaves a spool from which the
// next start still calls OnUploaded for that key: the catalog's "uploaded" flag depends
// on it.
func TestUploaderKillAfterUpload(t *testing.T) {
	ms := newMemStore()
	spool, crashed := t.TempDir(), t.TempDir()
	ms.stored = func(string) {
		// What a kill at this instant leaves on disk: a copy of the spool directory.
		for _, name := range spoolFiles(t, spool) {
			if b, err := os.ReadFile(filepath.Join(spool, name)); err == nil {
				os.WriteFile(filepath.Join(crashed, name), b, 0o644)
			}
		}
	}
	ctx := context.Background()
	u := newTestUploader(t, spool, ms, fastOpts(t))
	if err := u.Store(ctx, "r/a.mp4", writeTemp(t, t.TempDir(), "a", body("r/a.mp4"))); err != nil {
		t.Fatal(err)
	}
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := u.Drain(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	u.Close()
	ms.stored = nil

	var ups []string
	opts := fastOpts(t)
	opts.OnUploaded = func(key string, _ int64) { ups = append(ups, key) }
	u2 := newTestUploader(t, crashed, ms, opts)
	if err := u2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := u2.Drain(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	u2.Close()
	if !slices.Equal(ups, []string{"r/a.mp4"}) {
		t.Fatalf("OnUploaded after the restart: %v, want [r/a.mp4]", ups)
	}
	if f := spoolFiles(t, crashed); len(f) != 0 {
		t.Fatalf("spool left %v", f)
	}
	if len(ms.uploaded()) != 1 {
		t.Fatalf("uploads %v, want one", ms.uploaded())
	}
}

// TestUploaderLocalBackend: the spool in front of the local-disk store.
func TestUploaderLocalBackend(t *testing.T) {
	loc, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	u := newTestUploader(t, t.TempDir(), loc, fastOpts(t))
	ctx := context.Background()
	u.Start(ctx)
	work := t.TempDir()
	if err := u.Store(ctx, "a/b.ts", writeTemp(t, work, "f", []byte("abc"))); err != nil {
		t.Fatal(err)
	}
	if err := u.Drain(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(loc.Root, "a", "b.ts"))
	if err != nil || string(b) != "abc" {
		t.Fatalf("%q %v", b, err)
	}
	if u.Describe() != loc.Describe() {
		t.Fatal("Describe")
	}
	if _, err := u.Open(ctx, "a/none"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if err := u.Store(ctx, "../x", writeTemp(t, work, "g", nil)); err == nil {
		t.Fatal("bad key accepted")
	}
	var _ io.Reader = memObject{}
}

func TestBackoff(t *testing.T) {
	lo, hi := 500*time.Millisecond, 30*time.Second
	for f, want := range map[int]time.Duration{1: lo, 2: time.Second, 4: 4 * time.Second, 20: hi} {
		d := backoff(lo, hi, f)
		if d < want*8/10 || d > want*12/10 {
			t.Errorf("backoff(%d) = %v, want about %v", f, d, want)
		}
	}
}

// metricValue reads a counter or gauge.
func metricValue(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	go func() { c.Collect(ch); close(ch) }()
	var v float64
	for m := range ch {
		var d dto.Metric
		_ = m.Write(&d)
		switch {
		case d.Counter != nil:
			v += d.Counter.GetValue()
		case d.Gauge != nil:
			v += d.Gauge.GetValue()
		}
	}
	return v
}

// TestUploaderWakeOnSuccess: a success on one stream ends the backoff of the others.
func TestUploaderWakeOnSuccess(t *testing.T) {
	ms := newMemStore()
	ms.setDown(true)
	opts := fastOpts(t)
	opts.MinBackoff, opts.MaxBackoff = 5*time.Second, 5*time.Second
	u := newTestUploader(t, t.TempDir(), ms, opts)
	ctx := context.Background()
	u.Start(ctx)
	work := t.TempDir()
	if err := u.Store(WithStream(ctx, "a"), "a/1.ts", writeTemp(t, work, "a", []byte("a"))); err != nil {
		t.Fatal(err)
	}
	for metricValue(u.m.Retries) < 1 {
		time.Sleep(5 * time.Millisecond)
	}
	ms.setDown(false)
	start := time.Now()
	if err := u.Store(WithStream(ctx, "b"), "b/1.ts", writeTemp(t, work, "b", []byte("b"))); err != nil {
		t.Fatal(err)
	}
	if err := u.Drain(ctxT(t, 4*time.Second)); err != nil {
		t.Fatalf("stream a still waiting out its backoff: %v", err)
	}
	t.Logf("drained %v after the store came back", time.Since(start))
}
