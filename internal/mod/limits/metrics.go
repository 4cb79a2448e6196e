package limits

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics count every decision of the feature by policy and reason.
type metrics struct {
	decisions *prometheus.CounterVec // policy, reason, action
	delay     *prometheus.CounterVec // reason
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "limits", Name: "decisions_total",
			Help: "Limit decisions by policy (connections, sessions, stanza_rate, unsolicited), reason and action (refused, delayed).",
		}, []string{"policy", "reason", "action"}),
		delay: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "limits", Name: "delay_seconds_total",
			Help: "Time sessions were held back by stanza-rate limits (action delay), by reason.",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.decisions, m.delay} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("limits: registering metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) refused(policy, reason string) {
	m.decisions.WithLabelValues(policy, reason, "refused").Inc()
}
