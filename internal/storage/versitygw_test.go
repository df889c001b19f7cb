package storage

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/testenv"
)

const (
	testAccess = "livrectestkey"
	testSecret = "livrectestsecret123"
	testBucket = "livrec-test"
)

// vgw is a versitygw server on 127.0.0.1 with a posix backend, restartable on the same
// port and directory.
type vgw struct {
	t      testing.TB
	bin    string
	root   string
	addr   string
	access string
	cmd    *exec.Cmd
	done   chan struct{}
}

func startVersitygw(t testing.TB) *vgw {
	t.Helper()
	bin := testenv.Path(t, testenv.Versitygw)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	v := &vgw{t: t, bin: bin, root: t.TempDir(), addr: addr}
	v.access = filepath.Join(v.root, "..", filepath.Base(v.root)+".access.log")
	if err := os.Mkdir(filepath.Join(v.root, testBucket), 0o755); err != nil {
		t.Fatal(err)
	}
	v.start()
	t.Cleanup(v.stop)
	return v
}

func (v *vgw) start() {
	v.t.Helper()
	cmd := exec.Command(v.bin, "--port", v.addr, "--access", testAccess, "--secret", testSecret,
		"--quiet", "--access-log", v.access, "posix", v.root)
	out, err := os.OpenFile(v.access+".out", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		v.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		v.t.Fatal(err)
	}
	out.Close()
	v.cmd, v.done = cmd, make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(cmd, v.done)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", v.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-v.done:
			b, _ := os.ReadFile(v.access + ".out")
			v.t.Fatalf("versitygw exited at start: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("versitygw did not listen on %s", v.addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills the server (SIGKILL: an outage, not a graceful shutdown).
func (v *vgw) stop() {
	if v.cmd == nil {
		return
	}
	_ = v.cmd.Process.Kill()
	<-v.done
	v.cmd = nil
}

func (v *vgw) config() S3Config {
	return S3Config{Endpoint: v.addr, AccessKey: testAccess, SecretKey: testSecret, Region: "us-east-1", PathStyle: true}
}

// objectPath is where the posix backend keeps an object.
func (v *vgw) objectPath(key string) string {
	return filepath.Join(v.root, testBucket, filepath.FromSlash(key))
}

// request is one request seen by the recording proxy.
type request struct {
	Method, Path, Query, IfNoneMatch string
	Status                           int
}

func (r request) String() string {
	s := r.Method + " " + r.Path
	if r.Query != "" {
		s += "?" + r.Query
	}
	if r.IfNoneMatch != "" {
		s += " [If-None-Match: " + r.IfNoneMatch + "]"
	}
	return fmt.Sprintf("%s -> %d", s, r.Status)
}

// recorder is a reverse proxy in front of versitygw that logs every request.
type recorder struct {
	mu   sync.Mutex
	reqs []request
	srv  *httptest.Server
}

func newRecorder(t testing.TB, target string) *recorder {
	t.Helper()
	u, _ := url.Parse("http://" + target)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // the signature covers the Host the client used
		},
		ErrorLog: log.New(io.Discard, "", 0), // 502s while the server is down are expected
	}
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: 200}
		rp.ServeHTTP(sw, req)
		r.mu.Lock()
		r.reqs = append(r.reqs, request{req.Method, req.URL.Path, req.URL.RawQuery, req.Header.Get("If-None-Match"), sw.status})
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(c int) { w.status = c; w.ResponseWriter.WriteHeader(c) }
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) addr() string { return strings.TrimPrefix(r.srv.URL, "http://") }

func (r *recorder) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
}

// assertCreateOnly fails the test if any request could delete or replace an object: a
// DELETE other than AbortMultipartUpload (?uploadId=), a multi-object delete (POST
// ?delete), a copy, or a PUT/complete of an object without If-None-Match: * that was not
// preceded by a HEAD of the key answered 404.
func assertCreateOnly(t testing.TB, reqs []request) {
	t.Helper()
	headMissing := map[string]bool{}
	for _, r := range reqs {
		q, _ := url.ParseQuery(r.Query)
		switch {
		case r.Method == http.MethodHead && r.Status == http.StatusNotFound:
			headMissing[r.Path] = true
		case r.Method == http.MethodDelete && !q.Has("uploadId"):
			t.Errorf("object DELETE sent: %s", r)
		case r.Method == http.MethodPost && q.Has("delete"):
			t.Errorf("multi-object delete sent: %s", r)
		case r.Method == http.MethodPut && (q.Has("partNumber") || q.Has("uploadId")):
			// A part upload: it only becomes an object through the (conditional) complete.
		case r.Method == http.MethodPut && strings.Count(strings.Trim(r.Path, "/"), "/") == 0:
			// Bucket-level PUT (tests create buckets).
		case r.Method == http.MethodPut, r.Method == http.MethodPost && q.Has("uploadId"):
			if r.IfNoneMatch != "*" {
				t.Errorf("object write without If-None-Match: *: %s", r)
			}
			if !headMissing[r.Path] {
				t.Errorf("object write without a preceding HEAD that found no object: %s", r)
			}
		}
	}
}

// logEntry is one line of versitygw's access log (the server's own record of requests,
// independent of the proxy).
type logEntry struct {
	Op, Key string
	Status  int
}

func (v *vgw) accessLog() []logEntry {
	b, _ := os.ReadFile(v.access)
	var out []logEntry
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 11 || !strings.HasPrefix(f[7], "s3_") {
			continue
		}
		st, _ := strconv.Atoi(f[10])
		out = append(out, logEntry{Op: strings.TrimPrefix(f[7], "s3_"), Key: f[8], Status: st})
	}
	return out
}

// assertNoDeleteLogged checks the server log for deletes of objects.
func (v *vgw) assertNoDeleteLogged(t testing.TB) {
	t.Helper()
	n := 0
	for _, e := range v.accessLog() {
		n++
		if strings.HasPrefix(e.Op, "DeleteObject") {
			t.Errorf("server logged %s of %s", e.Op, e.Key)
		}
	}
	if n == 0 {
		t.Errorf("server access log %s is empty", v.access)
	}
}

func newTestS3(t testing.TB, cfg S3Config) *S3 {
	t.Helper()
	s, err := NewS3(cfg, testBucket)
	if err != nil {
		t.Fatal(err)
	}
	s.Logf = t.Logf
	return s
}

func writeTemp(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

type collectT struct {
	testing.TB
	errs []string
}

func (c *collectT) Errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

// TestAssertCreateOnly checks that the proxy assertion catches what it must.
func TestAssertCreateOnly(t *testing.T) {
	c := &collectT{TB: t}
	assertCreateOnly(c, []request{
		{Method: "HEAD", Path: "/b/k", Status: 404},
		{Method: "PUT", Path: "/b/k", IfNoneMatch: "*", Status: 200},                  // fine
		{Method: "DELETE", Path: "/b/k", Query: "uploadId=1", Status: 204},            // abort: fine
		{Method: "PUT", Path: "/b/k2", IfNoneMatch: "*", Status: 200},                 // no HEAD before
		{Method: "PUT", Path: "/b/k", Status: 200},                                    // unconditional
		{Method: "DELETE", Path: "/b/k", Status: 204},                                 // delete
		{Method: "POST", Path: "/b", Query: "delete=", Status: 200},                   // multi-delete
		{Method: "POST", Path: "/b/k3", Query: "uploadId=2", Status: 200},             // unconditional complete
		{Method: "PUT", Path: "/b/k3", Query: "partNumber=1&uploadId=2", Status: 200}, // part: fine
	})
	if len(c.errs) != 6 {
		t.Fatalf("assertCreateOnly found %d problems, want 6: %q", len(c.errs), c.errs)
	}
}
