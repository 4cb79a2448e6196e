package invite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Registration.Values keys this feature sets.
const (
	// ValueInvite is set to the invitation's kind ("account" or
	// "contact") once the token was checked and its use counted: other
	// policies may rely on it (an invite-only mode, throttle exemptions).
	ValueInvite = "invite"
	valueToken  = "invite.token" // the token whose use this registration counted
)

// RegisteringPriority is the priority of the UserRegistering hook: before
// the registration policies, so that an invite-only policy sees the
// checked invitation (Registration.Values[ValueInvite]).
const RegisteringPriority = server.PrioPolicy + 100

func (f *feature) setupRegistration(s *server.Setup) {
	server.On(s, server.UserRegistering, RegisteringPriority, f.registering)
	server.On(s, server.UserRegistered, server.PrioFeature, f.registered)
	server.On(s, server.RegistrationFailed, server.PrioFeature, f.failed)
	// XEP-0445: offered on every encrypted stream before
	// authentication; the register feature decides whether registration
	// itself is open (invitations work in its invite, approval and open
	// modes).
	s.PreAuthFeature(func(c *server.ConnInfo) *xml.Element {
		if !c.TLS {
			return nil // tokens are secrets: not before TLS
		}
		return xml.New(nsIBRToken, "register")
	})
	s.PreAuthIQ(nsPARS, f.preauth)
}

// errInvalid is what an unusable token gets, whatever the cause: saying
// which (unknown, expired, used) would help guessing nothing, but the
// person needs to know what to do.
func errInvalid() *server.Refusal {
	return server.Refuse("invite_invalid", "This invitation cannot be used: it is unknown, has expired or was already used. Ask the person who invited you for a new one.")
}

// preauth answers XEP-0445's <preauth token='...'/> before registration:
// a token that allows registration is remembered on the connection, for
// the XEP-0077 registration that follows.
func (f *feature) preauth(ctx context.Context, c *server.ConnInfo, iq *xml.Element) (*xml.Element, error) {
	if iq.Attr("type") != "set" {
		return nil, stanza.NewError(stanza.BadRequest, "Send the invitation token with an IQ of type set.")
	}
	if !c.TLS {
		return nil, stanza.NewError(stanza.PolicyViolation, "Encryption is required: start TLS before sending an invitation token.")
	}
	p := iq.Child(nsPARS, "preauth")
	if p == nil {
		return nil, stanza.NewError(stanza.BadRequest, "Expected <preauth xmlns='urn:xmpp:pars:0' token='...'/>.")
	}
	now := f.now()
	inv, err := f.lookup(ctx, p.Attr("token"))
	if err != nil {
		return nil, err
	}
	if inv == nil || !inv.Valid(now) || !AllowsRegistration(*inv) || (c.Host != "" && inv.Host != c.Host) {
		f.srv.CountDenied("invite_invalid")
		f.log.Info("invitation token refused", "policy", "invite_invalid", "ip", c.Remote.Addr().String(), "token", Short(p.Attr("token")))
		// The text XEP-0445 §4 shows.
		return nil, stanza.NewError(stanza.ItemNotFound, "The provided token is invalid or expired")
	}
	c.Invite, c.InviteAt = inv.Token, now
	return nil, nil
}

// lookup returns the invitation of token, or nil when there is none.
func (f *feature) lookup(ctx context.Context, token string) (*store.Invite, error) {
	if !ValidToken(token) {
		return nil, nil
	}
	inv, err := f.st.Invites().Get(ctx, token)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("invite: looking up a token: %w", err)
	}
	return &inv, nil
}

// registering checks the invitation of a sign-up and counts its use, or
// refuses a name an account invitation reserved for someone else.
func (f *feature) registering(ctx context.Context, r *server.Registration) error {
	now := f.now()
	judge := now
	if r.Invite == "" && r.Conn != nil && r.Conn.Invite != "" {
		// XEP-0445 §4: the token's expiry is judged when it was presented.
		r.Invite, judge = r.Conn.Invite, r.Conn.InviteAt
	}
	bare := r.JID.Bare().String()
	if r.Invite == "" {
		switch _, err := f.st.Invites().Reserved(ctx, bare, now); {
		case err == nil:
			return server.Refuse("invite_reserved", "The name %s is reserved for someone who was invited; choose another name.", r.JID.Local())
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("invite: looking up reservations of %s: %w", bare, err)
		}
		return nil
	}
	if !ValidToken(r.Invite) {
		return errInvalid()
	}
	inv, err := f.st.Invites().Use(ctx, r.Invite, judge)
	if errors.Is(err, store.ErrNotFound) {
		return errInvalid()
	}
	if err != nil {
		return fmt.Errorf("invite: using a token: %w", err)
	}
	var refusal error
	switch {
	case !AllowsRegistration(inv):
		refusal = server.Refuse("invite_not_for_registration", "This invitation cannot be used to create an account; open it in a chat app that already has an account.")
	case inv.Host != r.JID.Domain():
		refusal = server.Refuse("invite_wrong_host", "This invitation is for accounts on %s, not %s.", inv.Host, r.JID.Domain())
	case inv.Kind == store.InviteAccount && inv.JID != "" && inv.JID != bare:
		refusal = server.Refuse("invite_reserved", "This invitation is for the address %s only.", inv.JID)
	}
	if refusal != nil {
		f.release(ctx, inv.Token)
		return refusal
	}
	if r.Values == nil {
		r.Values = map[string]string{}
	}
	r.Values[ValueInvite] = string(inv.Kind)
	r.Values[valueToken] = inv.Token
	return nil
}

// release gives back a use counted by registering.
func (f *feature) release(ctx context.Context, token string) {
	if err := f.st.Invites().Release(ctx, token); err != nil {
		f.log.Warn("giving back an invitation use failed", "token", Short(token), "err", err)
	}
}

// failed gives back the use of a registration that did not happen.
func (f *feature) failed(ctx context.Context, fl server.RegistrationFailure) error {
	if tok := fl.Registration.Values[valueToken]; tok != "" {
		f.release(ctx, tok)
		delete(fl.Registration.Values, valueToken)
	}
	return nil
}

// registered completes a sign-up made with an invitation: the new account
// and the inviter become mutual contacts when the invitation says so.
func (f *feature) registered(ctx context.Context, r *server.Registration) error {
	tok := r.Values[valueToken]
	if tok == "" {
		return nil
	}
	inv, err := f.st.Invites().Get(ctx, tok)
	if err != nil {
		return fmt.Errorf("invite: reading the invitation used by %s: %w", r.JID.Bare(), err)
	}
	f.used.WithLabelValues(string(inv.Kind), "register").Inc()
	f.log.Info("invitation used", "purpose", "register", "kind", string(inv.Kind), "jid", r.JID.Bare().String(),
		"creator", inv.Creator, "method", r.Method, "token", Short(tok))
	if inv.Subscribe && inv.Creator != "" {
		creator, err := jid.Parse(inv.Creator)
		if err != nil {
			return fmt.Errorf("invite: creator %q: %w", inv.Creator, err)
		}
		return f.befriend(ctx, creator, r.JID.Bare())
	}
	return nil
}

// ResetPassword sets the password of the account a reset token is for,
// and uses the token up. via is the AccountEvent.Via ("web"). The error
// is a *server.Refusal with a text for people when the token cannot be
// used.
func ResetPassword(ctx context.Context, srv *server.Server, token, password, via string) (jid.JID, error) {
	if !ValidToken(token) {
		return jid.JID{}, errInvalid()
	}
	st := srv.Store().Invites()
	inv, err := st.Get(ctx, token)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (inv.Kind != store.InviteReset || !inv.Valid(time.Now()))) {
		srv.CountDenied("invite_invalid")
		return jid.JID{}, errInvalid()
	}
	if err != nil {
		return jid.JID{}, fmt.Errorf("invite: looking up a reset token: %w", err)
	}
	j, err := srv.AccountJID(inv.JID)
	if err != nil {
		return jid.JID{}, fmt.Errorf("invite: reset token for %q: %w", inv.JID, err)
	}
	if _, err := st.Use(ctx, token, time.Now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return jid.JID{}, errInvalid()
		}
		return jid.JID{}, fmt.Errorf("invite: using a reset token: %w", err)
	}
	if err := srv.SetPassword(ctx, j, password, via); err != nil {
		if rerr := st.Release(ctx, token); rerr != nil {
			srv.Logger().Warn("giving back a reset token failed", "err", rerr)
		}
		if errors.Is(err, server.ErrNoSuchUser) {
			return jid.JID{}, server.Refuse("invite_bad_account", "The account %s no longer exists.", j)
		}
		return jid.JID{}, err
	}
	srv.Logger().Info("invitation used", "feature", "invite", "purpose", "reset", "kind", "reset", "jid", j.String(), "method", via, "token", Short(token))
	return j, nil
}

// Lookup returns the invitation of token for display (landing pages);
// ok is false when the token is unknown or malformed.
func Lookup(ctx context.Context, st store.Store, token string) (inv store.Invite, ok bool, err error) {
	if !ValidToken(token) {
		return store.Invite{}, false, nil
	}
	inv, err = st.Invites().Get(ctx, token)
	if errors.Is(err, store.ErrNotFound) {
		return store.Invite{}, false, nil
	}
	if err != nil {
		return store.Invite{}, false, fmt.Errorf("invite: looking up a token: %w", err)
	}
	return inv, true, nil
}
