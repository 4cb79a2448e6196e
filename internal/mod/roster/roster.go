// Package roster implements the roster and presence subscriptions of
// RFC 6121: roster get and set (§2) with versioning (§2.6, formerly
// XEP-0237), subscription requests, approvals and cancellations (§3) with
// the state tables of Appendix A, and subscription pre-approval (§3.4).
//
// Presence broadcast, probes and directed presence live in the presence
// feature; the two share nothing but the store: pending inbound requests
// (store.Roster().PendingIn) are written here and re-sent by presence at
// each initial presence.
//
// Choices where RFC 6121 leaves room:
//   - Versions are the store's roster counter. A client whose 'ver' equals
//     it gets an empty result; any other 'ver' gets the whole roster (no
//     per-change history is kept, which §2.6.3 allows).
//   - Outbound subscribe and unsubscribe are routed in every state
//     (Appendix A.2.1, A.2.2), so a contact whose server lost state can
//     recover; the roster changes only where the tables say.
//   - In a roster set, subscription values other than "remove" and the
//     'ask' and 'approved' attributes are ignored (§2.1.2.2, §2.1.2.5).
//   - Adding one's own bare JID is refused with not-allowed: the
//     subscription state machine needs two parties.
//   - Inbound subscription stanzas for accounts that do not exist are
//     dropped silently (§8.5.1, option a); so are subscription stanzas a
//     user addresses to their own account.
//   - When an account is deleted its roster goes with it (the store does
//     this); contacts keep their items for it (nothing is sent to them).
package roster

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"unicode/utf8"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Namespaces.
const (
	nsRoster      = "jabber:iq:roster"
	nsRosterVer   = "urn:xmpp:features:rosterver"
	nsPreApproval = "urn:xmpp:features:pre-approval"
)

// maxText bounds the length in bytes of an item's name and of each group
// name (RFC 6121 §2.3.3: "a server-configured limit"); it matches the
// limit of a JID part.
const maxText = 1023

// Feature is the roster feature.
var Feature = server.Feature{
	Name: "roster",
	Doc:  "Contact lists and presence subscriptions (RFC 6121 §2, §3), with roster versioning and pre-approval.",
	XEPs: []server.XEP{
		{Name: "RFC 6121 (§2 roster, §3 subscriptions, Appendix A)", Status: server.Complete},
		{N: 237, Name: "Roster Versioning", Version: "1.3", Status: server.Complete,
			Note: "no per-change history: a stale version gets the whole roster"},
	},
	Defaults: Config{MaxItems: 1000},
	Setup:    setup,
}

// Config is the roster feature's configuration.
type Config struct {
	MaxItems int `toml:"max_items" help:"Most contacts one roster may hold; adding more is refused with not-allowed. 0 means no limit." min:"0"`
}

// feature is the running state of the roster feature.
type feature struct {
	srv *server.Server
	st  store.Store
	log *slog.Logger
	cfg Config

	// locks serialize the read-modify-write of one roster (and the pushes
	// that follow, so pushes leave in version order). Hashed by owner;
	// nothing that can re-enter this feature runs under a lock.
	seed  maphash.Seed
	locks [64]sync.Mutex
}

func setup(s *server.Setup, c any) error {
	cfg, ok := c.(Config)
	if !ok {
		return fmt.Errorf("roster: config has type %T, want roster.Config", c)
	}
	if cfg.MaxItems < 0 {
		return fmt.Errorf("roster: max_items must not be negative (got %d)", cfg.MaxItems)
	}
	f := &feature{srv: s.Server(), st: s.Store(), log: s.Logger(), cfg: cfg, seed: maphash.MakeSeed()}
	s.HandleIQ(server.ToAccount, "get", nsRoster, "query", f.get)
	s.HandleIQ(server.ToAccount, "set", nsRoster, "query", f.set)
	s.StreamFeature(func(*server.ConnInfo) *xml.Element { return xml.New(nsRosterVer, "ver") })
	s.StreamFeature(func(*server.ConnInfo) *xml.Element { return xml.New(nsPreApproval, "sub") })
	s.Hook(server.Inbound, server.PrioFeature, f.outbound)
	s.Hook(server.DeliverLocal, server.PrioFeature, f.inbound)
	return nil
}

// lock takes the lock of owner's roster and returns its unlock.
func (f *feature) lock(owner string) func() {
	m := &f.locks[maphash.String(f.seed, owner)%uint64(len(f.locks))]
	m.Lock()
	return m.Unlock
}

// own checks that a roster IQ comes from one of the account's own
// sessions (RFC 6121 §2.1.5, §2.3.3: forbidden otherwise).
func own(st *server.Stanza) error {
	if st.Origin == nil || st.From.Bare() != st.To.Bare() {
		return stanza.NewError(stanza.Forbidden, "Only the account's own sessions can read or change its roster.")
	}
	return nil
}

// get answers a roster get (RFC 6121 §2.1.3, §2.6).
func (f *feature) get(ctx context.Context, st *server.Stanza) (*xml.Element, error) {
	if err := own(st); err != nil {
		return nil, err
	}
	// §2.1.6: a session that requested the roster is "interested" and
	// receives roster pushes from now on.
	st.Origin.SetInterested()
	owner := st.To.Bare().String()
	items, ver, err := f.st.Roster().Items(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("roster: reading the roster of %s: %w", owner, err)
	}
	q := st.Payload()
	current := strconv.FormatInt(ver, 10)
	if q.HasAttr("ver") && q.Attr("ver") == current {
		// §2.6.3: unchanged since the client's cached version: an empty
		// result, changes (none) would come as pushes.
		return nil, nil
	}
	res := xml.New(nsRoster, "query")
	if q.HasAttr("ver") {
		res.SetAttr("ver", current)
	}
	for _, it := range items {
		res.Append(itemElement(it))
	}
	return res, nil
}

// set handles a roster set: add, update or remove one item (RFC 6121
// §2.3, §2.4, §2.5).
func (f *feature) set(ctx context.Context, st *server.Stanza) (*xml.Element, error) {
	if err := own(st); err != nil {
		return nil, err
	}
	owner := st.To.Bare()
	var item *xml.Element
	for _, c := range st.Payload().Elements() {
		if c.Space != nsRoster || c.Local != "item" {
			continue
		}
		if item != nil {
			return nil, stanza.NewError(stanza.BadRequest, "A roster set must contain exactly one item.")
		}
		item = c
	}
	if item == nil {
		return nil, stanza.NewError(stanza.BadRequest, "A roster set must contain exactly one item.")
	}
	if item.Attr("jid") == "" {
		return nil, stanza.NewError(stanza.BadRequest, "The roster item has no jid attribute.")
	}
	contact, err := jid.Parse(item.Attr("jid"))
	if err != nil {
		return nil, stanza.Errorf(stanza.JIDMalformed, "The roster item's address %q is not valid: %v", item.Attr("jid"), err)
	}
	if contact.Resource() != "" {
		return nil, stanza.Errorf(stanza.JIDMalformed, "Roster items are bare addresses; %q has a resource.", contact.String())
	}
	if item.Attr("subscription") == "remove" {
		return nil, f.remove(ctx, owner, contact)
	}
	if contact == owner {
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed, Text: "You cannot add your own address to your roster."}
	}
	name := item.Attr("name")
	if len(name) > maxText {
		return nil, stanza.Errorf(stanza.NotAcceptable, "The item's name is longer than %d bytes.", maxText)
	}
	var groups []string
	seen := make(map[string]bool)
	for _, g := range item.Elements() {
		if g.Space != nsRoster || g.Local != "group" {
			continue
		}
		text := g.AllText()
		switch {
		case text == "":
			return nil, stanza.NewError(stanza.NotAcceptable, "A roster group name must not be empty.")
		case len(text) > maxText:
			return nil, stanza.Errorf(stanza.NotAcceptable, "A roster group name is longer than %d bytes.", maxText)
		case !utf8.ValidString(text):
			return nil, stanza.NewError(stanza.BadRequest, "A roster group name is not valid UTF-8.")
		case seen[text]:
			return nil, stanza.Errorf(stanza.BadRequest, "The group %q is listed twice.", text)
		}
		seen[text] = true
		groups = append(groups, text)
	}
	return nil, f.update(ctx, owner, contact, name, groups)
}

// update adds or changes an item's name and groups (§2.3.2, §2.4.2); the
// subscription state is the server's to manage and stays as it is.
func (f *feature) update(ctx context.Context, owner, contact jid.JID, name string, groups []string) error {
	o := owner.String()
	unlock := f.lock(o)
	defer unlock()
	it, err := f.st.Roster().Get(ctx, o, contact.String())
	switch {
	case errors.Is(err, store.ErrNotFound):
		if f.cfg.MaxItems > 0 {
			items, _, err := f.st.Roster().Items(ctx, o)
			if err != nil {
				return fmt.Errorf("roster: counting the items of %s: %w", o, err)
			}
			if len(items) >= f.cfg.MaxItems {
				return &stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed,
					Text: fmt.Sprintf("Your roster is full (at most %d contacts); remove one first.", f.cfg.MaxItems)}
			}
		}
		it = store.RosterItem{JID: contact.String(), Subscription: store.SubNone}
	case err != nil:
		return fmt.Errorf("roster: reading item %s of %s: %w", contact, o, err)
	}
	it.Name, it.Groups = name, groups
	ver, err := f.st.Roster().Put(ctx, o, it)
	if err != nil {
		return fmt.Errorf("roster: storing item %s of %s: %w", contact, o, err)
	}
	f.push(ctx, owner, ver, itemElement(it))
	return nil
}

// remove deletes an item and cancels the subscriptions both ways (§2.5.2).
func (f *feature) remove(ctx context.Context, owner, contact jid.JID) error {
	o, c := owner.String(), contact.String()
	unlock := f.lock(o)
	it, err := f.st.Roster().Get(ctx, o, c)
	if errors.Is(err, store.ErrNotFound) {
		unlock()
		return stanza.NewError(stanza.ItemNotFound, "This contact is not in your roster.")
	}
	if err != nil {
		unlock()
		return fmt.Errorf("roster: reading item %s of %s: %w", c, o, err)
	}
	pendingIn, err := f.hasPendingIn(ctx, o, c)
	if err != nil {
		unlock()
		return err
	}
	ver, err := f.st.Roster().Delete(ctx, o, c)
	if err != nil {
		unlock()
		return fmt.Errorf("roster: removing item %s of %s: %w", c, o, err)
	}
	if pendingIn {
		if err := f.st.Roster().RemovePendingIn(ctx, o, c); err != nil {
			f.log.Warn("removing a pending subscription request failed", "jid", o, "contact", c, "err", err)
		}
	}
	removed := xml.New(nsRoster, "item").SetAttr("jid", c).SetAttr("subscription", "remove")
	f.push(ctx, owner, ver, removed)
	unlock()

	s := state{item: it, exists: true, pendingIn: pendingIn}
	if s.to() || it.Ask {
		// We stop receiving the contact's presence.
		f.send(ctx, owner, contact, "unsubscribe")
	}
	if s.from() || pendingIn {
		// The contact stops receiving ours, or is refused it.
		f.send(ctx, owner, contact, "unsubscribed")
		if s.from() {
			f.sendUnavailable(ctx, owner, contact)
		}
	}
	return nil
}

// push sends a roster push with item to every interested session of the
// account (RFC 6121 §2.1.6), with the new version (§2.6.1).
func (f *feature) push(ctx context.Context, owner jid.JID, ver int64, item *xml.Element) {
	for _, s := range f.srv.Sessions(owner) {
		if !s.Interested() {
			continue
		}
		id := f.srv.NewID()
		iq := xml.New(xml.NSClient, "iq").SetAttr("type", "set").SetAttr("id", id).
			SetAttr("from", owner.String()).SetAttr("to", s.JID().String())
		iq.Append(xml.New(nsRoster, "query").SetAttr("ver", strconv.FormatInt(ver, 10)).Append(item.Copy()))
		s.Deliver(ctx, &server.Stanza{El: iq, Kind: server.KindIQ, From: owner, To: s.JID(), Type: "set", ID: id})
	}
}

// itemElement renders a roster item (RFC 6121 §2.1.2).
func itemElement(it store.RosterItem) *xml.Element {
	el := xml.New(nsRoster, "item").SetAttr("jid", it.JID)
	if it.Name != "" {
		el.SetAttr("name", it.Name)
	}
	sub := it.Subscription
	if sub == "" {
		sub = store.SubNone
	}
	el.SetAttr("subscription", string(sub))
	if it.Ask {
		el.SetAttr("ask", "subscribe")
	}
	if it.Approved {
		el.SetAttr("approved", "true")
	}
	for _, g := range it.Groups {
		el.AppendText(nsRoster, "group", g)
	}
	return el
}
