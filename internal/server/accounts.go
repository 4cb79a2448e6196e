package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"stoa.im/stoa/internal/policy"
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
	// ErrNameTaken: the name looks like an existing account's, or was the
	// name of a deleted account (tombstone); the error's text says which.
	ErrNameTaken = errors.New("the name is taken")
)

// nameTaken turns a store.NameTakenError into an error for people.
func nameTaken(j jid.JID, nt *store.NameTakenError) error {
	h := nt.Holder
	if h.State == store.NameTombstone {
		if h.JID == j.Bare().String() {
			return fmt.Errorf("%s belonged to an account deleted on %s, and names of deleted accounts are not given out again: %w",
				j.Bare(), h.Since.Format("2006-01-02"), ErrNameTaken)
		}
		return fmt.Errorf("%s looks like %s, the name of an account deleted on %s; names of deleted accounts and their look-alikes are not given out again: %w",
			j.Bare(), h.JID, h.Since.Format("2006-01-02"), ErrNameTaken)
	}
	return fmt.Errorf("%s looks too much like the existing account %s; choose a clearly different name: %w", j.Bare(), h.JID, ErrNameTaken)
}

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
	// The account and its name's look-alike key are written together:
	// a name held by a look-alike account or a tombstone is refused here,
	// whatever the path, with no race between check and create.
	if err := srv.store.Registration().CreateAccount(ctx, j.Bare().String(), creds, policy.NameKey(j.Local())); err != nil {
		var nt *store.NameTakenError
		switch {
		case errors.Is(err, store.ErrExists):
			return fmt.Errorf("%s: %w", j.Bare(), ErrUserExists)
		case errors.As(err, &nt):
			return nameTaken(j, nt)
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
	// The name becomes a tombstone in the same transaction, on every path
	// (in-band, command line, admin command, web): it is never issued
	// again (unless a configured expiry purges the tombstone).
	if err := srv.store.Registration().DeleteAccount(ctx, bare.String(), policy.NameKey(bare.Local()), time.Now(), via); err != nil && !errors.Is(err, store.ErrNotFound) {
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
	// Conn is the client connection for in-band registration (nil for
	// the web and the command line): the invitation feature finds the
	// XEP-0445 token the stream presented through it.
	Conn *ConnInfo
}

// RegistrationFailure is the payload of RegistrationFailed.
type RegistrationFailure struct {
	Registration *Registration
	// Reason is the refusal's snake_case reason ("user_exists",
	// "name_taken" or "registration_error" when creating the account
	// failed after every policy agreed).
	Reason string
	Err    error
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
	// RegistrationFailed fires when Register did not create the account:
	// a UserRegistering veto, or creating the account failed (the name
	// was taken meanwhile). Policies that reserved something while
	// UserRegistering ran (throttle slots) release it here.
	RegistrationFailed = Event[RegistrationFailure]{"registration-failed"}
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
		Notify(ctx, srv, RegistrationFailed, RegistrationFailure{Registration: r, Reason: reason, Err: err})
		return err
	}
	if err := srv.CreateUser(ctx, r.JID, r.Password, r.Method); err != nil {
		reason := "registration_error"
		switch {
		case errors.Is(err, ErrUserExists):
			reason = "user_exists"
		case errors.Is(err, ErrNameTaken):
			reason = "name_taken"
		}
		srv.CountDenied(reason)
		srv.log.Info("registration refused", "jid", r.JID.String(), "ip", r.IP.String(), "method", r.Method, "policy", reason, "text", err.Error())
		Notify(ctx, srv, RegistrationFailed, RegistrationFailure{Registration: r, Reason: reason, Err: err})
		return err
	}
	Notify(ctx, srv, UserRegistered, r)
	return nil
}
