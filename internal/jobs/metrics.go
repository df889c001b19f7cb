package jobs

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the job queue.
type Metrics struct {
	Running  prometheus.Gauge
	Queued   prometheus.Gauge         // refreshed by the reaper
	Failed   *prometheus.CounterVec   // failed attempts by kind (a died process counts)
	Duration *prometheus.HistogramVec // attempt durations by kind
}

// NewMetrics returns the queue's metrics; register Collectors.
func NewMetrics() *Metrics {
	return &Metrics{
		Running: prometheus.NewGauge(prometheus.GaugeOpts{Name: "livrec_jobs_running", Help: "Background jobs running in this process."}),
		Queued: prometheus.NewGauge(prometheus.GaugeOpts{Name: "livrec_jobs_queued",
			Help: "Background jobs waiting: available, scheduled or waiting for a retry."}),
		Failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "livrec_job_failures_total",
			Help: "Failed job attempts by kind (including attempts whose process died)."}, []string{"kind"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "livrec_job_duration_seconds",
			Help: "Duration of job attempts by kind.", Buckets: prometheus.ExponentialBuckets(0.1, 4, 10)}, []string{"kind"}),
	}
}

// Collectors lists the metrics for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Running, m.Queued, m.Failed, m.Duration}
}
