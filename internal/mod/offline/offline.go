// Package offline stores messages for accounts that have no available
// resource and delivers them when the account comes online again
// (XEP-0160 version 1.0.1), marking each with a XEP-0203 (version 2.0)
// delay that says when and by whom it was stored.
//
// Storage follows XEP-0160 §3 and §4: messages of type normal (or with no
// type) and chat are stored; groupchat, headline and error never reach
// this feature (the core handles them, RFC 6121 §8.5.2). A message that
// carries nothing worth keeping (only XEP-0085 chat states, or a XEP-0334
// <no-store/> hint) is dropped silently. When the account's storage is
// full the sender gets service-unavailable with a text saying so; for an
// account that does not exist the core answers service-unavailable, as
// without this feature (RFC 6121 §8.5.1).
//
// Stored messages go to the first resource that sends available presence
// with a non-negative priority (XEP-0160 §3), and are removed once handed
// to it: delivery is at least once. Flexible offline message retrieval
// (XEP-0013) is not supported.
package offline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Namespaces.
const (
	nsOffline    = "msgoffline" // XEP-0160 §5 disco feature
	nsDelay      = "urn:xmpp:delay"
	nsChatStates = "http://jabber.org/protocol/chatstates"
	nsHints      = "urn:xmpp:hints"
	nsSID        = "urn:xmpp:sid:0"
)

// Feature is the offline messages feature.
var Feature = server.Feature{
	Name: "offline",
	Doc:  "Keeps messages sent to users who are offline and delivers them when they come back online.",
	XEPs: []server.XEP{
		{N: 160, Name: "Best Practices for Handling Offline Messages", Version: "1.0.1", Status: server.Complete},
		{N: 203, Name: "Delayed Delivery", Version: "2.0", Status: server.Complete},
	},
	Defaults: Config{Quota: 1000},
	Setup:    setup,
}

// Config is the [offline] table.
type Config struct {
	Quota int `toml:"quota" min:"0" help:"Most messages kept for one account; when it is full, senders get an error saying so. 0 means no limit."`
}

type feature struct {
	srv     *server.Server
	st      store.Store
	log     *slog.Logger
	quota   int
	metrics *metrics
	now     func() time.Time

	// pending marks a session whose next own presence echo should bring
	// its stored messages (see beforePresence).
	pending *server.Key[bool]

	// locks serialize delivery per account, so that two resources coming
	// online together do not both receive the same messages.
	seed  maphash.Seed
	locks [32]sync.Mutex
}

func setup(s *server.Setup, cfg any) error {
	c, ok := cfg.(Config)
	if !ok {
		return fmt.Errorf("offline: config is %T, want offline.Config", cfg)
	}
	if c.Quota < 0 {
		return fmt.Errorf("offline: quota is %d; use 0 for no limit or a positive number", c.Quota)
	}
	m, err := newMetrics(s.Metrics())
	if err != nil {
		return err
	}
	f := &feature{
		srv: s.Server(), st: s.Store(), log: s.Logger(), quota: c.Quota, metrics: m, now: time.Now,
		pending: server.NewKey[bool]("offline.pending"), seed: maphash.MakeSeed(),
	}
	s.Disco().ServerFeature(nsOffline)
	s.Hook(server.Undeliverable, server.PrioFallback, f.keep)

	// When to deliver. XEP-0160 §3 delivers when the user "next sends
	// non-negative available presence", and the presence feature owns
	// presence: it marks the session available and returns Done, so no
	// Inbound hook runs after it. Two hooks bracket it instead:
	//   - beforePresence (Inbound, above PrioFeature, so before presence)
	//     notes that a presence broadcast arrives from a session that was
	//     not yet eligible (unavailable, or negative priority);
	//   - ownPresence (Outbound) sees the presence feature echo the
	//     broadcast back to the same session (RFC 6121 §4.2.2 requires
	//     the echo), by which time the session is marked available with
	//     its new priority; if it is now eligible, the stored messages go
	//     to it. Delivering then, not before, means a message arriving
	//     meanwhile is routed to the session live instead of being stored
	//     and left behind. ownPresence runs first in Outbound so that
	//     filters that hold or drop presence (CSI) cannot hide the echo.
	// The messages reach the client just before its presence echo.
	s.Hook(server.Inbound, server.PrioFeature+10, f.beforePresence)
	s.Hook(server.Outbound, server.PrioPolicy+100, f.ownPresence)
	return nil
}

// keep is the Undeliverable hook: it stores a message for later.
func (f *feature) keep(ctx context.Context, st *server.Stanza) server.Result {
	if st.Kind != server.KindMessage {
		return server.Next
	}
	switch st.Type {
	case "", "normal", "chat":
	default:
		return server.Next
	}
	if !worthStoring(st.El) {
		return server.Done // XEP-0160 §4, XEP-0334 §4: drop silently
	}
	owner := st.To.Bare().String()
	now := f.now().UTC()
	el := st.El.Copy()
	addDelay(el, st.To.Domain(), now)
	err := f.st.Offline().Push(ctx, owner, el.AppendTo(nil, xml.NSClient), now, f.quota)
	switch {
	case err == nil:
		f.metrics.stored.Inc()
		return server.Done
	case errors.Is(err, store.ErrNotFound):
		// No such account: the core bounces it with service-unavailable.
		return server.Next
	case errors.Is(err, store.ErrQuotaExceeded):
		// XEP-0160 §3: service-unavailable when the queue is full.
		return server.Deny("offline_quota", stanza.Errorf(stanza.ServiceUnavailable,
			"%s's offline message storage is full; the message was not stored.", owner))
	default:
		f.log.Error("storing an offline message failed", "jid", owner, "from", st.From.String(), "err", err)
		return server.Deny("offline_store_failed", stanza.NewError(stanza.ServiceUnavailable, ""))
	}
}

// worthStoring reports whether a message carries something for a person:
// not only chat states (XEP-0160 §4) and not marked <no-store/> (XEP-0334
// §4); a <store/> hint keeps any message.
func worthStoring(el *xml.Element) bool {
	if el.Child(nsHints, "store") != nil {
		return true
	}
	if el.Child(nsHints, "no-store") != nil {
		return false
	}
	for _, c := range el.Elements() {
		switch {
		case c.Space == nsChatStates, c.Space == nsHints, c.Space == nsSID,
			c.Space == xml.NSClient && c.Local == "thread":
			// Alone, these say nothing worth keeping.
		default:
			return true
		}
	}
	return false
}

// addDelay adds the XEP-0203 §3 delay, unless the message already carries
// one from this server (it was stored before and comes back, e.g. from a
// session that ended before writing it): the first stamp is the true one.
func addDelay(el *xml.Element, host string, now time.Time) {
	for _, c := range el.Elements() {
		if c.Space == nsDelay && c.Local == "delay" && c.Attr("from") == host {
			return
		}
	}
	d := xml.New(nsDelay, "delay").SetAttr("from", host).SetAttr("stamp", now.Format("2006-01-02T15:04:05.000Z"))
	d.Text = "Offline Storage"
	el.Append(d)
}

// beforePresence runs before the presence feature: see setup.
func (f *feature) beforePresence(_ context.Context, st *server.Stanza) server.Result {
	if st.Kind != server.KindPresence || st.Origin == nil || !st.To.IsZero() || st.Type != "" {
		return server.Next
	}
	if s := st.Origin; !s.Available() || s.Priority() < 0 {
		server.SetValue(s, f.pending, true)
	}
	return server.Next
}

// ownPresence runs when a session is about to receive its own available
// presence back: see setup.
func (f *feature) ownPresence(ctx context.Context, st *server.Stanza) server.Result {
	if st.Kind != server.KindPresence || st.Type != "" || st.From.Resource() == "" || st.From != st.To {
		return server.Next
	}
	sess := f.srv.Session(st.To)
	if sess == nil {
		return server.Next
	}
	if p, _ := server.Value(sess, f.pending); !p || !sess.Available() || sess.Priority() < 0 {
		return server.Next
	}
	server.SetValue(sess, f.pending, false)
	f.deliver(ctx, sess)
	return server.Next
}

// deliver hands the account's stored messages to sess, oldest first, and
// removes those it took.
func (f *feature) deliver(ctx context.Context, sess *server.Session) {
	owner := sess.JID().Bare().String()
	mu := &f.locks[maphash.String(f.seed, owner)%uint64(len(f.locks))]
	mu.Lock()
	defer mu.Unlock()
	msgs, err := f.st.Offline().List(ctx, owner)
	if err != nil {
		f.log.Error("reading offline messages failed; they stay stored", "jid", owner, "err", err)
		return
	}
	var done []int64
	for _, m := range msgs {
		el, err := parse(m.Stanza)
		var st *server.Stanza
		if err == nil {
			st, err = server.NewStanza(el)
		}
		if err != nil || st.Kind != server.KindMessage {
			// Kept, it would block every later delivery.
			f.log.Warn("dropping an unreadable offline message", "jid", owner, "id", m.ID, "err", err)
			done = append(done, m.ID)
			continue
		}
		if !sess.Deliver(ctx, st) {
			break // the session is going away; the rest waits for the next one
		}
		f.metrics.delivered.Inc()
		done = append(done, m.ID)
	}
	if len(done) == 0 {
		return
	}
	if err := f.st.Offline().Delete(ctx, owner, done); err != nil {
		f.log.Error("removing delivered offline messages failed; they will be delivered again", "jid", owner, "err", err)
	}
}

// streamHeader wraps a stored stanza so the stream decoder can read it.
const streamHeader = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"

// parse reads one stored stanza.
func parse(b []byte) (*xml.Element, error) {
	d := xml.NewDecoder(io.MultiReader(strings.NewReader(streamHeader), bytes.NewReader(b)), xml.DefaultLimits())
	if _, err := d.Header(); err != nil {
		return nil, fmt.Errorf("offline: reading a stored message: %w", err)
	}
	el, err := d.Next()
	if err != nil {
		return nil, fmt.Errorf("offline: reading a stored message: %w", err)
	}
	return el, nil
}
