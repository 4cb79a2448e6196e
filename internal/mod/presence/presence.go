// Package presence implements presence as RFC 6121 §4 defines it: the
// broadcast of a user's available and unavailable presence to the user's
// own resources and to the contacts subscribed to it, presence probes and
// their answers, directed presence, and the unavailable presence sent for
// a session that ends without saying goodbye.
//
// The roster feature owns subscriptions; this feature only reads the
// roster from the store. At each initial presence it re-sends the
// subscription requests still pending for the account (RFC 6121 §3.1.3),
// which the roster feature keeps in store.Roster().PendingIn.
//
// Choices where RFC 6121 leaves room:
//   - A probe from an entity without a "from" or "both" subscription gets
//     no answer at all (§4.3.2.1 allows unsubscribed or nothing; silence
//     leaks nothing). Probes to accounts that do not exist are dropped
//     (§8.5.1, option a).
//   - A probe to a full JID is answered as one to the bare JID.
//   - When no resource is available, a probe is answered with unavailable
//     presence from the bare JID carrying the status of the last logout
//     and, when known, its time as a XEP-0203 delay.
//   - A broadcast presence is also sent back to the resource that sent it
//     (§4.2.2, §4.4.2: all of the user's available resources), through
//     the Outbound hooks, with from and to both the session's full JID,
//     after the session is marked available; the offline feature waits
//     for this echo to deliver stored messages. An unavailable presence
//     is not echoed: its sender is no longer an available resource.
//   - Directed presence is remembered (§4.6.2) unless the recipient is a
//     subscribed contact and the session is available (then the broadcast
//     covers it). When a session goes offline, every remembered recipient
//     gets unavailable presence.
//   - A presence error addressed to an account's bare JID is given to all
//     its available resources (RFC 6121 §8.5.2.1.2 names no rule for
//     errors; dropping it would hide e.g. a failed subscription request).
package presence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

const nsDelay = "urn:xmpp:delay"

// Feature is the presence feature.
var Feature = server.Feature{
	Name: "presence",
	Doc:  "Presence broadcast, probes and directed presence (RFC 6121 §4).",
	XEPs: []server.XEP{
		{Name: "RFC 6121 (§4 presence)", Status: server.Complete},
		{N: 203, Name: "Delayed Delivery", Version: "2.0", Status: server.Partial,
			Note: "only on the unavailable presence answering a probe to an offline account"},
	},
	Setup: setup,
}

type feature struct {
	srv *server.Server
	st  store.Store
	log *slog.Logger
	// status holds the status text of the session's last unavailable
	// presence, stored as the account's last status when it ends.
	status *server.Key[string]
}

func setup(s *server.Setup, _ any) error {
	f := &feature{srv: s.Server(), st: s.Store(), log: s.Logger(), status: server.NewKey[string]("presence.status")}
	s.Hook(server.Inbound, server.PrioFeature, f.outbound)
	s.Hook(server.DeliverLocal, server.PrioFeature, f.inbound)
	server.On(s, server.SessionClosed, server.PrioFeature, f.closed)
	return nil
}

// outbound handles presence from a local client: broadcasts (no 'to')
// and directed presence (§4.6); other types go on to routing and to the
// roster feature.
func (f *feature) outbound(ctx context.Context, st *server.Stanza) server.Result {
	if st.Kind != server.KindPresence || st.Origin == nil {
		return server.Next
	}
	switch st.Type {
	case "", "unavailable":
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error":
		return server.Next
	default:
		// RFC 6120 §8.3.3.1 / RFC 6121 §4.7.1: an undefined type.
		f.srv.Bounce(ctx, st, stanza.Errorf(stanza.BadRequest, "%q is not a presence type.", st.Type))
		return server.Done
	}
	prio := 0
	if st.Type == "" {
		var err *stanza.Error
		if prio, err = check(st.El); err != nil {
			f.srv.Bounce(ctx, st, err)
			return server.Done
		}
	}
	if st.To.IsZero() {
		if st.Type == "" {
			f.available(ctx, st, prio)
		} else {
			f.unavailable(ctx, st)
		}
		return server.Done
	}
	f.directed(ctx, st)
	return server.Next
}

// check validates the children of an available presence (RFC 6121
// §4.7.2) and returns its priority.
func check(el *xml.Element) (int, *stanza.Error) {
	if show := el.Child(xml.NSClient, "show"); show != nil {
		switch strings.TrimSpace(show.AllText()) {
		case "away", "chat", "dnd", "xa":
		case "":
			// COMPAT(go-xmpp 0.3.6, go-sendxmpp): they send an empty
			// <show/>; treat it as absent (plain available).
		default:
			return 0, stanza.Errorf(stanza.BadRequest, "%q is not a valid show value (away, chat, dnd or xa).", show.AllText())
		}
	}
	p := el.Child(xml.NSClient, "priority")
	if p == nil {
		return 0, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(p.AllText()))
	if err != nil || n < -128 || n > 127 {
		return 0, stanza.Errorf(stanza.BadRequest, "The priority %q is not an integer from -128 to 127.", p.AllText())
	}
	return n, nil
}

// contacts reads the user's roster and returns the contacts subscribed to
// the user's presence ("from" or "both") and those the user is subscribed
// to ("to" or "both").
func (f *feature) contacts(ctx context.Context, user jid.JID) (from, to []jid.JID) {
	items, _, err := f.st.Roster().Items(ctx, user.String())
	if err != nil {
		f.log.Error("reading the roster failed; presence goes to the user's own resources only", "jid", user.String(), "err", err)
		return nil, nil
	}
	for _, it := range items {
		j, err := jid.Parse(it.JID)
		if err != nil {
			continue
		}
		switch it.Subscription {
		case store.SubFrom:
			from = append(from, j)
		case store.SubTo:
			to = append(to, j)
		case store.SubBoth:
			from = append(from, j)
			to = append(to, j)
		}
	}
	return from, to
}

func subscribed(from []jid.JID, bare jid.JID) bool {
	for _, j := range from {
		if j == bare {
			return true
		}
	}
	return false
}

// available handles an available presence broadcast (RFC 6121 §4.2 for
// initial presence, §4.4 for updates).
func (f *feature) available(ctx context.Context, st *server.Stanza, prio int) {
	sess := st.Origin
	user := sess.JID().Bare()
	pres := st.El.Copy()
	pres.SetAttr("to", "")
	pres.SetAttr("from", sess.JID().String())
	initial := !sess.SetPresence(pres, prio)
	from, to := f.contacts(ctx, user)

	// §4.2.2 / §4.4.2: to the subscribers, and to all of the user's
	// available resources, this one included.
	for _, c := range from {
		f.route(ctx, pres, c)
	}
	for _, s := range f.srv.Sessions(user) {
		if s.Available() {
			f.deliver(ctx, s, pres)
		}
	}
	if !initial {
		return
	}
	// §4.2.2: probe the contacts whose presence the user wants.
	for _, c := range to {
		probe := xml.New(xml.NSClient, "presence").SetAttr("type", "probe").
			SetAttr("id", f.srv.NewID()).SetAttr("from", user.String()).SetAttr("to", c.String())
		if err := f.srv.RouteElement(ctx, probe); err != nil {
			f.log.Warn("sending a probe failed", "jid", user.String(), "to", c.String(), "err", err)
		}
	}
	// The new resource learns about the user's other resources.
	for _, s := range f.srv.Sessions(user) {
		if s == sess {
			continue
		}
		if p := s.Presence(); p != nil {
			f.deliver(ctx, sess, p)
		}
	}
	server.Notify(ctx, f.srv, server.SessionAvailable, sess)
	// §3.1.3: subscription requests still waiting for an answer.
	pending, err := f.st.Roster().PendingIn(ctx, user.String())
	if err != nil {
		f.log.Error("reading pending subscription requests failed", "jid", user.String(), "err", err)
		return
	}
	for _, p := range pending {
		if j, err := jid.Parse(p.JID); err == nil && subscribed(from, j) {
			continue // answered already; a stale record
		}
		el, err := parse(p.Stanza)
		if err != nil || server.KindOf(el) != server.KindPresence {
			f.log.Warn("a stored subscription request is unreadable; sending a plain one", "jid", user.String(), "from", p.JID, "err", err)
			el = xml.New(xml.NSClient, "presence").SetAttr("type", "subscribe")
		}
		el.SetAttr("type", "subscribe")
		el.SetAttr("from", p.JID)
		el.SetAttr("to", user.String())
		deliverAsIs(ctx, sess, el)
	}
}

// unavailable handles an unavailable presence broadcast (RFC 6121 §4.5).
func (f *feature) unavailable(ctx context.Context, st *server.Stanza) {
	sess := st.Origin
	was := sess.SetPresence(nil, 0)
	server.SetValue(sess, f.status, st.El.ChildText(xml.NSClient, "status"))
	pres := st.El.Copy()
	pres.SetAttr("to", "")
	pres.SetAttr("from", sess.JID().String())
	f.offline(ctx, sess, pres, was)
}

// offline sends unavailable presence pres for sess: to the subscribers and
// the user's other available resources if the session was available
// (§4.5.2), and to every entity it sent directed presence to (§4.6.3).
func (f *feature) offline(ctx context.Context, sess *server.Session, pres *xml.Element, wasAvailable bool) {
	user := sess.JID().Bare()
	var from []jid.JID
	if wasAvailable {
		from, _ = f.contacts(ctx, user)
		for _, c := range from {
			f.route(ctx, pres, c)
		}
		for _, s := range f.srv.Sessions(user) {
			if s != sess && s.Available() {
				f.deliver(ctx, s, pres)
			}
		}
	}
	for _, d := range sess.TakeDirected() {
		j, err := jid.Parse(d)
		if err != nil || subscribed(from, j.Bare()) {
			continue // the broadcast above reached all its resources
		}
		f.route(ctx, pres, j)
	}
}

// directed records directed presence (RFC 6121 §4.6.2) so that the
// recipient hears when the session goes offline.
func (f *feature) directed(ctx context.Context, st *server.Stanza) {
	sess := st.Origin
	user := sess.JID().Bare()
	to := st.To
	if to.Bare() == user {
		return // the user's own resources get the broadcasts anyway
	}
	if st.Type == "unavailable" {
		sess.RemoveDirected(to.String())
		return
	}
	if sess.Available() {
		it, err := f.st.Roster().Get(ctx, user.String(), to.Bare().String())
		if err == nil && (it.Subscription == store.SubFrom || it.Subscription == store.SubBoth) {
			return // the broadcast will reach it
		}
	}
	sess.AddDirected(to.String())
}

// inbound handles probes (RFC 6121 §4.3.2) and presence errors addressed
// to a local account.
func (f *feature) inbound(ctx context.Context, st *server.Stanza) server.Result {
	if st.Kind != server.KindPresence || st.To.Local() == "" {
		return server.Next
	}
	switch st.Type {
	case "probe":
		f.probe(ctx, st)
		return server.Done
	case "error":
		if st.To.Resource() != "" {
			return server.Next // the core delivers it to that resource, if there
		}
		for _, s := range f.srv.Sessions(st.To) {
			if s.Available() {
				s.Deliver(ctx, &server.Stanza{El: st.El.Copy(), Kind: st.Kind, From: st.From, To: st.To, Type: st.Type, ID: st.ID})
			}
		}
		return server.Done
	}
	return server.Next
}

// probe answers a presence probe on the account's behalf.
func (f *feature) probe(ctx context.Context, st *server.Stanza) {
	owner, prober := st.To.Bare(), st.From
	if prober.IsZero() {
		return
	}
	if prober.Bare() != owner {
		it, err := f.st.Roster().Get(ctx, owner.String(), prober.Bare().String())
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				f.log.Error("reading the roster to answer a probe failed", "jid", owner.String(), "err", err)
			}
			return
		}
		if it.Subscription != store.SubFrom && it.Subscription != store.SubBoth {
			return
		}
	}
	answered := false
	for _, s := range f.srv.Sessions(owner) {
		p := s.Presence()
		if p == nil {
			continue
		}
		el := p.Copy()
		el.SetAttr("from", s.JID().String())
		el.SetAttr("to", prober.String())
		if err := f.srv.RouteElement(ctx, el); err != nil {
			f.log.Warn("answering a probe failed", "jid", s.JID().String(), "to", prober.String(), "err", err)
		}
		answered = true
	}
	if answered {
		return
	}
	// Nobody is online: the account's last status answers, if the
	// account exists. (Looked up only now: a login probes every contact,
	// and most probes of online contacts are answered above.)
	acct, err := f.st.Accounts().Get(ctx, owner.String())
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			f.log.Error("looking up the target of a probe failed", "jid", owner.String(), "err", err)
		}
		return
	}
	el := xml.New(xml.NSClient, "presence").SetAttr("type", "unavailable").
		SetAttr("from", owner.String()).SetAttr("to", prober.String())
	if acct.LastStatus != "" {
		el.AppendText(xml.NSClient, "status", acct.LastStatus)
	}
	if !acct.LastLogout.IsZero() {
		el.Append(xml.New(nsDelay, "delay").SetAttr("from", owner.String()).
			SetAttr("stamp", acct.LastLogout.UTC().Format("2006-01-02T15:04:05Z")))
	}
	if err := f.srv.RouteElement(ctx, el); err != nil {
		f.log.Warn("answering a probe failed", "jid", owner.String(), "to", prober.String(), "err", err)
	}
}

// closed handles the end of a session: if it was available its contacts
// and the user's other resources learn it is gone (RFC 6121 §4.5.1:
// the server acts as if the client had sent unavailable presence), and
// the account's last logout is recorded.
func (f *feature) closed(ctx context.Context, sess *server.Session) error {
	was := sess.SetPresence(nil, 0)
	pres := xml.New(xml.NSClient, "presence").SetAttr("type", "unavailable").SetAttr("from", sess.JID().String())
	f.offline(ctx, sess, pres, was)
	status, _ := server.Value(sess, f.status)
	bare := sess.JID().Bare().String()
	if err := f.st.Accounts().SetLastLogout(ctx, bare, time.Now().UTC(), status); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("presence: recording the last logout of %s: %w", bare, err)
	}
	return nil
}

// route sends a copy of presence pres to j through the router.
func (f *feature) route(ctx context.Context, pres *xml.Element, j jid.JID) {
	el := pres.Copy()
	el.SetAttr("to", j.String())
	if err := f.srv.RouteElement(ctx, el); err != nil {
		f.log.Warn("sending presence failed", "from", el.Attr("from"), "to", j.String(), "err", err)
	}
}

// deliver gives a copy of presence pres, addressed to the session, to one
// local session.
func (f *feature) deliver(ctx context.Context, s *server.Session, pres *xml.Element) {
	el := pres.Copy()
	el.SetAttr("to", s.JID().String())
	deliverAsIs(ctx, s, el)
}

// deliverAsIs gives el, addressed as it is, to one local session.
func deliverAsIs(ctx context.Context, s *server.Session, el *xml.Element) {
	from, _ := jid.Parse(el.Attr("from"))
	to, _ := jid.Parse(el.Attr("to"))
	s.Deliver(ctx, &server.Stanza{El: el, Kind: server.KindPresence, From: from, To: to, Type: el.Attr("type"), ID: el.Attr("id")})
}

// streamHeader wraps a stored stanza so the stream decoder can read it.
const streamHeader = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"

// parse reads one stored stanza.
func parse(b []byte) (*xml.Element, error) {
	d := xml.NewDecoder(io.MultiReader(strings.NewReader(streamHeader), bytes.NewReader(b)), xml.DefaultLimits())
	if _, err := d.Header(); err != nil {
		return nil, fmt.Errorf("presence: reading a stored stanza: %w", err)
	}
	el, err := d.Next()
	if err != nil {
		return nil, fmt.Errorf("presence: reading a stored stanza: %w", err)
	}
	return el, nil
}
