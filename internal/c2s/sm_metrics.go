package c2s

import "github.com/prometheus/client_golang/prometheus"

// smMetrics are the stream management metrics (stoa_c2s_sm_…).
type smMetrics struct {
	enabled      *prometheus.CounterVec
	detached     prometheus.Gauge
	resumed      prometheus.Counter
	resumeFailed *prometheus.CounterVec
	expired      prometheus.Counter
	undelivered  prometheus.Counter
}

func newSMMetrics(reg prometheus.Registerer) *smMetrics {
	m := &smMetrics{
		enabled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "c2s", Name: "sm_enabled_total",
			Help: "Sessions that enabled stream management (XEP-0198), by whether resumption was granted.",
		}, []string{"resume"}),
		detached: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "stoa", Subsystem: "c2s", Name: "sm_detached_sessions",
			Help: "Sessions whose connection was lost, waiting for their client to resume them.",
		}),
		resumed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "c2s", Name: "sm_resumed_total",
			Help: "Sessions resumed on a new connection.",
		}),
		resumeFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "c2s", Name: "sm_resume_failed_total",
			Help: "Resumption attempts refused, by reason (not_found covers expired and unknown sessions).",
		}, []string{"reason"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "c2s", Name: "sm_expired_total",
			Help: "Detached sessions that were not resumed within their timeout.",
		}),
		undelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "c2s", Name: "sm_undelivered_messages_total",
			Help: "Unacknowledged messages of ended sessions handed to offline storage.",
		}),
	}
	reg.MustRegister(m.enabled, m.detached, m.resumed, m.resumeFailed, m.expired, m.undelivered)
	return m
}
