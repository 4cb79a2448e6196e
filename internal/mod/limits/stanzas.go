package limits

import (
	"context"
	"errors"
	"hash/maphash"
	"time"

	"stoa.im/stoa/internal/policy"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
)

// kindIndex maps a stanza kind to the index of its limits; -1 for none.
func kindIndex(k server.Kind) int {
	switch k {
	case server.KindMessage:
		return 0
	case server.KindPresence:
		return 1
	case server.KindIQ:
		return 2
	}
	return -1
}

var kindNames = [3]string{"message", "presence", "iq"}

// inbound applies the stanza-rate and unsolicited-traffic limits to a
// stanza from a local session.
func (f *feature) inbound(ctx context.Context, st *server.Stanza) server.Result {
	if st.Origin == nil {
		return server.Next
	}
	ss, ok := server.Value(st.Origin, f.sessKey)
	if !ok || ss.exempt {
		return server.Next
	}
	if r := f.rate(ctx, st, ss); !r.IsNext() {
		return r
	}
	return f.unsolicited(ctx, st, ss)
}

// rate holds a session to its stanza rates: it waits (action delay) or
// refuses (action refuse, or a wait beyond max_delay).
func (f *feature) rate(ctx context.Context, st *server.Stanza, ss *sessState) server.Result {
	i := kindIndex(st.Kind)
	if i < 0 || (st.Kind == server.KindIQ && !st.IsRequest()) {
		return server.Next // IQ results and errors answer someone: not counted
	}
	own := ss.buckets[i]
	var acct interface {
		Reserve(float64) time.Duration
		Allow(float64) bool
		Refund(float64)
	}
	if k := f.account[i]; k != nil {
		acct = k.Bucket(st.From.Bare().String())
	}
	if own == nil && acct == nil {
		return server.Next
	}
	kind := kindNames[i]
	if f.cfg.Stanzas.Action == "refuse" {
		if own != nil && !own.Allow(1) {
			return f.refuseRate("stanza_rate_session_"+kind, kind)
		}
		if acct != nil && !acct.Allow(1) {
			if own != nil {
				own.Refund(1)
			}
			return f.refuseRate("stanza_rate_account_"+kind, kind)
		}
		return server.Next
	}
	var wait time.Duration
	reason := ""
	if own != nil {
		if w := own.Reserve(1); w > wait {
			wait, reason = w, "stanza_rate_session_"+kind
		}
	}
	if acct != nil {
		if w := acct.Reserve(1); w > wait {
			wait, reason = w, "stanza_rate_account_"+kind
		}
	}
	if wait == 0 {
		return server.Next
	}
	if wait > time.Duration(f.cfg.Stanzas.MaxDelay) {
		if own != nil {
			own.Refund(1)
		}
		if acct != nil {
			acct.Refund(1)
		}
		return f.refuseRate(reason, kind)
	}
	f.m.decisions.WithLabelValues("stanza_rate", reason, "delayed").Inc()
	f.m.delay.WithLabelValues(reason).Add(wait.Seconds())
	f.logDelay(st, ss, reason, wait)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return server.Next
	case <-ss.done:
		// The session ended while it waited (kicked, suspended): what it
		// sent last goes nowhere.
		return server.Drop("session_closed")
	case <-ctx.Done():
		return server.Drop("session_closed")
	}
}

func (f *feature) refuseRate(reason, kind string) server.Result {
	f.m.refused("stanza_rate", reason)
	return server.Deny(reason, stanza.Errorf(stanza.PolicyViolation,
		"You are sending %s stanzas too fast; this one was not delivered. Slow down and send it again.", kind))
}

// logDelay logs the first delay of a session, then at most one line a
// minute with the number of delays since the last line.
func (f *feature) logDelay(st *server.Stanza, ss *sessState, reason string, wait time.Duration) {
	now := f.now()
	ss.mu.Lock()
	ss.delayed++
	n := ss.delayed
	if !ss.loggedAt.IsZero() && now.Sub(ss.loggedAt) < time.Minute {
		ss.mu.Unlock()
		return
	}
	ss.loggedAt, ss.delayed = now, 0
	ss.mu.Unlock()
	f.log.Info("stanzas delayed", "policy", "stanza_rate", "reason", reason, "jid", st.From.String(),
		"delayed", n, "wait", wait.Round(time.Millisecond).String())
}

// pairKey names a (sender, recipient) pair of bare JIDs for the Recent
// sets: a hash with the feature's secret seed, so nobody can choose JIDs
// that collide with someone else's pair.
func (f *feature) pairKey(from, to jid.JID) uint64 {
	var h maphash.Hash
	h.SetSeed(f.seed)
	h.WriteString(from.Bare().String())
	h.WriteByte(0)
	h.WriteString(to.Bare().String())
	return h.Sum64()
}

// paidKey is the pair's key in f.paid, for one kind of traffic.
func paidKey(pair uint64, kind string) uint64 {
	if kind == "subscriptions" {
		return pair*0x9e3779b97f4a7c15 + 1
	}
	return pair*0x9e3779b97f4a7c15 + 2
}

// unsolicited holds an account to its budget of strangers per hour:
// messages and subscription requests to addresses that are not its
// contacts (subscription to, from or both) and have not written to it
// in the last hour. Each stranger costs once per hour and kind.
func (f *feature) unsolicited(ctx context.Context, st *server.Stanza, ss *sessState) server.Result {
	var kind string
	switch {
	case st.Kind == server.KindMessage && st.Type != "groupchat" && st.Type != "error":
		kind = "messages"
	case st.Kind == server.KindPresence && st.Type == "subscribe":
		kind = "subscriptions"
	default:
		return server.Next
	}
	to := st.To
	if to.IsZero() || to.Local() == "" || to.Bare() == st.From.Bare() {
		return server.Next // the server, a service, or the user's own resources
	}
	restricted := ss.isRestricted(f.now())
	var budget *policy.Keyed
	switch {
	case kind == "messages" && restricted:
		budget = f.restrictedMsgs
	case kind == "messages":
		budget = f.strangerMsgs
	case restricted:
		budget = f.restrictedSubs
	default:
		budget = f.strangerSubs
	}
	if budget == nil {
		return server.Next
	}
	pair := f.pairKey(st.From, to)
	paid := paidKey(pair, kind)
	if f.solicited.Has(pair) || f.contacts.Has(pair) || f.paid.Has(paid) {
		return server.Next
	}
	if f.contact(ctx, st.From, to) {
		f.contacts.Add(pair)
		return server.Next
	}
	if budget.Allow(st.From.Bare().String(), 1) {
		f.paid.Add(paid)
		return server.Next
	}
	reason := "unsolicited_" + kind
	if restricted {
		reason += "_restricted"
	}
	f.m.refused("unsolicited", reason)
	what := "messaged too many people who are not your contacts"
	if kind == "subscriptions" {
		what = "sent too many contact requests"
	}
	text := "You have " + what + " in the last hour; this was not sent. Wait a while, or ask them to add you first."
	if restricted {
		text = "Your account is restricted for now and has " + what + " in the last hour; this was not sent. Try again later."
	}
	return server.Deny(reason, stanza.NewError(stanza.PolicyViolation, text))
}

// contact reports whether to is a contact of from (a roster item with a
// subscription in either direction). Roster errors count as a contact:
// a storage problem must not block users.
func (f *feature) contact(ctx context.Context, from, to jid.JID) bool {
	it, err := f.st.Roster().Get(ctx, from.Bare().String(), to.Bare().String())
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		f.log.Warn("reading the roster failed; treating the recipient as a contact", "jid", from.Bare().String(), "err", err)
		return true
	}
	return it.Subscription != store.SubNone && it.Subscription != ""
}

// observe notes that a message or a subscription request reached a local
// user: the user may answer its sender without counting it as unsolicited.
func (f *feature) observe(_ context.Context, st *server.Stanza) server.Result {
	if !f.unsolicitedOn {
		return server.Next // no budgets: nothing to remember
	}
	if st.From.IsZero() || st.To.Local() == "" || st.From.Bare() == st.To.Bare() {
		return server.Next
	}
	if (st.Kind == server.KindMessage && st.Type != "error" && st.Type != "groupchat") ||
		(st.Kind == server.KindPresence && st.Type == "subscribe") {
		f.solicited.Add(f.pairKey(st.To, st.From))
	}
	return server.Next
}
