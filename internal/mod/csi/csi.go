// Package csi implements Client State Indication (XEP-0352 version
// 1.0.0). A client in the background says <inactive/>; until it says
// <active/>, stanzas nobody needs to see at once wait on the server, and
// go out together when something important arrives, when the client is
// active again, or when the buffer is full. Mobile clients stay asleep
// longer and use less battery and data.
//
// Held while inactive: presence updates (available and unavailable; only
// the newest from each sender is kept) and messages that carry nothing a
// person reads at once: chat states (XEP-0085), delivery receipts
// (XEP-0184), chat markers (XEP-0333) and PEP notifications, and carbon
// copies of those. Everything else is important and flushes the buffer
// before it is sent: IQs, subscription requests, errors, messages with a
// body, a subject or an encrypted payload, sent carbons, invitations.
//
// Held stanzas get a XEP-0203 delay saying when they arrived. The state
// is per stream: a resumed session (XEP-0198) starts active again
// (XEP-0352 §5.2). When a session ends with stanzas held, its messages
// go to offline storage like other stanzas the client never got.
package csi

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Namespaces.
const (
	NS           = "urn:xmpp:csi:0"
	nsChatStates = "http://jabber.org/protocol/chatstates"
	nsReceipts   = "urn:xmpp:receipts"
	nsMarkers    = "urn:xmpp:chat-markers:0"
	nsHints      = "urn:xmpp:hints"
	nsSID        = "urn:xmpp:sid:0"
	nsDelay      = "urn:xmpp:delay"
	nsPubsubEv   = "http://jabber.org/protocol/pubsub#event"
	nsCarbons    = "urn:xmpp:carbons:2"
	nsForward    = "urn:xmpp:forward:0"
)

// Feature is the client state indication feature.
var Feature = server.Feature{
	Name: "csi",
	Doc:  "Client state indication: while a client is in the background, presence updates, chat states and receipts wait and go out together when something important arrives.",
	XEPs: []server.XEP{
		{N: 352, Name: "Client State Indication", Version: "1.0.0", Status: server.Complete},
	},
	Defaults: Config{QueueSize: 256},
	Setup:    setup,
}

// Config is the [csi] table.
type Config struct {
	QueueSize int `toml:"queue_size" min:"1" help:"Stanzas held for one inactive client (presence updates count once per contact); when this many wait, they are all sent."`
}

type feature struct {
	srv   *server.Server
	max   int
	state *server.Key[*buffer]
	now   func() time.Time

	held    prometheus.Counter
	flushes *prometheus.CounterVec
}

// buffer is one session's held stanzas, oldest first. presence maps a
// sender's full JID to the index of its held presence.
type buffer struct {
	mu       sync.Mutex
	items    []held
	presence map[string]int
}

type held struct {
	el *xml.Element
	at time.Time
}

func setup(s *server.Setup, cfg any) error {
	c, ok := cfg.(Config)
	if !ok {
		return fmt.Errorf("csi: config is %T, want csi.Config", cfg)
	}
	if c.QueueSize < 1 {
		return fmt.Errorf("csi: queue_size is %d; it must be at least 1", c.QueueSize)
	}
	f := &feature{
		srv: s.Server(), max: c.QueueSize, state: server.NewKey[*buffer]("csi.buffer"), now: time.Now,
		held: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "csi", Name: "held_total",
			Help: "Stanzas held for inactive clients (a presence replaced by a newer one counts once each).",
		}),
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "csi", Name: "flushes_total",
			Help: "Times held stanzas were sent, by reason: important (an important stanza arrived), active, full, resumed.",
		}, []string{"reason"}),
	}
	if err := s.Metrics().Register(f.held); err != nil {
		return fmt.Errorf("csi: registering metrics: %w", err)
	}
	if err := s.Metrics().Register(f.flushes); err != nil {
		return fmt.Errorf("csi: registering metrics: %w", err)
	}
	s.StreamFeature(func(*server.ConnInfo) *xml.Element { return xml.New(NS, "csi") })
	s.StreamElement(NS, "inactive", func(_ context.Context, sess *server.Session, _ *xml.Element) error {
		// The buffer exists before the session is marked inactive, and
		// only this (the session's reader) creates it: whoever sees the
		// session inactive also sees its buffer.
		if _, ok := server.Value(sess, f.state); !ok {
			server.SetValue(sess, f.state, &buffer{})
		}
		sess.SetInactive(true)
		return nil
	})
	s.StreamElement(NS, "active", func(_ context.Context, sess *server.Session, _ *xml.Element) error {
		sess.SetInactive(false)
		f.flush(sess, "active")
		return nil
	})
	// Last in the Outbound chain: filters that drop stanzas (blocking)
	// run first, and what is held has passed every other hook.
	s.Hook(server.Outbound, server.PrioFallback, f.outbound)
	server.On(s, server.SessionResumed, server.PrioFeature, func(_ context.Context, sess *server.Session) error {
		sess.SetInactive(false)
		f.flush(sess, "resumed")
		return nil
	})
	server.On(s, server.SessionClosed, server.PrioFeature, f.closed)
	return nil
}

// outbound holds unimportant stanzas for inactive sessions and flushes
// before an important one.
func (f *feature) outbound(_ context.Context, st *server.Stanza) server.Result {
	s := st.Target
	if s == nil || !s.Inactive() {
		return server.Next
	}
	if important(st) {
		f.flush(s, "important")
		return server.Next
	}
	b, ok := server.Value(s, f.state)
	if !ok {
		return server.Next // marked inactive by something else than <inactive/>
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	f.held.Inc()
	h := held{el: st.El, at: f.now()}
	if st.Kind == server.KindPresence {
		from := st.From.String()
		if i, ok := b.presence[from]; ok {
			// Only the newest presence of a sender matters; it takes
			// the place of the old one at the end (causal order with
			// the sender's messages is kept).
			b.items = append(b.items[:i], b.items[i+1:]...)
			for k, j := range b.presence {
				if j > i {
					b.presence[k] = j - 1
				}
			}
		}
		if b.presence == nil {
			b.presence = make(map[string]int)
		}
		b.presence[from] = len(b.items)
	}
	b.items = append(b.items, h)
	if len(b.items) >= f.max {
		f.sendLocked(s, b, "full")
	}
	return server.Done
}

// flush sends what is held for s.
func (f *feature) flush(s *server.Session, reason string) {
	b, ok := server.Value(s, f.state)
	if !ok {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	f.sendLocked(s, b, reason)
}

// sendLocked writes the held stanzas in order, each with a delay. It
// holds the buffer's lock so that a concurrent flush cannot reorder them;
// Session.Send only queues (it never ends the session synchronously).
func (f *feature) sendLocked(s *server.Session, b *buffer, reason string) {
	if len(b.items) == 0 {
		return
	}
	f.flushes.WithLabelValues(reason).Inc()
	host := s.JID().Domain()
	for _, h := range b.items {
		_ = s.Send(withDelay(h.el, host, h.at))
	}
	b.items = nil
	b.presence = nil
}

// closed hands the messages held for an ended session to offline storage.
func (f *feature) closed(ctx context.Context, s *server.Session) error {
	b, ok := server.Value(s, f.state)
	if !ok {
		return nil
	}
	b.mu.Lock()
	items := b.items
	b.items, b.presence = nil, nil
	b.mu.Unlock()
	for _, h := range items {
		if h.el.Local == "message" && h.el.Child(nsCarbons, "received") == nil && h.el.Child(nsCarbons, "sent") == nil &&
			h.el.ChildNS(nsChatStates) == nil {
			// Carbon copies (the original went elsewhere) and chat
			// states (stale by now) are not kept.
			f.srv.Undelivered(ctx, s.JID().Bare(), withDelay(h.el, s.JID().Domain(), h.at))
		}
	}
	return nil
}

// withDelay returns a copy of el with a XEP-0203 delay, unless it already
// has one from host (el may be shared with other sessions).
func withDelay(el *xml.Element, host string, at time.Time) *xml.Element {
	for _, c := range el.Elements() {
		if c.Space == nsDelay && c.Local == "delay" && c.Attr("from") == host {
			return el
		}
	}
	cp := el.Copy()
	cp.Append(xml.New(nsDelay, "delay").SetAttr("from", host).SetAttr("stamp", at.UTC().Format("2006-01-02T15:04:05.000Z")))
	return cp
}

// important reports whether a stanza must reach an inactive client now.
func important(st *server.Stanza) bool {
	switch st.Kind {
	case server.KindPresence:
		// Updates wait; subscription requests and answers, probes and
		// errors do not.
		return st.Type != "" && st.Type != "unavailable"
	case server.KindMessage:
		return importantMessage(st.El, st.Type)
	}
	return true // IQs
}

// importantMessage reports whether a message carries something a person
// reads now: anything but chat states, receipts, markers, PEP
// notifications and their hints.
func importantMessage(el *xml.Element, typ string) bool {
	if typ == "error" {
		return true
	}
	for _, c := range el.Elements() {
		switch {
		case c.Space == xml.NSClient && c.Local == "thread":
		case c.Space == nsChatStates, c.Space == nsMarkers, c.Space == nsHints,
			c.Space == nsSID, c.Space == nsDelay, c.Space == nsPubsubEv:
		case c.Space == nsReceipts && c.Local == "received":
		case c.Space == nsCarbons && c.Local == "received":
			// A carbon copy is as important as what it carries.
			fw := c.Child(nsForward, "forwarded")
			if fw == nil {
				return true
			}
			inner := fw.Child(xml.NSClient, "message")
			if inner == nil || importantMessage(inner, inner.Attr("type")) {
				return true
			}
		default:
			// body, subject, encrypted payloads, sent carbons,
			// invitations, anything unknown.
			return true
		}
	}
	return false
}
