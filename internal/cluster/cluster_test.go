package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/schema/schematest"
	"github.com/livrec/livrec/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func open(t *testing.T, driver, dsn string) *Store {
	t.Helper()
	c, err := catalog.OpenDriver(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return New(c.DB())
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// A node is alive until MissedBeats intervals pass without a beat; a beat revives it.
func TestLiveness(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		s := open(t, driver, dsn)
		l := Liveness{Interval: 5 * time.Second, MissedBeats: 3}
		if err := l.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := s.Beat(ctx, "node-a", "10.0.0.1:8080", t0, t0); err != nil {
			t.Fatal(err)
		}
		if err := s.Beat(ctx, "node-b", "10.0.0.2:8080", t0, t0.Add(10*time.Second)); err != nil {
			t.Fatal(err)
		}
		alive := func(at time.Time) map[string]bool {
			ns, err := s.Nodes(ctx, l, at)
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]bool{}
			for _, n := range ns {
				m[n.ID] = n.Alive
			}
			return m
		}
		if a := alive(t0.Add(15 * time.Second)); !a["node-a"] || !a["node-b"] {
			t.Fatalf("at 15 s (3 intervals after a's beat): %v", a)
		}
		if a := alive(t0.Add(15*time.Second + time.Millisecond)); a["node-a"] || !a["node-b"] {
			t.Fatalf("just after 3 missed beats of a: %v", a)
		}
		if err := s.Beat(ctx, "node-a", "10.0.0.1:8081", t0, t0.Add(20*time.Second)); err != nil {
			t.Fatal(err)
		}
		ns, _ := s.Nodes(ctx, l, t0.Add(20*time.Second))
		if len(ns) != 2 || ns[0].ID != "node-a" || !ns[0].Alive || ns[0].HTTPAddr != "10.0.0.1:8081" || !ns[0].StartedAt.Equal(t0) {
			t.Fatalf("after a's new beat: %+v", ns)
		}
	})
	for _, bad := range []Liveness{{Interval: 0, MissedBeats: 3}, {Interval: time.Second, MissedBeats: 0}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// A lease is exclusive until it expires or is released; each acquisition has a higher
// generation; the old holder's renewal and fencing check fail once it moved on.
func TestLeases(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		s := open(t, driver, dsn)
		const key, ttl = "example.com/live/s1", 10 * time.Second
		a, err := s.Acquire(ctx, key, "node-a", ttl, t0)
		if err != nil || a.Generation != 1 {
			t.Fatalf("first acquire: %+v %v", a, err)
		}
		for _, n := range []string{"node-b", "node-a"} { // a second publisher, on either node
			if _, err := s.Acquire(ctx, key, n, ttl, t0.Add(time.Second)); !errors.Is(err, ErrLeaseHeld) {
				t.Fatalf("acquire by %s of a held lease: %v", n, err)
			}
		}
		if err := s.Renew(ctx, a, ttl, t0.Add(9*time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Acquire(ctx, key, "node-b", ttl, t0.Add(12*time.Second)); !errors.Is(err, ErrLeaseHeld) {
			t.Fatalf("the renewal did not extend the lease: %v", err)
		}
		// a pauses past its expiry; b takes over.
		b, err := s.Acquire(ctx, key, "node-b", ttl, t0.Add(20*time.Second))
		if err != nil || b.Generation != 2 {
			t.Fatalf("takeover: %+v %v", b, err)
		}
		if err := s.Renew(ctx, a, ttl, t0.Add(21*time.Second)); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("renewal of a lost lease: %v", err)
		}
		if ok, err := s.Holds(ctx, a, t0.Add(21*time.Second)); err != nil || ok {
			t.Fatalf("fencing check of the old generation: %v %v", ok, err)
		}
		if ok, err := s.Holds(ctx, b, t0.Add(21*time.Second)); err != nil || !ok {
			t.Fatalf("fencing check of the owner: %v %v", ok, err)
		}
		if err := s.Release(ctx, a); err != nil { // a late release of a lost lease changes nothing
			t.Fatal(err)
		}
		if ok, _ := s.Holds(ctx, b, t0.Add(22*time.Second)); !ok {
			t.Fatal("the old holder's release ended the new lease")
		}
		if err := s.Release(ctx, b); err != nil {
			t.Fatal(err)
		}
		c, err := s.Acquire(ctx, key, "node-a", ttl, t0.Add(23*time.Second))
		if err != nil || c.Generation != 3 {
			t.Fatalf("acquire after release: %+v %v", c, err)
		}
		// node-a restarts: the leases of its previous run end.
		if err := s.ReleaseNode(ctx, "node-a"); err != nil {
			t.Fatal(err)
		}
		if d, err := s.Acquire(ctx, key, "node-a", ttl, t0.Add(24*time.Second)); err != nil || d.Generation != 4 {
			t.Fatalf("acquire after the node's restart: %+v %v", d, err)
		}
	})
}

// Nodes racing for one key: exactly one wins.
func TestAcquireRace(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		s := open(t, driver, dsn)
		var mu sync.Mutex
		won := 0
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				_, err := s.Acquire(context.Background(), "d/a/s", string(rune('a'+i)), time.Minute, t0)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won++
				case !errors.Is(err, ErrLeaseHeld):
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if won != 1 {
			t.Fatalf("%d acquisitions won", won)
		}
	})
}

// A task's writes fenced with a lease are made while it holds and refused once the key's
// lease moved on (a new generation), also for a write the old owner makes late.
func TestFencedWrites(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		c, err := catalog.OpenDriver(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		a := &NodeLeases{Store: New(c.DB()), Node: "a", TTL: time.Minute}
		b := &NodeLeases{Store: New(c.DB()), Node: "b", TTL: time.Minute}
		fa, err := a.Acquire(ctx, "d/live/s")
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		fctx := catalog.WithFence(ctx, fa)
		if err := c.CreateTask(fctx, &catalog.Task{ID: "t1", Domain: "d", App: "live", Stream: "s", State: catalog.TaskRecording, StartedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := c.CreateFile(fctx, &catalog.File{ID: "f1", TaskID: "t1", Format: "flv", Status: catalog.FileRecording, Start: now}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Acquire(ctx, "d/live/s"); !errors.Is(err, ErrLeaseHeld) || !strings.Contains(err.Error(), "node a") {
			t.Fatalf("b's acquire of a's key: %v", err)
		}
		if _, err := c.DB().ExecContext(ctx, `UPDATE stream_leases SET expires_at=0`); err != nil { // a's lease expires
			t.Fatal(err)
		}
		if err := c.SetTaskState(fctx, "t1", catalog.TaskPaused, now); !errors.Is(err, catalog.ErrFenced) {
			t.Fatalf("write under an expired lease: %v", err)
		}
		if _, err := b.Acquire(ctx, "d/live/s"); err != nil {
			t.Fatal(err)
		}
		if err := a.Renew(ctx, fa); !errors.Is(err, catalog.ErrFenced) {
			t.Fatalf("renewal of a lease taken over: %v", err)
		}
		for what, err := range map[string]error{
			"task state":    c.SetTaskState(fctx, "t1", catalog.TaskEnded, now),
			"file update":   c.UpdateFile(fctx, &catalog.File{ID: "f1", Status: catalog.FileDone}),
			"file progress": c.FileProgress(fctx, "f1", 5, 5, 1),
			"file create":   c.CreateFile(fctx, &catalog.File{ID: "f2", TaskID: "t1", Format: "flv", Status: catalog.FileRecording, Start: now}),
			"file delete":   c.DeleteFile(fctx, "f1"),
		} {
			if !errors.Is(err, catalog.ErrFenced) {
				t.Errorf("%s by the old owner: %v", what, err)
			}
		}
		task, _ := c.GetTask(ctx, "t1")
		files, _ := c.TaskFiles(ctx, "t1", "")
		if task.State != catalog.TaskRecording || len(files) != 1 || files[0].Status != catalog.FileRecording || files[0].Duration != 0 {
			t.Fatalf("the old owner's writes changed rows: %+v %+v", task, files)
		}
	})
}

// Status lists every node with the keys of its unexpired leases, and counts them; Owner
// names an unexpired lease's node only.
func TestStatusAndOwner(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		s := open(t, driver, dsn)
		l := Liveness{Interval: time.Second, MissedBeats: 3}
		for _, b := range []struct {
			id string
			at time.Time
		}{{"n1", t0}, {"n2", t0.Add(-time.Minute)}, {"n3", t0}} {
			if err := s.Beat(ctx, b.id, b.id+":8080", b.at, b.at); err != nil {
				t.Fatal(err)
			}
		}
		for _, a := range []struct {
			key, node string
			ttl       time.Duration
		}{{"d/live/a", "n1", time.Minute}, {"d/live/b", "n1", time.Minute}, {"d/live/c", "n3", time.Minute}, {"d/live/old", "n3", time.Second}} {
			if _, err := s.Acquire(ctx, a.key, a.node, a.ttl, t0.Add(-10*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		st, err := s.Status(ctx, l, t0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, n := range st.Nodes {
			got = append(got, fmt.Sprintf("%s %s %v %v", n.ID, n.HTTPAddr, n.Alive, n.Leases))
		}
		want := []string{"n1 n1:8080 true [d/live/a d/live/b]", "n2 n2:8080 false []", "n3 n3:8080 true [d/live/c]"}
		if !slices.Equal(got, want) || st.Counts != (Counts{Nodes: 3, Alive: 2, Leases: 3}) {
			t.Fatalf("status %q %+v, want %q", got, st.Counts, want)
		}
		for key, want := range map[string]string{"d/live/a": "n1", "d/live/c": "n3", "d/live/old": "", "d/live/none": ""} {
			if got, err := s.Owner(ctx, key, t0); err != nil || got != want {
				t.Errorf("Owner(%s) = %q, %v; want %q", key, got, err, want)
			}
		}
	})
}
