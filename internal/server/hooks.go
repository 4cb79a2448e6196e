package server

import (
	"cmp"
	"context"
	"slices"

	"stoa.im/stoa/internal/xmpp/stanza"
)

// Stage is a point of the stanza pipeline where features hook in. Stages
// are values, not strings, so a typo is a compile error.
type Stage struct {
	name string
	idx  int
}

func (s Stage) String() string { return s.name }

// The stages, in the order a stanza meets them.
var (
	// Inbound runs for every stanza a local client sends, after the
	// session stamped its from address and before routing. Policies
	// (rate limits, firewall) and features acting on the sender's behalf
	// (roster IQs, presence broadcast) hook here.
	Inbound = Stage{"inbound", 0}
	// DeliverLocal runs for every stanza addressed to a local account or
	// host, whatever its origin (local client, server, federation).
	// Subscription handling, archiving, carbons and blocking hook here.
	DeliverLocal = Stage{"deliver-local", 1}
	// Undeliverable runs for a message addressed to a local account that
	// has no resource to take it. Offline storage hooks here; if no hook
	// handles the message it is bounced with service-unavailable.
	Undeliverable = Stage{"undeliverable", 2}
	// DeliverRemote runs for stanzas addressed to other domains.
	// Federation hooks here; unhandled stanzas bounce with
	// remote-server-not-found.
	DeliverRemote = Stage{"deliver-remote", 3}
	// Outbound runs for every stanza about to be written to one local
	// session (per-session filters: CSI, blocking, stream management).
	Outbound = Stage{"outbound", 4}
	// FromRemote runs for every stanza received from another server
	// (federation), after the connection layer checked the sender's
	// domain and before routing (see Server.InboundRemote). Policies on
	// federated traffic (firewall, s2s limits) hook here.
	FromRemote = Stage{"from-remote", 5}
)

// Stages lists the stages in pipeline order (for `stoa features --hooks`).
var Stages = []Stage{Inbound, FromRemote, DeliverLocal, Undeliverable, DeliverRemote, Outbound}

// Priority orders hooks within a stage: higher runs first; ties run in the
// order the features are listed in internal/mod/all.go.
type Priority int

// Priority bands.
const (
	PrioPolicy   Priority = 1000 // limits, firewall, blocking: may veto
	PrioFeature  Priority = 500  // features that act on stanzas
	PrioObserve  Priority = 100  // archive, metrics: observe and continue
	PrioFallback Priority = -100 // last resort handlers (offline storage)
)

type resultKind uint8

const (
	resNext resultKind = iota
	resDone
	resDeny
)

// Result is what a hook decides.
type Result struct {
	kind   resultKind
	Err    *stanza.Error
	Reason string // snake_case policy reason: metric label and log field
}

// Next lets the stanza continue down the chain.
var Next = Result{}

// Done stops the chain: the hook fully handled the stanza.
var Done = Result{kind: resDone}

// Deny stops the chain and refuses the stanza: the sender gets err (with
// its text) unless the stanza was itself an error or result; the denial is
// logged and counted under reason.
func Deny(reason string, err *stanza.Error) Result {
	return Result{kind: resDeny, Err: err, Reason: reason}
}

// Drop stops the chain and discards the stanza silently, counted under reason.
func Drop(reason string) Result { return Result{kind: resDeny, Reason: reason} }

// IsNext reports whether the chain continues.
func (r Result) IsNext() bool { return r.kind == resNext }

// HookFunc handles a stanza at a stage.
type HookFunc func(ctx context.Context, st *Stanza) Result

type hookEntry struct {
	feature string
	prio    Priority
	seq     int
	fn      HookFunc
}

// HookInfo describes one registered hook (for docs and `stoa features --hooks`).
type HookInfo struct {
	Stage    Stage
	Feature  string
	Priority Priority
}

type hooks struct {
	chains [6][]hookEntry
	seq    int
}

func (h *hooks) add(st Stage, feature string, p Priority, fn HookFunc) {
	h.seq++
	c := append(h.chains[st.idx], hookEntry{feature: feature, prio: p, seq: h.seq, fn: fn})
	slices.SortStableFunc(c, func(a, b hookEntry) int {
		if a.prio != b.prio {
			return cmp.Compare(b.prio, a.prio)
		}
		return cmp.Compare(a.seq, b.seq)
	})
	h.chains[st.idx] = c
}

// run runs the chain of a stage and returns the first non-Next result.
func (h *hooks) run(ctx context.Context, stage Stage, st *Stanza) Result {
	for _, e := range h.chains[stage.idx] {
		if r := e.fn(ctx, st); r.kind != resNext {
			if r.kind == resDeny && r.Reason == "" {
				r.Reason = e.feature
			}
			return r
		}
	}
	return Next
}

func (h *hooks) info() []HookInfo {
	var out []HookInfo
	for _, stage := range Stages {
		for _, e := range h.chains[stage.idx] {
			out = append(out, HookInfo{Stage: stage, Feature: e.feature, Priority: e.prio})
		}
	}
	return out
}

// Event is a typed lifecycle event. Handlers of events whose payload allows
// it may veto by returning an error (e.g. UserRegistering); for the others
// errors are logged.
type Event[T any] struct{ name string }

func (e Event[T]) String() string { return e.name }

// Lifecycle events.
var (
	// SessionBound fires after a resource is bound and the session is in
	// the session table.
	SessionBound = Event[*Session]{"session-bound"}
	// SessionClosed fires after a bound session left the session table.
	SessionClosed = Event[*Session]{"session-closed"}
	// UserCreated fires after an account was created.
	UserCreated = Event[AccountEvent]{"user-created"}
	// UserDeleting fires before an account is deleted (sessions already
	// ended); an error vetoes the deletion.
	UserDeleting = Event[AccountEvent]{"user-deleting"}
	// UserDeleted fires after an account and its data were deleted.
	UserDeleted = Event[AccountEvent]{"user-deleted"}
	// PasswordChanged fires after an account's credentials changed.
	PasswordChanged = Event[AccountEvent]{"password-changed"}
)

// AccountEvent is the payload of account lifecycle events.
type AccountEvent struct {
	JID string // bare JID
	// Via says which path caused it: "cli", "admin", "inband", "web".
	Via string
}

type eventEntry struct {
	feature string
	prio    Priority
	seq     int
	fn      any // func(context.Context, T) error
}

type events struct {
	m   map[string][]eventEntry
	seq int
}

// On registers fn for ev at priority p.
func On[T any](s *Setup, ev Event[T], p Priority, fn func(context.Context, T) error) {
	s.srv.events.seq++
	if s.srv.events.m == nil {
		s.srv.events.m = make(map[string][]eventEntry)
	}
	c := append(s.srv.events.m[ev.name], eventEntry{feature: s.feature, prio: p, seq: s.srv.events.seq, fn: fn})
	slices.SortStableFunc(c, func(a, b eventEntry) int {
		if a.prio != b.prio {
			return cmp.Compare(b.prio, a.prio)
		}
		return cmp.Compare(a.seq, b.seq)
	})
	s.srv.events.m[ev.name] = c
}

// Emit runs the handlers of ev in order and returns the first error (the
// remaining handlers do not run).
func Emit[T any](ctx context.Context, srv *Server, ev Event[T], v T) error {
	for _, e := range srv.events.m[ev.name] {
		if err := e.fn.(func(context.Context, T) error)(ctx, v); err != nil {
			return err
		}
	}
	return nil
}

// Notify runs all handlers of ev; errors are logged, not returned.
func Notify[T any](ctx context.Context, srv *Server, ev Event[T], v T) {
	for _, e := range srv.events.m[ev.name] {
		if err := e.fn.(func(context.Context, T) error)(ctx, v); err != nil {
			srv.log.Warn("event handler failed", "event", ev.name, "feature", e.feature, "err", err)
		}
	}
}
