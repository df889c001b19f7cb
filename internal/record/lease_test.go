package record

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/cluster"
	"github.com/livrec/livrec/internal/rtmp"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/schema"
	"github.com/livrec/livrec/internal/storage"
	"github.com/livrec/livrec/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// nodeManager is a Manager of node id on the shared catalog cat, with short leases.
func nodeManager(t *testing.T, cat *catalog.Catalog, id string, events chan<- Event) *Manager {
	t.Helper()
	dir := t.TempDir()
	st, err := storage.NewLocal(filepath.Join(dir, "files"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.NewSet(rules.DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	return NewManager(Config{Rules: set, Catalog: cat, Store: st, WorkDir: filepath.Join(dir, "work"),
		Leases: &cluster.NodeLeases{Store: cluster.New(cat.DB()), Node: id, TTL: 600 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnEvent: func(ev Event) {
			select {
			case events <- ev:
			default:
			}
		}})
}

// Two nodes on one PostgreSQL catalog: a key published on node a is refused on node b.
// When a's lease moves on (a partition: it expired, b took the key), a notices at its
// next renewal: it says so (lease_lost), disconnects its publisher, and writes no more
// rows of its task; b's task records the stream.
func TestLeaseLost(t *testing.T) {
	cat, err := catalog.OpenDriver(schema.Postgres, testenv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	evA, evB := make(chan Event, 100), make(chan Event, 100)
	a, b := nodeManager(t, cat, "a", evA), nodeManager(t, cat, "b", evB)
	req := func() *rtmp.PublishRequest {
		return &rtmp.PublishRequest{Domain: "d.test", App: "live", Stream: "s", Args: url.Values{}}
	}
	tags := readTags(t, "../media/testdata/h264_aac.flv")
	sa, err := a.Publish(req())
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags[:len(tags)/2] {
		if err := sa.Tag(tag); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Publish(req()); err == nil || !strings.Contains(err.Error(), "being published on node a") {
		t.Fatalf("second publisher on node b: %v", err)
	}
	a.Drain()
	ctx := context.Background()
	open, _ := cat.OpenTasks(ctx)
	if len(open) != 1 {
		t.Fatalf("open tasks: %+v", open)
	}
	taskA := open[0].ID

	// a pauses past its lease; b takes the key.
	if _, err := cat.DB().ExecContext(ctx, `UPDATE stream_leases SET expires_at=0`); err != nil {
		t.Fatal(err)
	}
	sb, err := b.Publish(req())
	if err != nil {
		t.Fatalf("publish on b after a's lease expired: %v", err)
	}
	deadline := time.After(5 * time.Second)
	for lost := false; !lost; {
		select {
		case ev := <-evA:
			lost = ev.Type == EventError && ev.Code == "lease_lost" && ev.TaskID == taskA
		case <-deadline:
			t.Fatal("node a did not report its lost lease")
		}
	}
	if err := sa.Tag(tags[len(tags)/2]); !errors.Is(err, errLeaseLost) {
		t.Fatalf("a tag after the lease was lost: %v", err)
	}
	sa.Close(nil)
	for _, tag := range tags {
		if err := sb.Tag(tag); err != nil {
			t.Fatal(err)
		}
	}
	sb.Close(nil)
	a.Shutdown(ctx)
	b.Shutdown(ctx)

	ta, err := cat.GetTask(ctx, taskA)
	if err != nil {
		t.Fatal(err)
	}
	if ta.State != catalog.TaskRecording {
		t.Fatalf("node a wrote its task's row after losing the lease: %s", ta.State)
	}
	files, _ := cat.TaskFiles(ctx, taskA, "")
	for _, f := range files {
		if f.Status != catalog.FileRecording {
			t.Fatalf("node a completed a file after losing the lease: %+v", f)
		}
	}
	all, _ := cat.ListTasks(ctx, catalog.TaskQuery{})
	var ended int
	for _, tk := range all {
		if tk.ID != taskA && tk.State == catalog.TaskEnded {
			ended++
			done, _ := cat.TaskFiles(ctx, tk.ID, catalog.FileDone)
			if len(done) == 0 {
				t.Fatalf("b's task has no file done")
			}
		}
	}
	if ended != 1 || len(all) != 2 {
		t.Fatalf("tasks: %+v", all)
	}
	// The key is free again: both leases released.
	if _, err := cluster.New(cat.DB()).Acquire(ctx, "d.test/live/s", "c", time.Second, time.Now()); err != nil {
		t.Fatalf("the key's lease was not released: %v", err)
	}
}
