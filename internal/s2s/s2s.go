// Package s2s connects stoa to other XMPP servers (federation, RFC 6120):
// incoming and outgoing server streams with STARTTLS or direct TLS
// (XEP-0368), SRV lookup with fallback to port 5269, certificate
// validation (RFC 6125), authentication by SASL EXTERNAL (XEP-0178) or
// Server Dialback (XEP-0220) as the operator's policy allows,
// bidirectional streams (XEP-0288), queues while a connection is set up,
// bounces when it fails, idle close, bandwidth and stanza size limits,
// and notices to administrators when a secure connection fails.
//
// Outgoing stanzas come from the server's DeliverRemote stage; incoming
// stanzas are checked (the sender's domain is one the stream
// authenticated, the recipient's is local) and handed to
// server.InboundRemote.
package s2s

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"stoa.im/stoa/internal/certs"
	"stoa.im/stoa/internal/listen"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Options configure a Service.
type Options struct {
	Config Config
	Certs  *certs.Store
	// Secret is the node's secret; dialback keys are derived from it so
	// that they stay verifiable across restarts.
	Secret []byte
	Logger *slog.Logger
	// Resolver replaces the system's DNS (tests map domains to loopback
	// addresses with MapResolver). Static routes of the configuration
	// apply on top of it.
	Resolver Resolver
	// Roots replaces the trusted roots (system roots plus ca_file).
	Roots *x509.CertPool
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// pair is a domain pair: a local host and a remote domain.
type pair struct{ local, remote string }

// Service runs federation for one server.
type Service struct {
	cfg      Config
	certs    *certs.Store
	roots    *x509.CertPool
	res      Resolver
	dbSecret []byte
	log      *slog.Logger
	now      func() time.Time

	srv     *server.Server // set by the feature's Setup
	metrics *metrics
	notify  *notifier

	mu        sync.Mutex
	ctx       context.Context // set by Serve; nil before
	closing   bool
	out       map[pair]*outConn
	bidiIn    map[pair]*inConn // incoming bidirectional streams we may send on
	ins       map[*inConn]struct{}
	verifies  map[verifyKey]*inConn // dialback keys we asked an authoritative server about
	listeners []net.Listener
	direct    map[net.Listener]bool
	wg        sync.WaitGroup
	stop      chan struct{}
}

// New returns a Service. Add its Feature to the server's features, then
// call Listen and Serve.
func New(opts Options) (*Service, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cfg := opts.Config
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("s2s: %w", err)
	}
	roots := opts.Roots
	if roots == nil {
		var err error
		if roots, err = loadRoots(cfg.CAFile); err != nil {
			return nil, err
		}
	}
	var res Resolver = net.DefaultResolver
	if opts.Resolver != nil {
		res = opts.Resolver
	}
	if len(cfg.Routes) > 0 {
		rr := routeResolver{routes: make(map[string]route), next: res}
		for d, r := range cfg.Routes {
			n, _ := normDomain(d)
			rr.routes[n], _ = parseRoute(r)
		}
		res = rr
	}
	m := hmac.New(sha256.New, opts.Secret)
	m.Write([]byte("stoa s2s dialback v1"))
	svc := &Service{
		cfg: cfg, certs: opts.Certs, roots: roots, res: res, dbSecret: m.Sum(nil),
		log: opts.Logger.With("feature", "s2s"), now: opts.Now,
		out:      make(map[pair]*outConn),
		bidiIn:   make(map[pair]*inConn),
		ins:      make(map[*inConn]struct{}),
		verifies: make(map[verifyKey]*inConn),
		direct:   make(map[net.Listener]bool),
		stop:     make(chan struct{}),
	}
	svc.notify = &notifier{svc: svc, now: opts.Now, last: make(map[string]time.Time)}
	return svc, nil
}

// Feature returns the server feature that hooks the DeliverRemote stage.
// It must be set up by exactly one server.
func (svc *Service) Feature() server.Feature {
	return server.Feature{
		Name: "s2s",
		Doc:  "Federation: stanzas to other domains go over server-to-server connections (RFC 6120, XEP-0178, XEP-0220, XEP-0288, XEP-0368).",
		Setup: func(s *server.Setup, _ any) error {
			svc.srv = s.Server()
			svc.metrics = newMetrics(s.Metrics())
			if svc.cfg.Enabled {
				s.Hook(server.DeliverRemote, server.PrioFeature, svc.deliver)
			}
			return nil
		},
	}
}

// dialbackKey computes the key of XEP-0220 §2.4:
// HMAC-SHA256(SHA256(secret), receiving + ' ' + originating + ' ' + id), hex.
func (svc *Service) dialbackKey(receiving, originating, streamID string) string {
	k := sha256.Sum256(svc.dbSecret)
	m := hmac.New(sha256.New, k[:])
	m.Write([]byte(receiving + " " + originating + " " + streamID))
	return hex.EncodeToString(m.Sum(nil))
}

// matchDomain reports whether d is in list or a subdomain of an entry.
func matchDomain(list []string, d string) bool {
	for _, e := range list {
		if d == e || strings.HasSuffix(d, "."+e) {
			return true
		}
	}
	return false
}

func contains(list []string, d string) bool {
	for _, e := range list {
		if e == d {
			return true
		}
	}
	return false
}

// requireValid reports whether the policy requires a valid certificate
// from domain (no dialback with an invalid one).
func (svc *Service) requireValid(domain string) bool {
	if contains(svc.cfg.SecureDomains, domain) {
		return true
	}
	return svc.cfg.RequireValidCerts && !contains(svc.cfg.InsecureDomains, domain)
}

func (svc *Service) blocked(domain string) bool { return matchDomain(svc.cfg.BlockedDomains, domain) }

// Listen opens the configured listeners (none when federation is off).
func (svc *Service) Listen() error {
	if !svc.cfg.Enabled {
		return nil
	}
	open := func(addr string, direct bool) error {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("s2s: listening on %s: %w", addr, err)
		}
		svc.listeners = append(svc.listeners, l)
		svc.direct[l] = direct
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

// Addrs returns the bound addresses (STARTTLS, then direct TLS).
func (svc *Service) Addrs() (starttls, direct []net.Addr) {
	for _, l := range svc.listeners {
		if svc.direct[l] {
			direct = append(direct, l.Addr())
		} else {
			starttls = append(starttls, l.Addr())
		}
	}
	return
}

func (svc *Service) closeListeners() {
	for _, l := range svc.listeners {
		_ = l.Close()
	}
}

// Serve accepts connections and lets outgoing ones be made until ctx
// ends or Shutdown is called.
func (svc *Service) Serve(ctx context.Context) {
	svc.mu.Lock()
	svc.ctx = ctx
	svc.mu.Unlock()
	if !svc.cfg.Enabled {
		return
	}
	if len(svc.listeners) == 0 {
		svc.log.Info("s2s: no [s2s] listen address: other servers cannot connect, and those that use dialback cannot verify this one; set [s2s] listen = [\"[::]:5269\"]")
	}
	for _, l := range svc.listeners {
		direct := svc.direct[l]
		svc.wg.Add(1)
		go func() {
			defer svc.wg.Done()
			svc.accept(ctx, l, direct)
		}()
	}
	svc.wg.Add(1)
	go func() {
		defer svc.wg.Done()
		svc.janitor(ctx)
	}()
}

// accept runs one accept loop (listen.Serve: it backs off when file
// descriptors run out).
func (svc *Service) accept(ctx context.Context, l net.Listener, direct bool) {
	listen.Serve(ctx, l, svc.log, func(raw net.Conn) {
		ic := &inConn{svc: svc, direct: direct, authed: make(map[pair]string)}
		ic.c = svc.newConn(raw, true)
		svc.mu.Lock()
		if svc.closing {
			svc.mu.Unlock()
			_ = raw.Close()
			return
		}
		svc.ins[ic] = struct{}{}
		svc.wg.Add(1)
		svc.mu.Unlock()
		svc.metrics.conns.WithLabelValues("in").Inc()
		go func() {
			defer svc.wg.Done()
			defer svc.metrics.conns.WithLabelValues("in").Dec()
			ic.serve(ctx)
		}()
	})
}

// janitor closes idle connections.
func (svc *Service) janitor(ctx context.Context) {
	idle := time.Duration(svc.cfg.IdleTimeout)
	tick := time.NewTicker(min(idle/4, 30*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-svc.stop:
			return
		case <-tick.C:
		}
		now := svc.now()
		svc.mu.Lock()
		var outs []*outConn
		for _, oc := range svc.out {
			if c := oc.established(); c != nil && now.Sub(c.idleSince()) > idle {
				outs = append(outs, oc)
			}
		}
		var ins []*inConn
		for ic := range svc.ins {
			if ic.isAuthed() && now.Sub(ic.c.idleSince()) > idle {
				ins = append(ins, ic)
			}
		}
		svc.mu.Unlock()
		for _, oc := range outs {
			oc.c.log.Info("s2s: closing idle connection", "local", oc.p.local, "remote", oc.p.remote)
			svc.retireOut(oc)
			oc.c.close(nil)
		}
		for _, ic := range ins {
			ic.c.log.Info("s2s: closing idle incoming connection")
			svc.retireIn(ic)
			ic.c.close(nil)
		}
	}
}

// Shutdown stops accepting, closes every stream with system-shutdown
// and waits for the connection goroutines until ctx ends.
func (svc *Service) Shutdown(ctx context.Context) error {
	svc.mu.Lock()
	if !svc.closing {
		close(svc.stop)
	}
	svc.closing = true
	var conns []*conn
	for _, oc := range svc.out {
		if c := oc.current(); c != nil {
			conns = append(conns, c)
		}
	}
	for ic := range svc.ins {
		conns = append(conns, ic.c)
	}
	svc.mu.Unlock()
	svc.closeListeners()
	for _, c := range conns {
		c.close(stanza.NewStreamError(stanza.SystemShutdown, "The server is shutting down."))
		go func() {
			select {
			case <-c.done:
			case <-time.After(time.Duration(svc.cfg.WriteTimeout)):
			}
			_ = c.shaped.SetReadDeadline(time.Now())
		}()
	}
	done := make(chan struct{})
	go func() { svc.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			_ = c.shaped.Close()
		}
		<-done
		return ctx.Err()
	}
}

// runCtx returns the serving context, or nil when not serving.
func (svc *Service) runCtx() context.Context {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if svc.closing {
		return nil
	}
	return svc.ctx
}

// deliver is the DeliverRemote hook: it sends st to its domain.
func (svc *Service) deliver(ctx context.Context, st *server.Stanza) server.Result {
	remote := st.To.Domain()
	if svc.blocked(remote) {
		return server.Deny("s2s_blocked_domain", stanza.Errorf(stanza.RemoteServerNotFound,
			"%s is blocked by the administrators of this server.", remote))
	}
	local := st.From.Domain()
	if svc.srv.Host(local) == nil {
		return server.Deny("s2s_not_local_sender", stanza.Errorf(stanza.NotAllowed,
			"Only stanzas from this server's domains are sent to other servers."))
	}
	b := st.El.AppendTo(nil, xml.NSClient)
	if len(b) > int(svc.cfg.MaxStanzaSize) {
		return server.Deny("s2s_stanza_too_big", stanza.Errorf(stanza.PolicyViolation,
			"The stanza is %d bytes; servers accept at most %d.", len(b), svc.cfg.MaxStanzaSize))
	}
	if svc.runCtx() == nil {
		return server.Deny("s2s_not_running", stanza.Errorf(stanza.RemoteServerNotFound,
			"Server-to-server connections are not running."))
	}
	svc.send(ctx, pair{local, remote}, qitem{b: b, st: st})
	return server.Done
}

// send queues a stanza for a domain pair: on an incoming bidirectional
// stream authenticated for it, else on the pair's outgoing connection,
// which is opened if needed.
func (svc *Service) send(ctx context.Context, p pair, it qitem) {
	for range 3 {
		svc.mu.Lock()
		if svc.closing || svc.ctx == nil {
			svc.mu.Unlock()
			svc.bounce(ctx, it, stanza.RemoteServerTimeout, "The server is shutting down.")
			return
		}
		oc := svc.out[p]
		if oc == nil {
			if ic := svc.bidiIn[p]; ic != nil {
				svc.mu.Unlock()
				err := ic.c.send(it)
				if err == nil {
					return
				}
				if errors.Is(err, errQueueFull) {
					svc.bounce(ctx, it, stanza.ResourceConstraint, fmt.Sprintf("Too much is waiting for %s; try again later.", p.remote))
					return
				}
				svc.retireIn(ic)
				continue
			}
			// A new connection starts with the stanza queued, so that a
			// quick failure bounces it instead of racing with it.
			svc.newOut(p, []qitem{it}, nil)
			svc.mu.Unlock()
			return
		}
		svc.mu.Unlock()
		switch err := oc.enqueue(it); {
		case err == nil:
			return
		case errors.Is(err, errQueueFull):
			svc.bounce(ctx, it, stanza.ResourceConstraint, fmt.Sprintf("Too much is waiting for %s; try again later.", p.remote))
			return
		default:
			// The connection is going away: retire it and try again.
			svc.retireOut(oc)
		}
	}
	svc.bounce(ctx, it, stanza.RemoteServerTimeout, fmt.Sprintf("The connection to %s keeps closing.", p.remote))
}

// newOut starts an outgoing connection for p with the given stanzas and
// dialback verifications queued; svc.mu is held.
func (svc *Service) newOut(p pair, queued, verifies []qitem) *outConn {
	oc := &outConn{svc: svc, p: p, pending: queued, verifies: verifies}
	for _, it := range queued {
		oc.pendingBytes += len(it.b)
	}
	svc.out[p] = oc
	svc.wg.Add(1)
	ctx := svc.ctx
	go func() {
		defer svc.wg.Done()
		oc.run(ctx)
	}()
	return oc
}

// retireOut removes oc from the pool (new stanzas open a new connection).
func (svc *Service) retireOut(oc *outConn) {
	svc.mu.Lock()
	if svc.out[oc.p] == oc {
		delete(svc.out, oc.p)
	}
	svc.mu.Unlock()
}

// retireIn stops using ic for outgoing stanzas.
func (svc *Service) retireIn(ic *inConn) {
	svc.mu.Lock()
	for p, c := range svc.bidiIn {
		if c == ic {
			delete(svc.bidiIn, p)
		}
	}
	svc.mu.Unlock()
}

// bounce answers a stanza that could not be sent.
func (svc *Service) bounce(ctx context.Context, it qitem, cond stanza.Condition, text string) {
	if it.st == nil {
		return
	}
	svc.metrics.bounced.WithLabelValues(string(cond)).Inc()
	svc.srv.Bounce(ctx, it.st, stanza.NewError(cond, text))
}

// inbound checks a stanza received on a stream and hands it to the server.
// authorized reports whether the stream may carry stanzas from the
// remote domain to the local one.
func (svc *Service) inbound(ctx context.Context, c *conn, el *xml.Element, authorized func(local, remote string) (ok, fromKnown bool)) error {
	toClientNS(el)
	st, err := server.NewStanza(el)
	if err != nil {
		svc.srv.CountDenied("s2s_bad_address")
		return stanza.NewStreamError(stanza.ImproperAddressing, "A stanza has a malformed 'from' or 'to' address: "+err.Error())
	}
	if st.From.IsZero() || st.To.IsZero() {
		svc.srv.CountDenied("s2s_bad_address")
		return stanza.NewStreamError(stanza.ImproperAddressing, "Stanzas between servers need both 'from' and 'to'.")
	}
	ok, fromKnown := authorized(st.To.Domain(), st.From.Domain())
	if !ok {
		if !fromKnown {
			svc.srv.CountDenied("s2s_invalid_from")
			c.log.Warn("s2s: stanza from a domain the stream did not authenticate; closing the stream",
				"from", st.From.String(), "to", st.To.String())
			return stanza.NewStreamError(stanza.InvalidFrom, fmt.Sprintf("This stream is not authenticated for %s.", st.From.Domain()))
		}
		svc.srv.CountDenied("s2s_host_unknown")
		return stanza.NewStreamError(stanza.HostUnknown, fmt.Sprintf("%s is not served here, or not authenticated on this stream.", st.To.Domain()))
	}
	if st.Kind == server.KindIQ {
		switch st.Type {
		case "get", "set":
			if st.ID == "" {
				svc.srv.Bounce(ctx, st, stanza.NewError(stanza.BadRequest, "An IQ needs an id."))
				return nil
			}
		case "result", "error":
		default:
			svc.srv.Bounce(ctx, st, stanza.NewError(stanza.BadRequest, "Unknown IQ type."))
			return nil
		}
	}
	c.touch()
	svc.metrics.stanza("in", st.From.Domain())
	svc.srv.InboundRemote(ctx, st, c.remote)
	return nil
}

// serverTLS returns the TLS configuration for incoming streams: the
// certificate by SNI, and the peer's certificate requested (it is checked
// after the handshake, so that a bad one can still use dialback).
func (svc *Service) serverTLS() *tls.Config {
	cfg := svc.certs.TLSConfig(tls.VersionTLS12, "xmpp-server")
	cfg.ClientAuth = tls.RequestClientCert
	return cfg
}

// clientTLS returns the TLS configuration for a connection to remote
// from local: SNI remote, our certificate for local as client
// certificate; the server's certificate is checked after the handshake.
func (svc *Service) clientTLS(local, remote string, alpn bool) *tls.Config {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         remote,
		InsecureSkipVerify: true, // verified by verifyCert after the handshake, against policy
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return svc.certs.For(local), nil
		},
	}
	if alpn {
		cfg.NextProtos = []string{"xmpp-server"}
	}
	return cfg
}

// SetCerts sets the certificates served to other servers (the node
// loads them after building the server). Call it before Listen.
func (svc *Service) SetCerts(cs *certs.Store) { svc.certs = cs }
