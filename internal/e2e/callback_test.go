package e2e

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/testenv"
)

type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	bodies   []map[string]any
	headers  []http.Header
	failures int // answer 500 to this many requests first
	ondemand string
	queries  []url.Values
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if r.Method == http.MethodGet {
			rc.queries = append(rc.queries, r.URL.Query())
			io.WriteString(w, rc.ondemand)
			return
		}
		if rc.failures > 0 {
			rc.failures--
			w.WriteHeader(500)
			return
		}
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		rc.bodies = append(rc.bodies, m)
		rc.headers = append(rc.headers, r.Header.Clone())
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) events() (out []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, b := range rc.bodies {
		if e, ok := b["event"].(string); ok {
			out = append(out, e)
		} else if _, ok := b["uri"]; ok {
			out = append(out, "file_created")
		}
	}
	return out
}

func (rc *receiver) waitFor(t *testing.T, event string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		rc.mu.Lock()
		for i, b := range rc.bodies {
			if b["event"] == event || event == "file_created" && b["uri"] != nil {
				h := rc.headers[i]
				rc.mu.Unlock()
				b["_ts"], b["_sig"] = h.Get("ALI-LIVE-TIMESTAMP"), h.Get("ALI-LIVE-SIGNATURE")
				return b
			}
		}
		rc.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no %s callback within %v (got %v)", event, timeout, rc.events())
	return nil
}

func (s *server) put(path string, body any) (int, string) {
	s.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPut, s.url(path), strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// TestCallbacks: status events and file_created reach the domain's notifyUrl, signed,
// with the push URL's callback_* arguments; a receiver that is down while livrec
// restarts still gets the file_created callback afterwards.
func TestCallbacks(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	rc := newReceiver(t)
	src := makeSource(t, t.TempDir(), 4)
	// The receiver is on loopback, which callbacks may only reach when allowed.
	s := startServer(t, t.TempDir(), hlsConfig+"allowPrivateCallbacks: true\n")
	if code, body := s.put("/api/v1/domains/example.com/notify", map[string]any{"notifyUrl": rc.URL + "/cb",
		"needStatusNotify": true, "notifyReqAuth": true, "notifyAuthKey": "sekret"}); code != 200 {
		t.Fatalf("notify config: %d %s", code, body)
	}
	if code, body := s.put("/api/v1/domains/example.com/notify", map[string]any{"notifyUrl": "ftp://x"}); code != 400 || !strings.Contains(body, "notifyUrl") {
		t.Fatalf("bad notifyUrl accepted: %d %s", code, body)
	}
	if out, err := push(t, src, s.rtmpURL("live", "cb")+"?vhost=example.com&callback_myid=42&other=x"); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	started := rc.waitFor(t, "record_started", 5*time.Second)
	if started["domain"] != "example.com" || started["app"] != "live" || started["stream"] != "cb" {
		t.Fatalf("record_started: %v", started)
	}
	host, _, _ := strings.Cut(strings.TrimPrefix(rc.URL, "http://"), ":")
	sum := md5.Sum([]byte(fmt.Sprintf("%s|%s|sekret", host, started["_ts"])))
	if started["_sig"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("signature %v, want md5(host|ts|key) = %x", started["_sig"], sum)
	}
	rc.waitFor(t, "record_paused", 5*time.Second)

	// The receiver goes down; livrec finalizes on shutdown and restarts; the pending
	// file_created is delivered once the receiver answers again.
	rc.mu.Lock()
	rc.failures = 1 << 30
	rc.mu.Unlock()
	s.waitIdle()
	s.stop()
	rc.mu.Lock()
	rc.failures = 0
	rc.mu.Unlock()
	s.start()
	file := rc.waitFor(t, "file_created", 20*time.Second)
	recs := s.waitDone("stream=cb", 1, time.Second)
	if file["uri"] != recs[0].Key || file["duration"].(float64) < 3.9 {
		t.Fatalf("file_created %v for %+v", file, recs[0])
	}
	if args, _ := file["push_args"].(map[string]any); len(args) != 1 || args["callback_myid"] != "42" {
		t.Fatalf("push_args %v, want only callback_myid", file["push_args"])
	}
	resp, err := http.Get(s.url("/api/v1/callbacks?domain=example.com&event=file_created"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"success"`) {
		t.Fatalf("callback history does not show the delivery: %s", b)
	}
}

// TestOnDemand: onDemand 1 asks the domain's onDemandUrl; its formats narrow the rule's.
func TestOnDemand(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	rc := newReceiver(t)
	rc.ondemand = `{"ApiVersion":"1.0","NeedRecord":true,"Format":["flv"]}`
	src := makeSource(t, t.TempDir(), 5)
	s := startServer(t, t.TempDir(), `
allowPrivateCallbacks: true # the receiver is on loopback
rules:
  - domainName: "*"
    appName: "*"
    onDemand: 1
    delayTime: 15
    recordFormats:
      - format: m3u8
      - format: flv
`)
	s.put("/api/v1/domains/example.com/notify", map[string]any{"notifyUrl": rc.URL + "/cb", "onDemandUrl": rc.URL + "/ask"})
	if out, err := push(t, src, s.rtmpURL("live", "yes")+"?vhost=example.com", "-re"); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	rc.mu.Lock()
	rc.ondemand = `{"NeedRecord":false}`
	rc.mu.Unlock()
	if out, err := push(t, src, s.rtmpURL("live", "no")+"?vhost=example.com", "-re"); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	s.waitIdle()
	s.stop()
	s.start()
	recs := s.waitDone("stream=yes", 1, 5*time.Second)
	if len(recs) != 1 || recs[0].Format != "flv" {
		t.Fatalf("want only the flv format the callback chose, got %+v", recs)
	}
	// The media before the answer (asked ~2 s in) is not lost.
	if recs[0].Duration < 4.9 {
		t.Fatalf("on-demand recording lasts %.2f s of 5 s", recs[0].Duration)
	}
	if got := s.recordings("stream=no"); len(got) != 0 {
		t.Fatalf("NeedRecord false recorded: %+v", got)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.queries) != 2 || rc.queries[0].Get("stream") != "yes" || rc.queries[0].Get("codec") != "h264" || rc.queries[0].Get("vbitrate") == "" {
		t.Fatalf("on-demand queries: %v", rc.queries)
	}
}

// TestCallbackURLUnsafe: by default a notifyUrl on loopback (or the metadata address) is
// refused with an error naming the field, and nothing is stored.
func TestCallbackURLUnsafe(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	rc := newReceiver(t)
	s := startServer(t, t.TempDir(), hlsConfig)
	for _, u := range []string{rc.URL + "/cb", "http://169.254.169.254/latest/meta-data/", "http://127.1/", "http://[::1]/"} {
		code, body := s.put("/api/v1/domains/example.com/notify", map[string]any{"notifyUrl": u})
		if code != 400 || !strings.Contains(body, `"notifyUrl"`) || !strings.Contains(body, "allowPrivateCallbacks") {
			t.Errorf("notifyUrl %s: %d %s, want 400 naming notifyUrl", u, code, body)
		}
	}
	resp, err := http.Get(s.url("/api/v1/domains/example.com/notify"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("a refused configuration was stored: %d", resp.StatusCode)
	}
}
