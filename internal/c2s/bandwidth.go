package c2s

import (
	"context"
	"net"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"stoa.im/stoa/internal/policy"
	"stoa.im/stoa/internal/server"
)

// Bandwidth limits. Every client connection is a policy.ShapedConn under
// TLS (so the limits count bytes on the wire). The server's bandwidth
// policy (the limits feature) decides its rates when the connection is
// accepted and again once the user is known (exemptions, per-account
// buckets); nothing is limited when no policy is installed.

type bandwidthMetrics struct {
	bytes   *prometheus.CounterVec
	waits   *prometheus.CounterVec
	seconds *prometheus.CounterVec
}

func newBandwidthMetrics(reg prometheus.Registerer) *bandwidthMetrics {
	m := &bandwidthMetrics{
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "c2s", Name: "limited_bytes_total",
			Help: "Bytes read from (dir=read) or written to (dir=write) client connections while a bandwidth limit applied, counted on the wire.",
		}, []string{"dir"}),
		waits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "c2s", Name: "throttled_total",
			Help: "Times a client connection waited because it used its bandwidth (policy bandwidth), by direction.",
		}, []string{"dir"}),
		seconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "c2s", Name: "throttled_seconds_total",
			Help: "Time client connections spent waiting for bandwidth, by direction.",
		}, []string{"dir"}),
	}
	reg.MustRegister(m.bytes, m.waits, m.seconds)
	for _, d := range []string{"read", "write"} {
		m.bytes.WithLabelValues(d)
		m.waits.WithLabelValues(d)
		m.seconds.WithLabelValues(d)
	}
	return m
}

// shape wraps a new connection for bandwidth limits.
func shape(raw net.Conn) net.Conn { return policy.NewShapedConn(raw) }

// applyBandwidth asks the bandwidth policy for the connection's limits
// (again after authentication) and sets them. The first call also hooks
// the connection's waits to the metrics and the log (one line per
// connection and direction, the first time it is held back).
func (c *conn) applyBandwidth() {
	sc, ok := c.raw.(*policy.ShapedConn)
	if !ok {
		return
	}
	if c.svc.bw != nil && c.info.User.IsZero() { // the first call, before any byte is read
		m := c.svc.bw
		var logged [2]atomic.Bool
		sc.Observe(func(d policy.Direction, wait time.Duration) {
			m.waits.WithLabelValues(d.String()).Inc()
			m.seconds.WithLabelValues(d.String()).Add(wait.Seconds())
			if !logged[d].Swap(true) {
				c.logger().Info("connection throttled", "policy", "bandwidth", "reason", "c2s_"+d.String())
			}
		}, func(d policy.Direction, n int) {
			m.bytes.WithLabelValues(d.String()).Add(float64(n))
		})
	}
	server.ApplyBandwidth(sc, c.svc.srv.Bandwidth(server.ConnC2S, &c.info))
}

// notifyClosed fires ConnectionClosed (connection counts, per-account
// bandwidth buckets) when the connection has ended.
func (c *conn) notifyClosed(ctx context.Context) {
	server.Notify(context.WithoutCancel(ctx), c.svc.srv, server.ConnectionClosed, &c.info)
}
