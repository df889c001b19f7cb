package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func readAll(t testing.TB, st Store, key string) []byte {
	t.Helper()
	o, err := st.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("open %s: %v", key, err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	if o.Size() != int64(len(b)) {
		t.Fatalf("%s: Size()=%d, read %d", key, o.Size(), len(b))
	}
	return b
}

// TestS3Versitygw stores small and multipart objects through a recording proxy and checks
// read-back, Seek, the no-overwrite rules and that no DELETE or unconditional PUT is sent.
func TestS3Versitygw(t *testing.T) {
	v := startVersitygw(t)
	rec := newRecorder(t, v.addr)
	cfg := v.config()
	cfg.Endpoint = rec.addr()
	cfg.PartSize = 5 << 20
	s := newTestS3(t, cfg)
	ctx := ctxT(t, 40*time.Second)
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	work := t.TempDir()

	small := randomBytes(1000, 1)
	big := randomBytes(12<<20+12345, 2) // three parts
	for _, c := range []struct {
		key  string
		body []byte
	}{{"rec/s1/0001.ts", small}, {"rec/s1/big.flv", big}, {"rec/s1/empty.txt", nil}} {
		p := writeTemp(t, work, "f", c.body)
		if err := s.Store(ctx, c.key, p); err != nil {
			t.Fatalf("store %s: %v", c.key, err)
		}
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: local file not removed after upload (%v)", c.key, err)
		}
		if got := readAll(t, s, c.key); !bytes.Equal(got, c.body) {
			t.Fatalf("%s: read back %d bytes differ from %d stored", c.key, len(got), len(c.body))
		}
		if disk, err := os.ReadFile(v.objectPath(c.key)); err != nil || !bytes.Equal(disk, c.body) {
			t.Fatalf("%s: server file differs (%v)", c.key, err)
		}
		// The same bytes compare equal (ETag path for both plain and multipart).
		p = writeTemp(t, work, "same", c.body)
		if same, err := SameContent(ctx, s, c.key, p); err != nil || !same {
			t.Fatalf("%s: SameContent=%v, %v", c.key, same, err)
		}
	}

	// Seek on the opened object.
	o, err := s.Open(ctx, "rec/s1/big.flv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Seek(10<<20, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 4096)
	if _, err := io.ReadFull(o, part); err != nil || !bytes.Equal(part, big[10<<20:10<<20+4096]) {
		t.Fatalf("read after seek: %v", err)
	}
	o.Close()
	if _, err := s.Open(ctx, "rec/none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}

	// A second store of a taken key: ErrExists, local file kept, object unchanged.
	for _, key := range []string{"rec/s1/0001.ts", "rec/s1/big.flv"} {
		other := writeTemp(t, work, "other", randomBytes(len(small), 3))
		if err := s.Store(ctx, key, other); !errors.Is(err, ErrExists) {
			t.Fatalf("%s: second store: want ErrExists, got %v", key, err)
		}
		if _, err := os.Stat(other); err != nil {
			t.Fatalf("local file gone after a clash: %v", err)
		}
		if same, err := SameContent(ctx, s, key, other); err != nil || same {
			t.Fatalf("SameContent of different bytes = %v, %v", same, err)
		}
	}
	if got := readAll(t, s, "rec/s1/0001.ts"); !bytes.Equal(got, small) {
		t.Fatal("object replaced")
	}

	// The server itself refuses a conditional PUT on a taken key (what protects against a
	// writer that appears between HEAD and PUT), single and multipart.
	for _, c := range []struct {
		key  string
		body []byte
	}{{"rec/s1/0001.ts", randomBytes(100, 4)}, {"rec/s1/big.flv", randomBytes(11<<20, 5)}} {
		f, err := os.Open(writeTemp(t, work, "race", c.body))
		if err != nil {
			t.Fatal(err)
		}
		err = s.putError(c.key, s.put(ctx, c.key, f, int64(len(c.body)), true))
		f.Close()
		if !errors.Is(err, ErrExists) {
			t.Fatalf("%s: conditional PUT on a taken key: want ErrExists, got %v", c.key, err)
		}
	}
	if got := readAll(t, s, "rec/s1/big.flv"); !bytes.Equal(got, big) {
		t.Fatal("multipart object replaced")
	}
	if s.noCond.Load() {
		t.Fatal("versitygw supports If-None-Match but the store fell back")
	}

	reqs := rec.requests()
	assertCreateOnly(t, reqs)
	v.assertNoDeleteLogged(t)
	var multipart bool
	for _, r := range reqs {
		if strings.Contains(r.Query, "partNumber") {
			multipart = true
		}
	}
	if !multipart {
		t.Error("the large file was not uploaded in parts")
	}
	if testing.Verbose() {
		for _, r := range reqs {
			t.Log(r)
		}
	}
}

// TestS3CheckErrors: start-up problems give messages that name the endpoint and bucket and
// say what is wrong.
func TestS3CheckErrors(t *testing.T) {
	v := startVersitygw(t)
	ctx := ctxT(t, 30*time.Second)

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()

	cases := []struct {
		name   string
		mod    func(*S3Config)
		bucket string
		want   []string
	}{
		{"wrong secret", func(c *S3Config) { c.SecretKey = "wrong-secret" }, testBucket, []string{"secret key is wrong", "SignatureDoesNotMatch"}},
		{"unknown access key", func(c *S3Config) { c.AccessKey = "nobody" }, testBucket, []string{"access key is not known"}},
		{"missing bucket", func(*S3Config) {}, "no-such-bucket", []string{"bucket does not exist", `"no-such-bucket"`}},
		{"unreachable", func(c *S3Config) { c.Endpoint = dead }, testBucket, []string{"cannot reach", dead}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := v.config()
			c.mod(&cfg)
			s, err := NewS3(cfg, c.bucket)
			if err != nil {
				t.Fatal(err)
			}
			err = s.Check(ctx)
			if err == nil {
				t.Fatal("Check passed")
			}
			t.Logf("Check: %v", err)
			msg := err.Error()
			for _, w := range append(c.want, cfg.Endpoint) {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q: %s", w, msg)
				}
			}
		})
	}
	// Nothing was created by the checks (the probe is an aborted multipart upload).
	ents, _ := os.ReadDir(v.objectPath(""))
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".sgw") {
			t.Errorf("check left %s in the bucket", e.Name())
		}
	}
	v.assertNoDeleteLogged(t)
}

// fakeS3 is a minimal S3 for cases versitygw cannot produce: a server that rejects
// If-None-Match (501) and one that denies writes.
type fakeS3 struct {
	mu        sync.Mutex
	objects   map[string][]byte
	noCond    bool // answer 501 to PUTs carrying If-None-Match
	deny      bool // answer 403 AccessDenied to POST ?uploads
	fail5xx   int  // answer 503 to the next n requests
	headDeny  bool // answer 403 to HEAD (AWS without s3:ListBucket)
	log       []string
	condSeen  int
	plainPuts int
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, r.Method+" "+r.URL.Path)
	xmlErr := func(status int, code string) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+code+`</Code><Message>`+code+`</Message></Error>`)
		}
	}
	if f.fail5xx > 0 {
		f.fail5xx--
		xmlErr(http.StatusServiceUnavailable, "SlowDown")
		return
	}
	key := r.URL.Path
	switch {
	case r.Method == http.MethodPost && r.URL.Query().Has("uploads"):
		if f.deny {
			xmlErr(http.StatusForbidden, "AccessDenied")
			return
		}
		io.WriteString(w, `<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>`)
	case r.Method == http.MethodDelete && r.URL.Query().Has("uploadId"):
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodHead && f.headDeny:
		xmlErr(http.StatusForbidden, "AccessDenied")
	case r.Method == http.MethodHead:
		b, ok := f.objects[key]
		if !ok {
			xmlErr(http.StatusNotFound, "NoSuchKey")
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Header().Set("ETag", `"x"`)
		w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
	case r.Method == http.MethodPut:
		if r.Header.Get("If-None-Match") != "" {
			f.condSeen++
			if f.noCond {
				xmlErr(http.StatusNotImplemented, "NotImplemented")
				return
			}
			if _, ok := f.objects[key]; ok {
				xmlErr(http.StatusPreconditionFailed, "PreconditionFailed")
				return
			}
		} else {
			f.plainPuts++
		}
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Amz-Decoded-Content-Length") != "" {
			b = decodeAWSChunked(b)
		}
		f.objects[key] = b
		w.Header().Set("ETag", `"x"`)
	default:
		xmlErr(http.StatusNotImplemented, "NotImplemented")
	}
}

// decodeAWSChunked strips the aws-chunked framing ("size;chunk-signature=...\r\ndata\r\n").
func decodeAWSChunked(b []byte) []byte {
	var out []byte
	for len(b) > 0 {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 {
			break
		}
		hdr := string(b[:i])
		if j := strings.IndexByte(hdr, ';'); j >= 0 {
			hdr = hdr[:j]
		}
		var n int
		for _, c := range hdr {
			switch {
			case c >= '0' && c <= '9':
				n = n*16 + int(c-'0')
			case c >= 'a' && c <= 'f':
				n = n*16 + int(c-'a'+10)
			}
		}
		b = b[i+2:]
		if n == 0 || n > len(b) {
			break
		}
		out = append(out, b[:n]...)
		b = b[n+2:]
	}
	return out
}

func TestS3ConditionalFallback(t *testing.T) {
	f := &fakeS3{objects: map[string][]byte{}, noCond: true}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := newTestS3(t, S3Config{Endpoint: strings.TrimPrefix(srv.URL, "http://"), AccessKey: "k", SecretKey: "s",
		Region: "us-east-1", PathStyle: true})
	ctx := ctxT(t, 10*time.Second)
	work := t.TempDir()
	p := writeTemp(t, work, "a", []byte("hello"))
	if err := s.Store(ctx, "x/a.ts", p); err != nil {
		t.Fatal(err)
	}
	if !s.noCond.Load() || f.condSeen != 1 || f.plainPuts != 1 {
		t.Fatalf("fallback not taken: noCond=%v cond=%d plain=%d", s.noCond.Load(), f.condSeen, f.plainPuts)
	}
	if got := string(f.objects["/"+testBucket+"/x/a.ts"]); got != "hello" {
		t.Fatalf("stored %q", got)
	}
	// Without the header the HEAD check still refuses a taken key, with no PUT sent.
	p = writeTemp(t, work, "b", []byte("other"))
	if err := s.Store(ctx, "x/a.ts", p); !errors.Is(err, ErrExists) {
		t.Fatalf("want ErrExists, got %v", err)
	}
	if f.plainPuts != 1 || f.condSeen != 1 {
		t.Fatalf("a PUT was sent for a taken key (cond=%d plain=%d)", f.condSeen, f.plainPuts)
	}
	// Later uploads go without the header straight away.
	p = writeTemp(t, work, "c", []byte("c"))
	if err := s.Store(ctx, "x/c.ts", p); err != nil || f.condSeen != 1 || f.plainPuts != 2 {
		t.Fatalf("err=%v cond=%d plain=%d", err, f.condSeen, f.plainPuts)
	}
}

func TestS3CheckAccessDenied(t *testing.T) {
	f := &fakeS3{objects: map[string][]byte{}, deny: true}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := newTestS3(t, S3Config{Endpoint: srv.URL, AccessKey: "k", SecretKey: "s", Region: "us-east-1", PathStyle: true})
	err := s.Check(ctxT(t, 10*time.Second))
	if err == nil || !strings.Contains(err.Error(), "access denied") || !strings.Contains(err.Error(), testBucket) {
		t.Fatalf("want an access-denied message naming the bucket, got %v", err)
	}
	f.deny = false
	if err := s.Check(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, l := range f.log {
		if strings.HasPrefix(l, "PUT") {
			t.Errorf("Check wrote an object: %s", l)
		}
	}
}

func TestS3Config(t *testing.T) {
	t.Setenv("LIVREC_S3_ACCESS_KEY", "")
	t.Setenv("LIVREC_S3_SECRET_KEY", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "awsid")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "awssecret")
	c := S3Config{}.withEnv()
	if c.AccessKey != "awsid" || c.SecretKey != "awssecret" {
		t.Fatalf("AWS fallback: %+v", c)
	}
	t.Setenv("LIVREC_S3_ACCESS_KEY", "lid")
	t.Setenv("LIVREC_S3_SECRET_KEY", "lsecret")
	c = S3Config{}.withEnv()
	if c.AccessKey != "lid" || c.SecretKey != "lsecret" {
		t.Fatalf("LIVREC fallback: %+v", c)
	}
	c = S3Config{AccessKey: "cfg", SecretKey: "cfgs"}.withEnv()
	if c.AccessKey != "cfg" || c.SecretKey != "cfgs" {
		t.Fatalf("config must win: %+v", c)
	}
	s, err := NewS3(S3Config{Endpoint: "https://s3.example.com"}, "b")
	if err != nil || !s.cfg.Secure || s.Describe() != "s3://s3.example.com/b" {
		t.Fatalf("https endpoint: %v %+v", err, s)
	}
	if _, err := NewS3(S3Config{Endpoint: "h:1"}, ""); err == nil {
		t.Fatal("empty bucket accepted")
	}
	if _, err := NewS3(S3Config{Endpoint: "h:1", PartSize: 1 << 20}, "b"); err == nil {
		t.Fatal("tiny part size accepted")
	}
	t.Setenv("LIVREC_S3_ACCESS_KEY", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	if _, err := NewS3(S3Config{Endpoint: "h:1"}, "b"); err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("missing credentials: %v", err)
	}
	s, _ = NewS3(S3Config{Endpoint: "h:1", AccessKey: "a", SecretKey: "b"}, "b")
	if err := s.Store(context.Background(), "../x", "/dev/null"); err == nil {
		t.Fatal("bad key accepted")
	}
	for _, c := range []struct {
		cfg  S3Config
		want string
	}{
		{S3Config{Endpoint: "127.0.0.1:7070", PathStyle: true}, "http://127.0.0.1:7070/b/rec/a%20b.m3u8"},
		{S3Config{Endpoint: "minio.local:9000"}, "http://minio.local:9000/b/rec/a%20b.m3u8"},
		{S3Config{Endpoint: "https://oss-cn-shanghai.aliyuncs.com"}, "https://b.oss-cn-shanghai.aliyuncs.com/rec/a%20b.m3u8"},
		{S3Config{Endpoint: "s3.amazonaws.com", Secure: true}, "https://b.s3.amazonaws.com/rec/a%20b.m3u8"},
		{S3Config{Endpoint: "s3.amazonaws.com", Secure: true, PathStyle: true}, "https://s3.amazonaws.com/b/rec/a%20b.m3u8"},
	} {
		c.cfg.AccessKey, c.cfg.SecretKey = "a", "b"
		s, err := NewS3(c.cfg, "b")
		if err != nil {
			t.Fatal(err)
		}
		if got := s.ObjectURL("rec/a b.m3u8"); got != c.want {
			t.Errorf("%+v: ObjectURL %q, want %q", c.cfg, got, c.want)
		}
	}
	if contentType("a/b.m3u8") != "application/vnd.apple.mpegurl" || contentType("x.ts") != "video/mp2t" {
		t.Fatal("content types")
	}
}

// TestS3HeadForbidden: a 403 on HEAD (no list permission) does not block uploads while the
// server enforces If-None-Match, and a taken key is still refused by the server.
func TestS3HeadForbidden(t *testing.T) {
	f := &fakeS3{objects: map[string][]byte{}, headDeny: true}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := newTestS3(t, S3Config{Endpoint: srv.URL, AccessKey: "k", SecretKey: "s", Region: "us-east-1", PathStyle: true})
	ctx := ctxT(t, 10*time.Second)
	work := t.TempDir()
	if err := s.Store(ctx, "a/1.ts", writeTemp(t, work, "a", []byte("one"))); err != nil {
		t.Fatal(err)
	}
	p := writeTemp(t, work, "b", []byte("two"))
	if err := s.Store(ctx, "a/1.ts", p); !errors.Is(err, ErrExists) {
		t.Fatalf("want ErrExists, got %v", err)
	}
	if string(f.objects["/"+testBucket+"/a/1.ts"]) != "one" || f.plainPuts != 0 {
		t.Fatalf("object replaced or unconditional PUT sent (plain=%d)", f.plainPuts)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal("local file removed after a clash")
	}
	// 5xx is an ordinary error (the Uploader retries it).
	f.fail5xx = 5
	if err := s.Store(ctx, "a/2.ts", writeTemp(t, work, "c", []byte("x"))); err == nil || errors.Is(err, ErrExists) {
		t.Fatalf("503: got %v", err)
	}
}
