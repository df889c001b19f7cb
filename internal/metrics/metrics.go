// Package metrics defines livrec's Prometheus metrics, served at /metrics.
package metrics

import "github.com/prometheus/client_golang/prometheus"

// Metrics holds every collector; one instance per process, registered on Registry.
type Metrics struct {
	Registry *prometheus.Registry

	LiveStreams      prometheus.Gauge
	ActiveTasks      *prometheus.GaugeVec // by state
	BytesIn          prometheus.Counter
	TagsIn           prometheus.Counter
	SegmentsWritten  *prometheus.CounterVec // by format
	FilesGenerated   *prometheus.CounterVec // by format
	TimestampRepairs *prometheus.CounterVec // by kind
	Errors           *prometheus.CounterVec // by code
	Warnings         *prometheus.CounterVec // by code
	PublishRefused   *prometheus.CounterVec // by reason
	ConnsRefused     *prometheus.CounterVec // RTMP connections closed by a limit, by reason
	HTTPConnsRefused *prometheus.CounterVec // HTTP connections closed by a cap, by reason

	// The recording pipeline off the ingest path: catalog writes and finalizations.
	CatalogSeconds  prometheus.Histogram
	CatalogErrors   prometheus.Counter
	Finalizing      prometheus.Gauge // files handed to the finalizers, not yet generated
	FinalizeSeconds prometheus.Histogram
	EmptyFiles      *prometheus.CounterVec // by format: ended before any media reached them

	// The data directory's file system (see record's disk watch).
	DiskFree     prometheus.Gauge       // bytes available
	DiskLow      prometheus.Gauge       // 1 below minFreeSpace
	DiskFull     prometheus.Gauge       // 1 while writes fail for lack of space
	DroppedUnits *prometheus.CounterVec // by reason: access units not recorded
	DiskHeld     prometheus.Gauge       // media bytes kept in memory while the disk is full

	// The sync pool: fsyncs of finished segments, off the connections.
	SyncPending prometheus.Gauge     // bytes handed to the pool, not yet synced
	SyncSeconds prometheus.Histogram // duration of one segment's fsync
}

// New creates and registers the collectors (plus the Go and process collectors).
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry:    r,
		LiveStreams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "livrec_live_streams", Help: "Publishes currently connected."}),
		ActiveTasks: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "livrec_tasks", Help: "Recording tasks by state."}, []string{"state"}),
		BytesIn:     prometheus.NewCounter(prometheus.CounterOpts{Name: "livrec_ingest_bytes_total", Help: "Audio/video tag bytes received."}),
		TagsIn:      prometheus.NewCounter(prometheus.CounterOpts{Name: "livrec_ingest_tags_total", Help: "FLV tags received."}),
		SegmentsWritten: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "livrec_segments_written_total",
			Help: "Segments stored."}, []string{"format"}),
		FilesGenerated: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "livrec_files_generated_total",
			Help: "Recording files finalized and stored."}, []string{"format"}),
		TimestampRepairs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "livrec_timestamp_repairs_total",
			Help: "Timestamp repairs (wrap, backward, jump)."}, []string{"kind"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "livrec_errors_total",
			Help: "Recording errors by code."}, []string{"code"}),
		Warnings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "livrec_warnings_total",
			Help: "Stream warnings (unsupported codec, bad tag...) by code."}, []string{"code"}),
		PublishRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "livrec_publish_refused_total",
			Help: "Refused publishes by reason."}, []string{"reason"}),
		ConnsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "livrec_rtmp_connections_refused_total",
			Help: "RTMP connections closed by a limit: max_conns, max_conns_per_addr, publish_deadline."}, []string{"reason"}),
		HTTPConnsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "livrec_http_connections_refused_total",
			Help: "HTTP connections closed at once by a cap: max_conns, max_conns_per_addr."}, []string{"reason"}),
		CatalogSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "livrec_catalog_write_seconds",
			Help: "Duration of the recorder's catalog writes.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}),
		CatalogErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "livrec_catalog_write_errors_total",
			Help: "Catalog writes of the recorder that failed."}),
		Finalizing: prometheus.NewGauge(prometheus.GaugeOpts{Name: "livrec_finalize_pending",
			Help: "Recording files handed to the finalizers and not yet generated."}),
		FinalizeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "livrec_finalize_seconds",
			Help: "Time from a file's hand-over to the finalizers to its generation.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 9)}),
		EmptyFiles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "livrec_empty_files_total",
			Help: "Files that ended before any media reached them (nothing generated)."}, []string{"format"}),
		DiskFree: prometheus.NewGauge(prometheus.GaugeOpts{Name: "livrec_disk_free_bytes",
			Help: "Bytes available on the data directory's file system."}),
		DiskLow: prometheus.NewGauge(prometheus.GaugeOpts{Name: "livrec_disk_low",
			Help: "1 while the data directory's free space is below minFreeSpace."}),
		DiskFull: prometheus.NewGauge(prometheus.GaugeOpts{Name: "livrec_disk_full",
			Help: "1 while recording writes fail for lack of space (media is held in memory, within diskFullHold)."}),
		DroppedUnits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "livrec_dropped_units_total",
			Help: "Access units received but not recorded, by reason."}, []string{"reason"}),
		DiskHeld: prometheus.NewGauge(prometheus.GaugeOpts{Name: "livrec_disk_full_held_bytes",
			Help: "Recorded bytes kept in memory because the disk was full, written once space returns."}),
	}
	m.SyncPending = prometheus.NewGauge(prometheus.GaugeOpts{Name: "livrec_sync_pending_bytes",
		Help: "Bytes of finished segments waiting for their fsync."})
	m.SyncSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "livrec_sync_seconds",
		Help: "Duration of the fsync of a finished segment.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)})
	r.MustRegister(m.SyncPending, m.SyncSeconds)
	r.MustRegister(m.DiskFree, m.DiskLow, m.DiskFull, m.DroppedUnits, m.DiskHeld)
	r.MustRegister(m.CatalogSeconds, m.CatalogErrors, m.Finalizing, m.FinalizeSeconds, m.EmptyFiles)
	r.MustRegister(m.LiveStreams, m.ActiveTasks, m.BytesIn, m.TagsIn, m.SegmentsWritten, m.FilesGenerated,
		m.TimestampRepairs, m.Errors, m.Warnings, m.PublishRefused, m.ConnsRefused, m.HTTPConnsRefused,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}
