package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/cluster"
	"github.com/livrec/livrec/internal/record"
	"github.com/livrec/livrec/internal/schema/schematest"
	"github.com/livrec/livrec/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const secret = "the-cluster-secret-of-the-test"

// fakeLocal is a node's recorder: it records the commands it ran and answers with err.
type fakeLocal struct {
	mu      sync.Mutex
	cmds    []string
	err     error
	streams []record.StreamInfo
}

func (f *fakeLocal) Command(_ context.Context, domain, app, stream, cmd string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, domain+"/"+app+"/"+stream+" "+cmd)
	return f.err
}

func (f *fakeLocal) Streams() []record.StreamInfo { return f.streams }

func (f *fakeLocal) HandOver(_ context.Context, key string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, key+" handover")
	if f.err != nil {
		return "", f.err
	}
	return "task-1", nil
}

func (f *fakeLocal) ran() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

// node is one node of a test cluster: its recorder, its peer handler on a loopback
// server, and its router on the shared catalog.
type node struct {
	id     string
	local  *fakeLocal
	srv    *httptest.Server
	router *Router
}

var live = cluster.Liveness{Interval: time.Second, MissedBeats: 3}

func newNode(t *testing.T, store *cluster.Store, id string) *node {
	t.Helper()
	n := &node{id: id, local: &fakeLocal{}}
	n.srv = httptest.NewServer(&Handler{Secret: secret, Node: id, Local: n.local})
	t.Cleanup(n.srv.Close)
	n.router = &Router{Node: id, Local: n.local, Store: store, Liveness: live, Client: &Client{Secret: secret, Node: id}}
	if err := store.Beat(context.Background(), id, n.srv.Listener.Addr().String(), time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	return n
}

func openStore(t *testing.T, driver, dsn string) *cluster.Store {
	t.Helper()
	c, err := catalog.OpenDriver(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return cluster.New(c.DB())
}

// TestForward: a command sent to a node that does not own the stream runs on the owner
// only, and the owner's outcome (success, or its refusal with its code) is the answer; a
// stream nobody owns runs where it was sent. A node receiving a forwarded command runs it
// itself even when the catalog names another owner: it is never forwarded again.
func TestForward(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		store := openStore(t, driver, dsn)
		a, b := newNode(t, store, "n1"), newNode(t, store, "n2")
		if _, err := store.Acquire(ctx, "example.com/live/s1", "n2", time.Minute, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := a.router.Command(ctx, "Example.COM", "live", "s1", "stop"); err != nil {
			t.Fatalf("forwarded stop: %v", err)
		}
		if got, want := b.local.ran(), []string{"example.com/live/s1 stop"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("owner ran %v, want %v", got, want)
		}
		if got := a.local.ran(); len(got) != 0 {
			t.Fatalf("the node that forwarded ran %v", got)
		}

		b.local.err = record.ErrTaskNotStarted
		err := a.router.Command(ctx, "example.com", "live", "s1", "stop")
		if !errors.Is(err, record.ErrTaskNotStarted) {
			t.Fatalf("owner's refusal: %v, want %v", err, record.ErrTaskNotStarted)
		}
		b.local.err = errors.New("disk on fire")
		var ue *UnreachableError
		if err := a.router.Command(ctx, "example.com", "live", "s1", "stop"); !errors.As(err, &ue) || !strings.Contains(err.Error(), "disk on fire") {
			t.Fatalf("owner's failure: %v", err)
		}
		b.local.err = nil

		// Nobody owns s2: it runs where it was sent.
		if err := a.router.Command(ctx, "example.com", "live", "s2", "start"); err != nil {
			t.Fatal(err)
		}
		if got := a.local.ran(); fmt.Sprint(got) != "[example.com/live/s2 start]" {
			t.Fatalf("unowned stream: n1 ran %v", got)
		}

		// The catalog says n1 owns s1 now (the lease moved while the command travelled):
		// n2 still runs what it was sent, it does not send it back.
		if _, err := store.Acquire(ctx, "example.com/live/s1", "n1", time.Minute, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		before := len(b.local.ran())
		if err := (&Client{Secret: secret, Node: "n1"}).Command(ctx, b.srv.Listener.Addr().String(), "example.com", "live", "s1", "cancel_delay"); err != nil {
			t.Fatal(err)
		}
		if got := b.local.ran(); len(got) != before+1 || got[before] != "example.com/live/s1 cancel_delay" {
			t.Fatalf("n2 after a forwarded command: %v", got)
		}
		if got := a.local.ran(); len(got) != 1 {
			t.Fatalf("the forwarded command came back to n1: %v", got)
		}
	})
}

// TestOwnerOutOfReach: a command for a stream whose owner is dead (no heartbeat) or
// does not answer fails with an UnreachableError naming the node; nothing runs locally.
func TestOwnerOutOfReach(t *testing.T) {
	ctx := context.Background()
	store := openStore(t, "sqlite", schematest.DSN(t, "sqlite"))
	a := newNode(t, store, "n1")
	old := time.Now().Add(-time.Minute)
	if err := store.Beat(ctx, "n3", "127.0.0.1:1", old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Acquire(ctx, "example.com/live/dead", "n3", time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	var ue *UnreachableError
	err := a.router.Command(ctx, "example.com", "live", "dead", "stop")
	if !errors.As(err, &ue) || ue.Node != "n3" || !strings.Contains(err.Error(), "node n3") || !strings.Contains(err.Error(), "no heartbeat since") {
		t.Fatalf("dead owner: %v", err)
	}

	// Alive, but nothing listens at its address.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	if err := store.Beat(ctx, "n4", closed, time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Acquire(ctx, "example.com/live/gone", "n4", time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	err = a.router.Command(ctx, "example.com", "live", "gone", "stop")
	if !errors.As(err, &ue) || ue.Node != "n4" || !strings.Contains(err.Error(), closed) {
		t.Fatalf("unreachable owner: %v", err)
	}
	if got := a.local.ran(); len(got) != 0 {
		t.Fatalf("ran locally: %v", got)
	}
}

// TestSignature: a peer request needs the cluster secret's signature over its node,
// time, method, path and body, made within MaxSkew.
func TestSignature(t *testing.T) {
	local := &fakeLocal{}
	srv := httptest.NewServer(&Handler{Secret: secret, Node: "n2", Local: local})
	defer srv.Close()
	body := []byte(`{"domain":"example.com","app":"live","stream":"s","command":"stop"}`)
	send := func(header string, b []byte) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+CommandPath, bytes.NewReader(b))
		if header != "" {
			req.Header.Set(Header, header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ = io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	now := time.Now().Unix()
	good := fmt.Sprintf("n1 %d %s", now, sign(secret, "n1", now, http.MethodPost, CommandPath, body))
	for name, c := range map[string]struct {
		header string
		body   []byte
		status int
		want   string
	}{
		"good":      {good, body, http.StatusOK, ""},
		"no header": {"", body, http.StatusUnauthorized, "missing or malformed"},
		"wrong secret": {fmt.Sprintf("n1 %d %s", now, sign("another-secret-0123456789", "n1", now, http.MethodPost, CommandPath, body)),
			body, http.StatusUnauthorized, "bad signature"},
		"other body": {good, []byte(`{"command":"cancel_delay"}`), http.StatusUnauthorized, "bad signature"},
		"other node": {strings.Replace(good, "n1", "n9", 1), body, http.StatusUnauthorized, "bad signature"},
		"old": {fmt.Sprintf("n1 %d %s", now-600, sign(secret, "n1", now-600, http.MethodPost, CommandPath, body)),
			body, http.StatusUnauthorized, "from this node's clock"},
	} {
		status, msg := send(c.header, c.body)
		if status != c.status || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %q, want %d %q", name, status, msg, c.status, c.want)
		}
	}
	if got := local.ran(); len(got) != 1 {
		t.Fatalf("commands run: %v, want only the good one", got)
	}
	// A node without a secret refuses every peer request.
	open := httptest.NewServer(&Handler{Node: "n2", Local: local})
	defer open.Close()
	err := (&Client{Node: "n1"}).Command(context.Background(), open.Listener.Addr().String(), "example.com", "live", "s", "stop")
	if err == nil || !strings.Contains(err.Error(), "no cluster secret") {
		t.Fatalf("node without secret: %v", err)
	}
}

// TestStreams: the pushes of every live node with its id; a live node that does not
// answer is listed as unreachable, a dead one is not asked.
func TestStreams(t *testing.T) {
	ctx := context.Background()
	store := openStore(t, "sqlite", schematest.DSN(t, "sqlite"))
	a, b := newNode(t, store, "n1"), newNode(t, store, "n2")
	a.local.streams = []record.StreamInfo{{Domain: "example.com", App: "live", Stream: "on-a"}}
	b.local.streams = []record.StreamInfo{{Domain: "example.com", App: "live", Stream: "on-b1"}, {Domain: "example.com", App: "live", Stream: "on-b2"}}
	if err := store.Beat(ctx, "n3", "127.0.0.1:1", time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := store.Beat(ctx, "n4", "127.0.0.1:1", old, old); err != nil {
		t.Fatal(err)
	}
	streams, bad := a.router.Streams(ctx)
	var got []string
	for _, s := range streams {
		got = append(got, s.Node+":"+s.Stream)
	}
	if fmt.Sprint(got) != "[n1:on-a n2:on-b1 n2:on-b2]" {
		t.Fatalf("streams %v", got)
	}
	if len(bad) != 1 || bad[0].Node != "n3" {
		t.Fatalf("unreachable %+v, want n3 only", bad)
	}
}

// TestServeOwner: a GET for a stream another live node owns is answered by that node
// (its status and body, this node's headers kept once); one already forwarded, or for a
// stream this node or nobody owns, is left to the caller.
func TestServeOwner(t *testing.T) {
	ctx := context.Background()
	store := openStore(t, "sqlite", schematest.DSN(t, "sqlite"))
	a := newNode(t, store, "n1")
	var forwardedBy string
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		forwardedBy = r.Header.Get(ForwardedHeader)
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "#EXTM3U\n"+r.URL.Path+"\n")
	}))
	defer owner.Close()
	if err := store.Beat(ctx, "n2", owner.Listener.Addr().String(), time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Acquire(ctx, "example.com/live/s", "n2", time.Minute, time.Now()); err != nil {
		t.Fatal(err)
	}
	serve := func(key string, forwarded bool) (bool, *httptest.ResponseRecorder) {
		req := httptest.NewRequest(http.MethodGet, "/live/f1.m3u8", nil)
		if forwarded {
			req.Header.Set(ForwardedHeader, "n3")
		}
		w := httptest.NewRecorder()
		w.Header().Set("Access-Control-Allow-Origin", "*") // as the CORS wrapper does
		return a.router.ServeOwner(w, req, key), w
	}
	ok, w := serve("example.com/live/s", false)
	if !ok || w.Code != 200 || w.Body.String() != "#EXTM3U\n/live/f1.m3u8\n" || forwardedBy != "n1" ||
		len(w.Header().Values("Access-Control-Allow-Origin")) != 1 || w.Header().Get("Content-Type") != "application/vnd.apple.mpegurl" {
		t.Fatalf("forwarded: %v %d %q by %q, headers %v", ok, w.Code, w.Body.String(), forwardedBy, w.Header())
	}
	if ok, _ := serve("example.com/live/s", true); ok {
		t.Fatal("a forwarded request was forwarded again")
	}
	if ok, _ := serve("example.com/live/nobody", false); ok {
		t.Fatal("a stream nobody owns was forwarded")
	}
	if _, err := store.Acquire(ctx, "example.com/live/mine", "n1", time.Minute, time.Now()); err != nil {
		t.Fatal(err)
	}
	if ok, _ := serve("example.com/live/mine", false); ok {
		t.Fatal("a stream of this node was forwarded")
	}
}
