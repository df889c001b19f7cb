// Package service wires livrec together for `livrec serve`: catalog, storage, the
// recording manager, the RTMP ingest and the HTTP API, with crash recovery at start and
// a graceful shutdown that finalizes every open recording.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/livrec/livrec/internal/api"
	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/cloudapi"
	"github.com/livrec/livrec/internal/cluster"
	"github.com/livrec/livrec/internal/console"
	"github.com/livrec/livrec/internal/metrics"
	"github.com/livrec/livrec/internal/notify"
	"github.com/livrec/livrec/internal/peer"
	"github.com/livrec/livrec/internal/pushauth"
	"github.com/livrec/livrec/internal/record"
	"github.com/livrec/livrec/internal/rtmp"
	"github.com/livrec/livrec/internal/ruledb"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/schema"
	"github.com/livrec/livrec/internal/storage"
	"github.com/livrec/livrec/internal/templatedb"
	"github.com/livrec/livrec/internal/transcode"
	"github.com/livrec/livrec/internal/variant"
	"github.com/livrec/livrec/internal/vod"
)

// Options configure a service instance.
type Options struct {
	DataDir string
	// CatalogDriver and CatalogDSN say where the catalog is (catalog.OpenDriver); an empty
	// DSN with SQLite is the file catalog.db in DataDir.
	CatalogDriver, CatalogDSN string
	// NodeID and NodeHTTPAddr name this node in the catalog's nodes table, where it
	// beats every Liveness.Interval (package cluster); no NodeID: no heartbeat.
	NodeID, NodeHTTPAddr string
	Liveness             cluster.Liveness
	// NodeSecret signs the requests to the other nodes and checks theirs (package peer);
	// required with a postgres catalog.
	NodeSecret string
	RTMPAddr   string
	HTTPAddr   string
	Location   *time.Location
	Rules      []rules.Rule // normalized and validated
	// S3 are the object-storage endpoints rules may name (ossEndpoint/ossBucket), and
	// SpoolLimit the upload-spool size (bytes) that raises an alarm (0: none).
	S3         []storage.S3Config
	SpoolLimit int64
	// Finalizers bounds how many files are finalized at once (0: record.DefaultFinalizers).
	Finalizers int
	// MinFreeBytes or MinFreePercent is the low-space threshold of the data directory
	// (both 0: record.DefaultMinFreeBytes).
	MinFreeBytes   uint64
	MinFreePercent float64
	// DiskFullHold and DiskFullHoldPerStream bound the media held in memory while the
	// disk is full (record.Config's).
	DiskFullHold, DiskFullHoldPerStream int64
	// SyncWorkers, SyncBacklog and SyncSlowAfter size the pool that fsyncs finished
	// segments off the connections (0: record's defaults).
	SyncWorkers   int
	SyncBacklog   int64
	SyncSlowAfter time.Duration
	// AccessKeys (id → secret) enable the cloud-compatible API; AllowDeleteFiles lets its
	// DeleteLiveStreamRecordIndexFiles remove files (RemoveFile=true).
	AccessKeys       map[string]string
	AllowDeleteFiles bool
	// APITokens are bearer tokens for the JSON API (besides V3 signatures by AccessKeys).
	APITokens []string
	// PublishAuth lists the domains whose pushes need a signed auth_key.
	PublishAuth []pushauth.DomainKeys
	// TranscodeTemplates are the configured live transcode templates (besides the
	// built-ins) and MaxTranscoders the limit of streams transcoded at once (0: none).
	TranscodeTemplates []transcode.Template
	MaxTranscoders     int
	// CallbackRetention is how long delivered and failed callbacks are kept (0: 30 days).
	CallbackRetention time.Duration
	// CORSAllowedOrigins may fetch /files/ and /live/ from their pages ("*": any).
	CORSAllowedOrigins []string
	Logger             *slog.Logger

	// Limits and protections (zero: the rtmp package's defaults). RTMPMaxConns is further
	// capped at the file descriptor limit minus ReservedFDs (see fdLimit).
	RTMPMaxConns        int
	RTMPMaxConnsPerAddr int
	RTMPPublishDeadline time.Duration
	ReservedFDs         int
	// HTTPMaxConns and HTTPMaxConnsPerAddr cap the HTTP connections (zero: 1024 and 64).
	HTTPMaxConns        int
	HTTPMaxConnsPerAddr int
	// AllowPrivateCallbacks and CallbackAllowList are notify.Options'.
	AllowPrivateCallbacks bool
	CallbackAllowList     []string
	// VodCallback is where the VOD library's events go.
	VodCallback vod.CallbackConfig
	// VodHooks, when set, also receive the library's assets and ended tasks (after the
	// service's own jobs are queued).
	VodHooks vod.Hooks
	// VodTranscodeGroups are the transcode groups VOD rules may name and the library's
	// transcodes run (nil: only rules.NoTranscodeGroup).
	VodTranscodeGroups *vod.TranscodeGroups
	// VodJobConcurrency bounds the library's jobs running at once (0: one per two cores);
	// VodCoverOffset is where covers are taken (0: 1 s).
	VodJobConcurrency int
	VodCoverOffset    time.Duration

	// Ready, if set, is called with the bound addresses once both listeners are up.
	Ready func(rtmpAddr, httpAddr net.Addr)
}

// Layout of the data directory.
const (
	filesDir  = "files" // the local storage root: object keys are paths below it
	workDir   = "work"  // working files of open recordings
	spoolDir  = "spool" // files waiting for their upload to object storage
	catalogDB = "catalog.db"
)

// diskCheckInterval is how often the data directory's free space is checked.
const diskCheckInterval = 2 * time.Second

// Run serves until ctx is cancelled, then shuts down gracefully.
func Run(ctx context.Context, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	started := time.Now()
	cors, err := api.NewCORS(o.CORSAllowedOrigins)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if o.CatalogDriver == schema.Postgres && o.NodeID != "" && o.NodeSecret == "" {
		return errors.New("node.secret is required with a postgres catalog: the nodes sign their requests to each other with it")
	}
	dsn := o.CatalogDSN
	if dsn == "" && o.CatalogDriver != schema.Postgres {
		dsn = filepath.Join(o.DataDir, catalogDB)
	}
	cat, err := catalog.OpenDriver(o.CatalogDriver, dsn)
	if err != nil {
		return err
	}
	defer cat.Close()
	// Config-file rules merged with the API's rules in the catalog (see package ruledb).
	endpoints := storage.Endpoints(o.S3)
	groups := o.VodTranscodeGroups
	if groups == nil {
		if groups, err = vod.NewTranscodeGroups(nil); err != nil {
			return err
		}
	}
	knownGroup := func(id string) bool { _, err := groups.Lookup(id); return err == nil }
	set, err := ruledb.New(cat, nil, log).Endpoints(endpoints).TranscodeGroups(knownGroup).SyncConfig(ctx, o.Rules)
	if err != nil {
		return err
	}
	store, err := storage.NewLocal(filepath.Join(o.DataDir, filesDir))
	if err != nil {
		return err
	}
	met := metrics.New()
	notifier, err := notify.New(cat.DB(), notify.Options{Registerer: met.Registry, Logger: log,
		Retention:             o.CallbackRetention,
		Shared:                o.CatalogDriver == schema.Postgres, // several nodes may deliver from it
		AllowPrivateCallbacks: o.AllowPrivateCallbacks, CallbackAllowList: o.CallbackAllowList})
	if err != nil {
		return fmt.Errorf("callbacks: %w", err)
	}
	notifier.Start(ctx)
	// A PostgreSQL catalog may be shared by several nodes: publishes then own their stream
	// keys through leases (see record.Config.Leases). An SQLite catalog is one node's.
	var leases record.Leases
	if o.CatalogDriver == schema.Postgres && o.NodeID != "" {
		leases = &cluster.NodeLeases{Store: cluster.New(cat.DB()), Node: o.NodeID, TTL: o.Liveness.LeaseTTL()}
	}
	// Streams move between the nodes: a paused task handed over, a dead node's
	// recordings finalized (package peer, record.Config.Peers).
	var peers record.Peers
	if leases != nil {
		peers = &peer.Cluster{Store: cluster.New(cat.DB()), Node: o.NodeID, Liveness: o.Liveness,
			Client: &peer.Client{Secret: o.NodeSecret, Node: o.NodeID, HTTP: &http.Client{Timeout: record.HandOverTimeout}}}
	}
	if o.NodeID != "" {
		go cluster.New(cat.DB()).Heartbeat(ctx, o.NodeID, o.NodeHTTPAddr, o.Liveness, func(err error) {
			log.Warn("node heartbeat failed", "node", o.NodeID, "err", err)
		})
	}
	defer notifier.Close() // after the manager's shutdown: the last file_created events are queued first
	// Templates of the config file plus those set through the APIs (see package
	// templatedb); a change reaches the transcoder for the next publish.
	var transcoder *transcode.Handler
	templates, err := templatedb.New(ctx, cat.DB(), o.TranscodeTemplates, func(l *transcode.Library) {
		if transcoder != nil {
			transcoder.SetLibrary(l)
		}
	}, log)
	if err != nil {
		return fmt.Errorf("transcodeTemplates: %w", err)
	}
	var mgr *record.Manager
	recentErrors := &api.ErrorLog{}
	variants := &variant.Writer{Rules: func() *rules.Set { return mgr.Rules() },
		StoreFor: func(r *rules.Rule) (storage.Store, error) { return mgr.StoreFor(r) },
		WorkDir:  filepath.Join(o.DataDir, workDir, "variant"), Logger: log}
	um := storage.NewUploadMetrics()
	met.Registry.MustRegister(um.Collectors()...)
	objects := &objectStores{ctx: ctx, dir: filepath.Join(o.DataDir, spoolDir), endpoints: map[string]storage.S3Config{},
		limit: o.SpoolLimit, cat: cat, log: log, metrics: um, uploaders: map[string]*storage.Uploader{}, checks: map[string]error{},
		alarm: alarmEvent(func() *record.Manager { return mgr })}
	for _, e := range o.S3 {
		objects.endpoints[e.Endpoint] = e
	}
	defer objects.close(10 * time.Second) // after the recordings are finalized
	library, err := vod.New(vod.Options{Catalog: cat, Outbox: notifier, Callback: o.VodCallback, Logger: log,
		StoreFor: func(endpoint, bucket string) (storage.Store, error) {
			if bucket == "" {
				return store, nil
			}
			return objects.open(endpoint, bucket)
		}})
	if err != nil {
		return err
	}
	queue, err := startVodJobs(ctx, cat, library, groups, met, o, log)
	if err != nil {
		return err
	}
	// Deferred before the library's close, so it runs after it (the library's last
	// events queue jobs) and before the catalog's close.
	defer queue.Stop(context.Background())
	library.Start(ctx)
	defer library.Close() // after the manager's shutdown, before the notifier's close: the last assets' events are queued
	mgr = record.NewManager(record.Config{
		StoreFor: objects.storeFor,
		OnEvent: func(ev record.Event) {
			recentErrors.Add(ev)
			notifier.Notify(ev)
			variants.Event(ev)
			library.OnEvent(ev)
		},
		AskOnDemand: askOnDemand(notifier),
		Rules:       set,
		AllTemplates: func(domain, app string) []string {
			return templates.Library().IDs(domain, app)
		},
		Catalog:    cat,
		Leases:     leases,
		Peers:      peers,
		Finalizers: o.Finalizers,
		// The data directory's free space: the low-space alarm, and the end of a
		// disk-full episode.
		DiskCheckInterval:     diskCheckInterval,
		MinFreeBytes:          o.MinFreeBytes,
		MinFreePercent:        o.MinFreePercent,
		DiskFullHold:          o.DiskFullHold,
		DiskFullHoldPerStream: o.DiskFullHoldPerStream,
		SyncWorkers:           o.SyncWorkers,
		SyncBacklog:           o.SyncBacklog,
		SyncSlowAfter:         o.SyncSlowAfter,
		Store:                 store,
		WorkDir:               filepath.Join(o.DataDir, workDir),
		Location:              o.Location,
		Logger:                log,
		Metrics:               met,
		LiveURI:               storage.URLPath,
	})
	objects.openAll(set.Rules())
	if err := mgr.Recover(ctx); err != nil {
		return fmt.Errorf("recovering open recordings: %w", err)
	}
	if leases != nil {
		if err := cluster.New(cat.DB()).ReleaseNode(ctx, o.NodeID); err != nil {
			return fmt.Errorf("releasing the stream leases of this node's previous run: %w", err)
		}
		go followCatalog(ctx, o.Liveness.Interval, ruledb.New(cat, mgr.SetRules, log), templates, log)
	}

	rl, err := net.Listen("tcp", o.RTMPAddr)
	if err != nil {
		return fmt.Errorf("rtmp listener: %w", err)
	}
	hl, err := net.Listen("tcp", o.HTTPAddr)
	if err != nil {
		rl.Close()
		return fmt.Errorf("http listener: %w", err)
	}
	pushAuth, err := pushauth.New(o.PublishAuth, log)
	if err != nil {
		rl.Close()
		hl.Close()
		return err
	}
	tm := transcode.NewMetrics()
	met.Registry.MustRegister(tm.Collectors()...)
	// Renditions come back over loopback RTMP from livrec's own ffmpeg: they carry the
	// transcoder's token and skip push authentication. Rules and templates changed
	// through the APIs apply from the next publish; a live one keeps its ffmpeg.
	transcoder = &transcode.Handler{Next: pushauth.Handler{Next: mgr, Checker: pushAuth}, Renditions: mgr,
		Rules: mgr.Rules, Library: templates.Library(), Addr: loopbackAddr(rl.Addr()), Max: o.MaxTranscoders,
		Logger: log, Metrics: tm, OnEvent: func(typ, domain, app, stream, code, msg string) {
			mgr.Emit(record.Event{Type: typ, Domain: domain, App: app, Stream: stream, Code: code, Message: msg})
		}}
	ingest := &rtmp.Server{Handler: transcoder, Logger: log,
		MaxConns: connCap(o.RTMPMaxConns, o.ReservedFDs, log), MaxConnsPerAddr: o.RTMPMaxConnsPerAddr,
		PublishDeadline: o.RTMPPublishDeadline,
		OnRefused:       func(reason string) { met.ConnsRefused.WithLabelValues(reason).Inc() }}
	// A node answers the APIs for the whole cluster: a manual command for a stream another
	// node owns goes to that node (package peer).
	var router *peer.Router
	var peerHandler http.Handler
	var commands interface {
		Command(ctx context.Context, domain, app, stream, cmd string) error
	}
	if o.NodeID != "" {
		router = &peer.Router{Node: o.NodeID, Local: mgr, Store: cluster.New(cat.DB()), Liveness: o.Liveness,
			Client: &peer.Client{Secret: o.NodeSecret, Node: o.NodeID}}
		peerHandler, commands = &peer.Handler{Secret: o.NodeSecret, Node: o.NodeID, Local: mgr, Logger: log}, router
	}
	cloud := cloudapi.New(cloudapi.Options{Catalog: cat, Store: store, Manager: mgr, Commands: commands, Notifier: notifier, Templates: templates,
		WorkDir: filepath.Join(o.DataDir, workDir, "api"), AccessKeys: o.AccessKeys,
		AllowDeleteFiles: o.AllowDeleteFiles, S3Endpoints: endpoints, ObjectURL: objects.objectURL, Location: o.Location, Logger: log,
		Library: library, TranscodeGroups: knownGroup})
	apiAuth := &api.Auth{Tokens: o.APITokens}
	if cloud.HasKeys() {
		apiAuth.VerifyV3 = cloud.VerifyV3
	}
	if apiAuth.Open() {
		log.Warn("no accessKeys or apiTokens configured: the JSON API answers only loopback clients, and the cloud-compatible API refuses every request")
	}
	apiSrv := &api.Server{CloudAPI: cloud, Console: console.Handler(), CORS: cors, Auth: apiAuth,
		Started: started, DataDir: o.DataDir, Stores: objects.status, Errors: recentErrors,
		WorkDir: filepath.Join(o.DataDir, workDir, "api"), Notifier: notifier, Templates: templates, RemoteStores: objects.all, S3Endpoints: endpoints, Catalog: cat, Store: store, Manager: mgr, Metrics: met, Logger: log,
		Library: library, TranscodeGroups: groups, Jobs: queue, Cluster: router, Peer: peerHandler}
	httpSrv := &http.Server{
		Handler:           apiSrv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
	}
	if peers != nil {
		go mgr.Reap(ctx, o.Liveness.Interval)
	}
	httpSrv.Handler = writeProgress(httpSrv.Handler, httpWriteTimeout)
	errc := make(chan error, 2)
	go func() { errc <- ingest.Serve(rl) }()
	go func() {
		capped := newConnCapListener(hl, o.HTTPMaxConns, o.HTTPMaxConnsPerAddr,
			func(reason string) { met.HTTPConnsRefused.WithLabelValues(reason).Inc() }, log)
		if err := httpSrv.Serve(capped); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()
	log.Info("livrec serving", "rtmp", rl.Addr().String(), "http", hl.Addr().String(), "data", o.DataDir, "storage", store.Describe(), "rules", set.Len())
	if o.Ready != nil {
		o.Ready(rl.Addr(), hl.Addr())
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	log.Info("shutting down: finalizing open recordings")
	ingest.Close()
	mgr.Shutdown(context.Background())
	variants.Flush()
	api.Shutdown(httpSrv, 5*time.Second)
	log.Info("livrec stopped")
	return runErr
}

// followCatalog reads the rules and the transcode templates again every interval and
// applies them to this node's recorder and transcoder: in a cluster another node's API
// may have changed them (each node applies its own API's changes at once).
func followCatalog(ctx context.Context, interval time.Duration, rs *ruledb.Store, ts *templatedb.Store, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := rs.Reload(ctx); err != nil && ctx.Err() == nil {
			log.Warn("reading the rules again failed", "err", err)
		}
		if err := ts.Reload(ctx); err != nil && ctx.Err() == nil {
			log.Warn("reading the transcode templates again failed", "err", err)
		}
	}
}

// loopbackAddr is the address livrec's own clients reach the listener at.
func loopbackAddr(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	ip := ta.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(ta.Port))
}

// askOnDemand puts the on-demand question to the domain's onDemandUrl.
func askOnDemand(n *notify.Notifier) func(context.Context, record.OnDemandQuery) (record.OnDemandAnswer, error) {
	return func(ctx context.Context, q record.OnDemandQuery) (record.OnDemandAnswer, error) {
		cfg, err := n.Get(ctx, q.Domain)
		if err != nil || cfg.OnDemandURL == "" {
			return record.OnDemandAnswer{}, fmt.Errorf("domain %s has no onDemandUrl configured", q.Domain)
		}
		codec := q.Codec
		if codec != "h264" && codec != "h265" {
			codec = "" // audio only or another codec: blank (the receiver reads it as h264)
		}
		d, err := n.AskOnDemand(ctx, cfg.OnDemandURL, notify.OnDemandQuery{Domain: q.Domain, App: q.App, Stream: q.Stream,
			Codec: codec, VideoBitrate: q.VideoKbps})
		if err != nil {
			return record.OnDemandAnswer{}, err
		}
		return record.OnDemandAnswer{NeedRecord: d.NeedRecord, Formats: d.Formats, Intervals: d.Intervals}, nil
	}
}
