package service

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/livrec/livrec/internal/api"
	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/record"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
)

// objectStores gives each (ossEndpoint, ossBucket) of the rules its S3 backend behind a
// local upload spool (<data>/spool/<endpoint>_<bucket>), created on first use; spools a
// previous process left behind are reopened at start so their content is uploaded.
type objectStores struct {
	ctx       context.Context
	dir       string
	endpoints map[string]storage.S3Config
	limit     int64
	cat       *catalog.Catalog
	log       *slog.Logger
	metrics   *storage.UploadMetrics
	alarm     func(code, msg string)

	mu        sync.Mutex
	uploaders map[string]*storage.Uploader
	checks    map[string]error // by uploader id: the start-up check's answer (absent: none yet)
}

// spoolTarget is written into each spool directory, naming its destination.
type spoolTarget struct {
	Endpoint string `json:"endpoint"`
	Bucket   string `json:"bucket"`
}

const spoolTargetFile = "target.json"

func (o *objectStores) storeFor(r *rules.Rule) (storage.Store, error) {
	return o.open(r.OssEndpoint, r.OssBucket)
}

func spoolName(endpoint, bucket string) string {
	clean := strings.NewReplacer("://", "_", "/", "_", ":", "_").Replace(endpoint)
	return clean + "_" + bucket
}

func (o *objectStores) open(endpoint, bucket string) (*storage.Uploader, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	id := endpoint + "/" + bucket
	if u := o.uploaders[id]; u != nil {
		return u, nil
	}
	cfg, ok := o.endpoints[endpoint]
	if !ok {
		return nil, fmt.Errorf("ossEndpoint %q is not configured under s3: in the config file", endpoint)
	}
	s3, err := storage.NewS3(cfg, bucket)
	if err != nil {
		return nil, fmt.Errorf("s3 endpoint %s, bucket %s: %w", endpoint, bucket, err)
	}
	dir := filepath.Join(o.dir, spoolName(endpoint, bucket))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(spoolTarget{endpoint, bucket})
	if err := os.WriteFile(filepath.Join(dir, spoolTargetFile), b, 0o644); err != nil {
		return nil, err
	}
	log := o.log.With("endpoint", endpoint, "bucket", bucket)
	u, err := storage.NewUploader(filepath.Join(dir, "items"), s3, storage.UploaderOptions{
		// Segments and their playlist share a directory: one ordered queue per directory,
		// so a playlist is uploaded after the segments it names.
		StreamOf:   path.Dir,
		SpoolLimit: o.limit,
		OnSpoolLimit: func(over bool, bytes, limit int64) {
			if over {
				o.alarm("spool_over_limit", fmt.Sprintf("upload spool for %s/%s holds %d MiB, over the %d MiB limit: is the store reachable?", endpoint, bucket, bytes>>20, limit>>20))
			} else {
				log.Info("upload spool back under its limit", "bytes", bytes)
			}
		},
		OnError: func(key string, err error) {
			o.alarm("object_exists", fmt.Sprintf("%s/%s: %s was not uploaded: %v (kept in the spool, never overwritten)", endpoint, bucket, key, err))
		},
		OnUploaded: func(key string, _ int64) { o.markUploaded(bucket, key) },
		Logger:     log,
		Metrics:    o.metrics,
	})
	if err != nil {
		return nil, err
	}
	// Not o.ctx itself: the service's context ends at SIGTERM, and close still drains the
	// spool for a while after that; close stops the uploaders.
	if err := u.Start(context.WithoutCancel(o.ctx)); err != nil {
		return nil, err
	}
	o.uploaders[id] = u
	go func() {
		// Reported at start-up (or first use); recording goes on into the spool anyway.
		ctx, cancel := context.WithTimeout(o.ctx, 30*time.Second)
		defer cancel()
		err := s3.Check(ctx)
		o.mu.Lock()
		o.checks[id] = err
		o.mu.Unlock()
		if err != nil {
			o.alarm("storage_unavailable", err.Error()+" — recording continues into the local spool")
		} else {
			log.Info("object storage ready")
		}
	}()
	return u, nil
}

// markUploaded flags the catalog row of a generated file whose object arrived. It runs
// before the upload spool forgets the item, so a crash cannot lose the flag.
func (o *objectStores) markUploaded(bucket, key string) {
	if !isFileKey(key) {
		return
	}
	if err := o.cat.MarkUploaded(context.Background(), bucket, key); err != nil {
		o.log.Error("catalog: cannot record an upload", "bucket", bucket, "key", key, "err", err)
	}
}

// isFileKey says whether a key can be a catalog file (a playlist or a single-file
// recording) rather than a segment.
func isFileKey(key string) bool {
	switch path.Ext(key) {
	case ".m3u8", ".mp4", ".flv":
		return !strings.HasSuffix(key, "_init.mp4")
	}
	return false
}

// openAll opens the spools a previous process left (so their content is uploaded) and
// those of the configured rules (so a bad endpoint or credential is reported at start).
func (o *objectStores) openAll(rs []rules.Rule) {
	entries, _ := os.ReadDir(o.dir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(o.dir, e.Name(), spoolTargetFile))
		var t spoolTarget
		if err != nil || json.Unmarshal(b, &t) != nil {
			continue
		}
		if _, err := o.open(t.Endpoint, t.Bucket); err != nil {
			o.alarm("storage_unavailable", fmt.Sprintf("spool %s: %v (its files stay on disk)", e.Name(), err))
		}
	}
	for i := range rs {
		if rs[i].OssBucket != "" {
			if _, err := o.storeFor(&rs[i]); err != nil {
				o.alarm("storage_unavailable", err.Error())
			}
		}
	}
}

// objectURL is the plain URL of an object in a bucket (the cloud API's RecordUrl), or ""
// when the endpoint is not configured (the caller falls back to livrec's /files/ URL).
// It builds the client only to address the object: nothing is contacted or opened.
func (o *objectStores) objectURL(endpoint, bucket, key string) string {
	cfg, ok := o.endpoints[endpoint]
	if !ok {
		return ""
	}
	s3, err := storage.NewS3(cfg, bucket)
	if err != nil {
		return ""
	}
	return s3.ObjectURL(key)
}

// all returns the open stores (for serving /files/ from object storage).
func (o *objectStores) all() []storage.Store {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]storage.Store, 0, len(o.uploaders))
	for _, u := range o.uploaders {
		out = append(out, u)
	}
	return out
}

// status describes each open store and its spool (GET /api/v1/status).
func (o *objectStores) status() []api.StoreStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]api.StoreStatus, 0, len(o.uploaders))
	for id, u := range o.uploaders {
		i := strings.LastIndex(id, "/") // an endpoint may hold "/" (http://host); a bucket never does
		endpoint, bucket := id[:i], id[i+1:]
		st := u.Stats()
		s := api.StoreStatus{Endpoint: endpoint, Bucket: bucket, State: "checking", SpoolItems: st.Items, SpoolBytes: st.Bytes,
			Parked: st.Parked, OldestQueued: st.Oldest, OverLimit: st.OverLimit}
		if err, checked := o.checks[id]; checked {
			s.State = "ok"
			if err != nil {
				s.State, s.Error = "unreachable", err.Error()
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b api.StoreStatus) int {
		return strings.Compare(a.Endpoint+"/"+a.Bucket, b.Endpoint+"/"+b.Bucket)
	})
	return out
}

// close uploads what it can within d, then stops the uploaders (the rest stays spooled
// and is uploaded after the next start).
func (o *objectStores) close(d time.Duration) {
	o.mu.Lock()
	us := o.uploaders
	o.uploaders = map[string]*storage.Uploader{}
	o.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for _, u := range us {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.Drain(ctx)
			u.Close()
		}()
	}
	wg.Wait()
}

// alarmEvent turns a storage alarm into a logged, counted record_error event.
func alarmEvent(mgr func() *record.Manager) func(code, msg string) {
	return func(code, msg string) {
		if m := mgr(); m != nil {
			m.Emit(record.Event{Type: record.EventError, Code: code, Message: msg})
		}
	}
}
