package vod

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/notify"
	"github.com/livrec/livrec/internal/record"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/schema/schematest"
	"github.com/livrec/livrec/internal/storage"
)

type outbox struct {
	mu   sync.Mutex
	msgs []notify.Message
}

func (o *outbox) Enqueue(m notify.Message) {
	o.mu.Lock()
	o.msgs = append(o.msgs, m)
	o.mu.Unlock()
}

// fixture: a catalog of driver with a VOD-rule task and its generated playlist in local
// storage.
func fixture(t *testing.T, driver string) (*catalog.Catalog, *storage.Local, *catalog.File) {
	t.Helper()
	dir := t.TempDir()
	cat, err := catalog.OpenDriver(driver, schematest.DSN(t, driver))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	st, err := storage.NewLocal(filepath.Join(dir, "files"))
	if err != nil {
		t.Fatal(err)
	}
	r := rules.Rule{DomainName: "d.test", AppName: "live", StreamName: "cam", Vod: &rules.VodSettings{CycleDuration: 300}}
	r.Normalize()
	rj, _ := json.Marshal(r)
	ctx := context.Background()
	start := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	if err := cat.CreateTask(ctx, &catalog.Task{ID: "t1", Domain: "d.test", App: "live", Stream: "cam", State: catalog.TaskRecording,
		Rule: string(rj), StartedAt: start, UpdatedAt: start}); err != nil {
		t.Fatal(err)
	}
	for key, body := range map[string]string{
		"vod/live/cam/1714557600_0.ts": "seg0", "vod/live/cam/1714557630_1.ts": "seg1",
		"vod/live/cam/a_b.m3u8": "#EXTM3U\n#EXTINF:30,\n1714557600_0.ts\n#EXTINF:30,\n1714557630_1.ts\n#EXT-X-ENDLIST\n",
	} {
		p := filepath.Join(dir, "in")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := st.Store(ctx, key, p); err != nil {
			t.Fatal(err)
		}
	}
	f := &catalog.File{ID: "f1", TaskID: "t1", Domain: "d.test", App: "live", Stream: "cam", Format: "m3u8", Key: "vod/live/cam/a_b.m3u8",
		Start: start, End: start.Add(60 * time.Second), Duration: 60, Width: 640, Height: 360, Bytes: 8, Status: catalog.FileDone}
	if err := cat.CreateFile(ctx, f); err != nil {
		t.Fatal(err)
	}
	return cat, st, f
}

func waitAsset(t *testing.T, l *Library) Asset {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		as, n, err := l.List(context.Background(), Query{})
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return as[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("no asset")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAssetLifecycle(t *testing.T) { schematest.EachDriver(t, testAssetLifecycle) }

func testAssetLifecycle(t *testing.T, driver string) {
	cat, st, f := fixture(t, driver)
	ob := &outbox{}
	var created []string
	ended := make(chan []Asset, 1)
	l, err := New(Options{Catalog: cat, StoreFor: func(string, string) (storage.Store, error) { return st, nil }, Outbox: ob,
		Callback: CallbackConfig{URL: "http://127.0.0.1:1/cb", AuthKey: "k"},
		Hooks: Hooks{AssetCreated: func(_ context.Context, a *Asset) { created = append(created, a.ID) },
			TaskEnded: func(_ context.Context, task string, as []Asset) { ended <- as }}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l.Start(ctx)
	defer l.Close()
	l.OnEvent(record.Event{Type: record.EventFileCreated, TaskID: "t1", File: f})
	l.OnEvent(record.Event{Type: record.EventFileCreated, TaskID: "t1", File: f}) // twice: one asset
	l.OnEvent(record.Event{Type: record.EventEnded, TaskID: "t1"})
	as := <-ended
	if len(as) != 1 {
		t.Fatalf("task ended with %d assets", len(as))
	}
	a := waitAsset(t, l)
	if a.Title != "live/cam 2024-05-01T10:00:00Z" || a.Duration != 60 || a.Status != StatusNormal || len(a.PlayInfos) != 1 ||
		a.PlayInfos[0].Key != f.Key || a.PlayInfos[0].Definition != "OD" || len(a.ID) != 32 || a.TranscodeGroupID != rules.NoTranscodeGroup {
		t.Errorf("asset %+v", a)
	}
	if len(created) != 1 || created[0] != a.ID {
		t.Errorf("created hook %v", created)
	}
	ob.mu.Lock()
	if len(ob.msgs) != 1 || ob.msgs[0].Event != EventAddLiveRecordVideoComplete || ob.msgs[0].Signing != notify.SigningVOD ||
		!strings.Contains(string(ob.msgs[0].Body), `"VideoId":"`+a.ID+`"`) || !strings.Contains(string(ob.msgs[0].Body), `"RecordStartTime":"2024-05-01T10:00:00Z"`) {
		t.Errorf("events %+v", ob.msgs)
	}
	ob.mu.Unlock()

	// Filters.
	for _, c := range []struct {
		q    Query
		want int
	}{
		{Query{Stream: "cam"}, 1}, {Query{Stream: "other"}, 0},
		{Query{Statuses: []Status{StatusNormal, StatusTranscoding}}, 1}, {Query{Statuses: []Status{StatusTranscodeFail}}, 0},
		{Query{RecordFrom: f.Start.Add(30 * time.Second), RecordTo: f.Start.Add(time.Hour)}, 1},
		{Query{RecordFrom: f.End}, 0},
	} {
		if _, n, err := l.List(ctx, c.q); err != nil || n != c.want {
			t.Errorf("List(%+v) = %d, %v; want %d", c.q, n, err, c.want)
		}
	}

	// Bad updates name the field; nothing changes.
	long := strings.Repeat("x", 10000)
	var fe *FieldError
	if _, err := l.Update(ctx, a.ID, Patch{Title: &long}); !errors.As(err, &fe) || fe.Field != "title" || !strings.Contains(fe.Msg, "10000 bytes") {
		t.Errorf("10000-char title: %v", err)
	}
	bad := "ftp://x/y.jpg"
	if _, err := l.Update(ctx, a.ID, Patch{Cover: &bad}); !errors.As(err, &fe) || fe.Field != "cover" {
		t.Errorf("bad cover: %v", err)
	}
	title, desc := "Match day", "the final"
	if u, err := l.Update(ctx, a.ID, Patch{Title: &title, Description: &desc}); err != nil || u.Title != title || u.Description != desc {
		t.Errorf("update %+v %v", u, err)
	}

	// Hooks of the wiring.
	if err := l.SetCover(ctx, a.ID, "vod/assets/"+a.ID+"/cover.jpg"); err != nil {
		t.Fatal(err)
	}
	if err := l.AddPlayInfo(ctx, a.ID, PlayInfo{Definition: "LD", Format: "mp4", Width: 640, Height: 360, Key: "vod/assets/" + a.ID + "/ld.mp4"}); err != nil {
		t.Fatal(err)
	}
	if err := l.SetStatus(ctx, a.ID, StatusTranscoding, ""); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(ctx, a.ID); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "Transcoding") {
		t.Errorf("delete while transcoding: %v", err)
	}
	if _, err := l.Get(ctx, a.ID); err != nil {
		t.Errorf("asset gone after a refused delete: %v", err)
	}
	if err := l.SetStatus(ctx, a.ID, StatusNormal, ""); err != nil {
		t.Fatal(err)
	}
	got, _ := l.Get(ctx, a.ID)
	if got.Cover == "" || len(got.Snapshots) != 1 || len(got.PlayInfos) != 2 {
		t.Errorf("after the setters %+v", got)
	}
	if err := l.Delete(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{f.Key, "vod/live/cam/1714557600_0.ts", "vod/live/cam/1714557630_1.ts"} {
		if _, err := st.Open(ctx, k); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s after delete: %v", k, err)
		}
	}
	if _, err := l.Get(ctx, a.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
}

// TestCatchUp: a file generated while the library was not running becomes an asset at Start.
func TestCatchUp(t *testing.T) { schematest.EachDriver(t, testCatchUp) }

func testCatchUp(t *testing.T, driver string) {
	cat, st, _ := fixture(t, driver)
	l, err := New(Options{Catalog: cat, StoreFor: func(string, string) (storage.Store, error) { return st, nil }})
	if err != nil {
		t.Fatal(err)
	}
	l.Start(context.Background())
	defer l.Close()
	if a := waitAsset(t, l); a.FileID != "f1" {
		t.Errorf("asset %+v", a)
	}
}

// Two nodes' libraries on one catalog making the asset of one file at once (a node's
// catch-up at start racing another's event): one asset, one creation event, no error.
func TestFromFileRace(t *testing.T) { schematest.EachDriver(t, testFromFileRace) }

func testFromFileRace(t *testing.T, driver string) {
	cat, st, f := fixture(t, driver)
	var boxes [2]outbox
	var libs [2]*Library
	for i := range libs {
		l, err := New(Options{Catalog: cat, Outbox: &boxes[i], Callback: CallbackConfig{URL: "http://127.0.0.1:1/cb"}, StoreFor: func(string, string) (storage.Store, error) { return st, nil }})
		if err != nil {
			t.Fatal(err)
		}
		libs[i] = l
	}
	r := rules.Rule{DomainName: "d.test", AppName: "live", StreamName: "cam", Vod: &rules.VodSettings{CycleDuration: 300}}
	r.Normalize()
	var wg sync.WaitGroup
	ids := make([]string, 16)
	for i := range ids {
		wg.Go(func() {
			a, err := libs[i%2].fromFile(context.Background(), f, &r)
			if err != nil {
				t.Errorf("fromFile %d: %v", i, err)
				return
			}
			ids[i] = a.ID
		})
	}
	wg.Wait()
	_, n, err := libs[0].List(context.Background(), Query{})
	if err != nil || n != 1 {
		t.Fatalf("%d assets (%v), want 1", n, err)
	}
	for i := range ids {
		if ids[i] != ids[0] {
			t.Fatalf("fromFile returned assets %v", ids)
		}
	}
	if got := len(boxes[0].msgs) + len(boxes[1].msgs); got != 1 {
		t.Fatalf("%d creation events, want 1", got)
	}
}
