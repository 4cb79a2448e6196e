package c2s

import "github.com/prometheus/client_golang/prometheus"

// metrics are the c2s layer's Prometheus metrics (stoa_c2s_…).
type metrics struct {
	conns    prometheus.Gauge
	accepted prometheus.Counter
	auth     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "stoa", Subsystem: "c2s", Name: "connections",
			Help: "Open client connections, authenticated or not.",
		}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "c2s", Name: "accepted_total",
			Help: "Client connections accepted.",
		}),
		auth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "c2s", Name: "auth_total",
			Help: "SASL authentication attempts by result (success, failure, throttled) and mechanism.",
		}, []string{"result", "mechanism"}),
	}
	reg.MustRegister(m.conns, m.accepted, m.auth)
	return m
}
