package offline

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the feature's Prometheus metrics (stoa_offline_…).
type metrics struct {
	stored    prometheus.Counter
	delivered prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "offline", Name: "stored_total",
			Help: "Messages stored for accounts with no available resource.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "offline", Name: "delivered_total",
			Help: "Stored messages delivered to a resource that came online.",
		}),
	}
	for _, c := range []prometheus.Collector{m.stored, m.delivered} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("offline: registering metrics: %w", err)
		}
	}
	return m, nil
}
