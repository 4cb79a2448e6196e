// Package c2s serves client-to-server XMPP connections (RFC 6120): TLS
// (STARTTLS and direct TLS, XEP-0368), SASL (with channel binding,
// XEP-0440, and downgrade protection, XEP-0474), resource binding, and the
// session's read loop and bounded write queue. Stanzas go to the server's
// pipeline; the server reaches the client through the Conn interface.
package c2s

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"stoa.im/stoa/internal/certs"
	"stoa.im/stoa/internal/listen"
	"stoa.im/stoa/internal/netpark"
	"stoa.im/stoa/internal/policy"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Service runs the client listeners of one server.
type Service struct {
	srv    *server.Server
	cfg    Config
	certs  *certs.Store
	log    *slog.Logger
	secret []byte

	metrics  *metrics
	bw       *bandwidthMetrics // bandwidth.go
	sm       *smMetrics
	bufs     xml.BufferPool // read buffers shared by idle decoders
	wbufs    sync.Pool      // *[]byte: write buffers of writer goroutines (write.go)
	tlsOnce  sync.Once      // tlsCfg is built once: see tlsConfig
	tlsCfg   *tls.Config
	failIP   *policy.Backoff
	failUser *policy.Backoff

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[*conn]struct{}
	wg        sync.WaitGroup
	closing   bool
	smReg     smRegistry    // resumable sessions (sm.go)
	stop      chan struct{} // closed by Shutdown

	park     *netpark.Poller // parked idle connections (park.go); nil: off
	parkDone chan struct{}   // closed when the poller's goroutine ended
}

// New returns a Service; call Listen, then Serve.
func New(srv *server.Server, cfg Config, cs *certs.Store, secret []byte, log *slog.Logger) *Service {
	failIP, failUser := newBackoffs(cfg.LoginBackoff)
	return &Service{
		srv: srv, cfg: cfg, certs: cs, secret: secret, log: log.With("feature", "c2s"),
		failIP: failIP, failUser: failUser,
		metrics: newMetrics(srv.Registry()),
		bw:      newBandwidthMetrics(srv.Registry()),
		sm:      newSMMetrics(srv.Registry()),
		conns:   make(map[*conn]struct{}),
		stop:    make(chan struct{}),
	}
}

// newBackoffs builds the failed-login throttles; a zero base turns them
// off (nil Backoffs do nothing).
func newBackoffs(b BackoffConfig) (ip, user *policy.Backoff) {
	if b.Base <= 0 {
		return nil, nil
	}
	forget := time.Duration(b.Forget)
	if forget <= 0 {
		forget = time.Hour
	}
	return policy.NewBackoff(time.Duration(b.Base), time.Duration(b.Max), forget, 100000, time.Now),
		policy.NewBackoff(time.Duration(b.Base), time.Duration(b.Max), forget, 100000, time.Now)
}

// Listen opens every configured address. Nothing is served until Serve.
func (svc *Service) Listen() error {
	open := func(addr string, direct bool) error {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("c2s: listening on %s: %w", addr, err)
		}
		if direct {
			l = &directListener{Listener: l}
		}
		svc.listeners = append(svc.listeners, l)
		return nil
	}
	for _, a := range svc.cfg.Listen {
		if err := open(a, false); err != nil {
			svc.closeListeners()
			return err
		}
	}
	for _, a := range svc.cfg.ListenTLS {
		if err := open(a, true); err != nil {
			svc.closeListeners()
			return err
		}
	}
	return nil
}

// directListener marks listeners whose connections start with TLS.
type directListener struct{ net.Listener }

// Addrs returns the bound addresses (STARTTLS first, then direct TLS), so
// tests can listen on port 0.
func (svc *Service) Addrs() (starttls, direct []net.Addr) {
	for _, l := range svc.listeners {
		if _, ok := l.(*directListener); ok {
			direct = append(direct, l.Addr())
		} else {
			starttls = append(starttls, l.Addr())
		}
	}
	return
}

// Serve accepts connections until ctx ends, then stops accepting; use
// Shutdown to end the sessions.
func (svc *Service) Serve(ctx context.Context) {
	svc.runPoller()
	for _, l := range svc.listeners {
		_, direct := l.(*directListener)
		svc.wg.Add(1)
		go func() {
			defer svc.wg.Done()
			svc.accept(ctx, l, direct)
		}()
	}
	svc.wg.Add(1)
	go func() {
		defer svc.wg.Done()
		select {
		case <-ctx.Done():
		case <-svc.stop:
		}
		svc.closeListeners()
	}()
}

func (svc *Service) closeListeners() {
	for _, l := range svc.listeners {
		_ = l.Close()
	}
}

// accept runs one accept loop (listen.Serve: it backs off when file
// descriptors run out).
func (svc *Service) accept(ctx context.Context, l net.Listener, direct bool) {
	listen.Serve(ctx, l, svc.log, func(raw net.Conn) {
		svc.metrics.accepted.Inc()
		c := svc.newConn(ctx, raw, direct)
		svc.mu.Lock()
		if svc.closing {
			svc.mu.Unlock()
			_ = raw.Close()
			return
		}
		svc.conns[c] = struct{}{}
		svc.wg.Add(1)
		svc.mu.Unlock()
		svc.metrics.conns.Inc()
		go func() {
			defer svc.wg.Done()
			if !c.serve(ctx) { // else a fresh goroutine carries on (handoff.go, park.go)
				svc.connGone(c)
			}
		}()
	})
}

// Shutdown stops accepting, ends every connection (sessions get
// system-shutdown after their queued stanzas are written) and waits until
// all connection goroutines are gone or ctx ends.
func (svc *Service) Shutdown(ctx context.Context) error {
	svc.mu.Lock()
	if !svc.closing {
		close(svc.stop)
	}
	svc.closing = true
	conns := make([]*conn, 0, len(svc.conns))
	for c := range svc.conns {
		conns = append(conns, c)
	}
	svc.mu.Unlock()
	svc.closeListeners()
	for _, c := range conns {
		c.shutdown()
	}
	// Sessions waiting for resumption end now: their unacknowledged
	// messages go to offline storage while the store is still open.
	svc.endResumable()
	done := make(chan struct{})
	go func() { svc.wg.Wait(); close(done) }()
	select {
	case <-done:
		svc.stopPoller()
		return nil
	case <-ctx.Done():
		svc.mu.Lock()
		for c := range svc.conns {
			c.wake()
			_ = c.raw.Close()
		}
		svc.mu.Unlock()
		<-done
		svc.stopPoller()
		return ctx.Err()
	}
}

// tlsConfig returns the TLS configuration for client connections. It is
// built once and shared: every tls.Conn keeps its Config, and a Config per
// connection cost about 500 bytes per session and its own session-ticket
// keys at every login (docs/benchmarks.md). Certificates are still chosen
// per handshake (GetCertificate), so reloads take effect.
func (svc *Service) tlsConfig() *tls.Config {
	svc.tlsOnce.Do(func() { svc.tlsCfg = svc.certs.TLSConfig(tls.VersionTLS12, "xmpp-client") })
	return svc.tlsCfg
}
