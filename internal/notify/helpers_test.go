package notify

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/record"
)

// hit is one request a test receiver got.
type hit struct {
	n      int // 1-based arrival number
	method string
	url    string
	header http.Header
	body   []byte
}

func (h hit) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(h.body, &m); err != nil {
		t.Fatalf("body %q: %v", h.body, err)
	}
	return m
}

// receiver is an in-process HTTP callback receiver. behave decides the answer of the
// n-th request (default 200 "ok").
type receiver struct {
	*httptest.Server
	count  atomic.Int64
	hits   chan hit
	mu     sync.Mutex
	behave func(n int, w http.ResponseWriter, r *http.Request)
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{hits: make(chan hit, 4096)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := int(rc.count.Add(1))
		rc.hits <- hit{n: n, method: r.Method, url: r.URL.String(), header: r.Header.Clone(), body: body}
		rc.mu.Lock()
		b := rc.behave
		rc.mu.Unlock()
		if b != nil {
			b(n, w, r)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) set(b func(n int, w http.ResponseWriter, r *http.Request)) {
	rc.mu.Lock()
	rc.behave = b
	rc.mu.Unlock()
}

// next waits for the next request.
func (rc *receiver) next(t *testing.T) hit {
	t.Helper()
	select {
	case h := <-rc.hits:
		return h
	case <-time.After(5 * time.Second):
		t.Fatal("no callback arrived within 5 s")
		return hit{}
	}
}

// none checks that no request arrives within d.
func (rc *receiver) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case h := <-rc.hits:
		t.Fatalf("unexpected callback %s %s", h.method, h.body)
	case <-time.After(d):
	}
}

// closeConn answers by closing the connection without a response.
func closeConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// hang waits until the client gives up (or 10 s).
func hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

func openDB(t *testing.T) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Open(filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var quiet = slog.New(slog.DiscardHandler)

// fastOpts are Options for tests: short backoff, quiet log, loopback receivers allowed.
func fastOpts() Options {
	return Options{Logger: quiet, Backoff: func(int) time.Duration { return 10 * time.Millisecond }, Timeout: time.Second,
		AllowPrivateCallbacks: true}
}

func newNotifier(t *testing.T, c *catalog.Catalog, opt Options, start bool) *Notifier {
	t.Helper()
	n, err := New(c.DB(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if start {
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func mustPut(t *testing.T, n *Notifier, c Config) {
	t.Helper()
	if err := n.Put(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// onlyCallback returns the single callback in the queue.
func onlyCallback(t *testing.T, n *Notifier) Callback {
	t.Helper()
	cbs, err := n.ListCallbacks(context.Background(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cbs) != 1 {
		t.Fatalf("got %d callbacks, want 1", len(cbs))
	}
	return cbs[0]
}

// onlyStatus is the status of the single callback in the queue, "" while there is none.
func onlyStatus(t *testing.T, n *Notifier) string {
	t.Helper()
	cbs, err := n.ListCallbacks(context.Background(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cbs) > 1 {
		t.Fatalf("got %d callbacks, want 1", len(cbs))
	}
	if len(cbs) == 0 {
		return ""
	}
	return cbs[0].Status
}

func callbackByID(t *testing.T, n *Notifier, id string) *Callback {
	t.Helper()
	cb, err := n.GetCallback(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return cb
}

var (
	t0 = time.Unix(1488985786, 0)
	t1 = time.Unix(1488985840, 0)
)

func fileEvent(domain, stream string, pushArgs map[string][]string) record.Event {
	return record.Event{
		Type: record.EventFileCreated, Time: t1, TaskID: "task-1",
		Domain: domain, App: "liveApp", Stream: stream,
		File: &catalog.File{ID: "f1", TaskID: "task-1", Domain: domain, App: "liveApp", Stream: stream, Format: "flv",
			Key: "liveApp/" + stream + "/0_2017-03-08-23:09:46_2017-03-08-23:10:40.flv", Start: t0, End: t1, Duration: 69.403,
			Status: catalog.FileDone},
		PushArgs: pushArgs,
	}
}

func statusEvent(typ, domain, stream string) record.Event {
	return record.Event{Type: typ, Time: t0, TaskID: "task-1", Domain: domain, App: "liveApp", Stream: stream}
}
