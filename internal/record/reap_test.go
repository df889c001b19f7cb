package record

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/cluster"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/schema/schematest"
	"github.com/livrec/livrec/internal/storage"
)

// fakePeers: every node but the alive ones is dead, and none holds a lease.
type fakePeers struct {
	self  string
	alive map[string]bool
}

func (p fakePeers) Self() string { return p.self }
func (p fakePeers) HandOver(context.Context, string) (string, error) {
	return "", ErrNoHandOver
}
func (p fakePeers) Alive(_ context.Context, node string) (bool, error)  { return p.alive[node], nil }
func (p fakePeers) Holds(context.Context, string, string) (bool, error) { return false, nil }

// A dead node's open m3u8 file is finalized by another node from its kept state, once
// (a third node's pass finds it claimed); the dead node, back, drops its working files
// of it and recovers nothing twice.
func TestReapDeadNode(t *testing.T) {
	schematest.Each(t, func(t *testing.T, driver, dsn string) {
		ctx := context.Background()
		cat, err := catalog.OpenDriver(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer cat.Close()
		bucket, err := storage.NewLocal(t.TempDir()) // the object storage every node reaches
		if err != nil {
			t.Fatal(err)
		}
		node := func(id string) (*Manager, string) {
			work := t.TempDir()
			set, err := rules.NewSet(rules.DefaultRules())
			if err != nil {
				t.Fatal(err)
			}
			return NewManager(Config{Rules: set, Catalog: cat, Store: bucket, WorkDir: work,
				StoreFor: func(*rules.Rule) (storage.Store, error) { return bucket, nil },
				Leases:   &cluster.NodeLeases{Store: cluster.New(cat.DB()), Node: id, TTL: time.Minute},
				Peers:    fakePeers{self: id, alive: map[string]bool{id: true}},
				Logger:   slog.New(slog.NewTextHandler(io.Discard, nil))}), work
		}
		rule := rules.Rule{DomainName: "*", AppName: "live", StreamName: "*", OssEndpoint: "s3.test", OssBucket: "b",
			RecordFormats: []rules.RecordFormat{{Format: rules.M3U8, SliceDuration: 5, ObjectPrefix: "record/{AppName}/{StreamName}/{Sequence}",
				SliceObjectPrefix: "record/{AppName}/{StreamName}/seg_{Sequence}"}}}
		ruleJSON, _ := json.Marshal(rule)
		start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
		if err := cat.CreateTask(ctx, &catalog.Task{ID: "6c1c5d0e-0000-4000-8000-000000000001", Domain: "d.test", App: "live", Stream: "s",
			State: catalog.TaskRecording, Rule: string(ruleJSON), StartedAt: start, UpdatedAt: start}); err != nil {
			t.Fatal(err)
		}
		taskID := "6c1c5d0e-0000-4000-8000-000000000001"
		dead, deadWork := node("dead")
		fileDir := filepath.Join(deadWork, taskID, "m3u8-0")
		if err := os.MkdirAll(fileDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := cat.CreateFile(ctx, &catalog.File{ID: "f1", TaskID: taskID, Domain: "d.test", App: "live", Stream: "s", Format: "m3u8",
			WorkDir: fileDir, Start: start, Status: catalog.FileRecording, OssEndpoint: "s3.test", OssBucket: "b"}); err != nil {
			t.Fatal(err)
		}
		// Two stored segments of 6 s, as segment.Writer.StoredState keeps them.
		state := `{"version":1,"segments":[{"seq":0,"key":"record/live/s/seg_0.ts","duration_ns":6000000000,"start":"2026-12-01T10:00:00Z","stored":true},` +
			`{"seq":1,"key":"record/live/s/seg_1.ts","duration_ns":6000000000,"start":"2026-12-01T10:00:06Z","stored":true}],"next_seq":2}`
		if err := cat.SaveWriterState(ctx, "f1", taskID, "dead", state); err != nil {
			t.Fatal(err)
		}

		reaper, _ := node("reaper")
		reaper.reap(ctx)
		reaper.Drain()
		f, err := cat.GetFile(ctx, "f1")
		if err != nil || f.Status != catalog.FileDone || f.Duration != 12 || f.Key != "record/live/s/0.m3u8" {
			t.Fatalf("reaped file: %+v %v", f, err)
		}
		obj, err := bucket.Open(ctx, f.Key)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(obj)
		obj.Close()
		if !strings.Contains(string(b), "seg_1.ts") || !strings.Contains(string(b), "#EXT-X-ENDLIST") {
			t.Fatalf("playlist:\n%s", b)
		}
		if task, err := cat.GetTask(ctx, taskID); err != nil || task.State != catalog.TaskEnded {
			t.Fatalf("task of the reaped file: %+v %v", task, err)
		}
		// Another node's pass: the file is claimed, nothing happens.
		other, _ := node("other")
		other.reap(ctx)
		other.Drain()
		if f2, _ := cat.GetFile(ctx, "f1"); f2.End != f.End || f2.Key != f.Key {
			t.Fatalf("file finalized again: %+v", f2)
		}
		// The dead node comes back: its working files of the task go.
		if err := dead.Recover(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(deadWork, taskID)); !os.IsNotExist(err) {
			t.Fatalf("the dead node kept its working files of a file finalized elsewhere: %v", err)
		}
	})
}
