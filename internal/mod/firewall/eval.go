package firewall

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/xml"
)

// eval is the state of one stanza's run through a chain. Facts that cost
// a lookup (the sender's account, the recipient's roster) are fetched the
// first time a condition needs them, and at most once per stanza.
type eval struct {
	ctx   context.Context
	f     *feature
	st    *server.Stanza
	chain chain
	ip    netip.Addr

	have      uint8 // bit set of loaded facts
	created   time.Time
	createdOK bool
	state     string
	sub       string
	subOK     bool
	bodyText  string
	folded    string
}

const (
	haveCreated uint8 = 1 << iota
	haveState
	haveRoster
	haveBody
	haveFolded
)

var evalPool = sync.Pool{New: func() any { return new(eval) }}

// stanzaType is the stanza's type with the defaults spelled out: a
// message without type is "normal", a presence without type "available".
func (e *eval) stanzaType() string {
	if e.st.Type != "" {
		return e.st.Type
	}
	switch e.st.Kind {
	case server.KindMessage:
		return "normal"
	case server.KindPresence:
		return "available"
	}
	return ""
}

// body returns the message body text.
func (e *eval) body() string {
	if e.have&haveBody == 0 {
		e.have |= haveBody
		if e.st.Kind == server.KindMessage {
			for _, c := range e.st.El.Children {
				if c.Local == "body" && (c.Space == xml.NSClient || c.Space == xml.NSServer) {
					e.bodyText = c.AllText()
					break
				}
			}
		}
	}
	return e.bodyText
}

// foldedBody returns the body folded for the literal prefilter of body
// conditions (see bodyRegexp).
func (e *eval) foldedBody() string {
	if e.have&haveFolded == 0 {
		e.have |= haveFolded
		e.folded = fold(e.body())
	}
	return e.folded
}

// createdKey caches an account's creation time on its sessions.
var createdKey = server.NewKey[time.Time]("firewall.created")

// senderCreated returns when the sender's account was created; false
// when the sender is not a local account.
func (e *eval) senderCreated() (time.Time, bool) {
	if e.have&haveCreated != 0 {
		return e.created, e.createdOK
	}
	e.have |= haveCreated
	from := e.st.From
	if from.Local() == "" || e.f.srv.Host(from.Domain()) == nil {
		return time.Time{}, false
	}
	if o := e.st.Origin; o != nil && o.JID().Bare().Equal(from.Bare()) {
		if t, ok := server.Value(o, createdKey); ok {
			e.created, e.createdOK = t, true
			return t, true
		}
	}
	acct, err := e.f.st.Accounts().Get(e.ctx, from.Bare().String())
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			e.f.log.Warn("firewall: reading the sender's account failed; its age conditions do not match", "jid", from.Bare().String(), "err", err)
		}
		return time.Time{}, false
	}
	e.created, e.createdOK = acct.Created, true
	if o := e.st.Origin; o != nil && o.JID().Bare().Equal(from.Bare()) {
		server.SetValue(o, createdKey, acct.Created)
	}
	return e.created, true
}

// senderState returns the sender's account state ("" when unknown or
// not a local account).
func (e *eval) senderState() string {
	if e.have&haveState != 0 {
		return e.state
	}
	e.have |= haveState
	from := e.st.From
	if from.Local() == "" || e.f.srv.Host(from.Domain()) == nil {
		return ""
	}
	sa := e.f.deps().Sanctions
	if sa == nil {
		return ""
	}
	s, err := sa.State(e.ctx, from.Bare())
	if err != nil {
		e.f.log.Warn("firewall: reading the sender's account state failed", "jid", from.Bare().String(), "err", err)
		return ""
	}
	e.state = s
	return s
}

// rosterSub returns the subscription of the sender in the recipient's
// roster; false when the recipient is not a local account or does not
// have the sender in its roster.
func (e *eval) rosterSub() (string, bool) {
	if e.have&haveRoster != 0 {
		return e.sub, e.subOK
	}
	e.have |= haveRoster
	to, from := e.st.To, e.st.From
	if to.Local() == "" || from.IsZero() || e.f.srv.Host(to.Domain()) == nil {
		return "", false
	}
	it, err := e.f.st.Roster().Get(e.ctx, to.Bare().String(), from.Bare().String())
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			e.f.log.Warn("firewall: reading the recipient's roster failed; in-roster does not match", "jid", to.Bare().String(), "err", err)
		}
		return "", false
	}
	e.sub, e.subOK = string(it.Subscription), true
	return e.sub, true
}
