package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/sasl"
	"stoa.im/stoa/internal/xmpp/stanza"
)

// Account operations. Every path that creates, deletes or changes an
// account (command line through the admin socket, in-band, admin
// commands, web) goes through these methods, so the same events fire and
// the same checks run whichever door was used.

// ScramIterations is the PBKDF2 iteration count for new credentials.
const ScramIterations = 4096

// ErrUserExists and ErrNoSuchUser are returned by the account operations.
var (
	ErrUserExists = errors.New("the account already exists")
	ErrNoSuchUser = errors.New("no such account")
)

// AccountJID validates an account address: a local host, a localpart, no resource.
func (srv *Server) AccountJID(s string) (jid.JID, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return jid.JID{}, fmt.Errorf("%q is not a valid address: %w", s, err)
	}
	if j.Local() == "" || j.Resource() != "" {
		return jid.JID{}, fmt.Errorf("%q is not an account address (expected user@domain)", s)
	}
	if srv.hosts[j.Domain()] == nil {
		return jid.JID{}, fmt.Errorf("%s is not a domain served here (hosts: %v)", j.Domain(), srv.Hosts())
	}
	return j, nil
}

// Credentials converts a password to stored SCRAM keys.
func Credentials(password string) (store.Credentials, error) {
	c, err := sasl.NewCredentials(password, ScramIterations)
	if err != nil {
		return store.Credentials{}, err
	}
	return store.Credentials{
		SHA1:   store.ScramCredentials(c.SHA1),
		SHA256: store.ScramCredentials(c.SHA256),
	}, nil
}

// CreateUser creates an account.
func (srv *Server) CreateUser(ctx context.Context, j jid.JID, password, via string) error {
	if password == "" {
		return errors.New("the password is empty")
	}
	creds, err := Credentials(password)
	if err != nil {
		return fmt.Errorf("preparing the password: %w", err)
	}
	if err := srv.store.Accounts().Create(ctx, j.Bare().String(), creds); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("%s: %w", j.Bare(), ErrUserExists)
		}
		return fmt.Errorf("creating %s: %w", j.Bare(), err)
	}
	srv.log.Info("account created", "jid", j.Bare().String(), "via", via)
	Notify(ctx, srv, UserCreated, AccountEvent{JID: j.Bare().String(), Via: via})
	return nil
}

// SetPassword replaces an account's credentials.
func (srv *Server) SetPassword(ctx context.Context, j jid.JID, password, via string) error {
	if password == "" {
		return errors.New("the password is empty")
	}
	creds, err := Credentials(password)
	if err != nil {
		return fmt.Errorf("preparing the password: %w", err)
	}
	if err := srv.store.Accounts().SetCredentials(ctx, j.Bare().String(), creds); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%s: %w", j.Bare(), ErrNoSuchUser)
		}
		return fmt.Errorf("changing the password of %s: %w", j.Bare(), err)
	}
	srv.log.Info("password changed", "jid", j.Bare().String(), "via", via)
	Notify(ctx, srv, PasswordChanged, AccountEvent{JID: j.Bare().String(), Via: via})
	return nil
}

// DeleteUser ends the account's sessions at once, lets features veto or
// clean up (UserDeleting), deletes the account and its data, and fires
// UserDeleted.
func (srv *Server) DeleteUser(ctx context.Context, j jid.JID, via string) error {
	bare := j.Bare()
	if _, err := srv.store.Accounts().Get(ctx, bare.String()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%s: %w", bare, ErrNoSuchUser)
		}
		return fmt.Errorf("looking up %s: %w", bare, err)
	}
	ev := AccountEvent{JID: bare.String(), Via: via}
	if err := Emit(ctx, srv, UserDeleting, ev); err != nil {
		return fmt.Errorf("deleting %s refused: %w", bare, err)
	}
	srv.KickUser(ctx, bare, stanza.NewStreamError(stanza.StreamNotAuthorized, "This account has been deleted."))
	if err := srv.store.Accounts().Delete(ctx, bare.String()); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("deleting %s: %w", bare, err)
	}
	srv.log.Info("account deleted", "jid", bare.String(), "via", via)
	Notify(ctx, srv, UserDeleted, ev)
	return nil
}

// KickUser ends every session of an account with err and removes them
// from the session table before returning.
func (srv *Server) KickUser(ctx context.Context, bare jid.JID, err *stanza.StreamError) int {
	sessions := srv.Sessions(bare)
	for _, s := range sessions {
		s.Close(err)
		srv.Unbind(ctx, s)
	}
	return len(sessions)
}

// Users lists the accounts of a domain.
func (srv *Server) Users(ctx context.Context, domain string) ([]string, error) {
	if srv.hosts[domain] == nil {
		return nil, fmt.Errorf("%s is not a domain served here", domain)
	}
	return srv.store.Accounts().List(ctx, domain)
}

// Registration is a sign-up request, whatever the door (in-band, web,
// invitation, admin). Policies inspect and veto it through the
// UserRegistering event.
type Registration struct {
	JID      jid.JID
	Password string
	IP       netip.Addr // the client's address (after trusted-proxy resolution on the web)
	Method   string     // "inband", "web", "cli", "admin"
	Invite   string     // invitation token used, if any
	// Values carries method-specific facts for policies (e.g. "captcha":
	// "solved"); nil when none.
	Values map[string]string
}

// Registration events.
var (
	// UserRegistering fires before an account is created through
	// Register; any handler may veto with an error (a *Refusal gives the
	// reason label and the text the person sees). Handlers run in
	// priority order; a veto stops the chain.
	UserRegistering = Event[*Registration]{"user-registering"}
	// UserRegistered fires after Register created the account.
	UserRegistered = Event[*Registration]{"user-registered"}
)

// Register creates an account after every UserRegistering policy agreed.
// Refusals are counted under their reason and returned with their text.
func (srv *Server) Register(ctx context.Context, r *Registration) error {
	if err := Emit(ctx, srv, UserRegistering, r); err != nil {
		reason := "registration_refused"
		var ref *Refusal
		if errors.As(err, &ref) && ref.Reason != "" {
			reason = ref.Reason
		}
		srv.CountDenied(reason)
		srv.log.Info("registration refused", "jid", r.JID.String(), "ip", r.IP.String(), "method", r.Method, "policy", reason, "text", err.Error())
		return err
	}
	if err := srv.CreateUser(ctx, r.JID, r.Password, r.Method); err != nil {
		return err
	}
	Notify(ctx, srv, UserRegistered, r)
	return nil
}
