package storage

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// UploadMetrics are the Uploader's Prometheus collectors. Register them once
// (Collectors) and pass them in UploaderOptions.Metrics.
type UploadMetrics struct {
	Bytes      prometheus.Counter     // livrec_upload_bytes_total
	Uploads    *prometheus.CounterVec // livrec_uploads_total{result}
	Duration   prometheus.Histogram   // livrec_upload_duration_seconds
	Retries    prometheus.Counter     // livrec_upload_retries_total
	Parked     prometheus.Counter     // livrec_upload_clashes_total
	Queued     prometheus.Counter     // livrec_spool_queued_bytes_total
	SpoolBytes prometheus.Gauge       // livrec_spool_bytes
	SpoolItems prometheus.Gauge       // livrec_spool_items
	OverLimit  prometheus.Gauge       // livrec_spool_over_limit
	OldestAge  prometheus.GaugeFunc   // livrec_spool_oldest_age_seconds

	mu sync.Mutex
	up *Uploader
}

// NewUploadMetrics creates the collectors (unregistered).
func NewUploadMetrics() *UploadMetrics {
	m := &UploadMetrics{
		Bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "livrec_upload_bytes_total",
			Help: "Bytes uploaded from the spool to the object store."}),
		Uploads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "livrec_uploads_total",
			Help: "Upload attempts by result (uploaded, already_stored, clash, failed)."}, []string{"result"}),
		Duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "livrec_upload_duration_seconds",
			Help: "Duration of successful uploads.", Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12)}),
		Retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "livrec_upload_retries_total",
			Help: "Upload attempts that failed and will be retried."}),
		Parked: prometheus.NewCounter(prometheus.CounterOpts{Name: "livrec_upload_clashes_total",
			Help: "Spooled files whose key exists in the store with different content (kept in the spool)."}),
		Queued: prometheus.NewCounter(prometheus.CounterOpts{Name: "livrec_spool_queued_bytes_total",
			Help: "Bytes handed to the spool."}),
		SpoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "livrec_spool_bytes",
			Help: "Bytes in the upload spool (not yet in the object store)."}),
		SpoolItems: prometheus.NewGauge(prometheus.GaugeOpts{Name: "livrec_spool_items",
			Help: "Files in the upload spool."}),
		OverLimit: prometheus.NewGauge(prometheus.GaugeOpts{Name: "livrec_spool_over_limit",
			Help: "1 while the spool is above its size limit."}),
	}
	m.OldestAge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "livrec_spool_oldest_age_seconds",
		Help: "Age of the oldest spooled file not uploaded yet (0 if none)."}, m.oldestAge)
	for _, r := range []string{"uploaded", "already_stored", "clash", "failed"} {
		m.Uploads.WithLabelValues(r)
	}
	return m
}

// Collectors returns the collectors for registration.
func (m *UploadMetrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Bytes, m.Uploads, m.Duration, m.Retries, m.Parked, m.Queued,
		m.SpoolBytes, m.SpoolItems, m.OverLimit, m.OldestAge}
}

func (m *UploadMetrics) queued(n int64) { m.Queued.Add(float64(n)) }

func (m *UploadMetrics) attach(u *Uploader) {
	m.mu.Lock()
	m.up = u
	m.mu.Unlock()
}

func (m *UploadMetrics) detach(u *Uploader) {
	m.mu.Lock()
	if m.up == u {
		m.up = nil
	}
	m.mu.Unlock()
}

func (m *UploadMetrics) oldestAge() float64 {
	m.mu.Lock()
	u := m.up
	m.mu.Unlock()
	if u == nil {
		return 0
	}
	if o := u.Stats().Oldest; !o.IsZero() {
		return time.Since(o).Seconds()
	}
	return 0
}
