package server

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Conn is what a connection layer (c2s, later WebSocket and BOSH) gives the
// server to reach one client.
type Conn interface {
	// Send queues el for writing without blocking. When the bounded queue
	// is full the connection closes itself with a stream error and Send
	// returns an error.
	Send(el *xml.Element) error
	// Close ends the stream with err (nil: a clean close) and the
	// connection; it does not wait.
	Close(err *stanza.StreamError)
	// RemoteAddr is the client's address.
	RemoteAddr() netip.AddrPort
}

// Session is a bound client session: a full JID on a connection, with the
// presence state RFC 6121 needs. Fields are guarded by the session's mutex
// and read through methods.
type Session struct {
	id   string
	jid  jid.JID
	host *Host
	conn Conn
	srv  *Server

	mu         sync.Mutex
	presence   *xml.Element // last broadcast available presence; nil = unavailable
	priority   int
	available  bool // sent initial presence and not yet unavailable
	interested bool // requested the roster (RFC 6121 §2.1.6 "interested resource")
	directed   map[string]struct{}
	values     map[any]any
	closed     bool
	started    time.Time
}

// ID is the session's unique id (also the stream id), used in logs as sid.
func (s *Session) ID() string { return s.id }

// JID is the session's full JID.
func (s *Session) JID() jid.JID { return s.jid }

// Host is the host the session belongs to.
func (s *Session) Host() *Host { return s.host }

// RemoteAddr is the client's address.
func (s *Session) RemoteAddr() netip.AddrPort { return s.conn.RemoteAddr() }

// Started is when the session was bound.
func (s *Session) Started() time.Time { return s.started }

// Available reports whether the session has sent initial presence (and
// not gone unavailable since).
func (s *Session) Available() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.available
}

// Priority is the priority of the last available presence.
func (s *Session) Priority() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.priority
}

// Presence returns the last available presence broadcast (nil when unavailable).
func (s *Session) Presence() *xml.Element {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.presence
}

// SetPresence records the session's broadcast presence. A nil el marks it
// unavailable. It returns whether the session was available before.
func (s *Session) SetPresence(el *xml.Element, priority int) (wasAvailable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wasAvailable = s.available
	s.presence = el
	s.priority = priority
	s.available = el != nil
	return wasAvailable
}

// Interested reports whether the session requested the roster.
func (s *Session) Interested() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.interested
}

// SetInterested marks the session as having requested the roster.
func (s *Session) SetInterested() {
	s.mu.Lock()
	s.interested = true
	s.mu.Unlock()
}

// AddDirected records that the session sent directed presence to j.
func (s *Session) AddDirected(j string) {
	s.mu.Lock()
	if s.directed == nil {
		s.directed = make(map[string]struct{})
	}
	s.directed[j] = struct{}{}
	s.mu.Unlock()
}

// RemoveDirected forgets a directed-presence recipient.
func (s *Session) RemoveDirected(j string) {
	s.mu.Lock()
	delete(s.directed, j)
	s.mu.Unlock()
}

// TakeDirected returns and clears the directed-presence recipients.
func (s *Session) TakeDirected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.directed))
	for j := range s.directed {
		out = append(out, j)
	}
	s.directed = nil
	return out
}

// Key is a typed key for per-session feature state.
type Key[T any] struct{ name string }

// NewKey returns a key; name is for debugging.
func NewKey[T any](name string) *Key[T] { return &Key[T]{name: name} }

// Value returns the session's value for k.
func Value[T any](s *Session, k *Key[T]) (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[k]
	if !ok {
		var zero T
		return zero, false
	}
	return v.(T), true
}

// SetValue sets the session's value for k.
func SetValue[T any](s *Session, k *Key[T], v T) {
	s.mu.Lock()
	if s.values == nil {
		s.values = make(map[any]any)
	}
	s.values[k] = v
	s.mu.Unlock()
}

// Deliver runs the Outbound hooks for st and queues it on the session's
// connection. It reports whether the stanza was queued.
func (s *Session) Deliver(ctx context.Context, st *Stanza) bool {
	st.Target = s
	if r := s.srv.hooks.run(ctx, Outbound, st); !r.IsNext() {
		if r.kind == resDeny {
			s.srv.metrics.denied.WithLabelValues(r.Reason).Inc()
		}
		return r.kind == resDone
	}
	if err := s.conn.Send(st.El); err != nil {
		return false
	}
	s.srv.metrics.stanza(1, st.Kind).Inc()
	return true
}

// Send writes a non-stanza element (stream management, CSI answers) or a
// stanza that must bypass the Outbound hooks.
func (s *Session) Send(el *xml.Element) error { return s.conn.Send(el) }

// Close ends the session's stream with err.
func (s *Session) Close(err *stanza.StreamError) { s.conn.Close(err) }
