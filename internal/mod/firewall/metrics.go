package firewall

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the feature's Prometheus metrics (stoa_firewall_…).
type metrics struct {
	decisions        *prometheus.CounterVec
	reloads          *prometheus.CounterVec
	rules            prometheus.Gauge
	notifySuppressed prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "firewall", Name: "decisions_total",
			Help: "Actions taken by firewall rules that matched, by chain (local, remote, deliver), rule name and action (pass, drop, bounce, log, restrict, suspend, report, notify-admins).",
		}, []string{"chain", "rule", "action"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "firewall", Name: "loads_total",
			Help: "Loads of the rule files by result: ok (the new rules run), error (the files have errors; the previous rules stay).",
		}, []string{"result"}),
		rules: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "stoa", Subsystem: "firewall", Name: "rules",
			Help: "Firewall rules in service.",
		}),
		notifySuppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "firewall", Name: "notifications_suppressed_total",
			Help: "Administrator notifications not sent because a rule matched more often than one a minute (after a burst of five).",
		}),
	}
	for _, c := range []prometheus.Collector{m.decisions, m.reloads, m.rules, m.notifySuppressed} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("firewall: registering metrics: %w", err)
		}
	}
	return m, nil
}
