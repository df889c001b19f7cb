package cloudapi

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	live "github.com/alibabacloud-go/live-20161101/v2/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/livrec/livrec/internal/api"
	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/metrics"
	"github.com/livrec/livrec/internal/notify"
	"github.com/livrec/livrec/internal/record"
	"github.com/livrec/livrec/internal/rtmp"
	"github.com/livrec/livrec/internal/ruledb"
	"github.com/livrec/livrec/internal/storage"
)

const (
	testKeyID  = "ak-test"
	testSecret = "s3cr3t/with+chars"
	fixtureFLV = "../media/testdata/h264_aac.flv"
)

// env is a livrec assembled as service.Run does it: catalog, local storage, notifier,
// recording manager, RTMP ingest, and the HTTP API with the cloud API on "/".
type env struct {
	t        *testing.T
	dir      string
	cat      *catalog.Catalog
	mgr      *record.Manager
	notifier *notify.Notifier
	cloud    *Handler
	srv      *httptest.Server
	rtmpAddr string
}

func newEnv(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := context.Background()
	cat, err := catalog.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := ruledb.New(cat, nil, log).SyncConfig(ctx, nil) // no rules: nothing is recorded
	if err != nil {
		t.Fatal(err)
	}
	store, err := storage.NewLocal(filepath.Join(dir, "files"))
	if err != nil {
		t.Fatal(err)
	}
	met := metrics.New()
	notifier, err := notify.New(cat.DB(), notify.Options{Registerer: met.Registry, Logger: log, MaxTries: 1,
		AllowPrivateCallbacks: true}) // the receivers are httptest servers on loopback
	if err != nil {
		t.Fatal(err)
	}
	nctx, stopNotifier := context.WithCancel(ctx)
	notifier.Start(nctx)
	mgr := record.NewManager(record.Config{OnEvent: notifier.Notify, Rules: set, Catalog: cat, Store: store,
		WorkDir: filepath.Join(dir, "work"), Logger: log, Metrics: met})
	if err := mgr.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ingest := &rtmp.Server{Handler: mgr, Logger: log}
	go ingest.Serve(l)

	apiSrv := &api.Server{WorkDir: filepath.Join(dir, "work", "api"), Notifier: notifier, Catalog: cat, Store: store, Manager: mgr, Metrics: met, Logger: log}
	o := Options{Catalog: cat, Store: store, Manager: mgr, Notifier: notifier, WorkDir: filepath.Join(dir, "work", "api"),
		AccessKeys: map[string]string{testKeyID: testSecret}, Logger: log,
		S3Endpoints: []string{"oss-cn-shanghai.aliyuncs.com", "oss-cn-beijing.aliyuncs.com"}}
	if mod != nil {
		mod(&o)
	}
	cloud := New(o)
	// The wiring proposed for api.Server.Handler: the cloud API on "/" only.
	mux := http.NewServeMux()
	mux.Handle("/{$}", cloud)
	mux.Handle("/", apiSrv.Handler())
	srv := httptest.NewServer(mux)
	e := &env{t: t, dir: dir, cat: cat, mgr: mgr, notifier: notifier, cloud: cloud, srv: srv, rtmpAddr: l.Addr().String()}
	t.Cleanup(func() {
		ingest.Close()
		mgr.Shutdown(context.Background())
		stopNotifier()
		notifier.Close()
		srv.Close()
		cat.Close()
	})
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// client returns an official SDK client on the env: V3 signing, or V1 with v1.
func (e *env) client(v1 bool, keyID, secret string) *live.Client {
	e.t.Helper()
	cfg := &openapiutil.Config{
		AccessKeyId: dara.String(keyID), AccessKeySecret: dara.String(secret),
		Endpoint: dara.String(strings.TrimPrefix(e.srv.URL, "http://")),
		Protocol: dara.String("http"), RegionId: dara.String("cn-shanghai"),
	}
	if v1 {
		cfg.SignatureAlgorithm = dara.String("v2")
	}
	c, err := live.NewClient(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// push publishes the fixture to rtmp://.../app/stream?vhost=domain in real time.
func (e *env) push(ctx context.Context, domain, app, stream string) error {
	_, err := rtmp.PublishFile(ctx, "rtmp://"+e.rtmpAddr+"/"+app+"/"+stream+"?vhost="+domain, fixtureFLV, true,
		rtmp.PublishOptions{Timeout: 10 * time.Second})
	return err
}

// waitLive waits until the stream is published.
func (e *env) waitLive(domain, app, stream string) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range e.mgr.Streams() {
			if s.Domain == domain && s.App == app && s.Stream == stream {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("stream %s/%s/%s never went live", domain, app, stream)
}

// waitFiles waits until n generated files of the stream are in the catalog.
func (e *env) waitFiles(domain, app, stream string, n int) []catalog.File {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fs, err := e.cat.ListFiles(context.Background(), catalog.FileQuery{Domain: domain, App: app, Stream: stream, Status: catalog.FileDone})
		if err != nil {
			e.t.Fatal(err)
		}
		if len(fs) >= n {
			return fs
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d generated files of %s/%s/%s, want %d", len(fs), domain, app, stream, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sdkError returns the status and code of an SDK error.
func sdkError(t *testing.T, err error) (int, string) {
	t.Helper()
	var se *tea.SDKError
	if !errors.As(err, &se) {
		t.Fatalf("error %T is not an SDK error: %v", err, err)
	}
	return dara.IntValue(se.StatusCode), dara.StringValue(se.Code)
}

// wantSDKError checks an SDK call failed with the status and code.
func wantSDKError(t *testing.T, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %d %s", status, code)
	}
	gotStatus, gotCode := sdkError(t, err)
	if gotStatus != status || gotCode != code {
		t.Fatalf("error %d %s, want %d %s (%v)", gotStatus, gotCode, status, code, err)
	}
}
