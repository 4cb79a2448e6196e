// Package register is account sign-up: in-band registration (XEP-0077
// with a XEP-0004 form) and its CAPTCHA (XEP-0158 hashcash and image,
// served with XEP-0231), the registration policies every sign-up path
// goes through (in-band here, the web and invitations elsewhere, all via
// server.Register), password change and account deletion for logged-in
// users (XEP-0077 §3.2, §3.3), the registration log, admin notifications
// and the restriction of new accounts.
//
// Policies, in the order they run on server.UserRegistering:
//
//  1. gate (priority GatePriority): the host's mode (closed refuses
//     everything), then the throttles as a cheap early check: sources with
//     too many refused attempts, and, for sign-ups without an invitation,
//     full account windows.
//  2. the invitation feature (internal/mod/invite) checks any token and
//     sets Registration.Values["invite"].
//  3. checks (priority CheckPriority): invite-only mode, password length,
//     CAPTCHA, then the name: length, reserved names and patterns, the
//     account itself, look-alikes of accounts and tombstones (one indexed
//     lookup of the name's look-alike key, see policy.NameKey).
//  4. reserve (priority ReservePriority, after every other policy): a
//     slot in each account window of the source, atomically. Invited
//     sign-ups take none (they are not throttled but still count).
//
// A refusal at any step becomes a RegistrationFailed event: the slot, if
// any, is given back, and refusals about the request itself (name,
// CAPTCHA, invitation) count in the refused-attempt windows, never in the
// account windows.
package register

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"stoa.im/stoa/internal/policy"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
	"stoa.im/stoa/internal/xmpp/jid"
)

// Namespaces.
const (
	nsRegister = "jabber:iq:register"
	nsFeature  = "http://jabber.org/features/iq-register"
)

// Priorities of the UserRegistering handlers (see the package comment).
const (
	GatePriority    = server.PrioPolicy + 500
	CheckPriority   = server.PrioFeature
	ReservePriority = server.PrioFallback
)

// Registration.Values keys read and written here.
const (
	// ValueCaptcha is the CAPTCHA outcome: "solved", "wrong", "expired"
	// or "missing". In-band registration sets it; the web sets it to
	// "solved" after its own proof of work (or to anything else to refuse
	// through the same policy).
	ValueCaptcha = "captcha"
	// valueCaptchaID is the challenge an in-band sign-up answered.
	valueCaptchaID = "captcha.id"
	// ValueInvite is set by the invitation feature to the kind of a
	// checked invitation.
	ValueInvite = "invite"
)

// Methods that are admin actions: no mode, throttle, CAPTCHA or
// reserved-name policy applies (look-alikes and tombstones still do, in
// the store).
func adminMethod(m string) bool { return m == "cli" || m == "admin" }

// Feature is in-band registration and the registration policies.
var Feature = server.Feature{
	Name: "register",
	Doc:  "Account sign-up: in-band registration with CAPTCHA, registration modes, throttles per address and network, reserved and look-alike names, tombstones, the registration log, admin notifications and restrictions on new accounts; password change and account deletion in-band.",
	XEPs: []server.XEP{
		{N: 77, Name: "In-Band Registration", Version: "2.4", Status: server.Complete,
			Note: "registration with a data form, password change, cancellation; no redirection to a web page"},
		{N: 4, Name: "Data Forms", Version: "2.13.1", Status: server.Complete},
		{N: 158, Name: "CAPTCHA Forms (SHA-256 hashcash and image, in-band registration)", Version: "1.0", Status: server.Partial,
			Note: "challenges for in-band registration only (not for messages or rooms)"},
		{N: 231, Name: "Bits of Binary (CAPTCHA images)", Version: "1.0", Status: server.Partial,
			Note: "serves the CAPTCHA images before authentication"},
		{N: 221, Name: "Data Forms Media Element (CAPTCHA images)", Version: "1.0", Status: server.Complete},
	},
	Defaults: Defaults,
	Setup:    setup,
}

// feature is the running feature.
type feature struct {
	srv     *server.Server
	log     *slog.Logger
	cfg     Config
	hosts   map[string]*hostPolicy
	now     func() time.Time
	thr     *throttle
	caps    *captchas
	notify  *notifier
	limits  *restrictions
	metrics *metrics

	mu           sync.Mutex
	reservations map[*server.Registration]*reservation
}

func setup(s *server.Setup, c any) error {
	cfg := c.(Config)
	f := &feature{
		srv: s.Server(), log: s.Logger(), cfg: cfg, now: time.Now,
		reservations: make(map[*server.Registration]*reservation),
	}
	var err error
	if f.hosts, err = cfg.resolve(s.Server().Hosts()); err != nil {
		return fmt.Errorf("register: %w", err)
	}
	if f.thr, err = newThrottle(cfg.Throttle, f.now); err != nil {
		return fmt.Errorf("register: throttle.exempt: %w", err)
	}
	f.caps = newCaptchas(cfg.Captcha, f.now)
	f.metrics = newMetrics(s.Metrics(), f.caps)
	f.notify = newNotifier(f, cfg.Notify)
	f.limits = newRestrictions(f, cfg.NewAccounts)

	server.On(s, server.UserRegistering, GatePriority, f.gate)
	server.On(s, server.UserRegistering, CheckPriority, f.check)
	server.On(s, server.UserRegistering, ReservePriority, f.reserve)
	server.On(s, server.UserRegistered, server.PrioPolicy, f.registered)
	server.On(s, server.RegistrationFailed, server.PrioPolicy, f.failed)

	f.setupInband(s)
	f.setupCommands(s)
	s.Disco().ServerFeature(nsRegister)

	s.OnStart(f.start)
	return nil
}

// start loads the throttle state, indexes accounts created before the
// name index existed, and runs the periodic work until ctx ends.
func (f *feature) start(ctx context.Context) func() {
	st := f.srv.Store().Registration()
	if err := f.thr.Load(ctx, st); err != nil {
		f.log.Error("registration throttles start empty: loading their state failed", "err", err)
	}
	// A first batch of unindexed names synchronously (a new or small
	// database is done before the first sign-up), the rest of a large
	// upgraded database in the background.
	done := f.backfill(ctx, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if !done {
			f.backfill(ctx, 0)
		}
		f.loop(ctx)
	}()
	return func() {
		wg.Wait()
		// Last save with a fresh context: ctx is already cancelled.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := f.thr.Save(sctx, st); err != nil {
			f.log.Warn("saving the registration throttle state at shutdown failed", "err", err)
		}
	}
}

// Intervals of the background work.
const (
	saveInterval  = 5 * time.Second
	purgeInterval = time.Hour
)

func (f *feature) loop(ctx context.Context) {
	st := f.srv.Store().Registration()
	save := time.NewTicker(saveInterval)
	defer save.Stop()
	purge := time.NewTicker(purgeInterval)
	defer purge.Stop()
	f.purge(ctx)
	var digest <-chan time.Time
	if f.cfg.Notify.Mode == NotifyDigest {
		t := time.NewTicker(time.Duration(f.cfg.Notify.Interval))
		defer t.Stop()
		digest = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-save.C:
			if err := f.thr.Save(ctx, st); err != nil && ctx.Err() == nil {
				f.log.Warn("saving the registration throttle state failed; retrying", "err", err)
			}
		case <-purge.C:
			f.purge(ctx)
		case <-digest:
			f.notify.sendDigest(ctx)
		}
	}
}

// purge drops expired tombstones, old log entries and throttle state.
func (f *feature) purge(ctx context.Context) {
	st := f.srv.Store().Registration()
	now := f.now()
	f.thr.Sweep()
	if d := time.Duration(f.cfg.Names.TombstoneExpiry); d > 0 {
		for host := range f.hosts {
			if n, err := st.PurgeTombstones(ctx, host, now.Add(-d)); err != nil {
				f.log.Warn("purging expired tombstones failed", "host", host, "err", err)
			} else if n > 0 {
				f.log.Info("expired tombstones purged: those names may be registered again", "host", host, "count", n)
			}
		}
	}
	if d := time.Duration(f.cfg.LogRetention); d > 0 {
		if n, err := st.PurgeLog(ctx, now.Add(-d)); err != nil {
			f.log.Warn("purging the registration log failed", "err", err)
		} else if n > 0 {
			f.log.Info("old registration log entries purged", "count", n)
		}
	}
	if d := f.thr.maxRefusedPeriod(); d > 0 {
		if _, err := st.PurgeThrottle(ctx, now.Add(-d)); err != nil {
			f.log.Warn("purging old throttle state failed", "err", err)
		}
	}
}

// backfill indexes the names of accounts created before the name index
// existed (an upgraded database), so that look-alike checks and
// tombstones cover them too: at most maxBatches batches per host (0: all).
// It reports whether nothing is left.
func (f *feature) backfill(ctx context.Context, maxBatches int) (done bool) {
	const batch = 500
	st := f.srv.Store().Registration()
	done = true
	for host := range f.hosts {
		total, clashes, after := 0, 0, ""
		for n := 1; ctx.Err() == nil; n++ {
			list, err := st.UnindexedAccounts(ctx, host, after, batch)
			if err != nil {
				if ctx.Err() == nil {
					f.log.Error("indexing account names failed", "host", host, "err", err)
				}
				done = false
				break
			}
			for _, j := range list {
				after = j
				bare, err := jid.Parse(j)
				if err != nil || bare.Local() == "" {
					continue
				}
				ok, err := st.IndexName(ctx, j, policy.NameKey(bare.Local()))
				switch {
				case err != nil:
					f.log.Warn("indexing an account name failed", "jid", j, "err", err)
				case ok:
					total++
				default:
					clashes++
					f.log.Warn("account name looks like another account's; it stays unindexed (the other holds the look-alike key)", "jid", j)
				}
			}
			if len(list) < batch {
				break
			}
			if n == maxBatches {
				done = false
				break
			}
		}
		if total > 0 {
			f.log.Info("indexed account names for look-alike checks", "host", host, "count", total, "look_alike_pairs", clashes)
		}
	}
	return done
}

// refusal builds the error of a policy: the reason labels metrics and
// logs, the text is what the person sees.
func refuse(reason, format string, args ...any) error {
	return server.Refuse(reason, format, args...)
}

// retryText says when a throttled source may try again.
func retryText(at, now time.Time) string {
	d := at.Sub(now)
	switch {
	case d < time.Minute:
		return "in a minute"
	case d < time.Hour:
		return fmt.Sprintf("in %d minutes", int(d.Minutes()+0.999))
	case d < 48*time.Hour:
		return fmt.Sprintf("in %d hours", int(d.Hours()+0.999))
	}
	return "after " + at.UTC().Format("2006-01-02 15:04 UTC")
}

// throttleRefusal is the refusal for a full window.
func throttleRefusal(b *blocked, now time.Time) error {
	when := retryText(b.retry, now)
	if b.refused {
		from := "your network"
		if b.scope == scopeIP {
			from = "your address"
		}
		return refuse("registration_refused_"+string(b.scope),
			"Too many refused sign-up attempts came from %s recently; try again %s.", from, when)
	}
	switch b.scope {
	case scopeGlobal:
		return refuse("registration_throttle_global",
			"This server has reached its limit of new accounts for now; try again %s.", when)
	case scopeIP:
		return refuse("registration_throttle_ip",
			"Too many accounts were created from your address recently; try again %s.", when)
	}
	return refuse("registration_throttle_"+string(b.scope),
		"Too many accounts were created from your network recently; try again %s.", when)
}

// presentsInvite reports whether a sign-up presents an invitation (not yet
// checked).
func presentsInvite(r *server.Registration) bool {
	return r.Invite != "" || (r.Conn != nil && r.Conn.Invite != "")
}

// gate is the first, cheap policy: mode and throttles.
func (f *feature) gate(_ context.Context, r *server.Registration) error {
	if adminMethod(r.Method) {
		return nil
	}
	hp := f.hosts[r.JID.Domain()]
	if hp == nil {
		return refuse("registration_unknown_host", "%s is not served here.", r.JID.Domain())
	}
	if hp.mode == ModeClosed {
		return refuse("registration_closed",
			"Registration is closed on %s: its admins create the accounts. Ask them for one, or choose another server.", r.JID.Domain())
	}
	now := f.now()
	if presentsInvite(r) {
		f.thr.mu.Lock()
		b := f.thr.checkRefusedLocked(r.IP, now)
		f.thr.mu.Unlock()
		if b != nil {
			return throttleRefusal(b, now)
		}
		return nil
	}
	if b := f.thr.Check(r.IP); b != nil {
		return throttleRefusal(b, now)
	}
	return nil
}

// check runs the policies on the request's content.
func (f *feature) check(ctx context.Context, r *server.Registration) error {
	if adminMethod(r.Method) {
		return nil
	}
	hp := f.hosts[r.JID.Domain()]
	invited := r.Values[ValueInvite] != ""
	if hp.mode == ModeInvite && !invited {
		return refuse("registration_invite_only",
			"Registration on %s is by invitation only: ask someone with an account here for an invitation link.", r.JID.Domain())
	}
	if n := len([]rune(r.Password)); n < f.cfg.PasswordMinLength {
		return refuse("password_too_short",
			"The password is too short: use at least %d characters.", f.cfg.PasswordMinLength)
	}
	if !invited {
		if err := f.checkCaptcha(r, hp); err != nil {
			return err
		}
	}
	return f.checkName(ctx, r.JID, hp)
}

func (f *feature) checkCaptcha(r *server.Registration, hp *hostPolicy) error {
	outcome, set := r.Values[ValueCaptcha]
	if r.Method == "inband" && hp.captcha != CaptchaNone && !set {
		outcome, set = captchaMissing, true
	}
	if !set || outcome == captchaSolved {
		return nil
	}
	switch outcome {
	case captchaWrong:
		return refuse("captcha_wrong", "The answer to the CAPTCHA was wrong. Ask for the registration form again to get a new challenge.")
	case captchaExpired:
		return refuse("captcha_expired", "The CAPTCHA challenge is unknown or expired. Ask for the registration form again to get a new one.")
	}
	return refuse("captcha_missing", "Answer the CAPTCHA in the registration form (your client must support XEP-0158 CAPTCHA forms); ask for the form again to get a challenge.")
}

// checkName refuses names that are too long, reserved, taken, look like
// an account's or a deleted account's.
func (f *feature) checkName(ctx context.Context, j jid.JID, hp *hostPolicy) error {
	name := j.Local()
	if len(name) > f.cfg.Names.MaxLength {
		return refuse("name_too_long", "The name is too long: use at most %d characters.", f.cfg.Names.MaxLength)
	}
	if entry, ok := hp.reserved.Match(name); ok {
		if entry == name {
			return refuse("name_reserved", "The name %q is reserved on %s; choose another.", name, j.Domain())
		}
		return refuse("name_reserved", "The name %q is reserved on %s (it looks like or matches %q); choose another.", name, j.Domain(), entry)
	}
	st := f.srv.Store().Registration()
	e, err := st.LookupName(ctx, j.Domain(), policy.NameKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("register: checking the name %s: %w", j, err)
	}
	holder := e.JID
	if hj, err := jid.Parse(e.JID); err == nil {
		holder = hj.Local()
	}
	if e.State == store.NameAccount {
		if e.JID == j.Bare().String() {
			return refuse("user_exists", "The name %q is taken on %s; choose another.", name, j.Domain())
		}
		return refuse("name_lookalike", "The name %q looks too much like the existing account %q; choose a clearly different name.", name, holder)
	}
	if d := time.Duration(f.cfg.Names.TombstoneExpiry); d > 0 && e.Since.Before(f.now().Add(-d)) {
		// Expired but not purged yet: free it now.
		if err := st.RemoveTombstone(ctx, e.JID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("register: removing the expired tombstone of %s: %w", e.JID, err)
		}
		f.log.Info("expired tombstone removed", "jid", e.JID, "deleted", e.Since)
		return nil
	}
	if e.JID == j.Bare().String() {
		return refuse("name_tombstoned", "The name %q belonged to an account that was deleted. Names of deleted accounts are never given out again, so that nobody can pose as their former owner; choose another.", name)
	}
	return refuse("name_tombstoned", "The name %q looks like %q, the name of an account that was deleted. Such names are never given out again, so that nobody can pose as their former owner; choose another.", name, holder)
}

// reserve takes the throttle slots of a sign-up, after every other
// policy agreed.
func (f *feature) reserve(_ context.Context, r *server.Registration) error {
	if adminMethod(r.Method) || r.Values[ValueInvite] != "" {
		return nil
	}
	res, b := f.thr.Reserve(r.IP)
	if b != nil {
		return throttleRefusal(b, f.now())
	}
	f.mu.Lock()
	f.reservations[r] = res
	f.mu.Unlock()
	return nil
}

func (f *feature) takeReservation(r *server.Registration) *reservation {
	f.mu.Lock()
	defer f.mu.Unlock()
	res := f.reservations[r]
	delete(f.reservations, r)
	return res
}

// registered completes a sign-up: throttle windows, the log, the new
// account's restriction, notifications.
func (f *feature) registered(ctx context.Context, r *server.Registration) error {
	now := f.now()
	if res := f.takeReservation(r); res != nil {
		f.thr.Commit(res, now)
	} else if !adminMethod(r.Method) {
		f.thr.Count(r.IP, now)
	}
	if id := r.Values[valueCaptchaID]; id != "" {
		f.caps.done(id)
	}
	ip := ""
	if r.IP.IsValid() {
		ip = r.IP.Unmap().String()
	}
	entry := store.RegistrationLogEntry{
		JID: r.JID.Bare().String(), Domain: r.JID.Domain(), At: now, IP: ip, Method: r.Method, Invite: r.Invite,
	}
	if _, err := f.srv.Store().Registration().AppendLog(ctx, entry); err != nil {
		f.log.Error("writing the registration log failed", "jid", entry.JID, "err", err)
	}
	hp := f.hosts[r.JID.Domain()]
	approval := hp != nil && hp.mode == ModeApproval && !adminMethod(r.Method)
	if !adminMethod(r.Method) {
		if err := f.limits.start(ctx, r.JID.Bare(), now, approval); err != nil {
			f.log.Error("restricting the new account failed", "jid", entry.JID, "err", err)
		}
	}
	f.metrics.attempts.WithLabelValues(r.Method, "created").Inc()
	f.log.Info("account registered", "jid", entry.JID, "ip", ip, "method", r.Method, "invite", shortToken(r.Invite), "approval_pending", approval)
	f.notify.registered(ctx, entry, approval)
	return nil
}

// failed releases what a refused sign-up held and counts the refusal.
func (f *feature) failed(_ context.Context, fl server.RegistrationFailure) error {
	r := fl.Registration
	if res := f.takeReservation(r); res != nil {
		f.thr.Release(res)
	}
	if adminMethod(r.Method) {
		return nil
	}
	f.countRefusal(r.Method, fl.Reason, r.IP)
	return nil
}

// countRefusal counts a refused sign-up in the metrics and, when the
// refusal was about the request itself, in the refused-attempt windows.
func (f *feature) countRefusal(method, reason string, ip netip.Addr) {
	f.metrics.attempts.WithLabelValues(method, "refused").Inc()
	f.metrics.refused.WithLabelValues(reason).Inc()
	if countsAsRefused(reason) {
		f.thr.Refused(ip)
	}
}

// countsAsRefused reports whether a refusal counts against its source's
// refused-attempt budget: refusals of the request (name, CAPTCHA,
// invitation, password) do; refusals that are the server's own state
// (closed, throttled, internal errors) do not.
func countsAsRefused(reason string) bool {
	switch {
	case reason == "registration_closed", reason == "registration_error", reason == "registration_unknown_host",
		reason == "registration_refused", strings.HasPrefix(reason, "registration_throttle_"),
		strings.HasPrefix(reason, "registration_refused_"):
		return false
	}
	return true
}

// shortToken shortens an invitation token for logs.
func shortToken(t string) string {
	if len(t) > 6 {
		return t[:6] + "…"
	}
	return t
}
