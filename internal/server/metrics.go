package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"regexp"
)

// metrics are the core's Prometheus metrics, on a registry owned by the
// server (no global registry).
type metrics struct {
	reg      *prometheus.Registry
	stanzas  *prometheus.CounterVec
	byKind   [2][4]prometheus.Counter // stanzas by [in, out][Kind]: no label lookup per stanza
	denied   *prometheus.CounterVec
	sessions prometheus.GaugeFunc
	users    prometheus.GaugeFunc
}

func newMetrics(srv *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.stanzas = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stoa", Name: "stanzas_total",
		Help: "Stanzas by direction (in: from local clients; out: written to local clients) and kind.",
	}, []string{"dir", "kind"})
	m.denied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stoa", Name: "policy_denied_total",
		Help: "Stanzas and actions refused or dropped by a policy, by reason.",
	}, []string{"policy"})
	m.sessions = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "stoa", Name: "sessions",
		Help: "Bound client sessions.",
	}, func() float64 { _, n := srv.sessions.counts(); return float64(n) })
	m.users = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "stoa", Name: "online_users",
		Help: "Accounts with at least one bound session.",
	}, func() float64 { n, _ := srv.sessions.counts(); return float64(n) })
	for d, dir := range []string{"in", "out"} {
		for _, k := range []Kind{KindMessage, KindPresence, KindIQ} {
			m.byKind[d][k] = m.stanzas.WithLabelValues(dir, k.String())
		}
	}
	m.reg.MustRegister(m.stanzas, m.denied, m.sessions, m.users,
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
			// How long runnable goroutines waited for a thread: the
			// server's own queueing delay under load.
			collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/sched/latencies:seconds$`)})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the server's metrics registry (served on /metrics).
func (srv *Server) Registry() *prometheus.Registry { return srv.metrics.reg }

// CountDenied counts a refusal under reason (for refusals outside the
// stanza pipeline, e.g. at login).
func (srv *Server) CountDenied(reason string) { srv.metrics.denied.WithLabelValues(reason).Inc() }

// CountStanzaIn counts a stanza received from a local client.
func (srv *Server) CountStanzaIn(k Kind) { srv.metrics.stanza(0, k).Inc() }

// stanza returns the stoa_stanzas_total counter of a direction (0 in, 1
// out) and kind, resolved once at start: a label lookup per stanza cost
// more than the rest of the routing decision (BenchmarkRouteMessage).
func (m *metrics) stanza(dir int, k Kind) prometheus.Counter {
	if int(k) < len(m.byKind[dir]) && m.byKind[dir][k] != nil {
		return m.byKind[dir][k]
	}
	return m.stanzas.WithLabelValues([]string{"in", "out"}[dir], k.String())
}
