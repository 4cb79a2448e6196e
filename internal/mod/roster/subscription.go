package roster

import (
	"context"
	"errors"
	"fmt"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// state is the subscription state of one contact in one roster, in the
// terms of RFC 6121 Appendix A: the item's subscription gives "To" and
// "From", its Ask flag "Pending Out", a stored inbound request "Pending
// In"; Approved is a pre-approval (§3.4).
type state struct {
	item      store.RosterItem
	exists    bool // the contact has a roster item
	pendingIn bool
}

func (s state) to() bool {
	return s.item.Subscription == store.SubTo || s.item.Subscription == store.SubBoth
}

func (s state) from() bool {
	return s.item.Subscription == store.SubFrom || s.item.Subscription == store.SubBoth
}

func (s *state) set(to, from bool) {
	switch {
	case to && from:
		s.item.Subscription = store.SubBoth
	case to:
		s.item.Subscription = store.SubTo
	case from:
		s.item.Subscription = store.SubFrom
	default:
		s.item.Subscription = store.SubNone
	}
}

// visible reports whether a client would see a difference between the
// items of a and b (what a roster push is for).
func visible(a, b state) bool {
	return a.exists != b.exists || a.item.Subscription != b.item.Subscription ||
		a.item.Ask != b.item.Ask || a.item.Approved != b.item.Approved
}

func isSubscription(typ string) bool {
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		return true
	}
	return false
}

// load reads the state of contact in owner's roster. The caller holds
// owner's lock.
func (f *feature) load(ctx context.Context, owner, contact string) (state, error) {
	s := state{item: store.RosterItem{JID: contact, Subscription: store.SubNone}}
	it, err := f.st.Roster().Get(ctx, owner, contact)
	switch {
	case err == nil:
		s.item, s.exists = it, true
		if s.item.Subscription == "" {
			s.item.Subscription = store.SubNone
		}
	case !errors.Is(err, store.ErrNotFound):
		return s, fmt.Errorf("roster: reading item %s of %s: %w", contact, owner, err)
	}
	in, err := f.hasPendingIn(ctx, owner, contact)
	s.pendingIn = in
	return s, err
}

func (f *feature) hasPendingIn(ctx context.Context, owner, contact string) (bool, error) {
	pending, err := f.st.Roster().PendingIn(ctx, owner)
	if err != nil {
		return false, fmt.Errorf("roster: reading pending requests of %s: %w", owner, err)
	}
	for _, p := range pending {
		if p.JID == contact {
			return true, nil
		}
	}
	return false, nil
}

// save stores the change from old to s and pushes the item if a client
// would see it. request is the subscribe stanza to keep when s gains
// "Pending In". The caller holds owner's lock.
func (f *feature) save(ctx context.Context, owner jid.JID, old, s state, request *xml.Element) error {
	o, c := owner.String(), s.item.JID
	if s.pendingIn != old.pendingIn {
		var err error
		if s.pendingIn {
			err = f.st.Roster().AddPendingIn(ctx, o, store.PendingIn{JID: c, Stanza: []byte(request.String())})
		} else {
			err = f.st.Roster().RemovePendingIn(ctx, o, c)
		}
		if err != nil {
			return fmt.Errorf("roster: updating the pending request of %s from %s: %w", o, c, err)
		}
	}
	if !visible(old, s) {
		return nil
	}
	ver, err := f.st.Roster().Put(ctx, o, s.item)
	if err != nil {
		return fmt.Errorf("roster: storing item %s of %s: %w", c, o, err)
	}
	f.push(ctx, owner, ver, itemElement(s.item))
	return nil
}

// outbound handles a subscription stanza a local user sends (RFC 6121
// §3.1.2, §3.1.5, §3.2.2, §3.3.2, §3.4.2; Appendix A.2). The stanza is
// stamped with the user's bare JID and the contact's bare JID, the roster
// changes as the tables say, and the stanza is routed where they say so.
func (f *feature) outbound(ctx context.Context, st *server.Stanza) server.Result {
	if st.Kind != server.KindPresence || !isSubscription(st.Type) || st.Origin == nil {
		return server.Next
	}
	if st.To.IsZero() {
		return server.Done // a subscription stanza needs a contact
	}
	user, contact := st.From.Bare(), st.To.Bare()
	if user == contact {
		return server.Done // one's own presence needs no subscription
	}
	// §3.1.2: stamp the bare JIDs.
	st.SetFrom(user)
	st.SetTo(contact)

	o := user.String()
	unlock := f.lock(o)
	old, err := f.load(ctx, o, contact.String())
	if err != nil {
		unlock()
		return f.fail(ctx, st, err)
	}
	s := old
	route := false
	var after func()
	switch st.Type {
	case "subscribe": // A.2.1: routed in every state
		route = true
		if !s.to() && !s.item.Ask {
			s.item.Ask, s.exists = true, true
		}
	case "unsubscribe": // A.2.2: routed in every state
		route = true
		s.item.Ask = false
		s.set(false, s.from())
	case "subscribed": // A.2.3
		switch {
		case s.pendingIn && !s.from():
			// Approval (§3.1.5): the contact now gets our presence.
			route = true
			s.pendingIn, s.item.Approved, s.exists = false, false, true
			s.set(s.to(), true)
			after = func() { f.sendPresence(ctx, user, contact) }
		case !s.from():
			// Pre-approval (§3.4.2): not routed; remembered for the
			// contact's future request.
			s.item.Approved, s.exists = true, true
		case s.pendingIn:
			s.pendingIn = false // already "From": a stale request
		}
	case "unsubscribed": // A.2.4
		if s.pendingIn || s.from() {
			// Denial of a pending request, or cancellation (§3.2.2):
			// the contact stops getting our presence.
			route = true
			if s.from() {
				after = func() { f.sendUnavailable(ctx, user, contact) }
			}
			s.pendingIn = false
			s.set(s.to(), false)
		}
		// An unsubscribed in the other states cancels a pre-approval.
		s.item.Approved = false
	}
	err = f.save(ctx, user, old, s, nil)
	unlock()
	if err != nil {
		return f.fail(ctx, st, err)
	}
	if route {
		f.srv.Route(ctx, st)
	}
	if after != nil {
		after()
	}
	return server.Done
}

// inbound handles a subscription stanza addressed to a local account,
// whatever its origin (RFC 6121 §3.1.3, §3.1.6, §3.2.3, §3.3.3;
// Appendix A.3). A stanza to a full JID is handled as if sent to the bare
// JID. Subscription stanzas for accounts that do not exist are dropped
// (§8.5.1).
func (f *feature) inbound(ctx context.Context, st *server.Stanza) server.Result {
	if st.Kind != server.KindPresence || !isSubscription(st.Type) || st.To.Local() == "" {
		return server.Next
	}
	owner, contact := st.To.Bare(), st.From.Bare()
	if st.From.IsZero() || owner == contact {
		return server.Done
	}
	o := owner.String()
	if _, err := f.st.Accounts().Get(ctx, o); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			f.log.Error("looking up the recipient of a subscription stanza failed", "jid", o, "err", err)
		}
		return server.Done
	}
	st.SetTo(owner)
	st.SetFrom(contact)

	unlock := f.lock(o)
	old, err := f.load(ctx, o, contact.String())
	if err != nil {
		unlock()
		f.log.Error("subscription stanza dropped", "jid", o, "from", contact.String(), "type", st.Type, "err", err)
		return server.Done
	}
	s := old
	deliver := false
	var after func()
	switch st.Type {
	case "subscribe": // A.3.1, §3.1.3
		switch {
		case s.from():
			// Already subscribed: answer for the user (A.3.1 footnote).
			after = func() { f.send(ctx, owner, contact, "subscribed") }
		case s.item.Approved:
			// Pre-approved (§3.4.2): approve for the user.
			s.item.Approved, s.pendingIn = false, false
			s.set(s.to(), true)
			after = func() {
				f.send(ctx, owner, contact, "subscribed")
				f.sendPresence(ctx, owner, contact)
			}
		case s.pendingIn:
			// Already pending: not delivered again.
		default:
			// Kept until answered; presence re-sends it at each
			// initial presence while it is pending (§3.1.3).
			s.pendingIn, deliver = true, true
		}
	case "subscribed": // A.3.3, §3.1.6
		if s.item.Ask && !s.to() {
			s.item.Ask, deliver = false, true
			s.set(true, s.from())
		}
	case "unsubscribe": // A.3.2, §3.3.3
		if s.pendingIn || s.from() {
			deliver = true
			if s.from() {
				// The contact no longer sees our presence: tell its
				// clients we are gone.
				after = func() { f.sendUnavailable(ctx, owner, contact) }
			}
			s.pendingIn = false
			s.set(s.to(), false)
		}
	case "unsubscribed": // A.3.4, §3.2.3
		if s.item.Ask || s.to() {
			s.item.Ask, deliver = false, true
			s.set(false, s.from())
		}
	}
	err = f.save(ctx, owner, old, s, st.El)
	unlock()
	if err != nil {
		f.log.Error("subscription stanza dropped", "jid", o, "from", contact.String(), "type", st.Type, "err", err)
		return server.Done
	}
	if deliver {
		f.deliver(ctx, owner, st)
	}
	if after != nil {
		after()
	}
	return server.Done
}

// fail logs a storage failure and answers the sender.
func (f *feature) fail(ctx context.Context, st *server.Stanza, err error) server.Result {
	f.log.Error("subscription stanza failed", "from", st.From.String(), "to", st.To.String(), "type", st.Type, "err", err)
	f.srv.Bounce(ctx, st, stanza.NewError(stanza.InternalServerError, "The server could not update your roster; the error was logged."))
	return server.Done
}

// deliver gives a subscription stanza to every available resource of the
// account (RFC 6121 §3.1.3, §8.5.2.1.2).
func (f *feature) deliver(ctx context.Context, owner jid.JID, st *server.Stanza) {
	for _, s := range f.srv.Sessions(owner) {
		if s.Available() {
			s.Deliver(ctx, &server.Stanza{El: st.El.Copy(), Kind: st.Kind, From: st.From, To: st.To, Type: st.Type, ID: st.ID, Origin: st.Origin})
		}
	}
}

// send routes a subscription stanza of type typ from the account's bare JID.
func (f *feature) send(ctx context.Context, from, to jid.JID, typ string) {
	el := xml.New(xml.NSClient, "presence").SetAttr("type", typ).SetAttr("id", f.srv.NewID()).
		SetAttr("from", from.String()).SetAttr("to", to.String())
	if err := f.srv.RouteElement(ctx, el); err != nil {
		f.log.Warn("sending a subscription stanza failed", "from", from.String(), "to", to.String(), "type", typ, "err", err)
	}
}

// sendPresence sends the current presence of each available resource of
// user to a contact that was just allowed to see it (RFC 6121 §3.1.5).
func (f *feature) sendPresence(ctx context.Context, user, contact jid.JID) {
	for _, s := range f.srv.Sessions(user) {
		p := s.Presence()
		if p == nil {
			continue
		}
		el := p.Copy()
		el.SetAttr("from", s.JID().String())
		el.SetAttr("to", contact.String())
		if err := f.srv.RouteElement(ctx, el); err != nil {
			f.log.Warn("sending presence failed", "from", s.JID().String(), "to", contact.String(), "err", err)
		}
	}
}

// sendUnavailable tells a contact that lost its subscription that each
// available resource of user is gone (RFC 6121 §3.2.2).
func (f *feature) sendUnavailable(ctx context.Context, user, contact jid.JID) {
	for _, s := range f.srv.Sessions(user) {
		if !s.Available() {
			continue
		}
		el := xml.New(xml.NSClient, "presence").SetAttr("type", "unavailable").
			SetAttr("from", s.JID().String()).SetAttr("to", contact.String())
		if err := f.srv.RouteElement(ctx, el); err != nil {
			f.log.Warn("sending presence failed", "from", s.JID().String(), "to", contact.String(), "err", err)
		}
	}
}
