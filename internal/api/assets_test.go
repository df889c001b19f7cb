package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/jobs"
	"github.com/livrec/livrec/internal/storage"
	"github.com/livrec/livrec/internal/vod"
)

// vodEnv is a real library and job queue on a temporary catalog, served by the API.
type vodEnv struct {
	*rulesEnv
	cat *catalog.Catalog
	st  *storage.Local
	lib *vod.Library
}

func newVodEnv(t *testing.T, groups *vod.TranscodeGroups, q JobQueue) *vodEnv {
	t.Helper()
	dir := t.TempDir()
	cat, err := catalog.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	st, err := storage.NewLocal(filepath.Join(dir, "files"))
	if err != nil {
		t.Fatal(err)
	}
	lib, err := vod.New(vod.Options{Catalog: cat, StoreFor: func(string, string) (storage.Store, error) { return st, nil },
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s := &Server{Library: lib, TranscodeGroups: groups, Jobs: q}
	s.registerAssets(mux)
	s.registerJobs(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &vodEnv{rulesEnv: &rulesEnv{t: t, srv: srv}, cat: cat, st: st, lib: lib}
}

// put stores an object in the library's storage.
func (e *vodEnv) put(key, body string) {
	e.t.Helper()
	p := filepath.Join(e.t.TempDir(), "obj")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := e.st.Store(context.Background(), key, p); err != nil {
		e.t.Fatal(err)
	}
}

// asset makes a cycle asset of stream with an m3u8 original of two segments and a
// snapshot, all stored.
func (e *vodEnv) asset(stream string, start time.Time) *vod.Asset {
	e.t.Helper()
	dir := "vod/live/" + stream + "/" + fmt.Sprint(start.Unix())
	e.put(dir+"/0.ts", "seg0")
	e.put(dir+"/1.ts", "seg1")
	e.put(dir+"/index.m3u8", "#EXTM3U\n#EXTINF:30,\n0.ts\n#EXTINF:30,\n1.ts\n#EXT-X-ENDLIST\n")
	e.put(dir+"/snap.jpg", "jpeg")
	a, err := e.lib.Create(context.Background(), &vod.Asset{Kind: vod.KindCycle, Status: vod.StatusNormal, Title: "live/" + stream,
		Domain: "d.test", App: "live", Stream: stream, Duration: 60, Size: 8, RecordStart: start, RecordEnd: start.Add(time.Minute),
		Snapshots: []string{dir + "/snap.jpg"},
		PlayInfos: []vod.PlayInfo{{Definition: vod.DefinitionOriginal, Format: "m3u8", Width: 640, Height: 360, Duration: 60, Key: dir + "/index.m3u8"}}})
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

type fieldErr struct{ Error, Field string }

// TestAssetsAPI: list with filters and paging, get, patch with field errors, delete
// refused while transcoding and then removing the library's files.
func TestAssetsAPI(t *testing.T) {
	e := newVodEnv(t, nil, nil)
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 3 {
		ids = append(ids, e.asset("cam", t0.Add(time.Duration(i)*time.Hour)).ID)
		time.Sleep(2 * time.Millisecond) // distinct creation times (ms)
	}
	other := e.asset("other", t0.Add(10*time.Hour))
	ctx := context.Background()
	if err := e.lib.SetStatus(ctx, ids[1], vod.StatusTranscodeFail, "ffmpeg: boom"); err != nil {
		t.Fatal(err)
	}

	list := func(query string) assetList {
		t.Helper()
		r := e.send("GET", "/api/v1/assets"+query, "")
		if r.status != 200 {
			t.Fatalf("list %s: %d %s", query, r.status, r.body)
		}
		var l assetList
		r.json(t, &l)
		return l
	}
	l := list("")
	if l.Total != 4 || len(l.Assets) != 4 || l.Page != 1 || l.PageSize != vod.DefaultPageSize || l.Assets[0].ID != other.ID {
		t.Fatalf("list all: total %d, %d assets, page %d/%d, first %s", l.Total, len(l.Assets), l.Page, l.PageSize, l.Assets[0].ID)
	}
	a := l.Assets[3] // the oldest: ids[0]
	if a.ID != ids[0] || len(a.PlayInfos) != 1 || a.PlayInfos[0].URL != "/files/"+a.PlayInfos[0].Key ||
		len(a.SnapshotURLs) != 1 || a.SnapshotURLs[0] != "/files/"+a.Snapshots[0] || a.Domain != "d.test" {
		t.Errorf("asset JSON %+v", a)
	}
	// The JSON names are lowerCamelCase.
	raw := e.send("GET", "/api/v1/assets/"+ids[0], "")
	for _, name := range []string{`"playInfos"`, `"snapshotUrls"`, `"streamName"`, `"recordStartTime"`, `"url": "/files/vod/live/cam/`} {
		if !strings.Contains(string(raw.body), name) {
			t.Errorf("asset JSON has no %s:\n%s", name, raw.body)
		}
	}

	for _, c := range []struct {
		query string
		want  int
	}{
		{"?streamName=cam", 3}, {"?streamName=none", 0}, {"?domainName=D.TEST&appName=live", 4},
		{"?status=TranscodeFail", 1}, {"?status=Normal,TranscodeFail", 4},
		{"?timeField=recordTime&from=" + t0.Add(90*time.Minute).Format(time.RFC3339) + "&to=" + t0.Add(5*time.Hour).Format(time.RFC3339), 1},
		{"?timeField=recordTime&from=" + fmt.Sprint(t0.Add(9*time.Hour).Unix()), 1},
		{"?from=" + time.Now().Add(time.Hour).Format(time.RFC3339), 0},
		{"?to=" + time.Now().Add(time.Hour).Format(time.RFC3339), 4},
		{"?kind=composed", 0},
	} {
		if got := list(c.query); got.Total != c.want || len(got.Assets) != c.want {
			t.Errorf("list %s: total %d, %d assets; want %d", c.query, got.Total, len(got.Assets), c.want)
		}
	}
	// Paging: total counts every match, the page holds pageSize.
	p2 := list("?streamName=cam&pageSize=2&page=2&order=asc")
	if p2.Total != 3 || len(p2.Assets) != 1 || p2.Assets[0].ID != ids[2] || p2.Page != 2 || p2.PageSize != 2 {
		t.Errorf("page 2: %+v", p2)
	}

	for _, c := range []struct{ query, field, msg string }{
		{"?pageSize=101", "pageSize", "1–100"}, {"?pageSize=0", "pageSize", "1–100"}, {"?page=0", "page", "1–1000000"},
		{"?page=x", "page", "integer"}, {"?status=Done", "status", "Normal"}, {"?from=yesterday", "from", "RFC 3339"},
		{"?from=2000&to=1000", "to", "after from"}, {"?timeField=x", "timeField", "recordTime"}, {"?order=up", "order", "asc"},
		{"?kind=x", "kind", "composed"}, {"?domainName=a%20b", "domainName", "domainName"},
	} {
		r := e.send("GET", "/api/v1/assets"+c.query, "")
		var fe fieldErr
		r.json(t, &fe)
		if r.status != 400 || fe.Field != c.field || !strings.Contains(fe.Error, c.msg) {
			t.Errorf("list %s: %d %s; want 400 naming %s with %q", c.query, r.status, r.body, c.field, c.msg)
		}
	}

	// Get.
	if r := e.send("GET", "/api/v1/assets/"+strings.ToUpper(ids[2]), ""); r.status != 200 {
		t.Errorf("get: %d %s", r.status, r.body)
	}
	for _, id := range []string{"0123456789abcdef0123456789abcdef", "nope"} {
		r := e.send("GET", "/api/v1/assets/"+id, "")
		var fe fieldErr
		r.json(t, &fe)
		if r.status != 404 || fe.Field != "id" {
			t.Errorf("get %s: %d %s", id, r.status, r.body)
		}
	}

	// Patch: each bad field names itself and its allowed range; nothing changes.
	path := "/api/v1/assets/" + ids[0]
	for _, c := range []struct{ body, field, msg string }{
		{`{"title":"` + strings.Repeat("x", 10000) + `"}`, "title", "at most 128 bytes"},
		{`{"title":"  "}`, "title", "1–128 bytes"},
		{`{"description":"` + strings.Repeat("d", 1025) + `"}`, "description", "at most 1024 bytes"},
		{`{"coverUrl":"/files/vod/not/a/snapshot.jpg"}`, "coverUrl", "snapshots"},
		{`{"coverUrl":"ftp://x/y.jpg"}`, "coverUrl", "http(s)"},
		{`{"title":5}`, "title", "want"},
		{`{"cover":"x"}`, "cover", "unknown field"},
		{`{}`, "", "nothing to change"},
	} {
		r := e.send("PATCH", path, c.body)
		var fe fieldErr
		r.json(t, &fe)
		if r.status != 400 || fe.Field != c.field || !strings.Contains(fe.Error, c.msg) {
			t.Errorf("patch %.60s: %d %.300s; want 400 naming %q with %q", c.body, r.status, r.body, c.field, c.msg)
		}
	}
	if got, _ := e.lib.Get(ctx, ids[0]); got.Title != "live/cam" || got.Cover != "" {
		t.Errorf("a refused patch changed the asset: %+v", got)
	}
	snapURL := a.SnapshotURLs[0]
	r := e.send("PATCH", path, `{"title":"Match day","description":"the final","coverUrl":"`+snapURL+`"}`)
	var patched assetJSON
	r.json(t, &patched)
	if r.status != 200 || patched.Title != "Match day" || patched.Description != "the final" || patched.Cover != a.Snapshots[0] || patched.CoverURL != snapURL {
		t.Errorf("patch: %d %s", r.status, r.body)
	}
	if got, _ := e.lib.Get(ctx, ids[0]); got.Title != "Match day" || got.Cover != a.Snapshots[0] {
		t.Errorf("patch not stored: %+v", got)
	}
	if r := e.send("PATCH", path, `{"coverUrl":""}`); r.status != 200 {
		t.Errorf("clear the cover: %d %s", r.status, r.body)
	} else if got, _ := e.lib.Get(ctx, ids[0]); got.Cover != "" {
		t.Errorf("cover after clearing: %q", got.Cover)
	}
	if r := e.send("PATCH", "/api/v1/assets/0123456789abcdef0123456789abcdef", `{"title":"x"}`); r.status != 404 {
		t.Errorf("patch of no asset: %d %s", r.status, r.body)
	}

	// Delete: 409 while transcoding, nothing lost; then the files go.
	if err := e.lib.SetStatus(ctx, ids[0], vod.StatusTranscoding, ""); err != nil {
		t.Fatal(err)
	}
	r = e.send("DELETE", path, "")
	var fe fieldErr
	r.json(t, &fe)
	if r.status != 409 || !strings.Contains(fe.Error, "Transcoding") || !strings.Contains(fe.Error, "cannot be deleted") {
		t.Errorf("delete while transcoding: %d %s", r.status, r.body)
	}
	keys := []string{a.PlayInfos[0].Key, a.Snapshots[0], strings.TrimSuffix(a.PlayInfos[0].Key, "index.m3u8") + "0.ts"}
	for _, k := range keys {
		if _, err := e.st.Open(ctx, k); err != nil {
			t.Errorf("%s after a refused delete: %v", k, err)
		}
	}
	if err := e.lib.SetStatus(ctx, ids[0], vod.StatusNormal, ""); err != nil {
		t.Fatal(err)
	}
	if r := e.send("DELETE", path, ""); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	for _, k := range keys {
		if o, err := e.st.Open(ctx, k); !errors.Is(err, storage.ErrNotFound) {
			if o != nil {
				o.Close()
			}
			t.Errorf("%s after delete: %v", k, err)
		}
	}
	if r := e.send("DELETE", path, ""); r.status != 404 {
		t.Errorf("second delete: %d %s", r.status, r.body)
	}
	if l := list(""); l.Total != 3 {
		t.Errorf("after delete: total %d", l.Total)
	}
}

// TestVodNotConfigured: without a library or a queue the routes answer 503 saying so.
func TestVodNotConfigured(t *testing.T) {
	mux := http.NewServeMux()
	s := &Server{}
	s.registerAssets(mux)
	s.registerJobs(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	e := &rulesEnv{t: t, srv: srv}
	for _, c := range []struct{ method, path, msg string }{
		{"GET", "/api/v1/assets", "VOD library is not configured"},
		{"GET", "/api/v1/assets/0123456789abcdef0123456789abcdef", "VOD library is not configured"},
		{"PATCH", "/api/v1/assets/0123456789abcdef0123456789abcdef", "VOD library is not configured"},
		{"DELETE", "/api/v1/assets/0123456789abcdef0123456789abcdef", "VOD library is not configured"},
		{"GET", "/api/v1/jobs", "job queue is not configured"},
		{"GET", "/api/v1/jobs/1", "job queue is not configured"},
		{"POST", "/api/v1/jobs/1/cancel", "job queue is not configured"},
	} {
		r := e.send(c.method, c.path, `{"title":"x"}`)
		if r.status != 503 || !strings.Contains(string(r.body), c.msg) {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.status, r.body)
		}
	}
	// The transcode groups need neither: the built-in one is always there.
	r := e.send("GET", "/api/v1/vod/transcode-groups", "")
	var gl transcodeGroupList
	r.json(t, &gl)
	if r.status != 200 || len(gl.Groups) != 1 || gl.Groups[0].ID != vod.NoTranscodeGroupID {
		t.Errorf("groups without config: %d %s", r.status, r.body)
	}
}

// TestTranscodeGroupsAPI lists the built-in group and the configured ones.
func TestTranscodeGroupsAPI(t *testing.T) {
	groups, err := vod.NewTranscodeGroups([]vod.TranscodeGroup{{ID: "two", Name: "360p and 540p", Templates: []vod.TranscodeTemplate{
		{Definition: "LD", Container: "mp4", Height: 360, VideoBitrate: 400},
		{Definition: "SD", Height: 540, VideoBitrate: 800}}}})
	if err != nil {
		t.Fatal(err)
	}
	e := newVodEnv(t, groups, nil)
	r := e.send("GET", "/api/v1/vod/transcode-groups", "")
	var gl transcodeGroupList
	r.json(t, &gl)
	if r.status != 200 || len(gl.Groups) != 2 || gl.Groups[0].ID != "VOD_NO_TRANSCODE" || gl.Groups[0].Templates == nil ||
		gl.Groups[1].ID != "two" || len(gl.Groups[1].Templates) != 2 || gl.Groups[1].Templates[1].Container != "m3u8" ||
		gl.Groups[1].Templates[0].AudioBitrate != vod.DefaultTranscodeAudioKbps {
		t.Errorf("groups: %d %s", r.status, r.body)
	}
	var g vod.TranscodeGroup
	if r := e.send("GET", "/api/v1/vod/transcode-groups/two", ""); r.status != 200 {
		t.Errorf("get group: %d %s", r.status, r.body)
	} else if r.json(t, &g); g.Name != "360p and 540p" {
		t.Errorf("group %+v", g)
	}
	r = e.send("GET", "/api/v1/vod/transcode-groups/nope", "")
	var fe fieldErr
	r.json(t, &fe)
	if r.status != 404 || fe.Field != "id" || !strings.Contains(fe.Error, "VOD_NO_TRANSCODE, two") {
		t.Errorf("unknown group: %d %s", r.status, r.body)
	}
}

// testJob is a job of an asset that reports progress and logs, then waits to be
// released or cancelled.
type testJob struct {
	AssetID string `json:"assetId"`
}

func (testJob) Kind() string { return "test.vodapi" }

type otherJob struct{}

func (otherJob) Kind() string { return "test.other" }

// TestJobsAPI: a real queue; a running job shows its progress and log lines, jobs are
// filtered by kind, state and assetId, a running job is cancelled, a finished one is 409.
func TestJobsAPI(t *testing.T) {
	cat, err := catalog.Open(filepath.Join(t.TempDir(), "jobs.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	ctx := context.Background()
	q, err := jobs.Open(ctx, cat.DB(), jobs.Config{Concurrency: 3, PollInterval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	if err := jobs.Register(q, func(ctx context.Context, j *jobs.Job, a testJob) error {
		j.Logf("transcoding %s", a.AssetID)
		j.Progress(42)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := jobs.Register(q, func(ctx context.Context, j *jobs.Job, a otherJob) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		q.Stop(c)
	})
	e := newVodEnv(t, nil, q)

	a1, a2 := strings.Repeat("a", 32), strings.Repeat("b", 32)
	id1, _, err := q.Enqueue(ctx, testJob{AssetID: a1}, jobs.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id2, _, err := q.Enqueue(ctx, testJob{AssetID: a2}, jobs.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id3, _, err := q.Enqueue(ctx, otherJob{}, jobs.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}

	get := func(id int64) jobs.Info {
		t.Helper()
		r := e.send("GET", fmt.Sprintf("/api/v1/jobs/%d", id), "")
		if r.status != 200 {
			t.Fatalf("get job %d: %d %s", id, r.status, r.body)
		}
		var in jobs.Info
		r.json(t, &in)
		return in
	}
	// Both test jobs run and show their progress and log line.
	deadline := time.Now().Add(10 * time.Second)
	for _, id := range []int64{id1, id2} {
		for {
			in := get(id)
			if in.State == jobs.StateRunning && in.Progress == 42 && len(in.Logs) > 0 && strings.HasPrefix(in.Logs[0].Line, "transcoding ") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %d: %+v, want running at 42%% with its log line", id, in)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for get(id3).State != jobs.StateCompleted {
		if time.Now().After(deadline) {
			t.Fatal("other job not completed")
		}
		time.Sleep(20 * time.Millisecond)
	}

	list := func(query string) []int64 {
		t.Helper()
		r := e.send("GET", "/api/v1/jobs"+query, "")
		if r.status != 200 {
			t.Fatalf("list %s: %d %s", query, r.status, r.body)
		}
		var l jobList
		r.json(t, &l)
		var ids []int64
		for _, in := range l.Jobs {
			ids = append(ids, in.ID)
		}
		return ids
	}
	for _, c := range []struct {
		query string
		want  []int64
	}{
		{"", []int64{id3, id2, id1}},
		{"?kind=test.vodapi", []int64{id2, id1}},
		{"?state=running", []int64{id2, id1}},
		{"?state=completed,cancelled", []int64{id3}},
		{"?assetId=" + a1, []int64{id1}},
		{"?assetId=" + strings.ToUpper(a2) + "&state=running", []int64{id2}},
		{"?assetId=" + strings.Repeat("c", 32), nil},
		{"?limit=1", []int64{id3}},
	} {
		if got := list(c.query); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("list %s: %v, want %v", c.query, got, c.want)
		}
	}
	for _, c := range []struct{ query, field, msg string }{
		{"?state=done", "state", "running"}, {"?limit=0", "limit", "1–1000"}, {"?limit=1001", "limit", "1–1000"},
	} {
		r := e.send("GET", "/api/v1/jobs"+c.query, "")
		var fe fieldErr
		r.json(t, &fe)
		if r.status != 400 || fe.Field != c.field || !strings.Contains(fe.Error, c.msg) {
			t.Errorf("list %s: %d %s", c.query, r.status, r.body)
		}
	}

	// Cancel a running job: its context ends, it is not retried.
	r := e.send("POST", fmt.Sprintf("/api/v1/jobs/%d/cancel", id1), "")
	if r.status != 200 {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	for get(id1).State != jobs.StateCancelled {
		if time.Now().After(deadline) {
			t.Fatalf("cancelled job: %+v", get(id1))
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(release)
	for get(id2).State != jobs.StateCompleted {
		if time.Now().After(deadline) {
			t.Fatalf("released job: %+v", get(id2))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if in := get(id2); in.Progress != 100 {
		t.Errorf("completed job at %v%%", in.Progress)
	}
	for _, id := range []int64{id1, id2} {
		r := e.send("POST", fmt.Sprintf("/api/v1/jobs/%d/cancel", id), "")
		if r.status != 409 || !strings.Contains(string(r.body), "nothing to cancel") {
			t.Errorf("cancel of finished job %d: %d %s", id, r.status, r.body)
		}
	}
	for _, p := range []string{"/api/v1/jobs/999999", "/api/v1/jobs/x", "/api/v1/jobs/0"} {
		r := e.send("GET", p, "")
		var fe fieldErr
		r.json(t, &fe)
		if r.status != 404 || fe.Field != "id" {
			t.Errorf("get %s: %d %s", p, r.status, r.body)
		}
	}
	if r := e.send("POST", "/api/v1/jobs/999999/cancel", ""); r.status != 404 {
		t.Errorf("cancel of no job: %d %s", r.status, r.body)
	}
}
