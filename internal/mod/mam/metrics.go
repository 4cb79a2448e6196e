package mam

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the feature's Prometheus metrics (stoa_mam_…).
type metrics struct {
	archived     *prometheus.CounterVec
	written      prometheus.Counter
	trimmed      prometheus.Counter
	writeErrors  prometheus.Counter
	writeSeconds prometheus.Histogram
	waits        prometheus.Counter
	purged       *prometheus.CounterVec
	purgeSeconds prometheus.Histogram
	queries      prometheus.Counter
	querySeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, f *feature) (*metrics, error) {
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	m := &metrics{
		archived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "mam", Name: "archived_total",
			Help: "Messages queued for an archive, by direction for the archive's owner (in: received, out: sent).",
		}, []string{"dir"}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "mam", Name: "written_total",
			Help: "Messages written to archives.",
		}),
		trimmed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "mam", Name: "quota_trimmed_total",
			Help: "Oldest messages deleted to keep archives within mam.quota.",
		}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "mam", Name: "write_errors_total",
			Help: "Failed archive write transactions (retried; the messages stay queued).",
		}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "stoa", Subsystem: "mam", Name: "write_batch_seconds",
			Help: "Time to write one batch of queued messages.", Buckets: buckets,
		}),
		waits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "mam", Name: "write_queue_waits_total",
			Help: "Messages whose sender had to wait for room in a full write queue (backpressure).",
		}),
		purged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "mam", Name: "purged_total",
			Help: "Archived messages removed, by kind: expired (retention), deleted_account.",
		}, []string{"kind"}),
		purgeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "stoa", Subsystem: "mam", Name: "purge_batch_seconds",
			Help: "Time one purge transaction held the database.", Buckets: buckets,
		}),
		queries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "mam", Name: "queries_total",
			Help: "Archive queries answered.",
		}),
		querySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "stoa", Subsystem: "mam", Name: "query_seconds",
			Help: "Time to answer an archive query (reading the page and queueing its messages).", Buckets: buckets,
		}),
	}
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "stoa", Subsystem: "mam", Name: "write_queue",
		Help: "Messages waiting to be written to archives.",
	}, func() float64 {
		if f.w == nil {
			return 0
		}
		return float64(f.w.queued())
	})
	for _, c := range []prometheus.Collector{m.archived, m.written, m.trimmed, m.writeErrors, m.writeSeconds,
		m.waits, m.purged, m.purgeSeconds, m.queries, m.querySeconds, queue} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("mam: registering metrics: %w", err)
		}
	}
	return m, nil
}
