// Package invite implements invitations: account invitations an admin
// creates (XEP-0401 "create-account", `stoa invite create`), contact
// invitations any user creates (XEP-0401 "invite", XEP-0379
// Pre-Authenticated Roster Subscription) and password-reset links an
// admin creates for one account.
//
// An invitation is a random token (24 letters and digits, about 142 bits)
// stored with its kind, host, creator, expiry and number of uses. It is
// shared as an xmpp: URI (RFC 5122 with the preauth parameter of XEP-0379
// and XEP-0401) and, when the web listener is on, as an https landing page
// (internal/web) that suggests clients and leads to the web sign-up.
//
// Using an invitation to sign up goes through server.Register like every
// other sign-up, so every registration policy applies: in-band, a client
// presents the token first (XEP-0445, <preauth xmlns='urn:xmpp:pars:0'/>
// before the XEP-0077 form) and the connection remembers it; on the web,
// the sign-up form carries it. The UserRegistering hook checks the token
// and counts the use at once (so a single-use token cannot create two
// accounts in a race), and gives it back if the registration fails. A
// contact invitation (or an account invitation with roster subscription)
// then makes the new account and the inviter mutual contacts, with roster
// pushes to the inviter's clients (XEP-0401 §3.5).
//
// An existing user who opens a contact invitation sends a subscription
// request carrying the token (XEP-0379 §3.4); the inviter's server
// approves it for the inviter and asks back, so both end with a mutual
// subscription.
//
// Ordinary users create contact invitations (with user_invites =
// "register" they also let the invitee sign up here) within a quota per
// period; admins have no quota. Expired and used invitations are kept
// for keep_expired (quotas count them), then deleted by a background
// clean-up.
package invite

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
)

// Namespaces.
const (
	nsPARS     = "urn:xmpp:pars:0"      // XEP-0379 preauth element
	nsIBRToken = "urn:xmpp:ibr-token:0" // XEP-0445 stream feature
)

// Feature is the invitations feature.
var Feature = server.Feature{
	Name: "invite",
	Doc:  "Invitations: account and contact invitation links (xmpp: URIs and web landing pages) with quotas and expiry, invitation tokens for sign-up, and password-reset links.",
	XEPs: []server.XEP{
		{N: 401, Name: "Ad-hoc Account Invitation Generation", Version: "0.6.0", Status: server.Complete},
		{N: 379, Name: "Pre-Authenticated Roster Subscription", Version: "0.3.3", Status: server.Complete,
			Note: "server side: the inviter's server approves and subscribes back"},
		{N: 445, Name: "Pre-Authenticated In-Band Registration", Version: "0.2.0", Status: server.Complete},
	},
	Defaults: Config{
		Expiry:          config.Duration(7 * 24 * time.Hour),
		ResetExpiry:     config.Duration(24 * time.Hour),
		UserInvites:     "contact",
		UserQuota:       10,
		QuotaPeriod:     config.Duration(7 * 24 * time.Hour),
		KeepExpired:     config.Duration(30 * 24 * time.Hour),
		CleanupInterval: config.Duration(time.Hour),
	},
	Setup: setup,
}

// Config is the [invite] table.
type Config struct {
	Expiry      config.Duration `toml:"expiry" min:"1m" help:"How long a new invitation stays valid when its creator does not say (ad-hoc commands, stoa invite create)."`
	ResetExpiry config.Duration `toml:"reset_expiry" min:"1m" help:"How long a password-reset link stays valid when the admin does not say."`
	UserInvites string          `toml:"user_invites" enum:"none,contact,register" help:"What ordinary users may create (admins may create everything): none; contact (contact invitations: the invitee becomes their contact but needs an account, here or elsewhere, already); register (contact invitations that also let the invitee create an account here)."`
	UserQuota   int             `toml:"user_quota" min:"0" help:"Invitations one ordinary user may create per quota_period; 0 means no limit. Admins have no quota."`
	QuotaPeriod config.Duration `toml:"quota_period" min:"1h" help:"The period user_quota counts over."`
	KeepExpired config.Duration `toml:"keep_expired" min:"0s" help:"How long expired and used invitations are kept before they are deleted (at least quota_period is kept, since quotas count them)."`
	// CleanupInterval is how often the clean-up runs.
	CleanupInterval config.Duration `toml:"cleanup_interval" min:"1s" help:"How often expired invitations are deleted."`
}

// DefaultUses is how many accounts one invitation may create unless its
// creator says otherwise.
const DefaultUses = 1

// maxUses bounds the uses an admin may give one invitation.
const maxUses = 1000

type feature struct {
	srv *server.Server
	st  store.Store
	log *slog.Logger
	cfg Config
	now func() time.Time

	created *prometheus.CounterVec
	used    *prometheus.CounterVec
	purged  prometheus.Counter
}

func setup(s *server.Setup, c any) error {
	cfg, ok := c.(Config)
	if !ok {
		return fmt.Errorf("invite: config has type %T, want invite.Config", c)
	}
	if cfg.Expiry <= 0 || cfg.ResetExpiry <= 0 || cfg.QuotaPeriod <= 0 || cfg.CleanupInterval <= 0 || cfg.UserQuota < 0 || cfg.KeepExpired < 0 {
		return fmt.Errorf("invite: expiry, reset_expiry, quota_period and cleanup_interval must be positive, user_quota and keep_expired not negative")
	}
	f := &feature{srv: s.Server(), st: s.Store(), log: s.Logger(), cfg: cfg, now: time.Now}
	f.created = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stoa", Subsystem: "invite", Name: "created_total",
		Help: "Invitations created, by kind (account, contact, reset).",
	}, []string{"kind"})
	f.used = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stoa", Subsystem: "invite", Name: "used_total",
		Help: "Invitations used, by kind and purpose (register, subscribe, reset).",
	}, []string{"kind", "purpose"})
	f.purged = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "stoa", Subsystem: "invite", Name: "purged_total",
		Help: "Expired invitations deleted by the clean-up.",
	})
	for _, m := range []prometheus.Collector{f.created, f.used, f.purged} {
		if err := s.Metrics().Register(m); err != nil {
			return fmt.Errorf("invite: registering metrics: %w", err)
		}
	}
	f.setupRegistration(s)
	f.setupSubscription(s)
	f.setupAdHoc(s)
	f.setupAdmin(s)
	s.OnStart(f.cleanup)
	return nil
}

// tokenAlphabet: XEP-0401 asks for alphanumeric tokens.
const tokenAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// tokenLen gives 24*log2(62) ≈ 142 bits.
const tokenLen = 24

// NewToken returns a random invitation token.
func NewToken() string {
	b := make([]byte, 0, tokenLen)
	var buf [64]byte
	for len(b) < tokenLen {
		_, _ = rand.Read(buf[:]) // never fails (crypto/rand)
		for _, c := range buf {
			// 248 = 4*62: rejection sampling keeps the letters uniform.
			if c < 248 && len(b) < tokenLen {
				b = append(b, tokenAlphabet[int(c)%len(tokenAlphabet)])
			}
		}
	}
	return string(b)
}

// ValidToken reports whether s has the shape of a token (so that junk is
// refused before it reaches the store).
func ValidToken(s string) bool {
	if len(s) != tokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(tokenAlphabet, rune(s[i])) {
			return false
		}
	}
	return true
}

// Request describes an invitation to create.
type Request struct {
	Kind store.InviteKind
	Host string
	// Creator is the account creating it (zero for the command line).
	Creator jid.JID
	// JID: account invites, the reserved address (zero: the invitee
	// chooses); reset invites, the account.
	JID jid.JID
	// AllowRegister: contact invites that also allow sign-up.
	AllowRegister bool
	// Subscribe: account invites whose new account becomes Creator's
	// contact.
	Subscribe bool
	Expires   time.Duration // 0: the configured default
	Uses      int           // 0: DefaultUses
	Note      string
}

// Created is a new invitation with its links.
type Created struct {
	Invite store.Invite
	URI    string // xmpp: URI ("" for reset links, which have none)
	// Landing is the web page URL; "" when the web listener is off.
	Landing string
}

// errRefused wraps refusals people see (quota, bad address).
func refuse(reason, format string, args ...any) error {
	return server.Refuse(reason, format, args...)
}

// create checks req against the rules and stores the invitation.
func (f *feature) create(ctx context.Context, req Request) (Created, error) {
	if f.srv.Host(req.Host) == nil {
		return Created{}, refuse("invite_bad_host", "%s is not a domain served here (hosts: %s)", req.Host, strings.Join(f.srv.Hosts(), ", "))
	}
	now := f.now()
	ttl := req.Expires
	if ttl == 0 {
		ttl = time.Duration(f.cfg.Expiry)
		if req.Kind == store.InviteReset {
			ttl = time.Duration(f.cfg.ResetExpiry)
		}
	}
	if ttl < time.Minute {
		return Created{}, refuse("invite_bad_expiry", "an invitation must stay valid for at least a minute (got %s)", ttl)
	}
	uses := req.Uses
	if uses == 0 {
		uses = DefaultUses
	}
	if uses < 1 || uses > maxUses {
		return Created{}, refuse("invite_bad_uses", "an invitation may be used 1 to %d times (got %d)", maxUses, uses)
	}
	inv := store.Invite{
		Kind: req.Kind, Host: req.Host, Creator: req.Creator.Bare().String(),
		Note: req.Note, Created: now, Expires: now.Add(ttl), MaxUses: uses,
	}
	switch req.Kind {
	case store.InviteAccount:
		inv.AllowRegister = true
		inv.Subscribe = req.Subscribe && !req.Creator.IsZero()
		if !req.JID.IsZero() {
			if err := f.checkReservable(ctx, req.JID, req.Host, now); err != nil {
				return Created{}, err
			}
			inv.JID = req.JID.Bare().String()
			inv.MaxUses = 1 // one address, one account
		}
	case store.InviteContact:
		if req.Creator.IsZero() || req.Creator.Local() == "" || req.Creator.Domain() != req.Host {
			return Created{}, refuse("invite_bad_creator", "a contact invitation needs an account of %s to make the invitee its contact", req.Host)
		}
		// XEP-0401 §3.1: no ibr=y where invited users cannot register.
		inv.AllowRegister, inv.Subscribe = req.AllowRegister && f.registrationOpen(req.Host), true
	case store.InviteReset:
		if req.JID.IsZero() || req.JID.Domain() != req.Host {
			return Created{}, refuse("invite_bad_account", "a password-reset link needs an account of %s", req.Host)
		}
		if _, err := f.st.Accounts().Get(ctx, req.JID.Bare().String()); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return Created{}, refuse("invite_bad_account", "there is no account %s", req.JID.Bare())
			}
			return Created{}, fmt.Errorf("invite: looking up %s: %w", req.JID.Bare(), err)
		}
		inv.JID = req.JID.Bare().String()
		inv.MaxUses = 1
	default:
		return Created{}, fmt.Errorf("invite: unknown kind %q", req.Kind)
	}
	if !req.Creator.IsZero() {
		if err := f.checkQuota(ctx, req.Creator, now); err != nil {
			return Created{}, err
		}
	}
	for range 3 {
		inv.Token = NewToken()
		err := f.st.Invites().Create(ctx, inv)
		if errors.Is(err, store.ErrExists) {
			continue // 142 random bits: never, but cheap to handle
		}
		if errors.Is(err, store.ErrNotFound) {
			return Created{}, refuse("invite_bad_creator", "only accounts of this server can create invitations (%s has none)", req.Creator.Bare())
		}
		if err != nil {
			return Created{}, fmt.Errorf("invite: storing: %w", err)
		}
		f.created.WithLabelValues(string(inv.Kind)).Inc()
		f.log.Info("invitation created", "kind", string(inv.Kind), "host", inv.Host, "creator", inv.Creator,
			"jid", inv.JID, "expires", inv.Expires.Format(time.RFC3339), "uses", inv.MaxUses, "token", Short(inv.Token))
		return Created{Invite: inv, URI: URI(inv), Landing: LandingURL(f.srv.PublicURL(), inv)}, nil
	}
	return Created{}, errors.New("invite: could not find a free token")
}

// RegistrationModes is the service this feature looks for (server.Find)
// to learn whether a host lets invited people register: the register
// feature's mode per host ("closed", "invite", "approval", "open").
type RegistrationModes interface {
	RegistrationMode(host string) string
}

// registrationOpen reports whether invited people may register on host;
// true when no feature says (the sign-up itself is checked anyway).
func (f *feature) registrationOpen(host string) bool {
	m, ok := server.Find[RegistrationModes](f.srv)
	return !ok || m.RegistrationMode(host) != "closed"
}

// checkReservable refuses reserving an address that exists, is reserved
// already or is not of the host.
func (f *feature) checkReservable(ctx context.Context, j jid.JID, host string, now time.Time) error {
	bare := j.Bare().String()
	if j.Domain() != host || j.Local() == "" {
		return refuse("invite_bad_account", "%s is not an address on %s", bare, host)
	}
	switch _, err := f.st.Accounts().Get(ctx, bare); {
	case err == nil:
		return refuse("invite_bad_account", "the account %s exists already", bare)
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("invite: looking up %s: %w", bare, err)
	}
	switch _, err := f.st.Invites().Reserved(ctx, bare, now); {
	case err == nil:
		return refuse("invite_bad_account", "%s is already reserved by another invitation", bare)
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("invite: looking up reservations of %s: %w", bare, err)
	}
	return nil
}

// checkQuota refuses when an ordinary user created too many invitations.
func (f *feature) checkQuota(ctx context.Context, creator jid.JID, now time.Time) error {
	if f.srv.IsAdmin(creator) || f.cfg.UserQuota == 0 {
		return nil
	}
	period := time.Duration(f.cfg.QuotaPeriod)
	n, err := f.st.Invites().CountCreated(ctx, creator.Bare().String(), now.Add(-period))
	if err != nil {
		return fmt.Errorf("invite: counting invitations: %w", err)
	}
	if n >= f.cfg.UserQuota {
		f.srv.CountDenied("invite_quota")
		f.log.Info("invitation refused", "policy", "invite_quota", "creator", creator.Bare().String(), "count", n)
		return refuse("invite_quota", "You created %d invitations in the last %s, the most this server allows; try again later.",
			n, config.Duration(period))
	}
	return nil
}

// cleanup deletes expired invitations periodically.
func (f *feature) cleanup(ctx context.Context) func() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Duration(f.cfg.CleanupInterval))
		defer t.Stop()
		for {
			f.purge(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { <-done }
}

// purge runs one clean-up.
func (f *feature) purge(ctx context.Context) {
	keep := max(time.Duration(f.cfg.KeepExpired), time.Duration(f.cfg.QuotaPeriod))
	now := f.now()
	n, err := f.st.Invites().Purge(ctx, now.Add(-keep))
	if err != nil {
		if ctx.Err() == nil {
			f.log.Warn("deleting expired invitations failed", "err", err)
		}
		return
	}
	if n > 0 {
		f.purged.Add(float64(n))
		f.log.Info("expired invitations deleted", "count", n)
	}
}

// Short is the start of a token, for logs (a token is a secret while
// valid).
func Short(token string) string {
	if len(token) > 6 {
		return token[:6] + "…"
	}
	return token
}

// AllowsRegistration reports whether inv can be used to create an
// account (account invites, contact invites with ibr=y).
func AllowsRegistration(inv store.Invite) bool {
	return inv.Kind == store.InviteAccount || (inv.Kind == store.InviteContact && inv.AllowRegister)
}

// URI returns the xmpp: URI of an invitation (RFC 5122, XEP-0379,
// XEP-0401, XEP-0445), or "" for reset links.
func URI(inv store.Invite) string {
	t := url.QueryEscape(inv.Token)
	switch inv.Kind {
	case store.InviteAccount:
		addr := inv.Host
		if inv.JID != "" {
			addr = inv.JID
		}
		return "xmpp:" + escapeJID(addr) + "?register;preauth=" + t
	case store.InviteContact:
		u := "xmpp:" + escapeJID(inv.Creator) + "?roster;preauth=" + t
		if inv.AllowRegister {
			u += ";ibr=y"
		}
		return u
	}
	return ""
}

// LandingURL returns the web page of an invitation under base (the web
// listener's public URL), or "" when base is empty.
func LandingURL(base string, inv store.Invite) string {
	if base == "" {
		return ""
	}
	if inv.Kind == store.InviteReset {
		return base + "/reset/" + url.PathEscape(inv.Token)
	}
	return base + "/invite/" + url.PathEscape(inv.Token)
}

// escapeJID percent-encodes a JID for the path of an xmpp: URI (RFC
// 5122 §2.2): everything but unreserved characters, '@' and the
// sub-delimiters that have no meaning there.
func escapeJID(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			strings.IndexByte("-._~@!$'()*+,=", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
