package server

import (
	"context"
	"time"

	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Session states shared between the connection layer and the features
// that decide what happens to a message (stream management XEP-0198,
// client state indication XEP-0352, push XEP-0357). docs/messages.md
// describes how they combine.

// Detacher is implemented by a Conn that can outlive its transport: when
// stream management lets a client resume, its session stays bound while
// the connection is gone, and the Conn keeps what is sent to it for the
// resumed connection (or for offline storage when the session ends).
type Detacher interface {
	Detached() bool
}

// Detached reports whether the session's connection is gone while the
// session waits for its client to resume it (XEP-0198). Stanzas delivered
// to a detached session are kept for the client, not written.
func (s *Session) Detached() bool {
	d, ok := s.conn.(Detacher)
	return ok && d.Detached()
}

var (
	inactiveKey = NewKey[bool]("csi.inactive")
	pushKey     = NewKey[bool]("push.enabled")
)

// Inactive reports whether the client said it is inactive (XEP-0352 CSI):
// nobody is looking at it, so unimportant stanzas may wait.
func (s *Session) Inactive() bool {
	v, _ := Value(s, inactiveKey)
	return v
}

// SetInactive records the client's CSI state (the csi feature calls it).
func (s *Session) SetInactive(inactive bool) { SetValue(s, inactiveKey, inactive) }

// PushEnabled reports whether the session's client registered for push
// notifications (XEP-0357) during this session. Stream management keeps
// such sessions resumable for longer, since a push wakes the client.
func (s *Session) PushEnabled() bool {
	v, _ := Value(s, pushKey)
	return v
}

// SetPushEnabled records that the session's client enabled (or disabled)
// push notifications (the push feature calls it).
func (s *Session) SetPushEnabled(on bool) { SetValue(s, pushKey, on) }

// Reachable reports whether a stanza written to the session now reaches a
// client that is looking at it: the session is attached to a connection
// and its client did not say it is inactive.
func (s *Session) Reachable() bool { return !s.Detached() && !s.Inactive() }

// DetachedEvent is the payload of SessionDetached.
type DetachedEvent struct {
	Session *Session
	// Unacked are the stanzas the client has not confirmed (they are
	// written again if it resumes). Read them, do not change them.
	Unacked []*xml.Element
	// Timeout is how long the session stays resumable.
	Timeout time.Duration
}

// Stream management lifecycle events (XEP-0198).
var (
	// SessionDetached fires when a session's connection was lost and
	// the session stays bound for its client to resume.
	SessionDetached = Event[DetachedEvent]{"session-detached"}
	// SessionResumed fires when a client resumed a detached (or still
	// attached) session on a new connection.
	SessionResumed = Event[*Session]{"session-resumed"}
)

// Undelivered takes back a message that a session accepted but whose
// client never confirmed it (XEP-0198 unacknowledged stanzas of a session
// that ended without resuming, or stanzas a feature held for a session
// that ended). It runs the Undeliverable stage (offline storage keeps it
// for the account's next login) without trying the account's other
// sessions: they may already have it, through bare-JID delivery or
// carbons, and must not get it twice. If nothing keeps it, the sender
// gets service-unavailable. Only chat and normal messages are kept;
// anything else is dropped. The session must already be unbound.
func (srv *Server) Undelivered(ctx context.Context, bare jid.JID, el *xml.Element) {
	st, err := NewStanza(el)
	if err != nil || st.Kind != KindMessage {
		return
	}
	switch st.Type {
	case "", "normal", "chat":
	default:
		return
	}
	st.To = bare.Bare()
	if !srv.runStage(ctx, Undeliverable, st) {
		return
	}
	srv.Bounce(ctx, st, stanza.NewError(stanza.ServiceUnavailable, ""))
}
