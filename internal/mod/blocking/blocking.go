// Package blocking implements the Blocking Command (XEP-0191 version
// 1.3): users block JIDs (full, bare, domain/resource or domain, matched
// as XEP-0016 says), and a block applies to every stanza in both
// directions, for all of the user's resources and across sessions.
//
// What happens, per XEP-0191 §3.3:
//   - Stanzas from a blocked JID to the user: presence (including
//     subscription requests and probes) is dropped without an answer;
//     messages and IQ requests are answered with service-unavailable (as
//     if the user did not exist); IQ results, errors and error messages
//     are dropped. Stored offline messages and pending subscription
//     requests from a JID blocked later are dropped when they would be
//     delivered.
//   - Stanzas the user sends to a blocked JID are refused with
//     not-acceptable and <blocked xmlns='urn:xmpp:blocking:errors'/>;
//     presence broadcasts and probe answers skip blocked contacts.
//   - Blocking sends unavailable presence to blocked contacts that were
//     receiving the user's presence and drops their pending subscription
//     requests; unblocking sends them the user's current presence.
//   - Every change is pushed to all of the user's resources that asked
//     for the block list.
//   - A block may carry a XEP-0377 report; it is filed in the admins'
//     report queue (the reports feature) after the block succeeded.
//
// Block lists are cached in memory for the most recently used accounts
// (cache_size), so checking a stanza costs no storage access.
package blocking

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Namespaces.
const (
	NSBlocking = "urn:xmpp:blocking"
	nsErrors   = "urn:xmpp:blocking:errors"
	nsReport1  = "urn:xmpp:reporting:1"
	nsReport0  = "urn:xmpp:reporting:0"
	nsSID      = "urn:xmpp:sid:0"
)

// Feature is the blocking feature.
var Feature = server.Feature{
	Name: "blocking",
	Doc:  "Users block JIDs and domains (XEP-0191): no presence and no stanzas either way, pushed to all their clients; reports attached to a block go to the admins (XEP-0377).",
	XEPs: []server.XEP{
		{N: 191, Name: "Blocking Command", Version: "1.3", Status: server.Complete},
	},
	Defaults: Config{MaxItems: 1000, CacheSize: 10000},
	Setup:    setup,
}

// Config is the [blocking] table.
type Config struct {
	MaxItems  int `toml:"max_items" min:"1" help:"Most JIDs one account may block; blocking more is refused with resource-constraint."`
	CacheSize int `toml:"cache_size" min:"1" help:"Block lists kept in memory (most recently used accounts); others are read from storage when needed."`
}

// ReportFiler is the service of the reports feature.
type ReportFiler interface {
	FileReport(ctx context.Context, r *server.AbuseReport) (int64, error)
}

type feature struct {
	srv      *server.Server
	st       store.Store
	log      *slog.Logger
	cfg      Config
	cache    *cache
	asked    *server.Key[bool] // the session requested the block list
	reporter func() (ReportFiler, bool)
}

func setup(s *server.Setup, cfg any) error {
	c, ok := cfg.(Config)
	if !ok {
		return fmt.Errorf("blocking: config is %T, want blocking.Config", cfg)
	}
	f := &feature{
		srv: s.Server(), st: s.Store(), log: s.Logger(), cfg: c,
		cache: newCache(max(1, c.CacheSize)),
		asked: server.NewKey[bool]("blocking.asked"),
	}
	f.reporter = func() (ReportFiler, bool) { return server.Find[ReportFiler](f.srv) }
	s.Disco().ServerFeature(NSBlocking)
	s.Disco().AccountFeature(NSBlocking)
	s.HandleIQ(server.ToAccount, "get", NSBlocking, "blocklist", f.get)
	s.HandleIQ(server.ToAccount, "set", NSBlocking, "block", f.block)
	s.HandleIQ(server.ToAccount, "set", NSBlocking, "unblock", f.unblock)
	s.Hook(server.Inbound, server.PrioPolicy, f.outgoing)
	s.Hook(server.DeliverLocal, server.PrioPolicy, f.deliverLocal)
	s.Hook(server.DeliverRemote, server.PrioPolicy, f.deliverRemote)
	s.Hook(server.Outbound, server.PrioPolicy, f.toSession)
	server.On(s, server.UserDeleted, server.PrioFeature, func(_ context.Context, ev server.AccountEvent) error {
		f.cache.drop(ev.JID)
		return nil
	})
	return nil
}

// list returns the owner's block list (from the cache when possible).
func (f *feature) list(ctx context.Context, owner string) (*entry, error) {
	if e := f.cache.get(owner); e != nil {
		return e, nil
	}
	gen := f.cache.generation()
	items, err := f.st.Blocklist().List(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("blocking: reading the block list of %s: %w", owner, err)
	}
	e := newEntry(items)
	f.cache.put(owner, e, gen)
	return e, nil
}

// blocks reports whether local account owner blocks other. A storage
// error is logged and counts as not blocked.
func (f *feature) blocks(ctx context.Context, owner jid.JID, other jid.JID) bool {
	if other.IsZero() || owner.Bare() == other.Bare() {
		return false // never block one's own resources (XEP-0191 §5)
	}
	e, err := f.list(ctx, owner.Bare().String())
	if err != nil {
		f.log.Error("checking the block list failed; letting the stanza through", "jid", owner.Bare().String(), "err", err)
		return false
	}
	return e.matches(other)
}

// fromOwnServer reports whether j is one of the hosts served here: the
// server's own answers (service discovery, pushes, notices) always
// reach its users, even one who blocked a whole local domain.
func (f *feature) fromOwnServer(j jid.JID) bool {
	return j.Local() == "" && f.srv.Host(j.Domain()) != nil
}

// isLocalAccount reports whether j is an account of a host served here.
func (f *feature) isLocalAccount(j jid.JID) bool {
	return !j.IsZero() && j.Local() != "" && f.srv.Host(j.Domain()) != nil
}

// blockedError is what a user gets for a stanza to a JID they blocked.
func blockedError() *stanza.Error {
	e := stanza.NewError(stanza.NotAcceptable, "You have blocked this address; unblock it to communicate with it.")
	e.App = xml.New(nsErrors, "blocked")
	return e
}

// outgoing refuses what a user sends to a JID they blocked.
func (f *feature) outgoing(ctx context.Context, st *server.Stanza) server.Result {
	if st.Origin == nil || st.To.IsZero() || st.To.Bare() == st.From.Bare() {
		return server.Next
	}
	if st.To.IsDomain() && f.srv.Host(st.To.Domain()) != nil {
		return server.Next // the user's own server stays reachable
	}
	if !f.blocks(ctx, st.From, st.To) {
		return server.Next
	}
	// The error goes straight to the sending session: routed, it would
	// come from the blocked JID and be dropped as such.
	f.srv.CountDenied("blocked_outgoing")
	f.log.Info("stanza refused", "policy", "blocked_outgoing", "stage", "inbound",
		"kind", st.Kind.String(), "from", st.From.String(), "to", st.To.String())
	if !st.IsError() && !(st.Kind == server.KindIQ && st.Type == "result") {
		if err := st.Origin.Send(stanza.ErrorReply(st.El, blockedError())); err != nil {
			f.log.Debug("answering a stanza to a blocked JID failed", "err", err)
		}
	}
	return server.Done
}

// incoming handles a stanza from a JID the recipient blocked.
func incoming(st *server.Stanza) server.Result {
	switch {
	case st.Kind == server.KindMessage && st.Type != "error":
		return server.Deny("blocked_incoming", stanza.NewError(stanza.ServiceUnavailable, ""))
	case st.IsRequest():
		return server.Deny("blocked_incoming", stanza.NewError(stanza.ServiceUnavailable, ""))
	}
	return server.Drop("blocked_incoming")
}

// deliverLocal applies both users' block lists to a stanza for a local
// account: the recipient's (stanzas from blocked JIDs) and, when the
// sender is local, the sender's (presence broadcasts, probe answers and
// other stanzas the server sends on the sender's behalf; not the errors
// the server answers a blocked JID with).
func (f *feature) deliverLocal(ctx context.Context, st *server.Stanza) server.Result {
	if st.To.Local() == "" || st.From.IsZero() || st.From.Bare() == st.To.Bare() {
		return server.Next
	}
	if !f.fromOwnServer(st.From) && f.blocks(ctx, st.To, st.From) {
		return incoming(st)
	}
	if !st.IsError() && f.isLocalAccount(st.From) && f.blocks(ctx, st.From, st.To) {
		return server.Drop("blocked_outgoing")
	}
	return server.Next
}

// deliverRemote drops what the server would send to a remote JID on
// behalf of a local user who blocked it.
func (f *feature) deliverRemote(ctx context.Context, st *server.Stanza) server.Result {
	if !st.IsError() && f.isLocalAccount(st.From) && f.blocks(ctx, st.From, st.To) {
		return server.Drop("blocked_outgoing")
	}
	return server.Next
}

// toSession is the last check before a stanza is written to a session:
// it catches what reaches a session without DeliverLocal (offline
// messages, re-sent subscription requests) from a JID blocked since.
func (f *feature) toSession(ctx context.Context, st *server.Stanza) server.Result {
	if st.To.Local() == "" || st.From.IsZero() || st.From.Bare() == st.To.Bare() || f.fromOwnServer(st.From) {
		return server.Next
	}
	if f.blocks(ctx, st.To, st.From) {
		return server.Drop("blocked_incoming")
	}
	return server.Next
}

// own checks that an IQ about the block list comes from its owner.
func own(st *server.Stanza) error {
	if st.From.Bare() != st.To.Bare() {
		return stanza.NewError(stanza.Forbidden, "Only the account's owner may see or change its block list.")
	}
	return nil
}

// get answers a block list request (XEP-0191 §3.2).
func (f *feature) get(ctx context.Context, st *server.Stanza) (*xml.Element, error) {
	if err := own(st); err != nil {
		return nil, err
	}
	e, err := f.list(ctx, st.From.Bare().String())
	if err != nil {
		return nil, err
	}
	if st.Origin != nil {
		server.SetValue(st.Origin, f.asked, true)
	}
	res := xml.New(NSBlocking, "blocklist")
	for _, j := range e.sorted() {
		res.Append(xml.New(NSBlocking, "item").SetAttr("jid", j))
	}
	return res, nil
}

// items reads the <item/> children of a block or unblock payload.
func items(p *xml.Element) ([]jid.JID, []*xml.Element, error) {
	var out []jid.JID
	var els []*xml.Element
	for _, c := range p.Elements() {
		if c.Space != NSBlocking || c.Local != "item" {
			continue
		}
		j, err := jid.Parse(c.Attr("jid"))
		if err != nil {
			return nil, nil, stanza.Errorf(stanza.JIDMalformed, "%q is not a valid address: %v", c.Attr("jid"), err)
		}
		if !slices.Contains(out, j) {
			out = append(out, j)
			els = append(els, c)
		}
	}
	return out, els, nil
}

// block handles a block command (XEP-0191 §3.3), with reports (XEP-0377).
func (f *feature) block(ctx context.Context, st *server.Stanza) (*xml.Element, error) {
	if err := own(st); err != nil {
		return nil, err
	}
	owner := st.From.Bare()
	list, els, err := items(st.Payload())
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, stanza.NewError(stanza.BadRequest, "A block command needs at least one <item jid='...'/>.")
	}
	var self []string
	for _, j := range list {
		if j.Bare() == owner {
			self = append(self, j.String())
		}
	}
	if len(self) > 0 {
		return nil, stanza.Errorf(stanza.NotAcceptable, "You cannot block your own account (%s).", strings.Join(self, ", "))
	}
	cur, err := f.list(ctx, owner.String())
	if err != nil {
		return nil, err
	}
	var added []jid.JID
	for _, j := range list {
		if !cur.has(j.String()) {
			added = append(added, j)
		}
	}
	if cur.len()+len(added) > f.cfg.MaxItems {
		return nil, stanza.Errorf(stanza.ResourceConstraint, "Your block list is full (at most %d addresses); unblock some first.", f.cfg.MaxItems)
	}
	if len(added) > 0 {
		// Before the block is in force, so that the unavailable presence
		// still passes the hooks.
		f.sendPresence(ctx, owner, added, true)
		strs := make([]string, len(added))
		for i, j := range added {
			strs[i] = j.String()
		}
		if err := f.st.Blocklist().Add(ctx, owner.String(), strs); err != nil {
			return nil, fmt.Errorf("blocking: %w", err)
		}
		f.cache.drop(owner.String())
		for _, j := range added {
			if !j.IsBare() || j.Local() == "" {
				continue
			}
			if err := f.st.Roster().RemovePendingIn(ctx, owner.String(), j.String()); err != nil {
				f.log.Warn("removing a pending subscription request of a blocked JID failed", "jid", owner.String(), "blocked", j.String(), "err", err)
			}
		}
		f.log.Info("blocked", "jid", owner.String(), "blocked", strs)
	}
	f.push(ctx, owner, "block", list)
	for i, j := range list {
		f.report(ctx, owner, j, els[i], st.Payload())
	}
	return nil, nil
}

// unblock handles an unblock command (XEP-0191 §3.4, §3.5).
func (f *feature) unblock(ctx context.Context, st *server.Stanza) (*xml.Element, error) {
	if err := own(st); err != nil {
		return nil, err
	}
	owner := st.From.Bare()
	list, _, err := items(st.Payload())
	if err != nil {
		return nil, err
	}
	var removed []jid.JID
	if len(list) == 0 {
		gone, err := f.st.Blocklist().Clear(ctx, owner.String())
		if err != nil {
			return nil, fmt.Errorf("blocking: %w", err)
		}
		for _, s := range gone {
			if j, err := jid.Parse(s); err == nil {
				removed = append(removed, j)
			}
		}
	} else {
		cur, err := f.list(ctx, owner.String())
		if err != nil {
			return nil, err
		}
		strs := make([]string, 0, len(list))
		for _, j := range list {
			strs = append(strs, j.String())
			if cur.has(j.String()) {
				removed = append(removed, j)
			}
		}
		if err := f.st.Blocklist().Remove(ctx, owner.String(), strs); err != nil {
			return nil, fmt.Errorf("blocking: %w", err)
		}
	}
	f.cache.drop(owner.String())
	if len(removed) > 0 {
		f.log.Info("unblocked", "jid", owner.String(), "count", len(removed))
	}
	f.push(ctx, owner, "unblock", list)
	f.sendPresence(ctx, owner, removed, false)
	return nil, nil
}

// push sends the change to every resource that asked for the block list
// (XEP-0191 §3.3): an IQ set from the account to the resource.
func (f *feature) push(ctx context.Context, owner jid.JID, op string, list []jid.JID) {
	for _, s := range f.srv.Sessions(owner) {
		if asked, _ := server.Value(s, f.asked); !asked {
			continue
		}
		p := xml.New(NSBlocking, op)
		for _, j := range list {
			p.Append(xml.New(NSBlocking, "item").SetAttr("jid", j.String()))
		}
		iq := xml.New(xml.NSClient, "iq").SetAttr("type", "set").SetAttr("id", f.srv.NewID()).
			SetAttr("from", owner.String()).SetAttr("to", s.JID().String()).Append(p)
		if err := f.srv.RouteElement(ctx, iq); err != nil {
			f.log.Warn("pushing a block list change failed", "jid", s.JID().String(), "err", err)
		}
	}
}

// sendPresence tells the contacts matching changed that receive the
// user's presence (subscription from or both) that the user is offline
// (block) or what its resources' presence is (unblock).
func (f *feature) sendPresence(ctx context.Context, owner jid.JID, changed []jid.JID, unavailable bool) {
	if len(changed) == 0 {
		return
	}
	roster, _, err := f.st.Roster().Items(ctx, owner.String())
	if err != nil {
		f.log.Warn("reading the roster to update presence after a block failed", "jid", owner.String(), "err", err)
		return
	}
	e := newEntry(nil)
	for _, j := range changed {
		e.add(j.String())
	}
	sessions := f.srv.Sessions(owner)
	for _, it := range roster {
		if it.Subscription != store.SubFrom && it.Subscription != store.SubBoth {
			continue
		}
		contact, err := jid.Parse(it.JID)
		if err != nil || !e.matches(contact) {
			continue
		}
		for _, s := range sessions {
			p := s.Presence()
			if p == nil {
				continue
			}
			var el *xml.Element
			if unavailable {
				el = xml.New(xml.NSClient, "presence").SetAttr("type", "unavailable")
			} else {
				el = p.Copy()
			}
			el.SetAttr("from", s.JID().String())
			el.SetAttr("to", contact.String())
			if err := f.srv.RouteElement(ctx, el); err != nil {
				f.log.Warn("sending presence after a block change failed", "jid", s.JID().String(), "to", contact.String(), "err", err)
			}
		}
	}
}

// report files the XEP-0377 report attached to one blocked item, if any,
// or else the one attached to the whole block (as early versions of
// XEP-0377 and slixmpp put it), which then applies to every item.
func (f *feature) report(ctx context.Context, owner, offender jid.JID, item, block *xml.Element) {
	r := parseReport(item)
	if r == nil {
		r = parseReport(block)
	}
	if r == nil {
		return
	}
	r.Reporter, r.Offender = owner, offender
	filer, ok := f.reporter()
	if !ok {
		f.log.Warn("a report came with a block but no report queue is enabled; it was not kept", "jid", owner.String(), "offender", offender.String())
		return
	}
	if _, err := filer.FileReport(ctx, r); err != nil {
		f.log.Error("filing a report failed", "jid", owner.String(), "offender", offender.String(), "err", err)
	}
}

// parseReport reads a XEP-0377 report (urn:xmpp:reporting:1, or the
// older :0 with <spam/> or <abuse/> children) from a block item (or a
// block).
func parseReport(item *xml.Element) *server.AbuseReport {
	rep := item.Child(nsReport1, "report")
	old := false
	if rep == nil {
		if rep = item.Child(nsReport0, "report"); rep == nil {
			return nil
		}
		old = true
	}
	r := &server.AbuseReport{Source: "xep-0377", Reason: "other"}
	if old {
		switch {
		case rep.Child(nsReport0, "spam") != nil:
			r.Reason = "spam"
		case rep.Child(nsReport0, "abuse") != nil:
			r.Reason = "abuse"
		}
	} else {
		switch rep.Attr("reason") {
		case "urn:xmpp:reporting:spam":
			r.Reason = "spam"
		case "urn:xmpp:reporting:abuse":
			r.Reason = "abuse"
		}
	}
	for _, c := range rep.Elements() {
		switch {
		case c.Local == "text":
			if t := strings.TrimSpace(c.AllText()); t != "" {
				if r.Text != "" {
					r.Text += "\n"
				}
				r.Text += t
			}
		case c.Space == nsSID && c.Local == "stanza-id":
			if id := c.Attr("id"); id != "" {
				r.StanzaIDs = append(r.StanzaIDs, store.StanzaRef{By: c.Attr("by"), ID: id})
			}
		case c.Local == "report-origin":
			r.ForwardToOrigin = true
		case c.Local == "third-party":
			r.ThirdParty = true
		}
	}
	return r
}
