// Package limits holds back abusive traffic on live connections: it
// limits concurrent connections per address and network, sessions per
// account, bandwidth per connection kind (installed as the server's
// bandwidth policy, which c2s and s2s apply to their shaped connections),
// stanza rates per session and per account, and unsolicited traffic
// (messages and subscription requests to strangers) per account per
// hour, with stricter limits for restricted accounts.
//
// Every decision is counted in stoa_limits_decisions_total{policy,reason,
// action} and logged as one line (refusals by the core's pipeline, which
// also counts them in stoa_policy_denied_total; delays once per session
// and then at most once a minute with a count).
package limits

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"stoa.im/stoa/internal/policy"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
)

// Feature is the limits feature.
var Feature = server.Feature{
	Name: "limits",
	Doc:  "Limits connections per address and network, sessions per account, bandwidth per connection, stanza rates and unsolicited messages and subscription requests.",
	XEPs: []server.XEP{
		{Name: "RFC 6120 §13.9 (denial of service: limits on connections, bandwidth and stanza rates)", Status: server.Complete},
	},
	Defaults: Defaults,
	Setup:    setup,
}

// Bounds of the in-memory tables (keys beyond are dropped oldest first).
const (
	maxAccounts = 200000 // per-account stanza and unsolicited buckets
	maxPairs    = 500000 // sender/recipient pairs remembered for an hour
)

// pairTTL is how long a stranger stays paid for, or a contact stays
// known: the unsolicited limits are per hour.
const pairTTL = time.Hour

type feature struct {
	srv *server.Server
	st  store.Store
	log *slog.Logger
	cfg *parsed
	m   *metrics
	now func() time.Time

	conns *policy.Concurrent // "ip ...", "net ...", "site ..."

	mu       sync.Mutex
	connKeys map[*server.ConnInfo][]string // counters a connection holds
	bwShared map[string]*sharedBucket      // per-account bandwidth, by bare JID
	bwHeld   map[*server.ConnInfo]string   // the account whose buckets a connection holds

	sessKey *server.Key[*sessState]
	account [3]*policy.Keyed // stanza rates of accounts, by kindIndex; nil: no limit

	strangerMsgs, strangerSubs     *policy.Keyed // per account per hour
	restrictedMsgs, restrictedSubs *policy.Keyed
	unsolicitedOn                  bool           // any of the four budgets is set
	seed                           maphash.Seed   // for pairKey
	paid                           *policy.Recent // paidKey(sender → recipient): counted this hour
	solicited                      *policy.Recent // pairKey(sender, recipient): the recipient wrote first, this hour
	contacts                       *policy.Recent // pairKey(sender, recipient): the recipient is a contact (cached)
}

type sharedBucket struct {
	read, write *policy.Bucket
	refs        int
}

func setup(s *server.Setup, cfg any) error {
	c, ok := cfg.(Config)
	if !ok {
		return fmt.Errorf("limits: config is %T, want limits.Config", cfg)
	}
	return setupWith(s, c, time.Now)
}

func setupWith(s *server.Setup, c Config, now func() time.Time) error {
	p, err := c.parse()
	if err != nil {
		return fmt.Errorf("limits: %w", err)
	}
	m, err := newMetrics(s.Metrics())
	if err != nil {
		return err
	}
	f := &feature{
		srv: s.Server(), st: s.Store(), log: s.Logger(), cfg: p, m: m, now: now,
		conns:     policy.NewConcurrent(),
		connKeys:  make(map[*server.ConnInfo][]string),
		bwShared:  make(map[string]*sharedBucket),
		bwHeld:    make(map[*server.ConnInfo]string),
		sessKey:   server.NewKey[*sessState]("limits.session"),
		seed:      maphash.MakeSeed(),
		paid:      policy.NewRecent(pairTTL, maxPairs, now),
		solicited: policy.NewRecent(pairTTL, maxPairs, now),
		// Contacts are read from the roster again after ten minutes, so
		// a removed contact becomes a stranger again soon.
		contacts: policy.NewRecent(10*time.Minute, maxPairs, now),
	}
	for i, r := range p.account {
		if r.perSecond > 0 {
			f.account[i] = policy.NewKeyed(r.perSecond, r.burst, maxAccounts, now)
		}
	}
	hourly := func(n int) *policy.Keyed {
		if n <= 0 {
			return nil
		}
		return policy.NewKeyed(float64(n)/3600, float64(n), maxAccounts, now)
	}
	u := p.Unsolicited
	f.strangerMsgs, f.strangerSubs = hourly(u.Messages), hourly(u.Subscriptions)
	f.restrictedMsgs, f.restrictedSubs = hourly(u.RestrictedMessages), hourly(u.RestrictedSubscriptions)
	f.unsolicitedOn = f.strangerMsgs != nil || f.strangerSubs != nil || f.restrictedMsgs != nil || f.restrictedSubs != nil

	server.On(s, server.ConnectionAccepted, server.PrioPolicy, f.accepted)
	server.On(s, server.ConnectionClosed, server.PrioPolicy, f.connClosed)
	server.On(s, server.SessionBinding, server.PrioPolicy, f.binding)
	server.On(s, server.SessionBound, server.PrioPolicy, f.bound)
	server.On(s, server.SessionClosed, server.PrioPolicy, f.closed)
	server.On(s, server.AccountStateChanged, server.PrioPolicy, f.stateChanged)
	s.SetBandwidth(f.bandwidth)
	s.Hook(server.Inbound, server.PrioPolicy, f.inbound)
	// After the policies of DeliverLocal (blocking, firewall): a stanza
	// that reaches the user marks its sender as someone the user may
	// answer freely.
	s.Hook(server.DeliverLocal, server.PrioObserve, f.observe)
	return nil
}

// exemptAddr reports whether a remote address is in exempt_networks.
func (f *feature) exemptAddr(a netip.Addr) bool {
	a = a.Unmap()
	return slices.ContainsFunc(f.cfg.exempt, func(p netip.Prefix) bool { return p.Contains(a) })
}

// --- connections -----------------------------------------------------------

// accepted counts a new connection against the per-address limits.
func (f *feature) accepted(_ context.Context, c *server.ConnInfo) error {
	ip := c.Remote.Addr()
	if !ip.IsValid() || f.exemptAddr(ip) {
		return nil
	}
	cc := f.cfg.Connections
	type limit struct {
		key, reason, what string
		max               int
	}
	limits := []limit{
		{"ip " + ip.Unmap().String(), "connections_per_ip", "your address", cc.PerIP},
		{"net " + policy.PrefixBits(ip, 24, 64), "connections_per_prefix", "your network", cc.PerPrefix},
	}
	if !ip.Unmap().Is4() {
		limits = append(limits, limit{"site " + policy.PrefixBits(ip, 24, 48), "connections_per_ipv6_48", "your network", cc.PerIPv6Site})
	}
	var held []string
	for _, l := range limits {
		if l.max <= 0 {
			continue
		}
		if !f.conns.Acquire(l.key, l.max) {
			for _, k := range held {
				f.conns.Release(k)
			}
			f.m.refused("connections", l.reason)
			f.log.Info("connection refused", "policy", "connections", "reason", l.reason, "remote", c.Remote.String(), "limit", l.max)
			return server.Refuse(l.reason, "Too many connections from %s (at most %d); close some and try again later.", l.what, l.max)
		}
		held = append(held, l.key)
	}
	if len(held) > 0 {
		f.mu.Lock()
		f.connKeys[c] = held
		f.mu.Unlock()
	}
	return nil
}

// connClosed gives back what a connection held.
func (f *feature) connClosed(_ context.Context, c *server.ConnInfo) error {
	f.mu.Lock()
	held := f.connKeys[c]
	delete(f.connKeys, c)
	f.releaseSharedLocked(c)
	f.mu.Unlock()
	for _, k := range held {
		f.conns.Release(k)
	}
	return nil
}

// binding refuses a resource beyond sessions_per_account.
func (f *feature) binding(_ context.Context, b server.BindEvent) error {
	max := f.cfg.Connections.SessionsPerAccount
	if max <= 0 {
		return nil
	}
	n := 0
	for _, s := range f.srv.Sessions(b.JID.Bare()) {
		if s.JID() != b.JID { // binding the same resource again replaces it
			n++
		}
	}
	if n < max {
		return nil
	}
	f.m.refused("sessions", "sessions_per_account")
	f.log.Info("resource refused", "policy", "sessions", "reason", "sessions_per_account", "jid", b.JID.String(), "limit", max)
	return server.Refuse("sessions_per_account", "This account already has %d sessions, the most allowed; close one of them and try again.", n)
}

// --- bandwidth -------------------------------------------------------------

// bandwidth is the server's bandwidth policy.
func (f *feature) bandwidth(kind server.ConnKind, c *server.ConnInfo) server.Bandwidth {
	if c.Remote.IsValid() && f.exemptAddr(c.Remote.Addr()) {
		return server.Bandwidth{}
	}
	if !c.User.IsZero() {
		if f.cfg.unlimited[c.User.Bare().String()] || f.cfg.unlimited[c.User.Domain()] ||
			(kind == server.ConnC2S && f.cfg.ExemptAdmins && f.srv.IsAdmin(c.User)) {
			f.mu.Lock()
			f.releaseSharedLocked(c)
			f.mu.Unlock()
			return server.Bandwidth{}
		}
	}
	rw := f.cfg.bandwidth[string(kind)]
	b := server.Bandwidth{Read: rw[0], Write: rw[1]}
	if kind == server.ConnC2S && f.cfg.Bandwidth.PerAccount && !c.User.IsZero() {
		bare := c.User.Bare().String()
		f.mu.Lock()
		if f.bwHeld[c] != bare {
			f.releaseSharedLocked(c)
			sb := f.bwShared[bare]
			if sb == nil {
				sb = &sharedBucket{read: rw[0].NewBucket(f.now), write: rw[1].NewBucket(f.now)}
				f.bwShared[bare] = sb
			}
			sb.refs++
			f.bwHeld[c] = bare
		}
		sb := f.bwShared[bare]
		f.mu.Unlock()
		b.SharedRead, b.SharedWrite = sb.read, sb.write
	}
	return b
}

// releaseSharedLocked drops a connection's hold on its account's shared
// buckets. f.mu must be held.
func (f *feature) releaseSharedLocked(c *server.ConnInfo) {
	bare, ok := f.bwHeld[c]
	if !ok {
		return
	}
	delete(f.bwHeld, c)
	if sb := f.bwShared[bare]; sb != nil {
		if sb.refs--; sb.refs <= 0 {
			delete(f.bwShared, bare)
		}
	}
}

// --- sessions --------------------------------------------------------------

// sessState is what the feature keeps per session.
type sessState struct {
	done     chan struct{}
	doneOnce sync.Once
	buckets  [3]*policy.Bucket // stanza rates by kindIndex; nil: no limit
	exempt   bool              // admin or exempt network: no stanza or unsolicited limits

	mu              sync.Mutex
	restricted      bool
	restrictedUntil time.Time // zero: until changed
	delayed         int       // delays since the last log line
	loggedAt        time.Time // last "stanzas delayed" line
}

func (ss *sessState) isRestricted(now time.Time) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.restricted && (ss.restrictedUntil.IsZero() || now.Before(ss.restrictedUntil))
}

func (ss *sessState) setState(st store.AccountState) {
	ss.mu.Lock()
	ss.restricted = st.Status == store.StatusRestricted
	ss.restrictedUntil = st.Expires
	ss.mu.Unlock()
}

func (f *feature) bound(ctx context.Context, s *server.Session) error {
	ss := &sessState{done: make(chan struct{})}
	ss.exempt = (f.cfg.ExemptAdmins && f.srv.IsAdmin(s.JID())) ||
		(s.RemoteAddr().IsValid() && f.exemptAddr(s.RemoteAddr().Addr()))
	for i, r := range f.cfg.session {
		if r.perSecond > 0 {
			ss.buckets[i] = policy.NewBucket(r.perSecond, r.burst, f.now)
		}
	}
	server.SetValue(s, f.sessKey, ss)
	st, err := f.srv.AccountState(ctx, s.JID())
	if err != nil {
		return fmt.Errorf("limits: %w", err)
	}
	ss.setState(st)
	return nil
}

func (f *feature) closed(_ context.Context, s *server.Session) error {
	if ss, ok := server.Value(s, f.sessKey); ok {
		ss.doneOnce.Do(func() { close(ss.done) })
	}
	return nil
}

// stateChanged gives the account's live sessions its new state.
func (f *feature) stateChanged(_ context.Context, ch server.AccountStateChange) error {
	j, err := jid.Parse(ch.New.JID)
	if err != nil {
		return nil
	}
	for _, s := range f.srv.Sessions(j) {
		if ss, ok := server.Value(s, f.sessKey); ok {
			ss.setState(ch.New)
		}
	}
	return nil
}
