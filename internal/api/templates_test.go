package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/templatedb"
	"github.com/livrec/livrec/internal/transcode"
)

// TestTranscodeTemplatesAPI: create, list, get, replace and delete a template through
// the JSON API; every change hands the transcoder a new library; bad input names the
// field; the store persists across a reopen of the catalog.
func TestTranscodeTemplatesAPI(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	cat, err := catalog.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var lib atomic.Pointer[transcode.Library]
	ts, err := templatedb.New(context.Background(), cat.DB(), []transcode.Template{{ID: "cfg", Height: 360, VideoBitrate: 400}},
		func(l *transcode.Library) { lib.Store(l) }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	(&Server{Templates: ts}).registerTemplates(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	e := &rulesEnv{t: t, srv: srv}

	if r := e.send("POST", "/api/v1/transcode/templates", `{"domainName":"a.example","appName":"live","id":"p480","height":480,"videoBitrate":800}`); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if got, ok := lib.Load().Lookup("a.example", "live", "p480"); !ok || got.Height != 480 {
		t.Fatalf("library after create: %+v %v", got, ok)
	}
	for _, c := range []struct{ body, field string }{
		{`{"id":"a.b","height":480,"videoBitrate":800}`, "id"},
		{`{"id":"lsd","height":480,"videoBitrate":800}`, "id"},
		{`{"id":"x","height":481,"videoBitrate":800}`, "height"},
		{`{"id":"x","height":480,"videoBitrate":0}`, "videoBitrate"},
		{`{"id":"x","kind":"system"}`, "id"},
	} {
		r := e.send("POST", "/api/v1/transcode/templates", c.body)
		var body struct{ Field string }
		r.json(t, &body)
		if r.status != 400 || body.Field != c.field {
			t.Errorf("%s: %d %s, want 400 naming %s", c.body, r.status, r.body, c.field)
		}
	}
	if r := e.send("POST", "/api/v1/transcode/templates", `{"domainName":"a.example","appName":"live","id":"p480","height":240,"videoBitrate":300}`); r.status != 409 {
		t.Errorf("duplicate: %d %s", r.status, r.body)
	}
	if r := e.send("PUT", "/api/v1/transcode/templates/*/*/cfg", `{"height":240,"videoBitrate":300}`); r.status != 409 {
		t.Errorf("config template changed: %d %s", r.status, r.body)
	}
	if r := e.send("PUT", "/api/v1/transcode/templates/a.example/live/p480", `{"height":540,"videoBitrate":900}`); r.status != 200 {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	var got templatedb.Stored
	r := e.send("GET", "/api/v1/transcode/templates/a.example/live/p480", "")
	r.json(t, &got)
	if got.Height != 540 || got.Source != templatedb.SourceAPI || got.CreatedAt.IsZero() {
		t.Errorf("get: %s", r.body)
	}
	var list templateList
	e.send("GET", "/api/v1/transcode/templates?domain=a.example", "").json(t, &list)
	if len(list.Templates) != 6 { // 4 built-ins, cfg, p480
		t.Errorf("list: %+v", list)
	}

	// Persisted: a new store on the reopened catalog has it.
	cat.Close()
	cat, err = catalog.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	ts2, err := templatedb.New(context.Background(), cat.DB(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := ts2.Library().Lookup("a.example", "live", "p480"); !ok || got.Height != 540 {
		t.Errorf("after reopen: %+v %v", got, ok)
	}
	if !ts2.Defined("a.example", "*", "p480") || ts2.Defined("b.example", "live", "p480") {
		t.Error("Defined: p480 of a.example/live overlaps a.example/*, not b.example/live")
	}
	if err := ts2.Delete(context.Background(), "a.example", "live", "p480"); err != nil {
		t.Fatal(err)
	}
	if _, ok := ts2.Library().Lookup("a.example", "live", "p480"); ok {
		t.Error("deleted template still in the library")
	}
}
