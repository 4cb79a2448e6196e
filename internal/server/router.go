package server

import (
	"context"
	"fmt"

	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Inbound takes a stanza from a local client session (from already
// stamped), runs the Inbound hooks and routes it.
func (srv *Server) Inbound(ctx context.Context, st *Stanza) {
	srv.metrics.stanza(0, st.Kind).Inc()
	if !srv.runStage(ctx, Inbound, st) {
		return
	}
	if st.To.IsZero() {
		// Only presence broadcasts have no 'to'; a presence feature
		// handles them. Without one, there is nothing to do.
		return
	}
	srv.Route(ctx, st)
}

// runStage runs a stage's hooks; it reports whether the stanza continues.
// A denial is answered, logged and counted here, in one place.
func (srv *Server) runStage(ctx context.Context, stage Stage, st *Stanza) bool {
	r := srv.hooks.run(ctx, stage, st)
	switch r.kind {
	case resNext:
		return true
	case resDeny:
		srv.metrics.denied.WithLabelValues(r.Reason).Inc()
		srv.log.Info("stanza refused", "policy", r.Reason, "stage", stage.name,
			"kind", st.Kind.String(), "from", st.From.String(), "to", st.To.String())
		if r.Err != nil {
			srv.Bounce(ctx, st, r.Err)
		}
	}
	return false
}

// Route delivers a stanza to its 'to' address: a local host or account,
// or (through the DeliverRemote hooks) another server.
func (srv *Server) Route(ctx context.Context, st *Stanza) {
	if st.To.IsZero() {
		return
	}
	if srv.hosts[st.To.Domain()] != nil {
		srv.deliverLocal(ctx, st)
		return
	}
	if !srv.runStage(ctx, DeliverRemote, st) {
		return
	}
	srv.Bounce(ctx, st, stanza.Errorf(stanza.RemoteServerNotFound,
		"This server does not federate with %s (server-to-server connections are not enabled).", st.To.Domain()))
}

// RouteElement routes a stanza the server itself produced (a reply, a
// push, an error). El must carry to (and normally from).
func (srv *Server) RouteElement(ctx context.Context, el *xml.Element) error {
	st, err := NewStanza(el)
	if err != nil {
		return fmt.Errorf("server: route: %w", err)
	}
	if st.Kind == 0 {
		return fmt.Errorf("server: route: <%s/> is not a stanza", el.Local)
	}
	srv.Route(ctx, st)
	return nil
}

// Bounce answers st with a stanza error, unless st is itself an error or
// an IQ result (RFC 6120 §8.3.1: never answer an error with an error).
func (srv *Server) Bounce(ctx context.Context, st *Stanza, e *stanza.Error) {
	if st.IsError() || (st.Kind == KindIQ && st.Type == "result") || st.From.IsZero() {
		return
	}
	el := stanza.ErrorReply(st.El, e)
	if st.To.IsZero() {
		el.SetAttr("from", st.From.Bare().String())
	}
	// A bounce for a stanza the server itself addressed to a local
	// resource that vanished goes nowhere useful; avoid loops. An IQ the
	// server sent with SendIQ gets its error answer, though.
	if f, err := jid.Parse(el.Attr("to")); err == nil && f.IsDomain() && srv.hosts[f.Domain()] != nil {
		if st.Kind == KindIQ {
			if r, err := NewStanza(el); err == nil {
				srv.response(r)
			}
		}
		return
	}
	_ = srv.RouteElement(ctx, el)
}

// deliverLocal implements RFC 6121 §8.5 for a stanza to a local domain,
// account or resource.
func (srv *Server) deliverLocal(ctx context.Context, st *Stanza) {
	if !srv.runStage(ctx, DeliverLocal, st) {
		return
	}
	to := st.To
	if to.Local() == "" {
		srv.deliverToHost(ctx, st)
		return
	}
	if to.Resource() != "" {
		if s := srv.Session(to); s != nil {
			s.Deliver(ctx, st)
			return
		}
		srv.noSuchResource(ctx, st)
		return
	}
	srv.deliverToBare(ctx, st)
}

func (srv *Server) deliverToHost(ctx context.Context, st *Stanza) {
	if st.Kind != KindIQ {
		return // messages and presence to the server: nothing handles them here
	}
	if st.IsRequest() {
		if st.To.Resource() == "" && srv.handleIQ(ctx, ToServer, st) {
			return
		}
		srv.Bounce(ctx, st, stanza.NewError(stanza.ServiceUnavailable, ""))
		return
	}
	srv.response(st)
}

// noSuchResource handles a stanza to a full JID with no such session
// (RFC 6121 §8.5.3.2).
func (srv *Server) noSuchResource(ctx context.Context, st *Stanza) {
	switch st.Kind {
	case KindIQ:
		srv.Bounce(ctx, st, stanza.NewError(stanza.ServiceUnavailable, ""))
	case KindMessage:
		switch st.Type {
		case "", "normal", "chat":
			srv.deliverMessageToBare(ctx, st)
		case "groupchat":
			srv.Bounce(ctx, st, stanza.NewError(stanza.ServiceUnavailable, ""))
		}
		// headline, error: silently ignored
	case KindPresence:
		// available/unavailable/probe to a gone resource: ignored.
		// Subscription presences were handled by the roster hooks.
	}
}

func (srv *Server) deliverToBare(ctx context.Context, st *Stanza) {
	switch st.Kind {
	case KindIQ:
		if st.IsRequest() {
			if srv.handleIQ(ctx, ToAccount, st) {
				return
			}
			srv.Bounce(ctx, st, stanza.NewError(stanza.ServiceUnavailable, ""))
		}
		// results and errors to a bare JID: ignored (RFC 6121 §8.5.2.1.3)
	case KindMessage:
		srv.deliverMessageToBare(ctx, st)
	case KindPresence:
		// available / unavailable: to every available resource
		// (RFC 6121 §8.5.2.1.2 / §4.5). Subscription types and probes
		// were handled by the presence and roster features.
		if st.Type == "" || st.Type == "unavailable" {
			for _, s := range srv.Sessions(st.To) {
				if s.Available() {
					s.Deliver(ctx, st)
				}
			}
		}
	}
}

// deliverMessageToBare applies RFC 6121 §8.5.2 to a message for an account.
func (srv *Server) deliverMessageToBare(ctx context.Context, st *Stanza) {
	targets := MessageTargets(srv.Sessions(st.To), st.Type)
	switch st.Type {
	case "groupchat":
		srv.Bounce(ctx, st, stanza.NewError(stanza.ServiceUnavailable, ""))
		return
	case "error":
		// Errors to a bare JID are delivered like headlines if someone is
		// there, else dropped.
		for _, s := range targets {
			s.Deliver(ctx, st)
		}
		return
	}
	delivered := false
	for _, s := range targets {
		c := st
		if len(targets) > 1 {
			c = &Stanza{El: st.El.Copy(), Kind: st.Kind, From: st.From, To: st.To, Type: st.Type, ID: st.ID, Origin: st.Origin}
		}
		if s.Deliver(ctx, c) {
			delivered = true
		}
	}
	if delivered || st.Type == "headline" {
		return
	}
	if !srv.runStage(ctx, Undeliverable, st) {
		return
	}
	srv.Bounce(ctx, st, stanza.NewError(stanza.ServiceUnavailable, ""))
}

// MessageTargets picks the sessions a message to a bare JID goes to
// (RFC 6121 §8.5.2.1.1): available resources with non-negative priority;
// for chat and normal messages, those with the highest priority; for
// headlines, all of them.
func MessageTargets(sessions []*Session, typ string) []*Session {
	var out []*Session
	best := -1
	for _, s := range sessions {
		if !s.Available() {
			continue
		}
		p := s.Priority()
		if p < 0 {
			continue
		}
		if typ == "headline" || typ == "error" {
			out = append(out, s)
			continue
		}
		switch {
		case p > best:
			best = p
			out = append(out[:0], s)
		case p == best:
			out = append(out, s)
		}
	}
	return out
}

// Redeliver takes back a message that was queued for a session that went
// away before writing it, and delivers it to the account's other
// resources or to offline storage. The session must already be unbound.
func (srv *Server) Redeliver(ctx context.Context, bare jid.JID, el *xml.Element) {
	st, err := NewStanza(el)
	if err != nil || st.Kind != KindMessage {
		return
	}
	st.To = bare
	srv.deliverMessageToBare(ctx, st)
}
