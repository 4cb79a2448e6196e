package s2s

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// maxDomainLabels bounds the number of distinct remote domains used as a
// metric label; the rest are counted under "other".
const maxDomainLabels = 500

// metrics are the federation layer's Prometheus metrics (stoa_s2s_…).
type metrics struct {
	conns    *prometheus.GaugeVec
	attempts *prometheus.CounterVec
	stanzas  *prometheus.CounterVec
	bounced  *prometheus.CounterVec

	mu      sync.Mutex
	domains map[string]bool
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "stoa", Subsystem: "s2s", Name: "connections",
			Help: "Open server-to-server connections by direction (in, out).",
		}, []string{"direction"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "s2s", Name: "authentications_total",
			Help: "Server-to-server authentications by direction, remote domain and outcome (external, dialback, dialback_cert, or the failure: dns, connect, tls, no_tls, untrusted, refused, auth_failed, timeout, blocked, stream_error, closed).",
		}, []string{"direction", "domain", "outcome"}),
		stanzas: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "s2s", Name: "stanzas_total",
			Help: "Stanzas sent to (out) and received from (in) other servers, by remote domain.",
		}, []string{"direction", "domain"}),
		bounced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "s2s", Name: "bounced_total",
			Help: "Stanzas to other servers that bounced, by stanza error condition.",
		}, []string{"condition"}),
		domains: make(map[string]bool),
	}
	reg.MustRegister(m.conns, m.attempts, m.stanzas, m.bounced)
	return m
}

// label returns domain, or "other" once too many domains were seen.
func (m *metrics) label(domain string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.domains[domain] {
		return domain
	}
	if len(m.domains) >= maxDomainLabels {
		return "other"
	}
	m.domains[domain] = true
	return domain
}

func (m *metrics) outcome(dir, domain, outcome string) {
	m.attempts.WithLabelValues(dir, m.label(domain), outcome).Inc()
}

func (m *metrics) stanza(dir, domain string) {
	m.stanzas.WithLabelValues(dir, m.label(domain)).Inc()
}
