// Package carbons implements Message Carbons (XEP-0280 version 1.0.1):
// a client that enables carbons gets a copy of the messages its account
// sends and receives on its other resources, so that every device shows
// the whole conversation.
//
// The rules of XEP-0280 §6.1 are implemented in full (the server
// advertises urn:xmpp:carbons:rules:0). A message is copied when it has
// no <private/> (XEP-0280 §8) and no <no-copy/> hint (XEP-0334 §4.1.3)
// and it is of type chat, or of type normal with a body, or carries chat
// states, receipts or markers, or is an error, or a MUC invitation (direct
// XEP-0249 or mediated). Groupchat messages are never copied, nor private
// MUC messages received from an occupant's full JID.
//
// Received copies go to every carbons-enabled resource of the recipient
// that does not get the original under RFC 6121 delivery (§7); sent
// copies to every carbons-enabled resource of the sender except the one
// that sent it (§8). Copies are written to those sessions directly (they
// are never routed, stored offline or bounced back, §11.3), and they pass
// the per-session filters (client state indication holds a copy of a
// chat state like the chat state itself).
package carbons

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Namespaces.
const (
	NS           = "urn:xmpp:carbons:2"
	NSRules      = "urn:xmpp:carbons:rules:0"
	nsForward    = "urn:xmpp:forward:0"
	nsHints      = "urn:xmpp:hints"
	nsChatStates = "http://jabber.org/protocol/chatstates"
	nsReceipts   = "urn:xmpp:receipts"
	nsMarkers    = "urn:xmpp:chat-markers:0"
	nsMUCUser    = "http://jabber.org/protocol/muc#user"
	nsConference = "jabber:x:conference"
)

// Feature is the message carbons feature.
var Feature = server.Feature{
	Name: "carbons",
	Doc:  "Message carbons: every device of a user sees the messages sent and received by the others.",
	XEPs: []server.XEP{
		{N: 280, Name: "Message Carbons (with urn:xmpp:carbons:rules:0)", Version: "1.0.1", Status: server.Complete},
		{N: 334, Name: "Message Processing Hints (no-copy; no-store in offline)", Version: "0.3.0", Status: server.Complete},
	},
	Setup: setup,
}

type feature struct {
	srv     *server.Server
	enabled *server.Key[bool]
	copies  *prometheus.CounterVec
}

func setup(s *server.Setup, _ any) error {
	f := &feature{
		srv: s.Server(), enabled: server.NewKey[bool]("carbons.enabled"),
		copies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "carbons", Name: "copies_total",
			Help: "Carbon copies written, by direction (received, sent).",
		}, []string{"direction"}),
	}
	if err := s.Metrics().Register(f.copies); err != nil {
		return fmt.Errorf("carbons: registering metrics: %w", err)
	}
	s.Disco().ServerFeature(NS, NSRules)
	for _, target := range []server.IQTarget{server.ToAccount, server.ToServer} {
		s.HandleIQ(target, "set", NS, "enable", f.set(true))
		s.HandleIQ(target, "set", NS, "disable", f.set(false))
	}
	// Copies are made after the archive (PrioObserve) stamped its
	// stanza-id, so that copies carry it too, and after every policy
	// that may refuse the message.
	s.Hook(server.DeliverLocal, server.PrioObserve-10, f.received)
	s.Hook(server.Inbound, server.PrioObserve-10, f.sent)
	return nil
}

// set handles enable and disable (§4, §5): only for the sending session
// itself; repeating either is not an error (§11.1).
func (f *feature) set(on bool) server.IQHandler {
	return func(_ context.Context, st *server.Stanza) (*xml.Element, error) {
		s := st.Origin
		if s == nil || st.From != s.JID() || (st.To.Local() != "" && st.To.Bare() != st.From.Bare()) {
			return nil, stanza.NewError(stanza.NotAllowed, "Carbons can only be enabled or disabled by a client for itself.")
		}
		server.SetValue(s, f.enabled, on)
		return nil, nil
	}
}

func (f *feature) on(s *server.Session) bool {
	v, _ := server.Value(s, f.enabled)
	return v
}

// received copies a message for a local account to its carbons-enabled
// resources that do not get the original (§7).
func (f *feature) received(ctx context.Context, st *server.Stanza) server.Result {
	if st.Kind != server.KindMessage || st.To.Local() == "" || !eligible(st) {
		return server.Next
	}
	// MUC private messages from an occupant are already copied by the
	// room to every joined client (§6.1).
	if st.From.Resource() != "" && st.El.Child(nsMUCUser, "x") != nil {
		return server.Next
	}
	sessions := f.srv.Sessions(st.To)
	if len(sessions) == 0 {
		return server.Next
	}
	var originals []*server.Session
	if st.To.Resource() != "" {
		if s := f.srv.Session(st.To); s != nil {
			originals = []*server.Session{s}
		} else if st.Type == "error" {
			return server.Next // an error to a gone resource is dropped
		} else {
			// The router hands it to the bare JID (RFC 6121 §8.5.3.2.1).
			originals = server.MessageTargets(sessions, st.Type)
		}
	} else {
		originals = server.MessageTargets(sessions, st.Type)
	}
	f.copy(ctx, st, sessions, originals, "received")
	return server.Next
}

// sent copies a message a local client sends to its account's other
// carbons-enabled resources (§8).
func (f *feature) sent(ctx context.Context, st *server.Stanza) server.Result {
	if st.Kind != server.KindMessage || st.Origin == nil || st.To.IsZero() || !eligible(st) {
		return server.Next
	}
	if st.To.Bare() == st.From.Bare() {
		return server.Next // to the own account: the received copies cover it
	}
	if f.srv.SessionCount(st.From) < 2 {
		return server.Next // no other resource to copy it to
	}
	f.copy(ctx, st, f.srv.Sessions(st.From), []*server.Session{st.Origin}, "sent")
	return server.Next
}

// copy wraps st in <sent/> or <received/> and delivers it to every
// carbons-enabled session not in skip.
func (f *feature) copy(ctx context.Context, st *server.Stanza, sessions, skip []*server.Session, dir string) {
	var fwd *xml.Element
	for _, s := range sessions {
		if !f.on(s) || contains(skip, s) {
			continue
		}
		if fwd == nil {
			// One copy of the original, shared by every wrapper: later
			// changes to the original (delays, copies for other
			// resources) do not reach it.
			fwd = xml.New(nsForward, "forwarded").Append(st.El.Copy())
		}
		bare := s.JID().Bare()
		w := xml.New(xml.NSClient, "message").SetAttr("from", bare.String()).SetAttr("to", s.JID().String())
		if st.Type != "" {
			w.SetAttr("type", st.Type)
		}
		w.Append(xml.New(NS, dir).Append(fwd))
		c := &server.Stanza{El: w, Kind: server.KindMessage, From: bare, To: s.JID(), Type: st.Type}
		if s.Deliver(ctx, c) {
			f.copies.WithLabelValues(dir).Inc()
		}
	}
}

func contains(l []*server.Session, s *server.Session) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// eligible applies the rules of XEP-0280 §6.1 and the hints.
func eligible(st *server.Stanza) bool {
	el := st.El
	if el.Child(NS, "private") != nil || el.Child(nsHints, "no-copy") != nil {
		return false
	}
	// Carbon copies and forwarded archive results are never copied again.
	if el.Child(NS, "received") != nil || el.Child(NS, "sent") != nil {
		return false
	}
	switch st.Type {
	case "groupchat":
		return false
	case "chat", "error":
		return true
	case "", "normal":
		if el.Child(xml.NSClient, "body") != nil {
			return true
		}
	}
	for _, c := range el.Elements() {
		switch {
		case c.Space == nsChatStates, c.Space == nsReceipts, c.Space == nsMarkers:
			return true
		case c.Space == nsConference && c.Local == "x":
			return true // XEP-0249 direct invitation
		case c.Space == nsMUCUser && c.Local == "x" && c.Child(nsMUCUser, "invite") != nil:
			return true // mediated invitation
		}
	}
	return false
}
