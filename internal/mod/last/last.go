// Package last answers last activity queries (XEP-0012 version 2.0): sent
// to the server, the answer is its uptime (§5); sent to an account's bare
// JID, it is how long ago the account's last session ended and the status
// text of its last unavailable presence (§3), or 0 while the account has
// a connected resource.
//
// Only the account itself and contacts with a presence subscription to it
// ('from' or 'both') may ask (§3: forbidden otherwise). The same rule
// guards queries to a full JID, which the core delivers to the client
// (§4): an unauthorized sender gets forbidden from the server whether or
// not that resource is online, so the query cannot reveal it. An account
// that does not exist gets service-unavailable (RFC 6121 §8.5.1).
//
// The time and status of the last logout are recorded by the presence
// feature (store.Account.LastLogout and LastStatus). For an account that
// never logged out the answer is item-not-found: a made-up number would
// mislead.
package last

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// NS is the XEP-0012 namespace.
const NS = "jabber:iq:last"

// Feature is the last activity feature.
var Feature = server.Feature{
	Name:  "last",
	Doc:   "Tells contacts how long ago a user was last online, and anyone how long the server has been up.",
	XEPs:  []server.XEP{{N: 12, Name: "Last Activity", Version: "2.0", Status: server.Complete}},
	Setup: setup,
}

type feature struct {
	srv *server.Server
	st  store.Store
	log *slog.Logger
	now func() time.Time
}

func setup(s *server.Setup, _ any) error { return setupClock(s, time.Now) }

// setupClock is setup with a clock, for tests.
func setupClock(s *server.Setup, now func() time.Time) error {
	f := &feature{srv: s.Server(), st: s.Store(), log: s.Logger(), now: now}
	s.Disco().ServerFeature(NS)
	s.Disco().AccountFeature(NS)
	s.HandleIQ(server.ToServer, "get", NS, "query", f.uptime)
	s.HandleIQ(server.ToAccount, "get", NS, "query", f.account)
	s.Hook(server.DeliverLocal, server.PrioFeature, f.toResource)
	return nil
}

func query(seconds int64, text string) *xml.Element {
	q := xml.New(NS, "query").SetAttr("seconds", strconv.FormatInt(seconds, 10))
	q.Text = text
	return q
}

// uptime answers a query to the server (§5).
func (f *feature) uptime(context.Context, *server.Stanza) (*xml.Element, error) {
	return query(int64(f.srv.Uptime()/time.Second), ""), nil
}

// account answers a query to an account's bare JID (§3).
func (f *feature) account(ctx context.Context, iq *server.Stanza) (*xml.Element, error) {
	owner := iq.To.Bare()
	acct, err := f.st.Accounts().Get(ctx, owner.String())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, stanza.NewError(stanza.ServiceUnavailable, "")
	case err != nil:
		return nil, fmt.Errorf("last: looking up %s: %w", owner, err)
	}
	ok, err := f.authorized(ctx, owner, iq.From)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, stanza.NewError(stanza.Forbidden, "")
	}
	// §3: "at least one connected or available resource": 0 seconds.
	if f.srv.SessionCount(owner) > 0 {
		return query(0, ""), nil
	}
	if acct.LastLogout.IsZero() {
		return nil, stanza.NewError(stanza.ItemNotFound, "No last activity is known for this account.")
	}
	secs := int64(f.now().Sub(acct.LastLogout) / time.Second)
	return query(max(secs, 0), acct.LastStatus), nil
}

// toResource refuses queries to an account's full JID from senders not
// allowed to see its presence (§4), before the core delivers them.
func (f *feature) toResource(ctx context.Context, st *server.Stanza) server.Result {
	if st.Kind != server.KindIQ || st.Type != "get" || st.To.Local() == "" || st.To.Resource() == "" {
		return server.Next
	}
	if p := st.Payload(); p == nil || p.Space != NS || p.Local != "query" {
		return server.Next
	}
	ok, err := f.authorized(ctx, st.To.Bare(), st.From)
	if err != nil {
		f.log.Error("checking a last activity query failed", "to", st.To.String(), "from", st.From.String(), "err", err)
		return server.Deny("last_error", stanza.NewError(stanza.InternalServerError, ""))
	}
	if !ok {
		return server.Deny("last_forbidden", stanza.NewError(stanza.Forbidden, ""))
	}
	return server.Next
}

// authorized reports whether from may see owner's presence: it is the
// account itself or a contact with a 'from' or 'both' subscription.
func (f *feature) authorized(ctx context.Context, owner, from jid.JID) (bool, error) {
	if from.Bare() == owner {
		return true, nil
	}
	it, err := f.st.Roster().Get(ctx, owner.String(), from.Bare().String())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("last: reading the roster of %s: %w", owner, err)
	}
	return it.Subscription == store.SubFrom || it.Subscription == store.SubBoth, nil
}
