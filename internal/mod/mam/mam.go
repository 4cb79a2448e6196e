// Package mam keeps every account's message archive and lets its clients
// page through it: XEP-0313 Message Archive Management (urn:xmpp:mam:2 and
// urn:xmpp:mam:2#extended, version 1.1.3) with XEP-0059 result set paging,
// a XEP-0359 stanza-id on every archived message, and XEP-0441 archiving
// preferences.
//
// What is archived (XEP-0313 §7.1.1): messages of type chat or normal that
// a local account sends or receives and that carry a <body/> (or an
// end-to-end encrypted payload, or a XEP-0334 <store/> hint), once in the
// sender's archive (when it is local) and once in the recipient's (when
// it is local). Errors, headlines and groupchat messages are not, nor
// messages with a <no-store/> or <no-permanent-store/> hint. Chat state
// notifications are stripped from the stored copy. Whether a conversation
// is archived follows the account's preferences, else the server's
// default_policy: always, roster (only contacts in the account's roster,
// and notes to oneself) or never.
//
// Writes leave the delivery path: a hook gives each message its archive
// ID at once (so the stanza-id is on the delivered message) and queues it
// for a writer goroutine that stores queued messages in one transaction
// per batch. When the queue is full (the database is slower than the
// traffic, or failing), the sending session waits for room — backpressure
// on the one who sends, not a drop — and after write_wait the message is
// refused with a wait-type error, so no message the server accepted is
// ever missing from the archive because of load. Queued messages are
// written before shutdown completes.
//
// Retention: messages are stored in one table per UTC day, and a
// background loop drops each day's table once all of its messages are
// older than expire_after (so a message goes at most a day late): expiry
// costs one DROP TABLE a day whatever the traffic, keeps up with any
// ingest rate and never holds the database for long. A host with a
// shorter retention than others has its expired rows deleted purge_batch
// at a time. When an account is deleted
// its archive disappears at once (same transaction) and its rows are
// removed by the same background loop. When an archive exceeds quota its
// oldest messages are dropped (XEP-0313 §3.2: no holes).
package mam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Namespaces.
const (
	NS          = "urn:xmpp:mam:2"
	NSExtended  = "urn:xmpp:mam:2#extended"
	nsSID       = "urn:xmpp:sid:0"
	nsRSM       = "http://jabber.org/protocol/rsm"
	nsForward   = "urn:xmpp:forward:0"
	nsDelay     = "urn:xmpp:delay"
	nsHints     = "urn:xmpp:hints"
	nsChatState = "http://jabber.org/protocol/chatstates"
)

// Feature is the message archive.
var Feature = server.Feature{
	Name: "mam",
	Doc:  "Keeps each user's message history on the server for the retention the operator publishes, and lets their clients search and sync it.",
	XEPs: []server.XEP{
		{N: 313, Name: "Message Archive Management", Version: "1.1.3", Status: server.Complete},
		{N: 59, Name: "Result Set Management", Version: "1.0", Status: server.Partial, Note: "in archive queries; paging by <index/> is refused"},
		{N: 359, Name: "Unique and Stable Stanza IDs", Version: "0.7.0", Status: server.Complete},
		{N: 441, Name: "Message Archive Management Preferences", Version: "0.2.0", Status: server.Complete},
		{N: 334, Name: "Message Processing Hints", Version: "1.0.0", Status: server.Partial, Note: "store, no-store and no-permanent-store for the archive"},
	},
	Defaults: Config{
		DefaultPolicy: store.PolicyRoster,
		ExpireAfter:   config.Duration(365 * 24 * time.Hour),
		Quota:         100000,
		PurgeInterval: config.Duration(time.Minute),
		PurgeBatch:    1000,
		PageSize:      50,
		MaxPage:       250,
		WriteQueue:    20000,
		WriteWait:     config.Duration(5 * time.Second),
	},
	Setup: setup,
}

// Config is the [mam] table.
type Config struct {
	DefaultPolicy string          `toml:"default_policy" enum:"always,roster,never" help:"Which conversations are archived for accounts that did not choose (clients choose with XEP-0441): always, roster (only with contacts in the account's roster, and notes to oneself; strangers' messages are not kept) or never."`
	ExpireAfter   config.Duration `toml:"expire_after" min:"0s" help:"Archived messages older than this are deleted (publish it as your retention): a day's messages go together once the newest of them is this old, so at most one day late. 0 keeps them forever. Per-host values in [[mam.hosts]] override it."`
	Hosts         []HostConfig    `toml:"hosts" help:"Retention for individual hosts, overriding expire_after."`
	Quota         int             `toml:"quota" min:"0" help:"Most messages one archive holds; past it the oldest are deleted to make room (never the newest: clients sync from the end). 0 means no limit."`
	PurgeInterval config.Duration `toml:"purge_interval" min:"1s" help:"How often expired messages and the archives of deleted accounts are removed. Each run continues until nothing expired is left."`
	PurgeBatch    int             `toml:"purge_batch" min:"10" max:"100000" help:"Rows one purge transaction deletes; smaller batches hold the database for less time. Whole expired days are dropped at once whatever this is."`
	PageSize      int             `toml:"page_size" min:"1" max:"1000" help:"Messages in one page of query results when the client does not say."`
	MaxPage       int             `toml:"max_page" min:"1" max:"1000" help:"Most messages in one page of query results, whatever the client asks; pages also stop at about 256 KiB so they fit the client's write queue."`
	WriteQueue    int             `toml:"write_queue" min:"100" help:"Messages waiting to be written to the archive. When it is full, senders wait (backpressure) instead of messages being dropped."`
	WriteWait     config.Duration `toml:"write_wait" min:"100ms" help:"How long a sender waits for room in a full write queue before its message is refused with a wait-type error (resource-constraint)."`
}

// HostConfig is one [[mam.hosts]] entry.
type HostConfig struct {
	Host        string          `toml:"host" help:"A host from server.hosts."`
	ExpireAfter config.Duration `toml:"expire_after" min:"0s" help:"Retention of this host's archives; 0 keeps them forever."`
}

// Validate checks the per-host entries.
func (c Config) Validate() error {
	seen := map[string]bool{}
	var errs []error
	for i, h := range c.Hosts {
		j, err := jid.Parse(h.Host)
		if err != nil || !j.IsDomain() {
			errs = append(errs, &config.FieldError{Key: fmt.Sprintf("hosts[%d].host", i), Msg: fmt.Sprintf("%q is not a domain name", h.Host)})
			continue
		}
		if seen[j.Domain()] {
			errs = append(errs, &config.FieldError{Key: fmt.Sprintf("hosts[%d].host", i), Msg: fmt.Sprintf("%q is listed twice", h.Host)})
		}
		seen[j.Domain()] = true
	}
	if c.PageSize > c.MaxPage {
		errs = append(errs, &config.FieldError{Key: "page_size", Msg: fmt.Sprintf("%d is more than max_page (%d)", c.PageSize, c.MaxPage)})
	}
	return errors.Join(errs...)
}

type feature struct {
	srv     *server.Server
	st      store.Store
	arc     store.Archive
	log     *slog.Logger
	cfg     Config
	expire  map[string]time.Duration // host -> retention (0: forever)
	metrics *metrics
	w       *writer
	prefs   *prefsCache
	now     func() time.Time
	kick    chan struct{} // wakes the purge loop
}

func setup(s *server.Setup, cfg any) error {
	_, err := newFeature(s, cfg, time.Now)
	return err
}

// newFeature sets the feature up with a clock (tests give their own).
func newFeature(s *server.Setup, cfg any, now func() time.Time) (*feature, error) {
	c, ok := cfg.(Config)
	if !ok {
		return nil, fmt.Errorf("mam: config is %T, want mam.Config", cfg)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("mam: %w", err)
	}
	srv := s.Server()
	f := &feature{
		srv: srv, st: s.Store(), log: s.Logger(), cfg: c,
		expire: map[string]time.Duration{}, now: now,
		prefs: newPrefsCache(s.Store(), 10000), kick: make(chan struct{}, 1),
	}
	if f.st != nil {
		f.arc = f.st.Archive()
	}
	for _, h := range srv.Hosts() {
		f.expire[h] = time.Duration(c.ExpireAfter)
	}
	for _, h := range c.Hosts {
		j, _ := jid.Parse(h.Host)
		if srv.Host(j.Domain()) == nil {
			return nil, fmt.Errorf("mam: hosts: %s is not in server.hosts %v", h.Host, srv.Hosts())
		}
		f.expire[j.Domain()] = time.Duration(h.ExpireAfter)
	}
	m, err := newMetrics(s.Metrics(), f)
	if err != nil {
		return nil, err
	}
	f.metrics = m
	f.w = newWriter(f.arc, c.Quota, c.WriteQueue, time.Duration(c.WriteWait), f.log, m)

	s.Disco().AccountFeature(NS, NSExtended, nsSID)
	// Archiving. Both hooks run after the policies (which may refuse the
	// message: refused messages are not archived) and before the other
	// features, so that carbons copies and offline storage carry the
	// stanza-id (XEP-0313 §3.4 asks for it in carbons).
	s.Hook(server.Inbound, server.PrioFeature+50, f.outgoing)
	s.Hook(server.DeliverLocal, server.PrioFeature+50, f.incoming)
	// The sender's stanza-id was only for copies to the sender's own
	// resources: off the message before it is routed to its recipient.
	s.Hook(server.Inbound, server.PrioFallback-100, f.stripOutgoingID)

	s.HandleIQ(server.ToAccount, "set", NS, "query", f.query)
	s.HandleIQ(server.ToAccount, "get", NS, "query", f.queryForm)
	s.HandleIQ(server.ToAccount, "get", NS, "metadata", f.metadata)
	s.HandleIQ(server.ToAccount, "get", NS, "prefs", f.getPrefs)
	s.HandleIQ(server.ToAccount, "set", NS, "prefs", f.setPrefs)
	s.AdminCommand(server.AdminCommand{
		Name: "mam.purge", Args: []string{"before", "older_than", "user"}, Optional: []string{"before", "older_than", "user"},
		Help: "Delete archived messages older than a date or a duration, of every account or of one (--user alone: the whole archive).",
		Run:  f.adminPurge,
	})

	// Before an account goes, write what is queued for it, so the
	// deletion takes it along; after, forget its preferences and clear
	// its rows at once.
	server.On(s, server.UserDeleting, server.PrioObserve, func(ctx context.Context, ev server.AccountEvent) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := f.w.sync(ctx); err != nil {
			f.log.Warn("archive writes still pending while deleting an account", "jid", ev.JID, "err", err)
		}
		return nil
	})
	server.On(s, server.UserDeleted, server.PrioObserve, func(_ context.Context, ev server.AccountEvent) error {
		f.prefs.forget(ev.JID)
		f.wakePurge()
		return nil
	})
	s.OnStart(func(ctx context.Context) func() {
		wdone := f.w.start(ctx)
		pdone := make(chan struct{})
		go func() {
			defer close(pdone)
			f.purgeLoop(ctx)
		}()
		return func() { <-pdone; <-wdone }
	})
	return f, nil
}

// isOurs reports whether by names an account or host of this server, for
// which only this server may set stanza-ids.
func (f *feature) isOurs(by string) bool {
	j, err := jid.Parse(by)
	return err == nil && j.Resource() == "" && f.srv.Host(j.Domain()) != nil
}

// stripIDs removes stanza-ids whose by matches drop.
func stripIDs(el *xml.Element, drop func(by string) bool) {
	el.RemoveChildren(func(c *xml.Element) bool {
		return c.Space == nsSID && c.Local == "stanza-id" && drop(c.Attr("by"))
	})
}

func addID(el *xml.Element, by, id string) {
	el.Append(xml.New(nsSID, "stanza-id").SetAttr("by", by).SetAttr("id", id))
}

// archivable reports whether a message belongs in an archive (XEP-0313
// §7.1.1, XEP-0334).
func archivable(st *server.Stanza) bool {
	if st.Kind != server.KindMessage {
		return false
	}
	switch st.Type {
	case "", "normal", "chat":
	default:
		return false // error, headline, groupchat
	}
	el := st.El
	if el.Child(nsHints, "no-store") != nil || el.Child(nsHints, "no-permanent-store") != nil {
		return false
	}
	if el.Child(nsHints, "store") != nil {
		return true
	}
	for _, c := range el.Elements() {
		switch {
		case c.Space == xml.NSClient && c.Local == "body":
			return true
		case c.Local == "encrypted" && (c.Space == "eu.siacs.conversations.axolotl" || c.Space == "urn:xmpp:omemo:2"),
			c.Local == "openpgp" && c.Space == "urn:xmpp:openpgp:0":
			return true
		}
	}
	return false
}

// storedCopy is what goes into the archive: the message without chat
// states (they describe a moment, not the conversation).
func storedCopy(el *xml.Element) []byte {
	c := el.Copy()
	c.RemoveChildren(func(x *xml.Element) bool { return x.Space == nsChatState })
	return c.AppendTo(nil, xml.NSClient)
}

// outgoing archives a message a local client sends in the sender's
// archive.
func (f *feature) outgoing(ctx context.Context, st *server.Stanza) server.Result {
	if st.Kind != server.KindMessage || st.Origin == nil {
		return server.Next
	}
	// XEP-0359 §4: only this server says what is archived where.
	stripIDs(st.El, f.isOurs)
	if !archivable(st) || st.To.IsZero() {
		return server.Next
	}
	owner := st.From.Bare()
	if !f.wants(ctx, owner, st.To) {
		return server.Next
	}
	id, err := f.archive(ctx, owner, st.To, st.El)
	if err != nil {
		return f.refuse(st, owner, err)
	}
	f.metrics.archived.WithLabelValues("out").Inc()
	addID(st.El, owner.String(), id)
	return server.Next
}

// stripOutgoingID removes the sender's stanza-id before routing, except
// on a message to oneself (the recipient may read that archive).
func (f *feature) stripOutgoingID(_ context.Context, st *server.Stanza) server.Result {
	if st.Kind != server.KindMessage || st.Origin == nil {
		return server.Next
	}
	owner := st.From.Bare()
	if st.To.Bare() != owner {
		stripIDs(st.El, func(by string) bool { return by == owner.String() })
	}
	return server.Next
}

// incoming archives a message to a local account in the recipient's
// archive.
func (f *feature) incoming(ctx context.Context, st *server.Stanza) server.Result {
	if st.Kind != server.KindMessage || st.To.Local() == "" {
		return server.Next
	}
	owner := st.To.Bare()
	if st.Origin == nil {
		// From another server or the server itself: stanza-ids claiming
		// the recipient's archive are forged (XEP-0359 §4).
		stripIDs(st.El, func(by string) bool { return by == owner.String() })
	}
	if !archivable(st) {
		return server.Next
	}
	if st.Origin != nil && st.From.Bare() == owner {
		return server.Next // a note to oneself: archived once, on the way out
	}
	if f.srv.SessionCount(owner) == 0 {
		// Offline: make sure the account exists before archiving (the
		// core bounces messages to unknown accounts).
		if _, err := f.st.Accounts().Get(ctx, owner.String()); errors.Is(err, store.ErrNotFound) {
			return server.Next
		}
	}
	if !f.wants(ctx, owner, st.From) {
		return server.Next
	}
	id, err := f.archive(ctx, owner, st.From, st.El)
	if err != nil {
		return f.refuse(st, owner, err)
	}
	f.metrics.archived.WithLabelValues("in").Inc()
	addID(st.El, owner.String(), id)
	return server.Next
}

// archive queues a message for owner's archive and returns its ID.
func (f *feature) archive(ctx context.Context, owner, with jid.JID, el *xml.Element) (string, error) {
	id, _ := f.arc.NewID(f.now())
	err := f.w.add(ctx, store.ArchiveMessage{ID: id, Owner: owner.String(), With: with.String(), Stanza: storedCopy(el)})
	return id, err
}

// refuse answers a message the archive could not take.
func (f *feature) refuse(st *server.Stanza, owner jid.JID, err error) server.Result {
	f.log.Warn("archive write queue full; message refused", "jid", owner.String(), "from", st.From.String(), "err", err)
	return server.Deny("mam_write_queue_full", stanza.NewError(stanza.ResourceConstraint,
		"The server cannot archive messages fast enough right now, so this message was not delivered; send it again in a moment."))
}

// wants reports whether a conversation between owner and peer is
// archived (XEP-0441 §2.1.1 and §2.3).
func (f *feature) wants(ctx context.Context, owner, peer jid.JID) bool {
	p := f.prefs.get(ctx, owner.String(), f.log)
	if listed(p.Never, peer) {
		return false
	}
	if listed(p.Always, peer) {
		return true
	}
	policy := p.Default
	if policy == "" {
		policy = f.cfg.DefaultPolicy
	}
	switch policy {
	case store.PolicyAlways:
		return true
	case store.PolicyNever:
		return false
	}
	if peer.Bare() == owner {
		return true
	}
	_, err := f.st.Roster().Get(ctx, owner.String(), peer.Bare().String())
	switch {
	case err == nil:
		return true
	case errors.Is(err, store.ErrNotFound):
		return false
	default:
		// History matters more than the filter: keep it.
		f.log.Warn("roster lookup for archiving failed; archiving the message", "jid", owner.String(), "err", err)
		return true
	}
}

// listed matches peer against a preference list (XEP-0441 §2.3.1): a
// listed bare JID matches every resource, a full one only itself.
func listed(list []string, peer jid.JID) bool {
	for _, s := range list {
		j, err := jid.Parse(s)
		if err != nil {
			continue
		}
		if j.Resource() == "" {
			if j == peer.Bare() {
				return true
			}
		} else if j == peer {
			return true
		}
	}
	return false
}

// wakePurge makes the purge loop run now.
func (f *feature) wakePurge() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}
