// Package api is livrec's HTTP surface: the JSON API under /api/v1, file serving under
// /files/ (with Range requests and CORS), live playlists of recordings in progress under
// /live/, health, Prometheus metrics, and on "/" the web console or the cloud-compatible API.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/format/segment"
	"github.com/livrec/livrec/internal/metrics"
	"github.com/livrec/livrec/internal/notify"
	"github.com/livrec/livrec/internal/peer"
	"github.com/livrec/livrec/internal/recindex"
	"github.com/livrec/livrec/internal/record"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/storage"
	"github.com/livrec/livrec/internal/templatedb"
	"github.com/livrec/livrec/internal/vod"
)

// Server holds what the handlers need.
type Server struct {
	CloudAPI http.Handler // cloud-compatible RPC API on "/" (internal/cloudapi); nil = off
	// Console serves the web console: "/" (for a browser's GET without Action) and
	// /console/...; nil = off.
	Console http.Handler
	// CORS lists the origins that may fetch /files/ and /live/ from their pages (nil: none).
	CORS *CORS
	// For /api/v1/status: when the process started, the data directory (disk free), the
	// object stores and the recent errors (each may be zero).
	Started time.Time
	DataDir string
	Stores  func() []StoreStatus
	Errors  *ErrorLog
	WorkDir string // scratch space for files the API creates (index playlists)
	// Auth protects /api/v1 (nil: loopback clients only).
	Auth *Auth
	// RemoteStores lists the object stores /files/ falls back to after Store.
	RemoteStores func() []storage.Store
	Notifier     *notify.Notifier
	Catalog      *catalog.Catalog
	Store        storage.Store
	Manager      *record.Manager
	// Cluster runs manual commands where the stream is (forwarding them to the node that
	// owns it), lists every node's pushes and serves /api/v1/cluster; Peer serves the
	// other nodes' requests under /peer/ (signed by the cluster secret, not behind Auth).
	// nil: one node, commands and pushes are this node's.
	Cluster *peer.Router
	Peer    http.Handler
	// Templates serves /api/v1/transcode/templates and tells the rules API which
	// transcodeTemplates exist (nil: no template routes, every valid ID accepted).
	Templates *templatedb.Store
	// Library serves /api/v1/assets and Jobs /api/v1/jobs (nil: those routes answer 503);
	// TranscodeGroups are the VOD transcode groups (nil: the built-in one only).
	Library         *vod.Library
	Jobs            JobQueue
	TranscodeGroups *vod.TranscodeGroups
	Metrics         *metrics.Metrics
	Logger          *slog.Logger

	// S3Endpoints are the ossEndpoint values a rule may name (the config's s3: entries).
	S3Endpoints []string
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.protect(s.routes()) }

// routes registers every endpoint.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /files/{key...}", s.CORS.wrap(s.serveFile))
	mux.HandleFunc("HEAD /files/{key...}", s.CORS.wrap(s.serveFile))
	mux.HandleFunc("OPTIONS /files/{key...}", s.CORS.wrap(nil))
	mux.HandleFunc("GET /live/{id}", s.CORS.wrap(s.serveLive))
	mux.HandleFunc("OPTIONS /live/{id}", s.CORS.wrap(nil))
	// Profiling, behind the API's authentication (see protect).
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /api/v1/recordings", s.listRecordings)
	mux.HandleFunc("GET /api/v1/recordings/{id}", s.getRecording)
	mux.HandleFunc("GET /api/v1/recording-content", s.recordingContent)
	mux.HandleFunc("GET /api/v1/domains/{domain}/notify", s.getNotify)
	mux.HandleFunc("PUT /api/v1/domains/{domain}/notify", s.putNotify)
	mux.HandleFunc("DELETE /api/v1/domains/{domain}/notify", s.deleteNotify)
	mux.HandleFunc("GET /api/v1/callbacks", s.listCallbacks)
	mux.HandleFunc("POST /api/v1/callbacks/{id}/retry", s.retryCallback)
	mux.HandleFunc("GET /api/v1/status", s.getStatus)
	mux.HandleFunc("POST /api/v1/streams/{domain}/{app}/{stream}/index", s.createIndex)
	mux.HandleFunc("GET /api/v1/streams", s.listStreams)
	mux.HandleFunc("POST /api/v1/streams/{domain}/{app}/{stream}/record", s.recordCommand)
	mux.HandleFunc("GET /api/v1/cluster", s.getCluster)
	if s.Peer != nil {
		mux.Handle("/peer/", s.Peer)
	}
	s.registerRules(mux)
	s.registerTemplates(mux)
	s.registerAssets(mux)
	s.registerJobs(mux)
	if s.Console != nil {
		mux.Handle("GET /console/", s.Console)
	}
	mux.HandleFunc("/{$}", s.root) // exactly "/", any method
	return mux
}

// root sends a browser's plain GET / to the console and everything else (the SDKs'
// requests, which always name an Action in the query, a header or a POST body) to the
// cloud-compatible API.
func (s *Server) root(w http.ResponseWriter, r *http.Request) {
	browse := (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		!r.URL.Query().Has("Action") && r.Header.Get("x-acs-action") == ""
	switch {
	case browse && s.Console != nil:
		s.Console.ServeHTTP(w, r)
	case s.CloudAPI != nil:
		s.CloudAPI.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

// protect puts /api/v1 and /debug/pprof behind Auth; files, live playlists, health, metrics and the
// cloud-compatible API (which checks its own signatures) stay as they are. Mutating API
// requests a browser makes from another origin are refused (CSRF): with no tokens the API
// trusts loopback, which a page from anywhere could otherwise use through the user's browser.
func (s *Server) protect(mux *http.ServeMux) http.Handler {
	api := http.NewCrossOriginProtection().Handler(s.Auth.wrap(mux))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/debug/") {
			api.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func contentType(key string) string {
	switch strings.ToLower(path.Ext(key)) {
	case ".m3u8":
		return "application/vnd.apple.mpegurl"
	case ".ts":
		return "video/mp2t"
	case ".mp4":
		return "video/mp4"
	case ".m4s":
		return "video/iso.segment"
	case ".flv":
		return "video/x-flv"
	}
	if t := mime.TypeByExtension(path.Ext(key)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// open opens a stored object: the local store first, then the remote ones.
func (s *Server) open(ctx context.Context, key string) (storage.Object, error) {
	obj, err := s.Store.Open(ctx, key)
	if errors.Is(err, storage.ErrNotFound) && s.RemoteStores != nil {
		for _, st := range s.RemoteStores() {
			if obj, err = st.Open(ctx, key); !errors.Is(err, storage.ErrNotFound) {
				break
			}
		}
	}
	return obj, err
}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	obj, err := s.open(r.Context(), key)
	if errors.Is(err, storage.ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "key", err.Error())
		return
	}
	defer obj.Close()
	w.Header().Set("Content-Type", contentType(key))
	// An ETag as nginx makes it (modification time and size): ServeContent answers
	// If-None-Match with 304 and honours If-Range with it, besides Last-Modified.
	w.Header().Set("ETag", `"`+strconv.FormatInt(obj.ModTime().Unix(), 16)+"-"+strconv.FormatInt(obj.Size(), 16)+`"`)
	http.ServeContent(w, r, "", obj.ModTime(), obj)
}

// maxPlaylist bounds a stored playlist read to serve it as the ended live playlist.
const maxPlaylist = 64 << 20

// serveLive serves the EVENT playlist of a recording in progress: GET /live/{fileID}.m3u8.
// Once the file is generated it serves the stored playlist in the live playlist's form
// (the same segment URIs, with #EXT-X-ENDLIST), so a player following the recording
// reaches its end: a redirect to the VOD playlist, whose URIs are relative, makes players
// such as hls.js see other segments and fail.
func (s *Server) serveLive(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSuffix(r.PathValue("id"), ".m3u8")
	f, err := s.Catalog.GetFile(r.Context(), id)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	// The live playlist is in the working directory of the node recording the file: in
	// a cluster, another node passes the request to it.
	if f.Status == catalog.FileRecording && s.Cluster != nil && workDirGone(f.WorkDir) &&
		s.Cluster.ServeOwner(w, r, record.StreamKey{Domain: f.Domain, App: f.App, Stream: f.Stream}.String()) {
		return
	}
	// A file being finalized has lost its live playlist before its row says it is
	// generated (the row is completed after the store, in the background): wait briefly
	// for the outcome instead of answering 404 to a player at the very end.
	deadline := time.Now().Add(finalizeWait)
	var b []byte
	for {
		if f.Status == catalog.FileDone {
			break
		}
		if b, err = os.ReadFile(filepath.Join(f.WorkDir, "live.m3u8")); err == nil {
			break
		}
		if f.Status != catalog.FileRecording || (f.Segments == 0 && !workDirGone(f.WorkDir)) || time.Now().After(deadline) {
			http.Error(w, "no segment recorded yet", http.StatusNotFound)
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
		if f, err = s.Catalog.GetFile(r.Context(), id); err != nil {
			http.NotFound(w, r)
			return
		}
	}
	if f.Status == catalog.FileDone {
		obj, err := s.open(r.Context(), f.Key)
		if err == nil {
			b, err = io.ReadAll(io.LimitReader(obj, maxPlaylist))
			obj.Close()
		}
		if err != nil {
			if s.Logger != nil {
				s.Logger.Warn("live playlist of a generated file", "file", f.ID, "key", f.Key, "err", err)
			}
			http.Error(w, "the recording's playlist cannot be read", http.StatusBadGateway)
			return
		}
		b = segment.EndedLive(b, f.Key, s.Manager.LiveURI)
	}
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}

// finalizeWait bounds how long a live playlist request waits for a file being finalized.
const finalizeWait = 5 * time.Second

// workDirGone reports whether a recording's working directory no longer exists (its
// file was finalized).
func workDirGone(dir string) bool {
	_, err := os.Stat(dir)
	return errors.Is(err, fs.ErrNotExist)
}

type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, field, msg string) {
	writeJSON(w, status, apiError{Error: msg, Field: field})
}

// domainParam normalizes a domain that addresses streams (rules.NormalizeDomain, as at
// publish); an empty one filters nothing. A malformed domain is answered 400.
func domainParam(w http.ResponseWriter, v string) (string, bool) {
	if v == "" {
		return "", true
	}
	d, err := rules.NormalizeDomain(v)
	if err != nil {
		writeError(w, http.StatusBadRequest, "domain", "domain "+err.Error())
		return "", false
	}
	return d, true
}

// parseTime accepts RFC 3339 or Unix seconds.
func parseTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Parse(time.RFC3339, v)
}

type recordingList struct {
	Recordings []recording `json:"recordings"`
	Total      int         `json:"total"` // files matching the filters
	Limit      int         `json:"limit"`
	Offset     int         `json:"offset"`
}

// recording is a catalog row with the URLs a player opens, so that nobody builds paths
// from keys by hand: url once the file is stored, liveUrl while an m3u8 or cmaf file is
// being recorded.
type recording struct {
	catalog.File
	URL     string `json:"url,omitempty"`
	LiveURL string `json:"liveUrl,omitempty"`
}

func newRecording(f *catalog.File) recording {
	r := recording{File: *f}
	switch {
	case f.Status == catalog.FileDone && f.Key != "":
		r.URL = storage.URLPath(f.Key)
	case f.Status == catalog.FileRecording && (f.Format == "m3u8" || f.Format == "cmaf"):
		r.LiveURL = "/live/" + url.PathEscape(f.ID) + ".m3u8"
	}
	return r
}

func (s *Server) listRecordings(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	domain, ok := domainParam(w, q.Get("domain"))
	if !ok {
		return
	}
	fq := catalog.FileQuery{Domain: domain, App: q.Get("app"), Stream: q.Get("stream"), Format: q.Get("format"), Status: q.Get("status"),
		Desc: q.Get("order") == "desc"}
	var err error
	for _, tf := range []struct {
		name string
		dst  *time.Time
	}{{"from", &fq.From}, {"to", &fq.To}} {
		if *tf.dst, err = parseTime(q.Get(tf.name)); err != nil {
			writeError(w, http.StatusBadRequest, tf.name, tf.name+": want RFC 3339 time or Unix seconds, got "+strconv.Quote(q.Get(tf.name)))
			return
		}
	}
	if o := q.Get("order"); o != "" && o != "asc" && o != "desc" {
		writeError(w, http.StatusBadRequest, "order", `order: want "asc" or "desc"`)
		return
	}
	for _, nf := range []struct {
		name     string
		dst      *int
		min, max int
	}{{"limit", &fq.Limit, 1, 1000}, {"offset", &fq.Offset, 0, 1 << 30}} {
		v := q.Get(nf.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < nf.min || n > nf.max {
			writeError(w, http.StatusBadRequest, nf.name, nf.name+": want an integer "+strconv.Itoa(nf.min)+"–"+strconv.Itoa(nf.max)+", got "+strconv.Quote(v))
			return
		}
		*nf.dst = n
	}
	if fq.Limit == 0 {
		fq.Limit = 100
	}
	files, err := s.Catalog.ListFiles(r.Context(), fq)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	total, err := s.Catalog.CountFiles(r.Context(), fq)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	recs := make([]recording, len(files))
	for i := range files {
		recs[i] = newRecording(&files[i])
	}
	writeJSON(w, http.StatusOK, recordingList{Recordings: recs, Total: total, Limit: fq.Limit, Offset: fq.Offset})
}

func (s *Server) getRecording(w http.ResponseWriter, r *http.Request) {
	f, err := s.Catalog.GetFile(r.Context(), r.PathValue("id"))
	if errors.Is(err, catalog.ErrNotFound) {
		writeError(w, http.StatusNotFound, "id", "no recording with this id")
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, newRecording(f))
}

// listStreams lists the live pushes: of every live node in a cluster (each with its
// node; the nodes that did not answer under "unreachable"), else of this node.
func (s *Server) listStreams(w http.ResponseWriter, r *http.Request) {
	if s.Cluster == nil {
		writeJSON(w, http.StatusOK, map[string]any{"streams": s.Manager.Streams()})
		return
	}
	streams, bad := s.Cluster.Streams(r.Context())
	writeJSON(w, http.StatusOK, map[string]any{"streams": streams, "unreachable": bad})
}

// getCluster answers GET /api/v1/cluster: the nodes of the catalog, alive or not, with
// the stream leases each holds.
func (s *Server) getCluster(w http.ResponseWriter, r *http.Request) {
	if s.Cluster == nil {
		writeError(w, http.StatusServiceUnavailable, "", "this livrec is not a cluster node (no node.id)")
		return
	}
	st, err := s.Cluster.Status(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// command runs a manual command where the stream is (see Cluster).
func (s *Server) command(ctx context.Context, domain, app, stream, cmd string) error {
	if s.Cluster != nil {
		return s.Cluster.Command(ctx, domain, app, stream, cmd)
	}
	return s.Manager.Command(ctx, domain, app, stream, cmd)
}

// Shutdown is a helper for graceful HTTP shutdown with a deadline.
func Shutdown(srv *http.Server, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return srv.Shutdown(ctx)
}

// maxBody bounds JSON request bodies.
const maxBody = 1 << 20

type commandRequest struct {
	Command string `json:"command"`
}

// recordCommand runs a manual recording command: POST
// /api/v1/streams/{domain}/{app}/{stream}/record {"command": "start"|"stop"|"cancel_delay"|"restart"}.
func (s *Server) recordCommand(w http.ResponseWriter, r *http.Request) {
	var req commandRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	err := s.command(r.Context(), r.PathValue("domain"), r.PathValue("app"), r.PathValue("stream"), req.Command)
	var ce *record.CommandError
	var ue *peer.UnreachableError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]string{"command": req.Command, "status": "ok"})
	case errors.As(err, &ue):
		writeError(w, http.StatusServiceUnavailable, "", err.Error())
	case !errors.As(err, &ce):
		writeError(w, http.StatusInternalServerError, "", err.Error())
	case ce.Code == record.CodeInvalidCommand:
		writeError(w, http.StatusBadRequest, "command", err.Error())
	case ce.Code == record.CodeNoRule:
		writeError(w, http.StatusNotFound, "", err.Error())
	default: // the task or the stream is not in the state the command needs
		writeError(w, http.StatusConflict, "", err.Error())
	}
}

// recordingContent lists the recording sessions (tasks) of a stream in a time range:
// GET /api/v1/recording-content?domain=&app=&stream=&from=&to=&order=&limit=&offset=
func (s *Server) recordingContent(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	domain, ok := domainParam(w, q.Get("domain"))
	if !ok {
		return
	}
	tq := catalog.TaskQuery{Domain: domain, App: q.Get("app"), Stream: q.Get("stream"), Desc: q.Get("order") == "desc"}
	var err error
	if tq.From, err = parseTime(q.Get("from")); err != nil {
		writeError(w, http.StatusBadRequest, "from", "from: want RFC 3339 time or Unix seconds")
		return
	}
	if tq.To, err = parseTime(q.Get("to")); err != nil {
		writeError(w, http.StatusBadRequest, "to", "to: want RFC 3339 time or Unix seconds")
		return
	}
	if v := q.Get("limit"); v != "" {
		if tq.Limit, err = strconv.Atoi(v); err != nil || tq.Limit < 1 || tq.Limit > 1000 {
			writeError(w, http.StatusBadRequest, "limit", "limit: want an integer 1–1000")
			return
		}
	}
	if v := q.Get("offset"); v != "" {
		if tq.Offset, err = strconv.Atoi(v); err != nil || tq.Offset < 0 {
			writeError(w, http.StatusBadRequest, "offset", "offset: want an integer ≥ 0")
			return
		}
	}
	tasks, err := s.Catalog.ListTasks(r.Context(), tq)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"content": tasks})
}

type indexRequest struct {
	StartTime       time.Time `json:"startTime"`
	EndTime         time.Time `json:"endTime"`
	ObjectKey       string    `json:"objectKey"`
	EndTimeIncluded bool      `json:"endTimeIncluded"`
}

// createIndex builds a new m3u8 over a time window from the stored TS segments:
// POST /api/v1/streams/{domain}/{app}/{stream}/index {"startTime","endTime","objectKey","endTimeIncluded"}.
func (s *Server) createIndex(w http.ResponseWriter, r *http.Request) {
	var req indexRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.StartTime.IsZero() || req.EndTime.IsZero() {
		writeError(w, http.StatusBadRequest, "startTime", "startTime and endTime are required (RFC 3339)")
		return
	}
	domain, ok := domainParam(w, r.PathValue("domain"))
	if !ok {
		return
	}
	f, err := recindex.Create(r.Context(), s.Catalog, s.Store, s.WorkDir, recindex.Request{Domain: domain,
		App: r.PathValue("app"), Stream: r.PathValue("stream"), Start: req.StartTime, End: req.EndTime, Key: req.ObjectKey,
		EndTimeIncluded: req.EndTimeIncluded})
	switch {
	case err == nil:
		writeJSON(w, http.StatusCreated, newRecording(f))
	case errors.Is(err, recindex.ErrNoSegments):
		writeError(w, http.StatusNotFound, "", err.Error())
	case errors.Is(err, storage.ErrExists):
		writeError(w, http.StatusConflict, "objectKey", "objectKey: an object already exists under this key (livrec never overwrites)")
	case strings.HasPrefix(err.Error(), "endTime") || strings.HasPrefix(err.Error(), "objectKey"):
		field, _, _ := strings.Cut(err.Error(), ":")
		writeError(w, http.StatusBadRequest, field, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, "", err.Error())
	}
}
