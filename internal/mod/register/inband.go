package register

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"stoa.im/stoa/internal/policy"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/xmpp/form"
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

// In-band registration (XEP-0077): before authentication, the form and
// the sign-up; after, the account's own registration (password change,
// cancellation).

func (f *feature) setupInband(s *server.Setup) {
	s.PreAuthFeature(f.streamFeature)
	s.PreAuthIQ(nsRegister, f.preAuth)
	s.PreAuthIQ(nsBoB, f.preAuthBoB)
	for _, t := range []server.IQTarget{server.ToServer, server.ToAccount} {
		s.HandleIQ(t, "get", nsRegister, "query", f.registeredGet)
		s.HandleIQ(t, "set", nsRegister, "query", f.registeredSet)
	}
	// Cancellation is answered before the account goes, so it is handled
	// as the stanza comes in rather than by an IQ handler (whose result
	// would be sent after the session ended).
	s.Hook(server.Inbound, server.PrioFeature, f.cancelHook)
}

// needCaptcha reports whether a sign-up on connection c is asked a
// CAPTCHA: not when it presented an invitation.
func needCaptcha(hp *hostPolicy, c *server.ConnInfo) bool {
	return hp.captcha != CaptchaNone && c.Invite == ""
}

// streamFeature offers in-band registration only where it can succeed:
// an open (or approval) host, over TLS, from a source not throttled.
// Invite-only hosts offer XEP-0445's feature instead (the invitation
// feature), and registration with a token still works.
func (f *feature) streamFeature(c *server.ConnInfo) *xml.Element {
	hp := f.hosts[c.Host]
	if hp == nil || !c.TLS || (hp.mode != ModeOpen && hp.mode != ModeApproval) {
		return nil
	}
	if f.thr.Check(c.Remote.Addr()) != nil {
		return nil
	}
	return xml.New(nsFeature, "register")
}

// conditionFor maps a refusal reason to the stanza error condition.
func conditionFor(reason string) (stanza.Condition, stanza.ErrorType) {
	switch {
	case reason == "registration_closed", reason == "registration_invite_only", reason == "registration_unknown_host":
		return stanza.NotAllowed, stanza.Cancel
	case reason == "registration_no_tls":
		return stanza.PolicyViolation, stanza.Modify
	case strings.HasPrefix(reason, "registration_throttle_"), strings.HasPrefix(reason, "registration_refused_"):
		return stanza.PolicyViolation, stanza.Wait
	case reason == "user_exists", reason == "name_taken", reason == "name_reserved", reason == "name_lookalike", reason == "name_tombstoned":
		return stanza.Conflict, stanza.Cancel
	case strings.HasPrefix(reason, "invite_"):
		return stanza.Forbidden, stanza.Auth
	}
	return stanza.NotAcceptable, stanza.Modify
}

// refusalError turns a refusal into the stanza error the client gets.
func refusalError(reason, text string) *stanza.Error {
	cond, typ := conditionFor(reason)
	return &stanza.Error{Type: typ, Condition: cond, Text: text}
}

// registerError maps an error of server.Register to a stanza error.
func (f *feature) registerError(err error) error {
	var ref *server.Refusal
	switch {
	case errors.As(err, &ref):
		return refusalError(ref.Reason, ref.Text)
	case errors.Is(err, server.ErrUserExists):
		return refusalError("user_exists", "That name is taken; choose another.")
	case errors.Is(err, server.ErrNameTaken):
		text := strings.TrimSuffix(err.Error(), ": "+server.ErrNameTaken.Error())
		return refusalError("name_taken", text+".")
	}
	return err // logged, internal-server-error
}

// early counts and logs a refusal that happens before server.Register
// (the request cannot even be made into a registration) and returns its
// stanza error.
func (f *feature) early(c *server.ConnInfo, reason, text string, countAttempt bool) error {
	f.srv.CountDenied(reason)
	f.log.Info("registration refused", "ip", c.Remote.Addr().String(), "host", c.Host, "method", "inband", "policy", reason, "text", text)
	if countAttempt {
		f.countRefusal("inband", reason, c.Remote.Addr())
	} else {
		f.metrics.refused.WithLabelValues(reason).Inc()
	}
	return refusalError(reason, text)
}

// allowed checks, before showing the form, whether a sign-up on c could
// succeed at all, so that nobody solves a CAPTCHA in vain.
func (f *feature) allowed(c *server.ConnInfo, hp *hostPolicy) error {
	if !c.TLS {
		return f.early(c, "registration_no_tls", "Encryption is required: start TLS before registering.", false)
	}
	switch hp.mode {
	case ModeClosed:
		return f.early(c, "registration_closed", fmt.Sprintf("Registration is closed on %s: its admins create the accounts. Ask them for one, or choose another server.", c.Host), false)
	case ModeInvite:
		if c.Invite == "" {
			return f.early(c, "registration_invite_only", fmt.Sprintf("Registration on %s is by invitation only: open your invitation link with your chat app, or ask someone with an account here for one.", c.Host), false)
		}
	}
	now := f.now()
	var b *blocked
	if c.Invite == "" {
		b = f.thr.Check(c.Remote.Addr())
	} else {
		f.thr.mu.Lock()
		b = f.thr.checkRefusedLocked(c.Remote.Addr(), now)
		f.thr.mu.Unlock()
	}
	if b != nil {
		var ref *server.Refusal
		if errors.As(throttleRefusal(b, now), &ref) {
			return f.early(c, ref.Reason, ref.Text, false)
		}
	}
	return nil
}

// preAuth answers jabber:iq:register before authentication.
func (f *feature) preAuth(ctx context.Context, c *server.ConnInfo, iq *xml.Element) (*xml.Element, error) {
	q := iq.Child(nsRegister, "query")
	if q == nil {
		return nil, stanza.NewError(stanza.BadRequest, "Expected <query xmlns='jabber:iq:register'/>.")
	}
	hp := f.hosts[c.Host]
	if hp == nil {
		return nil, stanza.NewError(stanza.ServiceUnavailable, "No host was named in the stream header.")
	}
	if iq.Attr("type") == "get" {
		if err := f.allowed(c, hp); err != nil {
			return nil, err
		}
		return f.form(c, hp, iq.Attr("id"))
	}
	if q.Child(nsRegister, "remove") != nil {
		return nil, stanza.NewError(stanza.RegistrationRequired, "Log in to the account before cancelling its registration.")
	}
	return f.submit(ctx, c, hp, q)
}

// form builds the registration form, with a CAPTCHA unless the
// connection presented an invitation.
func (f *feature) form(c *server.ConnInfo, hp *hostPolicy, id string) (*xml.Element, error) {
	instr := fmt.Sprintf("Choose a name and a password for your account on %s.", c.Host)
	q := xml.New(nsRegister, "query")
	q.AppendText(nsRegister, "instructions", instr)
	q.Append(xml.New(nsRegister, "username"), xml.New(nsRegister, "password"))
	fm := form.New(form.TypeForm, "Creating an account on "+c.Host).Instruct(instr)
	fm.Hidden("FORM_TYPE", nsRegister)
	fm.Add(
		form.Field{Var: "username", Type: form.TextSingle, Label: "Name", Required: true,
			Desc: fmt.Sprintf("Your address will be name@%s. Letters, digits and . - _; it cannot be changed later.", c.Host)},
		form.Field{Var: "password", Type: form.TextPrivate, Label: "Password", Required: true,
			Desc: fmt.Sprintf("At least %d characters.", f.cfg.PasswordMinLength)},
	)
	var ch *challenge
	if needCaptcha(hp, c) {
		var err error
		if ch, err = f.caps.issue(c.Host, c, hp.captcha, hp.hashcashBits); err != nil {
			return nil, fmt.Errorf("register: making a CAPTCHA: %w", err)
		}
		ch.formFields(fm, id)
		f.metrics.captcha.WithLabelValues("issued").Inc()
	}
	x := fm.Element()
	if ch != nil {
		ch.decorate(x)
	}
	q.Append(x)
	if ch != nil && ch.png != nil {
		q.Append(ch.bob())
	}
	return q, nil
}

// submit handles a sign-up: parse, CAPTCHA, then server.Register.
func (f *feature) submit(ctx context.Context, c *server.ConnInfo, hp *hostPolicy, q *xml.Element) (*xml.Element, error) {
	if err := f.allowedForSubmit(c); err != nil {
		return nil, err
	}
	sub, err := form.Find(q)
	if err != nil {
		return nil, stanza.Errorf(stanza.BadRequest, "The registration form is malformed: %v.", err)
	}
	var user, pass string
	if sub != nil && sub.FormType() == nsRegister {
		user, pass = sub.Value("username"), sub.Value("password")
	} else {
		sub = nil
		user, pass = q.ChildText(nsRegister, "username"), q.ChildText(nsRegister, "password")
	}
	var missing []string
	if strings.TrimSpace(user) == "" {
		missing = append(missing, "Name: required value missing")
	}
	if pass == "" {
		missing = append(missing, "Password: required value missing")
	}
	if len(missing) > 0 {
		return nil, f.early(c, "form_incomplete", strings.Join(missing, "\n"), true)
	}
	name, err := policy.PrepName(user)
	if err != nil {
		return nil, f.early(c, "name_invalid", capitalize(err.Error())+".", true)
	}
	j, err := jid.New(name, c.Host, "")
	if err != nil {
		return nil, f.early(c, "name_invalid", fmt.Sprintf("%q cannot be an account name here.", user), true)
	}
	r := &server.Registration{
		JID: j, Password: pass, IP: c.Remote.Addr(), Method: "inband", Conn: c,
		Values: map[string]string{},
	}
	if needCaptcha(hp, c) {
		outcome, id := f.caps.check(c, sub)
		r.Values[ValueCaptcha] = outcome
		if id != "" && outcome == captchaSolved {
			r.Values[valueCaptchaID] = id
		}
		f.metrics.captcha.WithLabelValues(outcome).Inc()
	}
	if err := f.srv.Register(ctx, r); err != nil {
		return nil, f.registerError(err)
	}
	return nil, nil
}

// allowedForSubmit refuses a submission without TLS.
func (f *feature) allowedForSubmit(c *server.ConnInfo) error {
	if !c.TLS {
		return f.early(c, "registration_no_tls", "Encryption is required: start TLS before registering.", false)
	}
	return nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// preAuthBoB serves CAPTCHA images (XEP-0231) before authentication.
func (f *feature) preAuthBoB(_ context.Context, _ *server.ConnInfo, iq *xml.Element) (*xml.Element, error) {
	d := iq.Child(nsBoB, "data")
	if iq.Attr("type") != "get" || d == nil {
		return nil, stanza.NewError(stanza.BadRequest, "Ask for an image with <iq type='get'><data xmlns='urn:xmpp:bob' cid='...'/></iq>.")
	}
	cid := d.Attr("cid")
	data, ok := f.caps.image(cid)
	if !ok {
		return nil, stanza.NewError(stanza.ItemNotFound, "No such image: the CAPTCHA expired or was answered; ask for the registration form again.")
	}
	return (&challenge{cid: cid, png: data}).bob(), nil
}

// own checks that an IQ about an account's registration comes from that
// account and returns its bare JID.
func own(st *server.Stanza) (jid.JID, error) {
	if st.Origin == nil {
		return jid.JID{}, stanza.NewError(stanza.Forbidden, "Only the account itself can manage its registration.")
	}
	bare := st.Origin.JID().Bare()
	if st.To.Local() != "" && st.To.Bare() != bare {
		return jid.JID{}, stanza.NewError(stanza.Forbidden, "Only the account itself can manage its registration.")
	}
	return bare, nil
}

// registeredGet answers a logged-in client's get: it is registered.
func (f *feature) registeredGet(_ context.Context, st *server.Stanza) (*xml.Element, error) {
	bare, err := own(st)
	if err != nil {
		return nil, err
	}
	q := xml.New(nsRegister, "query")
	q.Append(xml.New(nsRegister, "registered"))
	q.AppendText(nsRegister, "username", bare.Local())
	q.Append(xml.New(nsRegister, "password"))
	q.AppendText(nsRegister, "instructions", "To change your password, send your name and the new password. To delete your account and everything stored for it, send <remove/>.")
	return q, nil
}

// registeredSet changes the password of a logged-in account (XEP-0077
// §3.3), with the legacy fields or the changepassword form.
func (f *feature) registeredSet(ctx context.Context, st *server.Stanza) (*xml.Element, error) {
	bare, err := own(st)
	if err != nil {
		return nil, err
	}
	q := st.Payload()
	if q.Child(nsRegister, "remove") != nil {
		// Only reaches here when not from the account's own session.
		return nil, stanza.NewError(stanza.Forbidden, "Only the account itself can cancel its registration.")
	}
	user, pass := q.ChildText(nsRegister, "username"), q.ChildText(nsRegister, "password")
	if sub, err := form.Find(q); err != nil {
		return nil, stanza.Errorf(stanza.BadRequest, "The form is malformed: %v.", err)
	} else if sub != nil {
		user, pass = sub.Value("username"), sub.Value("password")
	}
	if pass == "" {
		return nil, stanza.NewError(stanza.BadRequest, "Send the new password in <password/>.")
	}
	if user != "" {
		if p, err := policy.PrepName(user); err != nil || p != bare.Local() {
			return nil, stanza.NewError(stanza.BadRequest, "The name does not match the account you are logged in to.")
		}
	}
	if n := len([]rune(pass)); n < f.cfg.PasswordMinLength {
		f.srv.CountDenied("password_too_short")
		return nil, stanza.Errorf(stanza.NotAcceptable, "The password is too short: use at least %d characters.", f.cfg.PasswordMinLength)
	}
	if err := f.srv.SetPassword(ctx, bare, pass, "inband"); err != nil {
		return nil, fmt.Errorf("register: changing the password of %s: %w", bare, err)
	}
	f.metrics.account.WithLabelValues("password_changed").Inc()
	return nil, nil
}

// cancelHook deletes the account of a logged-in client that sends
// <remove/> (XEP-0077 §3.2): the result is queued first, then the
// account, its data and its sessions go, and its name is tombstoned.
func (f *feature) cancelHook(ctx context.Context, st *server.Stanza) server.Result {
	if st.Kind != server.KindIQ || st.Type != "set" || st.Origin == nil {
		return server.Next
	}
	q := st.Payload()
	if q == nil || q.Space != nsRegister || q.Local != "query" || q.Child(nsRegister, "remove") == nil {
		return server.Next
	}
	bare := st.Origin.JID().Bare()
	if !(st.To.Bare() == bare || (st.To.Local() == "" && st.To.Domain() == bare.Domain())) {
		return server.Next
	}
	res := stanza.Result(st.El)
	if err := f.srv.RouteElement(ctx, res); err != nil {
		f.log.Warn("answering an account deletion failed", "jid", bare.String(), "err", err)
	}
	if err := f.srv.DeleteUser(ctx, bare, "inband"); err != nil {
		f.log.Error("in-band account deletion failed after it was acknowledged", "jid", bare.String(), "err", err)
		st.Origin.Close(stanza.NewStreamError(stanza.StreamUndefined, "Deleting your account failed; the error was logged. Contact the server's admins."))
		return server.Done
	}
	f.metrics.account.WithLabelValues("deleted").Inc()
	return server.Done
}
