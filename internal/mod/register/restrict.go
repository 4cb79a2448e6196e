package register

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
)

// New accounts are restricted for a while after sign-up, and, in
// approval mode, until an admin approves them: messages with a body to
// addresses that are not contacts (no subscription either way) and
// subscription requests are limited per hour. The restriction is stored with the account (KV key
// kvRestriction, so it goes with the account) and read once per session
// at bind; the per-stanza check reads the session's copy.

const kvRestriction = "register.restriction"

// restriction is the stored state.
type restriction struct {
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until"`    // zero: only the approval restricts
	Approval bool      `json:"approval"` // waiting for an admin's approval
}

func (r *restriction) active(now time.Time) bool {
	return r != nil && (r.Approval || now.Before(r.Until))
}

type restrictions struct {
	f   *feature
	cfg RestrictConfig
	key *server.Key[*restriction]

	mu       sync.Mutex
	counters map[string]*acctCounters // bare JID
}

type acctCounters struct {
	msgs, subs window
}

func newRestrictions(f *feature, c RestrictConfig) *restrictions {
	return &restrictions{f: f, cfg: c, key: server.NewKey[*restriction]("register.restriction"), counters: make(map[string]*acctCounters)}
}

func (r *restrictions) setup(s *server.Setup) {
	server.On(s, server.SessionBound, server.PrioFeature, r.bound)
	s.Hook(server.Inbound, server.PrioPolicy, r.hook)
}

// start restricts a new account.
func (r *restrictions) start(ctx context.Context, bare jid.JID, now time.Time, approval bool) error {
	if r.cfg.Period <= 0 && !approval {
		return nil
	}
	rs := restriction{Since: now, Approval: approval}
	if r.cfg.Period > 0 {
		rs.Until = now.Add(time.Duration(r.cfg.Period))
	}
	return r.store(ctx, bare, &rs)
}

func (r *restrictions) store(ctx context.Context, bare jid.JID, rs *restriction) error {
	b, err := json.Marshal(rs)
	if err != nil {
		return err
	}
	return r.f.srv.Store().KV().Put(ctx, bare.String(), kvRestriction, b)
}

// load reads an account's restriction; nil when it has none.
func (r *restrictions) load(ctx context.Context, bare jid.JID) (*restriction, error) {
	b, err := r.f.srv.Store().KV().Get(ctx, bare.String(), kvRestriction)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rs restriction
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, fmt.Errorf("reading the restriction of %s: %w", bare, err)
	}
	return &rs, nil
}

// bound gives a new session its account's restriction.
func (r *restrictions) bound(ctx context.Context, s *server.Session) error {
	bare := s.JID().Bare()
	rs, err := r.load(ctx, bare)
	if err != nil || rs == nil {
		return err
	}
	if !rs.active(r.f.now()) {
		// Over: forget it.
		if err := r.f.srv.Store().KV().Delete(ctx, bare.String(), kvRestriction); err != nil {
			r.f.log.Warn("removing an expired restriction failed", "jid", bare.String(), "err", err)
		}
		return nil
	}
	server.SetValue(s, r.key, rs)
	return nil
}

// hook limits what a restricted account sends.
func (r *restrictions) hook(ctx context.Context, st *server.Stanza) server.Result {
	if st.Origin == nil {
		return server.Next
	}
	rs, ok := server.Value(st.Origin, r.key)
	if !ok || rs == nil {
		return server.Next
	}
	now := r.f.now()
	if !rs.active(now) {
		return server.Next
	}
	self := st.Origin.JID().Bare()
	var kind string
	var limit int
	switch {
	case st.Kind == server.KindMessage:
		if st.Type == "groupchat" || st.Type == "error" || st.El.Child("", "body") == nil ||
			st.To.Local() == "" || st.To.Bare() == self {
			return server.Next
		}
		// A contact counts once a subscription exists either way: a
		// pending request alone (which puts the address in the roster)
		// does not make a stranger a contact.
		if item, err := r.f.srv.Store().Roster().Get(ctx, self.String(), st.To.Bare().String()); err == nil {
			if item.Subscription != store.SubNone {
				return server.Next
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			r.f.log.Warn("roster lookup for a restricted account failed; letting the message through", "jid", self.String(), "err", err)
			return server.Next
		}
		kind, limit = "message", r.cfg.MessagesPerHour
	case st.Kind == server.KindPresence && st.Type == "subscribe":
		kind, limit = "subscription", r.cfg.SubscriptionsPerHour
	default:
		return server.Next
	}
	if r.take(self.String(), kind, limit, now) {
		return server.Next
	}
	r.f.metrics.limited.WithLabelValues(kind).Inc()
	why := fmt.Sprintf("until %s", rs.Until.UTC().Format("2006-01-02 15:04 UTC"))
	if rs.Approval {
		why = "until an admin of this server approves it"
	}
	var text, reason string
	if kind == "message" {
		reason = "new_account_messages"
		text = fmt.Sprintf("Your account is new, and %s it may send %d messages per hour to people who are not in your contacts. Try again later, or ask them to add you as a contact.", why, limit)
	} else {
		reason = "new_account_subscriptions"
		text = fmt.Sprintf("Your account is new, and %s it may send %d contact requests per hour. Try again later.", why, limit)
	}
	return server.Deny(reason, stanza.NewError(stanza.PolicyViolation, text))
}

// take counts one event of kind for account if the hourly limit allows.
func (r *restrictions) take(account, kind string, limit int, now time.Time) bool {
	if limit <= 0 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.counters[account]
	if c == nil {
		c = &acctCounters{}
		r.counters[account] = c
	}
	w := &c.msgs
	if kind == "subscription" {
		w = &c.subs
	}
	if w.count(now.Add(-time.Hour)) >= limit {
		return false
	}
	w.add(now, limit)
	return true
}

// sweep drops counters with nothing in the last hour.
func (r *restrictions) sweep() {
	cut := r.f.now().Add(-time.Hour)
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, c := range r.counters {
		if !c.msgs.newest().After(cut) && !c.subs.newest().After(cut) {
			delete(r.counters, k)
		}
	}
}

// approve lifts the approval restriction of an account (the time-based
// one, if configured, runs its course).
func (r *restrictions) approve(ctx context.Context, bare jid.JID, by string) error {
	rs, err := r.load(ctx, bare)
	if err != nil {
		return err
	}
	if rs == nil || !rs.Approval {
		return fmt.Errorf("%s is not waiting for approval", bare)
	}
	rs.Approval = false
	now := r.f.now()
	if rs.active(now) {
		err = r.store(ctx, bare, rs)
	} else {
		err = r.f.srv.Store().KV().Delete(ctx, bare.String(), kvRestriction)
	}
	if err != nil {
		return fmt.Errorf("approving %s: %w", bare, err)
	}
	for _, s := range r.f.srv.Sessions(bare) {
		if rs.active(now) {
			server.SetValue(s, r.key, rs)
		} else {
			server.SetValue(s, r.key, (*restriction)(nil))
		}
	}
	r.f.metrics.account.WithLabelValues("approved").Inc()
	r.f.log.Info("account approved", "jid", bare.String(), "by", by)
	return nil
}

// pending lists the accounts registered in the last window that wait for
// approval, oldest first.
func (r *restrictions) pending(ctx context.Context, since time.Time) ([]store.RegistrationLogEntry, error) {
	entries, err := r.f.srv.Store().Registration().Log(ctx, store.RegistrationLogQuery{Since: since})
	if err != nil {
		return nil, err
	}
	var out []store.RegistrationLogEntry
	for _, e := range entries {
		bare, err := jid.Parse(e.JID)
		if err != nil {
			continue
		}
		rs, err := r.load(ctx, bare)
		if err != nil {
			return nil, err
		}
		if rs != nil && rs.Approval {
			out = append(out, e)
		}
	}
	return out, nil
}
