package server

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/xml"
)

// ConnInfo describes a client connection to features, before and after
// authentication. The connection layer owns it; features read it.
type ConnInfo struct {
	ID     string // stream id of the current stream
	Remote netip.AddrPort
	Host   string // the host the stream is for ("" until the header was read)
	TLS    bool
	// User is the authenticated bare JID (zero before authentication).
	User jid.JID
	// Transport is "c2s" (TCP), later "websocket" or "bosh".
	Transport string
	// Invite is the invitation token (XEP-0445) the client presented
	// before registering and the invitation feature accepted at InviteAt
	// (its expiry is judged at that time). Set and read on the
	// connection's goroutine, by pre-authentication IQ handlers.
	Invite   string
	InviteAt time.Time
}

// Connection events. Handlers may veto with an error whose text is shown
// to the client (wrap a *Refusal to choose the reason label).
var (
	// ConnectionAccepted fires when a client connection is accepted,
	// before any byte is read; a veto closes it with policy-violation.
	ConnectionAccepted = Event[*ConnInfo]{"connection-accepted"}
	// ConnectionClosed fires when a connection ended (after its session,
	// if any, was unbound), for every connection ConnectionAccepted saw,
	// whether or not a handler vetoed it.
	ConnectionClosed = Event[*ConnInfo]{"connection-closed"}
	// Authenticated fires after SASL succeeded and before <success/> is
	// sent; a veto turns it into a SASL failure (account-disabled) with
	// the error's text (suspended accounts).
	Authenticated = Event[*ConnInfo]{"authenticated"}
	// SessionBinding fires before a resource is bound; a veto refuses the
	// bind with the error's text (resource limits).
	SessionBinding = Event[BindEvent]{"session-binding"}
	// SessionAvailable fires when a session sends initial presence (or
	// goes from negative to non-negative priority); the presence feature
	// fires it after recording the presence.
	SessionAvailable = Event[*Session]{"session-available"}
)

// BindEvent is the payload of SessionBinding.
type BindEvent struct {
	JID  jid.JID // the full JID about to be bound
	Conn *ConnInfo
}

// Refusal is an error a veto returns to say why, in words for the user,
// under a snake_case reason for metrics and logs.
type Refusal struct {
	Reason string
	Text   string
}

func (r *Refusal) Error() string { return r.Text }

// Refuse returns a Refusal.
func Refuse(reason, format string, args ...any) *Refusal {
	return &Refusal{Reason: reason, Text: fmt.Sprintf(format, args...)}
}

// PreAuthIQHandler answers an IQ sent before authentication (in-band
// registration). It returns the result payload or an error as IQHandler.
type PreAuthIQHandler func(ctx context.Context, c *ConnInfo, iq *xml.Element) (*xml.Element, error)

// StreamElementHandler handles a non-stanza top-level element of a bound
// session (stream management, client state indication).
type StreamElementHandler func(ctx context.Context, s *Session, el *xml.Element) error

type streamRegistry struct {
	preAuthFeatures []func(*ConnInfo) *xml.Element
	features        []func(*ConnInfo) *xml.Element
	preAuthIQ       map[string]PreAuthIQHandler        // payload namespace
	elements        map[[2]string]StreamElementHandler // {ns, local}
}

// PreAuthFeature adds a stream feature offered before authentication
// (f returns nil to offer nothing on this connection).
func (s *Setup) PreAuthFeature(f func(c *ConnInfo) *xml.Element) {
	s.srv.streams.preAuthFeatures = append(s.srv.streams.preAuthFeatures, f)
}

// PreAuthIQ handles IQs whose payload is in namespace ns on
// unauthenticated streams.
func (s *Setup) PreAuthIQ(ns string, h PreAuthIQHandler) {
	if s.srv.streams.preAuthIQ == nil {
		s.srv.streams.preAuthIQ = make(map[string]PreAuthIQHandler)
	}
	s.srv.streams.preAuthIQ[ns] = h
}

// StreamElement handles the top-level element {ns}local on bound sessions.
func (s *Setup) StreamElement(ns, local string, h StreamElementHandler) {
	if s.srv.streams.elements == nil {
		s.srv.streams.elements = make(map[[2]string]StreamElementHandler)
	}
	s.srv.streams.elements[[2]string{ns, local}] = h
}

// PreAuthFeatures returns the pre-authentication features for c.
func (srv *Server) PreAuthFeatures(c *ConnInfo) []*xml.Element {
	var out []*xml.Element
	for _, f := range srv.streams.preAuthFeatures {
		if el := f(c); el != nil {
			out = append(out, el)
		}
	}
	return out
}

// PreAuthIQ returns the handler for a pre-authentication IQ payload namespace.
func (srv *Server) PreAuthIQ(ns string) PreAuthIQHandler { return srv.streams.preAuthIQ[ns] }

// StreamElement returns the handler for a top-level element of a bound session.
func (srv *Server) StreamElement(ns, local string) StreamElementHandler {
	return srv.streams.elements[[2]string{ns, local}]
}
