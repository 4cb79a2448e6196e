package invite

import (
	"context"
	"errors"
	"fmt"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Mutual subscriptions go through the roster feature's own state machine
// (RFC 6121 Appendix A), so its roster pushes and presence follow: this
// feature only records, in the roster, what the inviter's own client
// would have done (pre-approve the invitee, RFC 6121 §3.4, and ask for
// their presence), then routes the subscription requests on their
// behalf. The roster feature approves a pre-approved request by itself.

func (f *feature) setupSubscription(s *server.Setup) {
	// Before the roster feature (PrioFeature) handles the request.
	s.Hook(server.DeliverLocal, server.PrioFeature+10, f.subscribe)
}

// subscribe handles XEP-0379 §3.4: a subscription request carrying a
// valid contact invitation of its recipient is approved for the
// recipient, who asks back. Requests with a token this server does not
// know are left alone: the recipient's client may have issued it
// (client-side XEP-0379).
func (f *feature) subscribe(ctx context.Context, st *server.Stanza) server.Result {
	if st.Kind != server.KindPresence || st.Type != "subscribe" || st.To.Local() == "" || st.From.IsZero() {
		return server.Next
	}
	p := st.El.Child(nsPARS, "preauth")
	if p == nil {
		return server.Next
	}
	owner, contact := st.To.Bare(), st.From.Bare()
	if owner == contact {
		return server.Next
	}
	inv, err := f.lookup(ctx, p.Attr("token"))
	if err != nil {
		f.log.Error("checking a subscription token failed", "to", owner.String(), "err", err)
		return server.Next
	}
	if inv == nil || inv.Kind != store.InviteContact || inv.Creator != owner.String() || !inv.Valid(f.now()) {
		return server.Next
	}
	if _, err := f.st.Invites().Use(ctx, inv.Token, f.now()); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			f.log.Error("using a subscription token failed", "to", owner.String(), "err", err)
		}
		return server.Next
	}
	// The token did its work here; the recipient's clients need not see it.
	st.El.RemoveChildren(func(c *xml.Element) bool { return c.Space == nsPARS && c.Local == "preauth" })
	ask, err := f.preapprove(ctx, owner, contact)
	if err != nil {
		f.log.Error("approving an invited contact failed", "owner", owner.String(), "contact", contact.String(), "err", err)
		return server.Next
	}
	f.used.WithLabelValues(string(inv.Kind), "subscribe").Inc()
	f.log.Info("invitation used", "purpose", "subscribe", "kind", string(inv.Kind), "creator", owner.String(),
		"contact", contact.String(), "token", Short(inv.Token))
	if ask {
		f.sendSubscribe(ctx, owner, contact)
	}
	return server.Next // the roster feature approves the pre-approved request
}

// befriend makes two local accounts mutual contacts: each pre-approves
// and asks for the other's presence, then the requests go through the
// roster feature, which approves them.
func (f *feature) befriend(ctx context.Context, inviter, invitee jid.JID) error {
	askInviter, err := f.preapprove(ctx, inviter, invitee)
	if err != nil {
		return err
	}
	askInvitee, err := f.preapprove(ctx, invitee, inviter)
	if err != nil {
		return err
	}
	if askInvitee {
		f.sendSubscribe(ctx, invitee, inviter)
	}
	if askInviter {
		f.sendSubscribe(ctx, inviter, invitee)
	}
	return nil
}

// preapprove records in owner's roster that owner approves contact's
// subscription (unless contact has it already) and, when owner does not
// have contact's presence yet, that owner asks for it; ask reports the
// latter, and the caller then sends the request.
func (f *feature) preapprove(ctx context.Context, owner, contact jid.JID) (ask bool, err error) {
	o, c := owner.String(), contact.String()
	item, err := f.st.Roster().Get(ctx, o, c)
	switch {
	case errors.Is(err, store.ErrNotFound):
		item = store.RosterItem{JID: c, Subscription: store.SubNone}
	case err != nil:
		return false, fmt.Errorf("invite: reading %s in the roster of %s: %w", c, o, err)
	}
	if item.Subscription == "" {
		item.Subscription = store.SubNone
	}
	from := item.Subscription == store.SubFrom || item.Subscription == store.SubBoth
	to := item.Subscription == store.SubTo || item.Subscription == store.SubBoth
	changed := false
	if !from && !item.Approved {
		item.Approved, changed = true, true
	}
	if !to && !item.Ask {
		item.Ask, changed = true, true
	}
	if changed {
		if _, err := f.st.Roster().Put(ctx, o, item); err != nil {
			return false, fmt.Errorf("invite: adding %s to the roster of %s: %w", c, o, err)
		}
	}
	return !to, nil
}

// sendSubscribe routes a subscription request from one account to
// another, as the account's client would.
func (f *feature) sendSubscribe(ctx context.Context, from, to jid.JID) {
	el := xml.New(xml.NSClient, "presence").SetAttr("type", "subscribe").SetAttr("id", f.srv.NewID()).
		SetAttr("from", from.String()).SetAttr("to", to.String())
	if err := f.srv.RouteElement(ctx, el); err != nil {
		f.log.Warn("sending a subscription request failed", "from", from.String(), "to", to.String(), "err", err)
	}
}
