package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/metrics"
	"github.com/livrec/livrec/internal/notify"
	"github.com/livrec/livrec/internal/record"
	"github.com/livrec/livrec/internal/storage"
)

// consoleEnv is the whole handler (Handler()) on a real catalog, local storage holding
// one 1000-byte file, a recorder and a notifier; the console and the cloud API are stubs
// that name themselves.
type consoleEnv struct {
	srv *httptest.Server
	cat *catalog.Catalog
	not *notify.Notifier
}

func newConsoleEnv(t testing.TB, cors []string) *consoleEnv {
	t.Helper()
	dir := t.TempDir()
	cat, err := catalog.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	store, err := storage.NewLocal(filepath.Join(dir, "files"))
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src.mp4")
	if err := os.WriteFile(src, []byte(strings.Repeat("x", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := store.Store(context.Background(), "rec/a.mp4", src); err != nil {
		t.Fatal(err)
	}
	c, err := NewCORS(cors)
	if err != nil {
		t.Fatal(err)
	}
	not, err := notify.New(cat.DB(), notify.Options{MaxTries: 1, AllowPrivateCallbacks: true}) // the receivers are on loopback
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	not.Start(ctx)
	t.Cleanup(func() { cancel(); not.Close() })
	met := metrics.New()
	mgr := record.NewManager(record.Config{Catalog: cat, Store: store, WorkDir: filepath.Join(dir, "work"), Metrics: met})
	errs := &ErrorLog{}
	errs.Add(record.Event{Type: record.EventError, Time: time.Now().Add(-2 * time.Hour), Code: "old", Message: "too old to list"})
	errs.Add(record.Event{Type: record.EventStarted, Time: time.Now(), Code: "not an error"})
	errs.Add(record.Event{Type: record.EventError, Time: time.Now(), Code: "storage_unavailable", Message: "bucket gone", Stream: "s"})
	s := &Server{
		Console:  http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "console "+r.URL.Path) }),
		CloudAPI: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "cloud") }),
		CORS:     c, Catalog: cat, Store: store, Manager: mgr, Notifier: not, Metrics: met,
		Started: time.Now(), DataDir: dir, Errors: errs,
		Stores: func() []StoreStatus {
			return []StoreStatus{{Endpoint: "s3.example", Bucket: "b", State: "ok", SpoolBytes: 7}}
		},
	}
	e := &consoleEnv{srv: httptest.NewServer(s.Handler()), cat: cat, not: not}
	t.Cleanup(e.srv.Close)
	return e
}

func (e *consoleEnv) do(t *testing.T, method, path string, hdr map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestRootRouting: a browser's GET / gets the console; anything naming an Action, and
// every POST, still reaches the cloud-compatible API.
func TestRootRouting(t *testing.T) {
	e := newConsoleEnv(t, nil)
	for _, c := range []struct {
		method, path string
		hdr          map[string]string
		body, want   string
	}{
		{"GET", "/", nil, "", "console /"},
		{"GET", "/?foo=1", nil, "", "console /"},
		{"GET", "/console/app.js", nil, "", "console /console/app.js"},
		{"GET", "/?Action=DescribeLiveRecordConfig&Version=2016-11-01", nil, "", "cloud"},
		{"GET", "/", map[string]string{"x-acs-action": "DescribeLiveRecordConfig"}, "", "cloud"},
		{"POST", "/", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, "Action=DescribeLiveRecordConfig", "cloud"},
	} {
		if _, got := e.do(t, c.method, c.path, c.hdr, c.body); got != c.want {
			t.Errorf("%s %s %v: got %q, want %q", c.method, c.path, c.hdr, got, c.want)
		}
	}
}

func TestCORS(t *testing.T) {
	e := newConsoleEnv(t, []string{"https://Player.example", "http://localhost:3000"})
	const allowed = "https://player.example"
	// A Range request from an allowed origin: 206 with the headers a player reads exposed.
	resp, body := e.do(t, "GET", "/files/rec/a.mp4", map[string]string{"Origin": allowed, "Range": "bytes=10-19"}, "")
	if resp.StatusCode != http.StatusPartialContent || len(body) != 10 {
		t.Fatalf("range: %d, %d bytes", resp.StatusCode, len(body))
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != allowed {
		t.Errorf("Allow-Origin %q, want %q", got, allowed)
	}
	for _, h := range []string{"Content-Range", "Content-Length", "Accept-Ranges"} {
		if !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), h) {
			t.Errorf("Expose-Headers %q lacks %s", resp.Header.Get("Access-Control-Expose-Headers"), h)
		}
	}
	if resp.Header.Get("Vary") != "Origin" {
		t.Errorf("Vary %q, want Origin", resp.Header.Get("Vary"))
	}
	// Preflight (a Range header is not CORS-safelisted for every value).
	resp, _ = e.do(t, "OPTIONS", "/files/rec/a.mp4", map[string]string{"Origin": "http://localhost:3000",
		"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "range"}, "")
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Range") ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "GET") {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	// The live playlists too (404 here, but a player must be able to read that).
	resp, _ = e.do(t, "GET", "/live/nope.m3u8", map[string]string{"Origin": allowed}, "")
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Access-Control-Allow-Origin") != allowed {
		t.Errorf("live: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = e.do(t, "OPTIONS", "/live/x.m3u8", map[string]string{"Origin": allowed, "Access-Control-Request-Method": "GET"}, "")
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != allowed {
		t.Errorf("live preflight: %d %v", resp.StatusCode, resp.Header)
	}
	// Another origin gets nothing, and its preflight is refused.
	resp, _ = e.do(t, "GET", "/files/rec/a.mp4", map[string]string{"Origin": "https://evil.example"}, "")
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin: %d, Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	resp, _ = e.do(t, "OPTIONS", "/files/rec/a.mp4", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}, "")
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin's preflight: %d %v", resp.StatusCode, resp.Header)
	}
	// The API itself never answers CORS.
	resp, _ = e.do(t, "GET", "/api/v1/recordings", map[string]string{"Origin": allowed}, "")
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("the API answered CORS: %v", resp.Header)
	}
}

func TestCORSDefaultAndWildcard(t *testing.T) {
	e := newConsoleEnv(t, nil)
	resp, _ := e.do(t, "GET", "/files/rec/a.mp4", map[string]string{"Origin": "https://player.example"}, "")
	if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Vary") != "" {
		t.Errorf("default (no origins): %v", resp.Header)
	}
	e = newConsoleEnv(t, []string{"*"})
	resp, _ = e.do(t, "HEAD", "/files/rec/a.mp4", map[string]string{"Origin": "https://any.example"}, "")
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("wildcard: %v", resp.Header)
	}
}

func TestNewCORSRefusesBadOrigins(t *testing.T) {
	for _, o := range []string{"player.example", "ftp://player.example", "https://player.example/page", "https://", "https://a.example?x=1"} {
		_, err := NewCORS([]string{"*", o})
		if err == nil || !strings.HasPrefix(err.Error(), "corsAllowedOrigins[1]: ") {
			t.Errorf("%q: err %v, want one naming corsAllowedOrigins[1]", o, err)
		}
	}
	if _, err := NewCORS([]string{"https://a.example:8443", "http://127.0.0.1:3000/"}); err != nil {
		t.Error(err)
	}
}

// TestAPICrossOriginRefused: a page on another origin cannot make the user's browser
// change anything through the API (which trusts loopback without tokens).
func TestAPICrossOriginRefused(t *testing.T) {
	e := newConsoleEnv(t, nil)
	body := `{"command":"start"}`
	resp, _ := e.do(t, "POST", "/api/v1/streams/d/live/s/record", map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}, body)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST: %d, want 403", resp.StatusCode)
	}
	resp, _ = e.do(t, "POST", "/api/v1/streams/d/live/s/record", map[string]string{"Sec-Fetch-Site": "same-origin"}, body)
	if resp.StatusCode == http.StatusForbidden {
		t.Errorf("same-origin POST refused")
	}
	resp, _ = e.do(t, "GET", "/api/v1/streams", map[string]string{"Sec-Fetch-Site": "cross-site"}, "")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("cross-site GET: %d", resp.StatusCode)
	}
}

func TestStatus(t *testing.T) {
	e := newConsoleEnv(t, nil)
	resp, body := e.do(t, "GET", "/api/v1/status", nil, "")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var st status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Version == "" || st.GoVersion == "" || st.StartedAt.IsZero() {
		t.Errorf("version fields: %s", body)
	}
	if st.Disk.TotalBytes == 0 || st.Disk.FreeBytes == 0 || st.Disk.FreeBytes > st.Disk.TotalBytes {
		t.Errorf("disk: %+v", st.Disk)
	}
	if len(st.Storage) != 1 || st.SpoolBytes != 7 {
		t.Errorf("storage: %s", body)
	}
	if len(st.Errors) != 1 || st.Errors[0].Code != "storage_unavailable" || st.Errors[0].Stream != "s" {
		t.Errorf("errors of the last hour: %+v", st.Errors)
	}
}

func TestRecordingsTotal(t *testing.T) {
	e := newConsoleEnv(t, nil)
	for i := range 5 {
		f := &catalog.File{ID: "f" + string(rune('0'+i)), TaskID: "t", Domain: "d", App: "live", Stream: "s", Format: "mp4",
			Sequence: i, Start: time.Unix(int64(1000+i), 0), Status: catalog.FileDone}
		if err := e.cat.CreateFile(context.Background(), f); err != nil {
			t.Fatal(err)
		}
	}
	_, body := e.do(t, "GET", "/api/v1/recordings?limit=2&offset=2", nil, "")
	var l recordingList
	json.Unmarshal([]byte(body), &l)
	if l.Total != 5 || len(l.Recordings) != 2 || l.Offset != 2 {
		t.Errorf("total %d, %d recordings, offset %d: %s", l.Total, len(l.Recordings), l.Offset, body)
	}
}

// TestRetryCallback: a failed callback goes back to pending, is tried once more and is
// delivered this time, its first attempt kept.
func TestRetryCallback(t *testing.T) {
	e := newConsoleEnv(t, nil)
	fail := make(chan bool, 1)
	fail <- true
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-fail:
			w.WriteHeader(500)
		default:
		}
	}))
	defer rcv.Close()
	if err := e.not.Put(context.Background(), notify.Config{DomainName: "d.example", NotifyURL: rcv.URL}); err != nil {
		t.Fatal(err)
	}
	e.not.Notify(record.Event{Type: record.EventFileCreated, Time: time.Now(), TaskID: "t", Domain: "d.example", App: "live", Stream: "s",
		File: &catalog.File{ID: "f", Format: "mp4", Key: "k.mp4", Start: time.Now(), End: time.Now()}})
	wait := func(status string) notify.Callback {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			cbs, err := e.not.ListCallbacks(context.Background(), notify.Query{})
			if err != nil {
				t.Fatal(err)
			}
			if len(cbs) == 1 && cbs[0].Status == status {
				return cbs[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s callback: %+v", status, cbs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	cb := wait(notify.StatusFailed)
	if resp, body := e.do(t, "POST", "/api/v1/callbacks/nope/retry", nil, ""); resp.StatusCode != 404 {
		t.Errorf("unknown id: %d %s", resp.StatusCode, body)
	}
	resp, body := e.do(t, "POST", "/api/v1/callbacks/"+cb.ID+"/retry", nil, "")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("retry: %d %s", resp.StatusCode, body)
	}
	cb = wait(notify.StatusSuccess)
	if len(cb.Attempts) != 2 || cb.Attempts[0].ResponseCode != 500 || cb.Attempts[1].ResponseCode != 200 {
		t.Errorf("attempts: %+v", cb.Attempts)
	}
	if resp, body := e.do(t, "POST", "/api/v1/callbacks/"+cb.ID+"/retry", nil, ""); resp.StatusCode != http.StatusConflict {
		t.Errorf("retry of a delivered callback: %d %s", resp.StatusCode, body)
	}
}

// BenchmarkRecordingsPage: the console's first recordings page (50 newest of 1000, with
// the total) as the browser asks for it.
func BenchmarkRecordingsPage(b *testing.B) {
	e := newConsoleEnv(b, nil)
	for i := range 1000 {
		f := &catalog.File{ID: fmt.Sprintf("f%04d", i), TaskID: "t", Domain: "d", App: "live", Stream: fmt.Sprintf("s%d", i%7),
			Format: "m3u8", Sequence: i, Start: time.Unix(int64(1_700_000_000+3600*i), 0), Status: catalog.FileDone}
		if err := e.cat.CreateFile(context.Background(), f); err != nil {
			b.Fatal(err)
		}
	}
	u := e.srv.URL + "/api/v1/recordings?limit=50&offset=0&order=desc"
	for b.Loop() {
		resp, err := http.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		var l recordingList
		if err := json.NewDecoder(resp.Body).Decode(&l); err != nil || l.Total != 1000 || len(l.Recordings) != 50 {
			b.Fatalf("%v: total %d, %d recordings", err, l.Total, len(l.Recordings))
		}
		resp.Body.Close()
	}
}
