// Package server is stoa's core: hosts, the feature registry, the stanza
// pipeline (ordered, typed hooks with vetoes), the router and the session
// table. It knows no feature: features register through Setup, and
// connection layers (c2s, later s2s and HTTP transports) hand it stanzas.
package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Host is one served domain.
type Host struct {
	Name string
}

// Options configure a Server.
type Options struct {
	Hosts  []string
	Admins []string
	Store  store.Store
	Logger *slog.Logger
	// Features in registry order, with their configuration values (nil
	// config = the feature's Defaults).
	Features []Feature
	Config   func(feature string) any
	// LoginWorkers bounds concurrent expensive login work (PBKDF2 for
	// PLAIN); 0 means the number of CPUs.
	LoginWorkers int
	// Version is the software version shown by XEP-0092 and `stoa version`.
	Version string
	// PublicURL is the base URL under which the web listener is reached
	// from outside (invitation landing pages, sign-up); "" when the web
	// listener is off.
	PublicURL string
}

// Server is one stoa node.
type Server struct {
	log      *slog.Logger
	store    store.Store
	hosts    map[string]*Host
	admins   map[string]bool
	version  string
	started  time.Time
	features []Feature
	webURL   string

	hooks     hooks
	events    events
	iq        iqRegistry
	disco     *Disco
	streams   streamRegistry
	commands  commandRegistry
	services  serviceRegistry
	adminCmds adminRegistry
	reloaders []func(ctx context.Context)
	starters  []func(ctx context.Context) func()
	sessions  *sessionTable
	metrics   *metrics
	loginSem  chan struct{}
	idSeq     atomic.Uint64

	// Set by the limits feature (bandwidth.go).
	bandwidth   BandwidthPolicy
	bandwidthBy string

	runMu   sync.Mutex
	cancel  context.CancelFunc
	waiters []func()
}

// New builds a server and runs every feature's Setup in order.
func New(opts Options) (*Server, error) {
	if len(opts.Hosts) == 0 {
		return nil, errors.New("server: no hosts configured")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	workers := opts.LoginWorkers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	srv := &Server{
		log:      opts.Logger,
		store:    opts.Store,
		hosts:    make(map[string]*Host),
		admins:   make(map[string]bool),
		version:  opts.Version,
		started:  time.Now(),
		features: opts.Features,
		webURL:   strings.TrimRight(opts.PublicURL, "/"),
		disco:    &Disco{},
		sessions: newSessionTable(),
		loginSem: make(chan struct{}, workers),
	}
	srv.metrics = newMetrics(srv)
	for _, h := range opts.Hosts {
		j, err := jid.Parse(h)
		if err != nil || !j.IsDomain() {
			return nil, fmt.Errorf("server: host %q is not a valid domain", h)
		}
		srv.hosts[j.Domain()] = &Host{Name: j.Domain()}
	}
	for _, a := range opts.Admins {
		j, err := jid.Parse(a)
		if err != nil {
			return nil, fmt.Errorf("server: admin %q is not a valid JID: %w", a, err)
		}
		srv.admins[j.Bare().String()] = true
	}
	for _, f := range opts.Features {
		s := &Setup{srv: srv, feature: f.Name, log: srv.log.With("feature", f.Name)}
		var cfg any
		if opts.Config != nil {
			cfg = opts.Config(f.Name)
		}
		if cfg == nil {
			cfg = f.Defaults
		}
		if f.Setup != nil {
			if err := f.Setup(s, cfg); err != nil {
				return nil, fmt.Errorf("server: setting up %s: %w", f.Name, err)
			}
		}
	}
	return srv, nil
}

// Start runs the features' start functions. Their goroutines end when
// Stop is called.
func (srv *Server) Start(ctx context.Context) {
	srv.runMu.Lock()
	defer srv.runMu.Unlock()
	ctx, srv.cancel = context.WithCancel(ctx)
	for _, f := range srv.starters {
		if w := f(ctx); w != nil {
			srv.waiters = append(srv.waiters, w)
		}
	}
}

// Stop ends every session with system-shutdown and stops the features'
// background work.
func (srv *Server) Stop() {
	for _, s := range srv.sessions.list() {
		s.Close(stanza.NewStreamError(stanza.SystemShutdown, "The server is shutting down; please reconnect later."))
	}
	srv.runMu.Lock()
	defer srv.runMu.Unlock()
	if srv.cancel != nil {
		srv.cancel()
	}
	for _, w := range srv.waiters {
		w()
	}
	srv.waiters = nil
}

// Logger returns the server's logger.
func (srv *Server) Logger() *slog.Logger { return srv.log }

// Store returns the storage backend.
func (srv *Server) Store() store.Store { return srv.store }

// Version is the software version.
func (srv *Server) Version() string { return srv.version }

// Uptime is how long the server has run.
func (srv *Server) Uptime() time.Duration { return time.Since(srv.started) }

// Host returns the host named domain, or nil if it is not served here.
func (srv *Server) Host(domain string) *Host { return srv.hosts[domain] }

// Hosts returns the served domains, sorted.
func (srv *Server) Hosts() []string {
	out := make([]string, 0, len(srv.hosts))
	for h := range srv.hosts {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// IsAdmin reports whether the bare JID of j is a configured admin.
func (srv *Server) IsAdmin(j jid.JID) bool { return srv.admins[j.Bare().String()] }

// Admins returns the configured admins' bare JIDs, sorted.
func (srv *Server) Admins() []string {
	out := make([]string, 0, len(srv.admins))
	for a := range srv.admins {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// Features returns the registered features in registry order.
func (srv *Server) Features() []Feature { return srv.features }

// Hooks describes the registered hooks in execution order.
func (srv *Server) Hooks() []HookInfo { return srv.hooks.info() }

// StreamFeatures returns the post-authentication stream features the
// registered features offer on connection c.
func (srv *Server) StreamFeatures(c *ConnInfo) []*xml.Element {
	var out []*xml.Element
	for _, f := range srv.streams.features {
		if el := f(c); el != nil {
			out = append(out, el)
		}
	}
	return out
}

// Expensive runs work in the bounded login worker pool, waiting for a
// slot until ctx ends. Logins that need PBKDF2 go through it so a login
// storm cannot take every CPU from routing.
func (srv *Server) Expensive(ctx context.Context, work func()) error {
	select {
	case srv.loginSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-srv.loginSem }()
	work()
	return nil
}

// NewSessionID returns a random session/stream id.
func NewSessionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b[:])
}

// Bind adds a new session for full JID j on conn. A session already bound
// to the same full JID is replaced: it is closed with a conflict stream
// error (RFC 6120 §7.7.2.2).
func (srv *Server) Bind(ctx context.Context, j jid.JID, id string, conn Conn) (*Session, error) {
	h := srv.hosts[j.Domain()]
	if h == nil {
		return nil, fmt.Errorf("server: bind: %s is not served here", j.Domain())
	}
	s := &Session{id: id, jid: j, host: h, conn: conn, srv: srv, started: time.Now()}
	if old := srv.sessions.bind(s); old != nil {
		srv.log.Info("session replaced by a new login with the same resource", "jid", j.String(), "sid", old.id)
		old.mu.Lock()
		old.closed = true
		old.mu.Unlock()
		old.Close(stanza.NewStreamError(stanza.StreamConflict, "Replaced by a new connection with the same resource."))
		srv.finishSession(ctx, old)
	}
	Notify(ctx, srv, SessionBound, s)
	return s, nil
}

// Unbind removes a session from the table and fires SessionClosed. It is
// safe to call more than once.
func (srv *Server) Unbind(ctx context.Context, s *Session) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	if srv.sessions.remove(s) {
		srv.finishSession(ctx, s)
	}
}

func (srv *Server) finishSession(ctx context.Context, s *Session) {
	Notify(ctx, srv, SessionClosed, s)
}

// Sessions returns the bound sessions of an account (bare JID).
func (srv *Server) Sessions(bare jid.JID) []*Session {
	return srv.sessions.all(bare.Bare().String())
}

// SessionCount returns how many bound sessions an account (bare JID) has,
// without copying them (the stanza path asks it for every message).
func (srv *Server) SessionCount(bare jid.JID) int {
	return srv.sessions.count(bare.Bare().String())
}

// Session returns the session of a full JID, or nil.
func (srv *Server) Session(full jid.JID) *Session {
	return srv.sessions.get(full.Bare().String(), full.Resource())
}

// AllSessions returns every bound session, sorted by JID.
func (srv *Server) AllSessions() []*Session { return srv.sessions.list() }

// Online returns the numbers of online accounts and of sessions.
func (srv *Server) Online() (users, sessions int) { return srv.sessions.counts() }
