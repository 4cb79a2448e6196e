package server

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Status is how complete a feature's support of a XEP is.
type Status string

// Support levels.
const (
	Complete Status = "complete"
	Partial  Status = "partial"
	Planned  Status = "planned"
)

// XEP names a specification a feature implements.
type XEP struct {
	N       int    // XEP number; 0 for an RFC (then Name says which)
	Name    string // e.g. "RFC 6121" or the XEP's title
	Version string
	Status  Status
	Note    string // what is missing when Partial
}

// Feature is one self-contained server feature. Features are listed, in
// order, in internal/mod/all.go; that order breaks priority ties in hooks.
type Feature struct {
	Name string // package name = config table = metric subsystem = log attribute
	Doc  string // one sentence for `stoa features` and the docs
	XEPs []XEP
	// Defaults is the feature's config struct value (its TOML table has
	// the feature's Name), or nil when the feature has no options.
	Defaults any
	// Setup registers the feature's hooks and handlers. cfg holds a value
	// of the same type as Defaults (nil when Defaults is nil).
	Setup func(s *Setup, cfg any) error
}

// Setup is what a feature gets to register itself: it only reaches the
// server through these methods.
type Setup struct {
	srv     *Server
	feature string
	log     *slog.Logger
}

// Logger returns the feature's logger (feature=<name>).
func (s *Setup) Logger() *slog.Logger { return s.log }

// Server returns the server, for routing and session queries at run time.
func (s *Setup) Server() *Server { return s.srv }

// Store returns the storage backend.
func (s *Setup) Store() store.Store { return s.srv.store }

// Metrics returns the registry for the feature's metrics (namespace
// "stoa", subsystem = the feature's name by convention).
func (s *Setup) Metrics() prometheus.Registerer { return s.srv.metrics.reg }

// Hook registers fn at stage with priority p.
func (s *Setup) Hook(stage Stage, p Priority, fn HookFunc) {
	s.srv.hooks.add(stage, s.feature, p, fn)
}

// IQTarget says which IQs a handler takes.
type IQTarget uint8

// IQ targets.
const (
	// ToServer: IQs addressed to a host's domain JID.
	ToServer IQTarget = iota + 1
	// ToAccount: IQs addressed to an account's bare JID (or with no 'to'
	// from the account's own sessions); the server answers on the
	// account's behalf (RFC 6120 §10.3.3). Handlers check the sender.
	ToAccount
)

// IQHandler answers one IQ get or set. It returns the payload of the
// result (nil for an empty result) or an error: a *stanza.Error goes back
// to the sender as is; any other error is logged and answered with
// internal-server-error.
type IQHandler func(ctx context.Context, st *Stanza) (*xml.Element, error)

// HandleIQ registers h for IQs of type typ ("get" or "set") whose payload
// is {ns}local, sent to target.
func (s *Setup) HandleIQ(target IQTarget, typ, ns, local string, h IQHandler) {
	s.srv.iq.add(target, typ, ns, local, s.feature, h)
}

// Disco returns the service discovery registry (XEP-0030).
func (s *Setup) Disco() *Disco { return s.srv.disco }

// StreamFeature adds an element to the stream features offered after
// authentication (f returns nil to offer nothing on this connection).
func (s *Setup) StreamFeature(f func(c *ConnInfo) *xml.Element) {
	s.srv.streams.features = append(s.srv.streams.features, f)
}

// OnStart registers fn to run when the server starts; fn must return
// promptly and tie any goroutine it starts to ctx, which is cancelled at
// shutdown (the server waits for them through the returned wait func).
func (s *Setup) OnStart(fn func(ctx context.Context) (wait func())) {
	s.srv.starters = append(s.srv.starters, fn)
}
