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
	}
	r.MustRegister(m.LiveStreams, m.ActiveTasks, m.BytesIn, m.TagsIn, m.SegmentsWritten, m.FilesGenerated,
		m.TimestampRepairs, m.Errors, m.Warnings, m.PublishRefused, m.ConnsRefused,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}
